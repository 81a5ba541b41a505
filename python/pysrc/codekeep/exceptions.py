"""Exceptions raised by codekeep, shaped like botocore's."""

from __future__ import annotations

from typing import Any

__all__ = ["CodekeepError", "ClientError", "InvalidArgument", "AccessDenied", "NotFound",
           "CryptoError", "DecryptionError", "KeyDisabled", "error_class"]


class CodekeepError(Exception):
    """Root of every codekeep exception."""


class ClientError(CodekeepError):
    """An operation failed; ``.response["Error"]["Code"]`` is the AWS error code."""

    def __init__(self, code: str, message: str, kind: str, status: int, operation: str) -> None:
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        self.operation_name = operation
        self.kind = kind
        super().__init__(f"An error occurred ({code}) when calling the {operation} operation: {message}")


class InvalidArgument(ClientError, ValueError):
    """The input was malformed or out of range."""


class AccessDenied(ClientError, PermissionError):
    """The caller is not allowed to do this."""


class NotFound(ClientError, LookupError):
    """The named resource does not exist."""


class CryptoError(ClientError):
    """A cryptographic operation was refused."""


class DecryptionError(CryptoError):
    """Authenticated decryption failed: wrong key, wrong context, or tampered data."""


class KeyDisabled(CryptoError):
    """The key is disabled."""


_KIND_BASES: dict[str, type[ClientError]] = {
    "invalid_argument": InvalidArgument,
    "access_denied": AccessDenied,
    "not_found": NotFound,
    "integrity_failure": DecryptionError,
    "disabled": KeyDisabled,
}

# The kind of every error code codekeep raises, so that ``client.exceptions.X`` and the raised
# exception are one class even before the code was first raised.
KNOWN_CODES: dict[str, str] = {
    "ValidationException": "invalid_argument",
    "SerializationException": "invalid_argument",
    "InvalidAction": "invalid_argument",
    "UnknownServiceError": "invalid_argument",
    "InvalidArnException": "invalid_argument",
    "InvalidAliasNameException": "invalid_argument",
    "InvalidKeyUsageException": "invalid_argument",
    "IncorrectKeyException": "invalid_argument",
    "DryRunOperationException": "invalid_argument",
    "TagException": "invalid_argument",
    "MalformedPolicyDocumentException": "invalid_argument",
    "InvalidInputException": "invalid_argument",
    "InvalidLookupAttributesException": "invalid_argument",
    "InvalidTimeRangeException": "invalid_argument",
    "InvalidMaxResultsException": "invalid_argument",
    "InvalidNextTokenException": "invalid_argument",
    "NotFoundException": "not_found",
    "AccountNotFoundException": "not_found",
    "AlreadyExistsException": "already_exists",
    "AccessDeniedException": "access_denied",
    "KMSInvalidStateException": "invalid_state",
    "DisabledException": "disabled",
    "InvalidCiphertextException": "integrity_failure",
    "LimitExceededException": "limit_exceeded",
    "UnsupportedOperationException": "unsupported",
    "ConcurrentModificationException": "conflict",
    "InternalFailure": "internal",
    # IAM, STS and Organizations.
    "NoSuchEntity": "not_found",
    "EntityAlreadyExists": "already_exists",
    "DeleteConflict": "invalid_state",
    "LimitExceeded": "limit_exceeded",
    "MalformedPolicyDocument": "invalid_argument",
    "InvalidInput": "invalid_argument",
    "ValidationError": "invalid_argument",
    "UnmodifiableEntity": "invalid_argument",
    "InvalidAuthenticationCode": "invalid_argument",
    "InvalidPublicKey": "invalid_argument",
    "UnrecognizedPublicKeyEncoding": "invalid_argument",
    "DuplicateSSHPublicKey": "already_exists",
    "NotSupportedService": "unsupported",
    "PackedPolicyTooLarge": "limit_exceeded",
    "AccessDenied": "access_denied",
    "InvalidClientTokenId": "access_denied",
    "SignatureDoesNotMatch": "access_denied",
    "IncompleteSignature": "access_denied",
    "MissingAuthenticationToken": "access_denied",
    "ExpiredToken": "access_denied",
    "PolicyNotFoundException": "not_found",
    "TargetNotFoundException": "not_found",
    "PolicyNotAttachedException": "not_found",
    "DuplicatePolicyAttachmentException": "already_exists",
    "PolicyInUseException": "invalid_state",
    "PolicyTypeNotEnabledException": "unsupported",
    "ConstraintViolationException": "limit_exceeded",
}

_classes: dict[str, type[ClientError]] = {}


def error_class(code: str, kind: str = "") -> type[ClientError]:
    """The exception class for AWS error ``code`` (one per code, as ``client.exceptions`` has)."""
    cls = _classes.get(code)
    if cls is None:
        base = _KIND_BASES.get(KNOWN_CODES.get(code, kind), ClientError)
        cls = type(code, (base,), {"__module__": __name__})
        _classes[code] = cls
    return cls


def _from_native(code: str, message: str, kind: str, status: int, operation: str) -> ClientError:
    return error_class(code, kind)(code, message, kind, status, operation)
