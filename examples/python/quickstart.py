"""The codekeep tour in Python: account, KMS key, seal a file, range read, rotate, disable,
verify the audit log, show the last events. Run by `make test` (as a pytest test) and directly."""

import sys
import tempfile
from pathlib import Path

import codekeep


def tour(data_dir: Path) -> None:
    with codekeep.Keep.open(data_dir) as keep:
        account = keep.create_account("quickstart")["Id"]
        print(f"created account {account}")
        kms = keep.client("kms", account=account)
        key = kms.create_key(Description="quickstart")["KeyMetadata"]["KeyId"]
        print(f"created KMS key {key}")
        context = {"purpose": "quickstart"}
        sealed = data_dir / "hello.sealed"
        with kms.create_sealed(sealed, KeyId=key, EncryptionContext=context) as w:
            for i in range(10_000):
                w.write(b"hello from Python, line %05d\n" % i)
        print(f"sealed 300000 bytes into {sealed}")
        with kms.open_sealed(sealed, EncryptionContext=context) as r:
            r.seek(30 * 5000)
            print("read a range back:", r.read(30).decode().strip())
        kms.rotate_key_on_demand(KeyId=key)
        with kms.open_sealed(sealed, EncryptionContext=context) as r:
            print("rotated the key; old data still opens:", r.read(30).decode().strip())
        kms.disable_key(KeyId=key)
        try:
            kms.open_sealed(sealed, EncryptionContext=context)
            raise SystemExit("a disabled key must refuse")
        except kms.exceptions.DisabledException as e:
            print("disabled the key; opening is refused:", e.response["Error"]["Code"])
        report = keep.verify_audit_log()
        print(f"audit log valid={report['Valid']} records={report['RecordsChecked']}")
        assert report["Valid"]
        trail = keep.client("cloudtrail", account=account)
        events = trail.lookup_events(MaxResults=10)["Events"]
        print("last events:", " ".join(e["EventName"] for e in events))
        assert events[0]["EventName"] == "Decrypt"


def test_quickstart(tmp_path: Path) -> None:
    tour(tmp_path / "keep")


if __name__ == "__main__":
    tour(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
