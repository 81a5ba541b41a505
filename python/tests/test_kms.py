import concurrent.futures

import pytest

import codekeep


@pytest.fixture()
def kms():
    with codekeep.Keep.memory() as keep:
        account = keep.create_account("py")["Id"]
        yield keep.client("kms", account=account)


def test_keep_accounts_and_context_manager():
    keep = codekeep.Keep.memory()
    with keep:
        a = keep.create_account("one")
        assert len(a["Id"]) == 12 and a["Name"] == "one"
        assert [x["Id"] for x in keep.list_accounts()] == [a["Id"]]
    assert keep.closed
    keep.close()  # idempotent
    with pytest.raises(ValueError):
        keep.create_account("after close")


def test_boto3_shaped_calls_return_bytes_for_blobs(kms):
    meta = kms.create_key(Description="py key")["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["Description"] == "py key"
    dk = kms.generate_data_key(KeyId=meta["KeyId"], KeySpec="AES_256", EncryptionContext={"repo": "r"})
    assert isinstance(dk["Plaintext"], bytes) and len(dk["Plaintext"]) == 32
    assert isinstance(dk["CiphertextBlob"], bytes)
    back = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"repo": "r"})
    assert back["Plaintext"] == dk["Plaintext"]
    enc = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"hello")
    assert kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])["Plaintext"] == b"hello"


def test_client_errors_carry_the_aws_code(kms):
    with pytest.raises(codekeep.ClientError) as info:
        kms.describe_key(KeyId="alias/missing")
    assert info.value.response["Error"]["Code"] == "NotFoundException"
    assert isinstance(info.value, kms.exceptions.NotFoundException)
    assert isinstance(info.value, codekeep.NotFound)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"a": "1"})["CiphertextBlob"],
                    EncryptionContext={"a": "2"})
    kms.disable_key(KeyId=key)
    with pytest.raises(kms.exceptions.DisabledException) as info:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert isinstance(info.value, codekeep.KeyDisabled)
    with pytest.raises(codekeep.InvalidArgument):
        kms.generate_data_key(KeyId=key)
    with pytest.raises(AttributeError):
        kms.no_such_operation()


def test_sealed_files_are_file_like(kms, tmp_path):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    data = b"".join(b"row %06d\n" % i for i in range(50_000))
    path = tmp_path / "data.sealed"
    with kms.create_sealed(path, KeyId=key, EncryptionContext={"f": "1"}) as w:
        for i in range(0, len(data), 70_001):
            w.write(data[i:i + 70_001])
        w.write(memoryview(b""))
    assert b"row 000001" not in path.read_bytes()
    with kms.open_sealed(path, EncryptionContext={"f": "1"}) as r:
        assert r.size == len(data)
        r.seek(11 * 1234)
        assert r.read(11) == b"row 001234\n"
        assert r.tell() == 11 * 1235
        r.seek(-11, 2)
        assert r.read() == b"row 049999\n"
        r.seek(0)
        assert r.read() == data
    with pytest.raises(codekeep.DecryptionError):
        kms.open_sealed(path, EncryptionContext={"f": "2"})


def test_audit_log_verifies_and_lookup_events():
    with codekeep.Keep.memory() as keep:
        account = keep.create_account("audit")["Id"]
        kms = keep.client("kms", account=account)
        kms.create_key()
        with pytest.raises(kms.exceptions.NotFoundException):
            kms.describe_key(KeyId="alias/none")
        report = keep.verify_audit_log()
        assert report["Valid"] is True and report["RecordsChecked"] == 3 and report["FirstInvalid"] is None
        checkpoint = keep.audit_checkpoint()
        assert checkpoint["Seq"] == 3 and checkpoint["Signature"]
        assert keep.audit_checkpoint() is None
        trail = keep.client("cloudtrail", account=account)
        events = trail.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeKey"}])
        assert [e["EventName"] for e in events["Events"]] == ["DescribeKey"]


