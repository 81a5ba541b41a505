"""codekeep: private git hosting with AWS's KMS, CloudTrail and CodeCommit model, in-process.

    >>> import codekeep
    >>> with codekeep.Keep.memory() as keep:
    ...     account = keep.create_account("demo")["Id"]
    ...     kms = keep.client("kms", account=account)
    ...     key = kms.create_key(Description="demo")["KeyMetadata"]["KeyId"]
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import _native
from .exceptions import (
    AccessDenied,
    ClientError,
    CodekeepError,
    CryptoError,
    DecryptionError,
    InvalidArgument,
    KeyDisabled,
    NotFound,
    error_class,
)

__version__: str = _native.__version__
__all__ = ["Keep", "Client", "Server", "verify_webhook", "ClientError", "CodekeepError", "InvalidArgument", "AccessDenied",
           "NotFound", "CryptoError", "DecryptionError", "KeyDisabled", "__version__"]


_TIMESTAMPS = frozenset(_native.TIMESTAMP_MEMBERS)


def _encode(value: Any) -> Any:
    """Inputs as boto3 takes them: bytes for blobs (base64 in JSON), datetimes for timestamps
    (epoch seconds in JSON)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode_timestamps(value: Any) -> Any:
    """Timestamp members become timezone-aware datetimes, as boto3 returns them."""
    if isinstance(value, dict):
        return {
            k: datetime.datetime.fromtimestamp(v, tz=datetime.timezone.utc)
            if k in _TIMESTAMPS and isinstance(v, (int, float)) and not isinstance(v, bool)
            else _decode_timestamps(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_decode_timestamps(v) for v in value]
    return value


# IAM's and STS's error shapes are named `...Exception` in boto3 while the error codes are not
# (`NoSuchEntityException` is raised with code `NoSuchEntity`): the names boto3 users write.
_QUERY_PROTOCOL_SHAPES: dict[str, dict[str, str]] = {
    "iam": {
        "NoSuchEntityException": "NoSuchEntity",
        "EntityAlreadyExistsException": "EntityAlreadyExists",
        "DeleteConflictException": "DeleteConflict",
        "LimitExceededException": "LimitExceeded",
        "MalformedPolicyDocumentException": "MalformedPolicyDocument",
        "InvalidInputException": "InvalidInput",
        "UnmodifiableEntityException": "UnmodifiableEntity",
        "InvalidAuthenticationCodeException": "InvalidAuthenticationCode",
        "InvalidPublicKeyException": "InvalidPublicKey",
        "UnrecognizedPublicKeyEncodingException": "UnrecognizedPublicKeyEncoding",
        "DuplicateSSHPublicKeyException": "DuplicateSSHPublicKey",
        "ServiceNotSupportedException": "NotSupportedService",
    },
    "sts": {
        "MalformedPolicyDocumentException": "MalformedPolicyDocument",
        "PackedPolicyTooLargeException": "PackedPolicyTooLarge",
        "ExpiredTokenException": "ExpiredToken",
    },
}


class _Exceptions:
    """``client.exceptions.NotFoundException`` and friends, as boto3 offers them."""

    ClientError = ClientError

    def __init__(self, service: str = "") -> None:
        self._shapes = _QUERY_PROTOCOL_SHAPES.get(service, {})

    def __getattr__(self, code: str) -> type[ClientError]:
        if not re.fullmatch(r"[A-Z][A-Za-z]*", code):
            raise AttributeError(code)
        return error_class(self._shapes.get(code, code))


class Client:
    """A boto3-shaped client: ``kms.create_key(Description="x")`` returns a dict."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.exceptions = _Exceptions(str(native.service))
        # boto3's snake_case names, acronyms included (`create_virtual_mfa_device` is
        # `CreateVirtualMFADevice`): matched without case and underscores.
        self._operations = {op.lower(): op for op in native.operation_names()}

    @property
    def service(self) -> str:
        return str(self._native.service)

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Calls ``operation`` (e.g. ``"CreateKey"``) with AWS-shaped keyword arguments."""
        out = _decode_timestamps(json.loads(self._native.call_json(operation, json.dumps(_encode(params)))))
        for member in self._native.blob_members(operation):
            if isinstance(out.get(member), str):
                out[member] = base64.b64decode(out[member])
        return out

    def __getattr__(self, name: str) -> Any:
        operation = self._operations.get(name.replace("_", "").lower())
        if name.startswith("_") or operation is None:
            raise AttributeError(f"{self.service!r} client has no operation {name!r}")

        def method(**params: Any) -> dict[str, Any]:
            return self.call(operation, **params)

        method.__name__ = name
        return method

    def create_sealed(self, path: str | os.PathLike[str], *, KeyId: str,
                      EncryptionContext: dict[str, str] | None = None) -> Any:
        """A writable file object that seals what is written under ``KeyId`` (kms clients)."""
        return self._native.create_sealed(os.fspath(path), KeyId, json.dumps(EncryptionContext or {}))

    def open_sealed(self, path: str | os.PathLike[str], *,
                    EncryptionContext: dict[str, str] | None = None) -> Any:
        """A readable, seekable file object over the plaintext of a sealed file (kms clients)."""
        return self._native.open_sealed(os.fspath(path), json.dumps(EncryptionContext or {}))


def _caller(*, account: str | None, user: str | None, credentials: dict[str, str] | None,
            signed_request: dict[str, Any] | None, admin: bool) -> dict[str, Any]:
    """The caller JSON the native layer takes."""
    if admin:
        return {"Admin": True}
    if credentials is not None:
        return {k: v for k, v in credentials.items()
                if k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
    if signed_request is not None:
        request = dict(signed_request)
        body = request.get("Body", b"")
        request["Body"] = base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode()
        request["Headers"] = [list(h) for h in (request.get("Headers") or [])]
        return {"SignedRequest": request}
    caller: dict[str, Any] = {"AccountId": account}
    if user is not None:
        caller["UserName"] = user
    return caller


class Keep:
    """A running keep. Use ``Keep.open(path)`` or ``Keep.memory()``; also a context manager."""

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, key_provider: Any = None) -> "Keep":
        """Opens (creating if needed) the embedded default in directory ``path``.

        ``key_provider``, when given, wraps codekeep's key material instead of ``master.key``:
        an object with ``wrap(plaintext, aad) -> bytes`` and ``unwrap(wrapped, aad) -> bytes``
        (raising when ``wrapped`` or ``aad`` do not authenticate). It is called inside
        codekeep's transactions, from any thread, and must not call back into the same keep.
        """
        return cls(_native.Keep.open(os.fspath(path), key_provider=key_provider))

    @classmethod
    def memory(cls, *, key_provider: Any = None) -> "Keep":
        """A keep that lives only in memory."""
        return cls(_native.Keep.memory(key_provider=key_provider))

    def create_account(self, name: str) -> dict[str, Any]:
        """Creates an account; returns its description (``Id``, ``Arn``, ``Name``, ...)."""
        return json.loads(self._native.create_account_json(name))

    def list_accounts(self) -> list[dict[str, Any]]:
        """Every account, oldest first."""
        return json.loads(self._native.list_accounts_json())

    def client(self, service: str, *, account: str | None = None, user: str | None = None,
               credentials: dict[str, str] | None = None,
               signed_request: dict[str, Any] | None = None, admin: bool = False,
               source_ip: str | None = None, user_agent: str | None = None) -> Client:
        """A client of ``service`` (``"iam"``, ``"sts"``, ``"kms"``, ...) acting as one caller:

        - ``account=ID``: the account's root user; with ``user=NAME``, that IAM user (the host
          application authenticated it);
        - ``credentials={"AccessKeyId": ..., "SecretAccessKey": ..., "SessionToken": ...}``: an
          access key, or temporary credentials from STS (``SessionToken`` optional), as boto3
          takes them; checked on every call;
        - ``signed_request={"Method", "Path", "Query", "Headers": [[name, value]], "Body"}``: a
          SigV4-signed HTTP request (``Body`` as bytes);
        - ``admin=True``: the keep administrator.
        """
        caller = _caller(account=account, user=user, credentials=credentials,
                         signed_request=signed_request, admin=admin)
        if source_ip is not None:
            caller["SourceIp"] = source_ip
        if user_agent is not None:
            caller["UserAgent"] = user_agent
        return Client(self._native.client(service, json.dumps(caller)))

    def authorize(self, action: str, resource: str = "*", *, context: dict[str, Any] | None = None,
                  account: str | None = None, user: str | None = None,
                  credentials: dict[str, str] | None = None, admin: bool = False) -> dict[str, Any]:
        """Decides, without performing it, whether the caller may perform ``action`` on
        ``resource``; returns ``{"EvalDecision": "allowed"|"explicitDeny"|"implicitDeny",
        "Message", "DecidedBy", "MatchedStatements", "MissingContextValues"}``. ``context`` adds
        request context keys (``{"codecommit:References": "refs/heads/main"}``)."""
        caller = _caller(account=account, user=user, credentials=credentials,
                         signed_request=None, admin=admin)
        result: dict[str, Any] = json.loads(self._native.authorize_json(
            json.dumps(caller), action, resource, json.dumps(context or {})))
        return result

    def verify_audit_log(self) -> dict[str, Any]:
        """``{"Valid": bool, "RecordsChecked": int, "FirstInvalid": {...} | None, ...}``."""
        return json.loads(self._native.verify_audit_log_json())

    def audit_checkpoint(self) -> dict[str, Any] | None:
        """Signs a checkpoint over the audit log's head (``None`` when nothing is new)."""
        result: dict[str, Any] | None = json.loads(self._native.audit_checkpoint_json())
        return result

    def export_audit_log(self, path: str | os.PathLike[str]) -> int:
        """Writes the audit log as JSON Lines to ``path``; returns the number of records."""
        return int(self._native.export_audit_log(os.fspath(path)))

    def read_events(self, consumer: str, limit: int = 100) -> list[dict[str, Any]]:
        """Outbox events `consumer` has not acknowledged, oldest first: ``{"Seq": n, "Event":
        <EventBridge envelope>}``. Acknowledge with `ack_events`."""
        result: list[dict[str, Any]] = json.loads(self._native.read_events_json(consumer, limit))
        return result

    def ack_events(self, consumer: str, seq: int) -> None:
        """Acknowledges, for `consumer`, every event up to and including `seq`."""
        self._native.ack_events(consumer, seq)

    def compact_repository(self, account: str, repository: str, *, grace_seconds: int | None = None,
                           retired_blob_delay_seconds: int | None = None) -> dict[str, Any]:
        """Merges a repository's packs; unreachable objects go once older than the grace period
        (default two weeks). Returns the report (PacksBefore, PacksAfter, ReachableObjects,
        CruftObjects, DroppedObjects, RetiredPacksDeleted)."""
        options: dict[str, int] = {}
        if grace_seconds is not None:
            options["GraceSeconds"] = grace_seconds
        if retired_blob_delay_seconds is not None:
            options["RetiredBlobDelaySeconds"] = retired_blob_delay_seconds
        result: dict[str, Any] = json.loads(
            self._native.compact_repository_json(account, repository, json.dumps(options)))
        return result

    def set_codecommit_limits(self, account: str, **limits: int | None) -> dict[str, Any]:
        """Sets CodeCommit limits of an account (MaxRepositories, MaxRefUpdatesPerPush,
        MaxRefsPerRepository, MaxPushBytes; None is unlimited); returns the limits in force."""
        result: dict[str, Any] = json.loads(
            self._native.set_codecommit_limits_json(account, json.dumps(limits)))
        return result

    def serve(self, *, http: str | None = "127.0.0.1:0", ssh: str | None = None,
              tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
              threads: int = 2) -> "Server":
        """Starts the git server on background threads: smart HTTP on `http` (HTTPS with
        `tls=(certificate_chain_pem, private_key_pem)`) and SSH on `ssh`; port 0 picks a free
        port, None turns a front end off. Use as a context manager or call `stop()`."""
        config: dict[str, Any] = {"Http": http, "Ssh": ssh, "Threads": threads}
        if tls is not None:
            config["Tls"] = {"CertificateChain": os.fspath(tls[0]), "PrivateKey": os.fspath(tls[1])}
        return Server(self._native.serve(json.dumps(config)))

    def register_function(self, account: str, name: str,
                          function: Callable[[Any], object]) -> None:
        """Registers `function` as the in-process Lambda function `name` of `account`, which
        rules target as ``arn:aws:lambda:REGION:ACCOUNT:function:NAME``. It is called with the
        event (or the target's shaped input) parsed from JSON, on the keep's delivery threads;
        an exception fails the delivery, which is retried as the target's RetryPolicy says.
        A function that refers to the keep keeps it open until it is removed."""
        def call(payload: str) -> None:
            function(json.loads(payload))
        self._native.register_function(account, name, call)

    def remove_function(self, account: str, name: str) -> bool:
        """Removes function `name` of `account`; True when it existed."""
        return bool(self._native.remove_function(account, name))

    def dead_letters(self, queue_arn: str) -> list[dict[str, Any]]:
        """Deliveries that ran out of retries into dead-letter queue `queue_arn`: each with
        Event, RuleArn, TargetId, Attempts and Error."""
        result: list[dict[str, Any]] = json.loads(self._native.dead_letters_json(queue_arn))
        return result

    def application_messages(self, account: str, queue: str, max: int = 10) -> list[dict[str, Any]]:
        """Up to `max` messages waiting in the in-process application queue `queue` of
        `account` (filled by sns subscriptions with protocol ``application``), oldest first:
        each with ReceiptHandle, MessageId, SubscriptionArn and Body. They stay until deleted."""
        result: list[dict[str, Any]] = json.loads(
            self._native.application_messages_json(account, queue, max))
        return result

    def delete_application_message(self, account: str, queue: str, receipt_handle: str) -> bool:
        """Deletes a message read with `application_messages`; True when it was there."""
        return bool(self._native.delete_application_message(account, queue, receipt_handle))

    def configure_webhooks(self, *, hosts: list[str] = (), networks: list[str] = (),  # type: ignore[assignment]
                           timeout_ms: int | None = None,
                           ca_file: str | os.PathLike[str] | None = None) -> None:
        """Sets where webhooks may go: `hosts` (``hooks.example.com``, ``*.example.org``,
        ``*``) and, for loopback, private or link-local addresses, their `networks` in CIDR
        notation. Until this is called no webhook goes anywhere."""
        config: dict[str, Any] = {"hosts": list(hosts), "networks": list(networks)}
        if timeout_ms is not None:
            config["timeout_ms"] = timeout_ms
        if ca_file is not None:
            config["ca_file"] = os.fspath(ca_file)
        self._native.configure_webhooks(json.dumps(config))

    def close(self) -> None:
        """Releases the keep; idempotent."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    def __enter__(self) -> "Keep":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes, *,
                   tolerance_seconds: int = 300, now: int | None = None) -> None:
    """Checks a webhook codekeep sent: the ``webhook-signature`` header must sign
    ``webhook-id.webhook-timestamp.body`` under `secret` (the destination's ``whsec_...``), and
    the timestamp must be within `tolerance_seconds` of `now` (default: the current time).
    Raises AccessDenied for a wrong signature or stale timestamp, InvalidArgument for a
    malformed secret or missing header."""
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in lower]
    if missing:
        raise InvalidArgument("InvalidArgument", f"missing header(s): {', '.join(missing)}",
                              "InvalidArgument", 400, "VerifyWebhook")
    _native.verify_webhook(secret, lower["webhook-id"], lower["webhook-timestamp"],
                           lower["webhook-signature"], bytes(body),
                           int(time.time()) if now is None else now, tolerance_seconds)


class Server:
    """A running git server (see `Keep.serve`). `http_url`, `ssh_url` and `ssh_host_key` say
    where it listens and which host key SSH clients should expect."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self._description: dict[str, Any] = json.loads(native.describe_json())

    @property
    def http_address(self) -> str | None:
        return self._description.get("HttpAddress")

    @property
    def http_url(self) -> str | None:
        return self._description.get("HttpUrl")

    @property
    def ssh_address(self) -> str | None:
        return self._description.get("SshAddress")

    @property
    def ssh_url(self) -> str | None:
        return self._description.get("SshUrl")

    @property
    def ssh_host_key(self) -> str | None:
        return self._description.get("SshHostKey")

    def stop(self) -> None:
        """Stops the server; idempotent."""
        self._native.stop()

    @property
    def stopped(self) -> bool:
        return bool(self._native.stopped)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
