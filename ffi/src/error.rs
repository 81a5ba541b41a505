//! Status codes, the thread-local last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use codekeep::ErrorKind;

/// The result of every fallible function. Values are stable and never renumbered.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum codekeep_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was malformed or out of range.
    InvalidArgument = 2,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 3,
    /// A caller-supplied buffer was too small; the required size was reported.
    BufferTooSmall = 4,
    /// The object was already consumed.
    AlreadyUsed = 5,
    /// A bug inside codekeep panicked; the message says where.
    Panic = 6,
    /// The operation or parameter is not supported.
    Unsupported = 7,
    /// An unexpected internal condition.
    Internal = 8,
    /// A JSON argument did not parse.
    InvalidJson = 9,
    /// The named resource does not exist.
    NotFound = 10,
    /// The resource already exists.
    AlreadyExists = 11,
    /// The caller is not allowed to do this.
    AccessDenied = 12,
    /// A concurrent change won; retrying may succeed.
    Conflict = 13,
    /// The resource's state does not allow the operation.
    InvalidState = 14,
    /// A quota was reached.
    LimitExceeded = 15,
    /// Authenticated decryption or an integrity check failed.
    DecryptFailed = 200,
    /// The key is disabled.
    KeyDisabled = 201,
    /// Metadata or blob storage failed.
    Storage = 500,
    /// A file or stream could not be read or written.
    Io = 501,
}

impl codekeep_status {
    /// Every status, for exhaustive tests.
    pub(crate) const ALL: &'static [codekeep_status] = &[
        Self::Ok,
        Self::NullArgument,
        Self::InvalidArgument,
        Self::InvalidUtf8,
        Self::BufferTooSmall,
        Self::AlreadyUsed,
        Self::Panic,
        Self::Unsupported,
        Self::Internal,
        Self::InvalidJson,
        Self::NotFound,
        Self::AlreadyExists,
        Self::AccessDenied,
        Self::Conflict,
        Self::InvalidState,
        Self::LimitExceeded,
        Self::DecryptFailed,
        Self::KeyDisabled,
        Self::Storage,
        Self::Io,
    ];

    fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    fn as_cstr(self) -> &'static str {
        match self {
            Self::Ok => "ok\0",
            Self::NullArgument => "a required argument was NULL\0",
            Self::InvalidArgument => "invalid argument\0",
            Self::InvalidUtf8 => "a string was not valid UTF-8\0",
            Self::BufferTooSmall => "the buffer is too small\0",
            Self::AlreadyUsed => "the object was already used\0",
            Self::Panic => "internal panic\0",
            Self::Unsupported => "unsupported\0",
            Self::Internal => "internal error\0",
            Self::InvalidJson => "invalid JSON\0",
            Self::NotFound => "not found\0",
            Self::AlreadyExists => "already exists\0",
            Self::AccessDenied => "access denied\0",
            Self::Conflict => "conflict\0",
            Self::InvalidState => "invalid state\0",
            Self::LimitExceeded => "limit exceeded\0",
            Self::DecryptFailed => "decryption or integrity check failed\0",
            Self::KeyDisabled => "the key is disabled\0",
            Self::Storage => "storage failure\0",
            Self::Io => "i/o error\0",
        }
    }
}

/// The status for an error kind. The `_` arm is required because `ErrorKind` is
/// non-exhaustive; a test proves no current kind reaches it.
pub(crate) fn status_of(kind: ErrorKind) -> codekeep_status {
    match kind {
        ErrorKind::InvalidArgument => codekeep_status::InvalidArgument,
        ErrorKind::NotFound => codekeep_status::NotFound,
        ErrorKind::AlreadyExists => codekeep_status::AlreadyExists,
        ErrorKind::AccessDenied => codekeep_status::AccessDenied,
        ErrorKind::InvalidState => codekeep_status::InvalidState,
        ErrorKind::Disabled => codekeep_status::KeyDisabled,
        ErrorKind::LimitExceeded => codekeep_status::LimitExceeded,
        ErrorKind::Conflict => codekeep_status::Conflict,
        ErrorKind::IntegrityFailure => codekeep_status::DecryptFailed,
        ErrorKind::Unsupported => codekeep_status::Unsupported,
        ErrorKind::Storage => codekeep_status::Storage,
        ErrorKind::Io => codekeep_status::Io,
        _ => codekeep_status::Internal,
    }
}

/// An error on its way out through the C boundary.
#[derive(Debug)]
pub(crate) struct FfiError {
    status: codekeep_status,
    message: String,
}

impl FfiError {
    pub(crate) fn new(status: codekeep_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }
}

impl From<codekeep::Error> for FfiError {
    fn from(e: codekeep::Error) -> Self {
        FfiError {
            status: status_of(e.kind()),
            message: format!("{}: {}", e.code(), e.message()),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

/// Runs the body of an exported function: maps errors to statuses and records their message,
/// and turns a panic into `CODEKEEP_STATUS_PANIC` instead of unwinding into C.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), FfiError>) -> codekeep_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => codekeep_status::Ok,
        Ok(Err(e)) => {
            set_last_error(e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(format!("panic inside codekeep: {what}"));
            codekeep_status::Panic
        }
    }
}

/// A static description of `status` (never freed); "unknown status" for values not defined.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_status_str(status: u32) -> *const c_char {
    codekeep_status::from_u32(status)
        .map_or("unknown status\0", codekeep_status::as_cstr)
        .as_ptr()
        .cast()
}

/// Copies the calling thread's last error message into `buf` (NUL-terminated when it fits in
/// `len` bytes, truncated otherwise) and writes the message's full length (without NUL) to
/// `*out_n`. Returns CODEKEEP_STATUS_BUFFER_TOO_SMALL when it did not fit; `buf` may be NULL
/// when `len` is 0, to ask for the size.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> codekeep_status {
    copy_last_error(buf, len, out_n)
}

fn copy_last_error(buf: *mut c_char, len: usize, out_n: *mut usize) -> codekeep_status {
    if out_n.is_null() || (buf.is_null() && len > 0) {
        return codekeep_status::NullArgument;
    }
    LAST_ERROR.with(|slot| {
        let msg = slot.borrow();
        let bytes = msg.as_bytes();
        // SAFETY: `out_n` is non-NULL (checked) and writable per the contract.
        unsafe { *out_n = bytes.len() };
        if len == 0 {
            return codekeep_status::BufferTooSmall;
        }
        let n = bytes.len().min(len - 1);
        // SAFETY: `buf` is non-NULL with room for `len` bytes (the contract); we write `n + 1`
        // bytes with `n < len`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
        if n < bytes.len() {
            codekeep_status::BufferTooSmall
        } else {
            codekeep_status::Ok
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_own_status() {
        for kind in ErrorKind::ALL {
            let status = status_of(*kind);
            assert!(
                *kind == ErrorKind::Internal || status != codekeep_status::Internal,
                "{kind:?} falls into the fallback arm"
            );
        }
    }

    #[test]
    fn every_status_has_a_description() {
        for s in codekeep_status::ALL {
            assert!(s.as_cstr().len() > 1 && s.as_cstr().ends_with('\0'));
            assert_eq!(codekeep_status::from_u32(*s as u32), Some(*s));
        }
    }

    #[test]
    fn panics_become_a_status() {
        let status = boundary(|| panic!("boom"));
        assert_eq!(status, codekeep_status::Panic);
    }
}