def test_threads_share_one_client_without_deadlock(kms):
    key = kms.create_key()["KeyMetadata"]["KeyId"]

    def work(i: int) -> bytes:
        ct = kms.encrypt(KeyId=key, Plaintext=b"%d" % i)["CiphertextBlob"]
        return kms.decrypt(CiphertextBlob=ct)["Plaintext"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(200), timeout=120))
    assert results == [b"%d" % i for i in range(200)]


def test_version():
    assert codekeep.__version__ == "0.1.0"


class ToyKeyProvider:
    """Wraps by HMAC-tagging: stands in for a host's KMS in the plumbing test."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.calls = 0

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        import hashlib
        import hmac
        self.calls += 1
        return hmac.new(self.secret, aad + plaintext, hashlib.sha256).digest() + plaintext

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        import hashlib
        import hmac
        self.calls += 1
        tag, body = wrapped[:32], wrapped[32:]
        if not hmac.compare_digest(tag, hmac.new(self.secret, aad + body, hashlib.sha256).digest()):
            raise ValueError("does not authenticate")
        return body


def test_python_key_provider(tmp_path):
    provider = ToyKeyProvider(b"right")
    with codekeep.Keep.open(tmp_path / "k", key_provider=provider) as keep:
        account = keep.create_account("kp")["Id"]
        kms = keep.client("kms", account=account)
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        ct = kms.encrypt(KeyId=key, Plaintext=b"via python provider")["CiphertextBlob"]
    assert provider.calls > 0
    with codekeep.Keep.open(tmp_path / "k", key_provider=ToyKeyProvider(b"right")) as keep:
        kms = keep.client("kms", account=account)
        assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"via python provider"
    with pytest.raises(codekeep.AccessDenied):
        codekeep.Keep.open(tmp_path / "k", key_provider=ToyKeyProvider(b"wrong"))
    with codekeep.Keep.memory(key_provider=ToyKeyProvider(b"m")) as keep:
        assert keep.create_account("m")["Name"] == "m"


def test_sealed_writer_discards_on_exception_and_reader_reads_empty_past_end(kms, tmp_path):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    path = tmp_path / "partial.sealed"
    with pytest.raises(RuntimeError):
        with kms.create_sealed(path, KeyId=key) as w:
            w.write(b"half of it")
            raise RuntimeError("producer failed")
    assert not path.exists()
    with kms.create_sealed(path, KeyId=key) as w:
        w.write(bytearray(b"0123456789"))
    with kms.open_sealed(path) as r:
        r.seek(100)
        assert r.read() == b""
        r.seek(0)
        assert r.read(4) == b"0123"
    missing = tmp_path / "refused.sealed"
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.create_sealed(missing, KeyId="alias/none")
    assert not missing.exists()


def test_client_exceptions_match_raised_classes(kms):
    with pytest.raises(kms.exceptions.InvalidKeyUsageException) as info:
        kms.encrypt(KeyId=kms.create_key()["KeyMetadata"]["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert isinstance(info.value, codekeep.InvalidArgument)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_timestamps_are_datetimes_both_ways():
    import datetime

    with codekeep.Keep.memory() as keep:
        account = keep.create_account("ts")["Id"]
        kms = keep.client("kms", account=account)
        created = kms.create_key()["KeyMetadata"]["CreationDate"]
        assert isinstance(created, datetime.datetime) and created.tzinfo is not None
        trail = keep.client("cloudtrail", account=account)
        later = created + datetime.timedelta(days=1)
        assert trail.lookup_events(StartTime=later)["Events"] == []
        events = trail.lookup_events(StartTime=created - datetime.timedelta(seconds=5))["Events"]
        assert events and isinstance(events[0]["EventTime"], datetime.datetime)


def test_export_audit_log(tmp_path):
    import json as _json

    with codekeep.Keep.memory() as keep:
        keep.create_account("export")
        n = keep.export_audit_log(tmp_path / "audit.jsonl")
        lines = (tmp_path / "audit.jsonl").read_text().splitlines()
        assert n == 1 and _json.loads(lines[0])["eventName"] == "CreateAccount"
        assert "checkpointPublicKey" in _json.loads(lines[-1])
