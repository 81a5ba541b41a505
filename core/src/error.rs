//! The one error type of the crate and its stable kinds.
//!
//! Every failure a caller can see is an [`Error`]. It carries an [`ErrorKind`] whose meaning never
//! changes (bindings derive C status codes and Python exception classes from it), the AWS error
//! code the operation would return (`NotFoundException`, `DisabledException`, ...), an HTTP-like
//! status, and a one-line message.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, in terms that stay stable across releases.
///
/// Bindings map each kind to a C status code and a Python exception class, so kinds are only ever
/// added, never renumbered or given a new meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input was malformed or out of range.
    InvalidArgument,
    /// The named resource does not exist.
    NotFound,
    /// A resource with that name or id already exists.
    AlreadyExists,
    /// The caller is not allowed to do this.
    AccessDenied,
    /// The resource is in a state that does not allow the operation.
    InvalidState,
    /// The key is disabled.
    Disabled,
    /// A quota was reached.
    LimitExceeded,
    /// A concurrent change won; retrying may succeed.
    Conflict,
    /// Authenticated decryption or an integrity check failed.
    IntegrityFailure,
    /// The operation or parameter is not supported.
    Unsupported,
    /// The metadata or blob storage failed.
    Storage,
    /// A file or stream could not be read or written.
    Io,
    /// A bug or an unexpected condition inside codekeep.
    Internal,
}

impl ErrorKind {
    /// Every kind, so bindings can prove in tests that each one has a mapping.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::AccessDenied,
        ErrorKind::InvalidState,
        ErrorKind::Disabled,
        ErrorKind::LimitExceeded,
        ErrorKind::Conflict,
        ErrorKind::IntegrityFailure,
        ErrorKind::Unsupported,
        ErrorKind::Storage,
        ErrorKind::Io,
        ErrorKind::Internal,
    ];

    /// A short stable name, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::Disabled => "disabled",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Conflict => "conflict",
            ErrorKind::IntegrityFailure => "integrity_failure",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Storage => "storage",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
        }
    }

    /// The AWS error code used when nothing more specific is known.
    fn default_code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "ValidationException",
            ErrorKind::NotFound => "NotFoundException",
            ErrorKind::AlreadyExists => "AlreadyExistsException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::InvalidState => "InvalidStateException",
            ErrorKind::Disabled => "DisabledException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::Conflict => "ConcurrentModificationException",
            ErrorKind::IntegrityFailure => "InvalidCiphertextException",
            ErrorKind::Unsupported => "UnsupportedOperationException",
            ErrorKind::Storage | ErrorKind::Io | ErrorKind::Internal => "InternalFailure",
        }
    }

    /// The HTTP status AWS answers with for errors of this kind: the JSON-protocol services
    /// (KMS, CloudTrail, Organizations) answer 400 for every client error.
    fn default_status(self) -> u16 {
        match self {
            ErrorKind::Storage | ErrorKind::Io | ErrorKind::Internal => 500,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible function in this crate.
///
/// `Display` gives the one-line message; [`Error::code`] the AWS error code; [`Error::kind`] the
/// stable kind.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    code: Cow<'static, str>,
    status: u16,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with the kind's default AWS code.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            code: Cow::Borrowed(kind.default_code()),
            status: kind.default_status(),
            message: message.into(),
            source: None,
        }
    }

    /// An error with a specific AWS error code, e.g. `KMSInvalidStateException`.
    pub fn aws(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code: Cow::Borrowed(code),
            ..Error::new(kind, message)
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides the HTTP-like status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The AWS error code, e.g. `NotFoundException`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The HTTP status AWS would answer with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The one-line message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for an `InvalidArgument` error with AWS's `ValidationException` code.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for an internal error (a bug or broken invariant).
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Shorthand for a storage failure.
    pub fn storage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Storage, message)
    }

    /// The failure of authenticated decryption. Deliberately vague: which check failed is not
    /// said, so the error is no oracle.
    pub fn decrypt() -> Self {
        Error::aws(
            ErrorKind::IntegrityFailure,
            "InvalidCiphertextException",
            "the ciphertext could not be authenticated or decrypted",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::AccessDenied,
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("i/o error: {e}")).with_source(e)
    }
}

/// JSON errors inside codekeep come from stored records or from writing exports: a stored
/// record that does not parse is a storage fault, not the caller's bad input (inputs arrive as
/// parsed values and are validated member by member).
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            Error::new(ErrorKind::Io, format!("cannot write JSON: {e}")).with_source(e)
        } else {
            Error::storage(format!("a stored JSON record is unreadable: {e}")).with_source(e)
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_name() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn aws_code_and_status() {
        let e = Error::aws(
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            "pending deletion",
        );
        assert_eq!(e.code(), "KMSInvalidStateException");
        assert_eq!(e.status(), 400);
        assert_eq!(e.to_string(), "pending deletion");
        assert_eq!(
            Error::new(ErrorKind::NotFound, "x").code(),
            "NotFoundException"
        );
    }
}
