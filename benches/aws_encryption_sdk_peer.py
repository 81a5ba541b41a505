"""Envelope vs the AWS Encryption SDK for Python: seal and open 64 MiB, side by side.

Ours goes through the codekeep Python package (a KMS data key, the envelope format, 64 KiB
segments, written to and read from a file); the peer is aws-encryption-sdk with a raw AES
keyring, 64 KiB frames and the unsigned committing suite (the closest to ours: key commitment,
no signatures), in memory. Both run in this process, in the same run. Appends summary lines to
$CARGO_TARGET_DIR/codekeep-bench-summary.txt.
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

import aws_encryption_sdk
from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
from aws_cryptographic_material_providers.mpl.models import AesWrappingAlg, CreateRawAesKeyringInput
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.identifiers import Algorithm

import codekeep

SIZE = 64 * 1024 * 1024
CHUNK = 1024 * 1024
RUNS = 3


def median_seconds(fn) -> float:
    fn()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def summary(name: str, ours: float, peer: float, unit: str) -> None:
    line = f"{name}: ours={ours:.3f} {unit} peer={peer:.3f} {unit} ratio={ours / peer:.3f}"
    print(line)
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    with open(target / "codekeep-bench-summary.txt", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def main() -> None:
    data = os.urandom(SIZE)
    context = {"purpose": "bench"}

    keep = codekeep.Keep.memory()
    account = keep.create_account("bench")["Id"]
    kms = keep.client("kms", account=account)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    sealed = scratch / "sealed.bin"

    def ours_seal() -> None:
        sealed.unlink(missing_ok=True)
        with kms.create_sealed(sealed, KeyId=key, EncryptionContext=context) as w:
            view = memoryview(data)
            for i in range(0, SIZE, CHUNK):
                w.write(view[i:i + CHUNK])

    def ours_open() -> None:
        with kms.open_sealed(sealed, EncryptionContext=context) as r:
            assert len(r.read()) == SIZE

    mpl = AwsCryptographicMaterialProviders(MaterialProvidersConfig())
    keyring = mpl.create_raw_aes_keyring(CreateRawAesKeyringInput(
        key_namespace="bench", key_name="key-1", wrapping_key=os.urandom(32),
        wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16))
    sdk = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    box = {}

    def peer_seal() -> None:
        box["ct"], _ = sdk.encrypt(source=data, keyring=keyring, encryption_context=context,
                                   frame_length=65536, algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)

    def peer_open() -> None:
        pt, _ = sdk.decrypt(source=box["ct"], keyring=keyring)
        assert len(pt) == SIZE

    mb = SIZE / 1e6
    ours = mb / median_seconds(ours_seal)
    peer = mb / median_seconds(peer_seal)
    summary("envelope_vs_aws_encryption_sdk_python_seal_64MiB_throughput", ours, peer, "MB/s")
    ours = mb / median_seconds(ours_open)
    peer = mb / median_seconds(peer_open)
    summary("envelope_vs_aws_encryption_sdk_python_open_64MiB_throughput", ours, peer, "MB/s")
    sealed.unlink(missing_ok=True)
    scratch.rmdir()
    keep.close()


if __name__ == "__main__":
    main()
