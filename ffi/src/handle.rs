//! The one place raw handle pointers are cast to and from their Rust objects.

use codekeep::{Client, Keep};

use crate::error::FfiError;
use crate::{codekeep_bytes, codekeep_client, codekeep_keep, codekeep_status};

pub(crate) fn keep_into_raw(keep: Keep) -> *mut codekeep_keep {
    Box::into_raw(Box::new(keep)).cast()
}

pub(crate) fn keep_ref<'a>(keep: *const codekeep_keep) -> Result<&'a Keep, FfiError> {
    // SAFETY: a non-NULL keep handle was made by `keep_into_raw` and not yet freed (the C
    // contract); `Keep` is Sync, so shared references from many threads are fine.
    unsafe { keep.cast::<Keep>().as_ref() }
        .ok_or_else(|| FfiError::new(codekeep_status::NullArgument, "`keep` is NULL"))
}

pub(crate) fn keep_free(keep: *mut codekeep_keep) {
    if !keep.is_null() {
        // SAFETY: made by `keep_into_raw`, freed exactly once (the C contract).
        drop(unsafe { Box::from_raw(keep.cast::<Keep>()) });
    }
}

pub(crate) fn client_into_raw(client: Client) -> *mut codekeep_client {
    Box::into_raw(Box::new(client)).cast()
}

pub(crate) fn client_ref<'a>(client: *const codekeep_client) -> Result<&'a Client, FfiError> {
    // SAFETY: a non-NULL client handle was made by `client_into_raw` and not yet freed.
    unsafe { client.cast::<Client>().as_ref() }
        .ok_or_else(|| FfiError::new(codekeep_status::NullArgument, "`client` is NULL"))
}

pub(crate) fn client_free(client: *mut codekeep_client) {
    if !client.is_null() {
        // SAFETY: made by `client_into_raw`, freed exactly once.
        drop(unsafe { Box::from_raw(client.cast::<Client>()) });
    }
}

pub(crate) fn bytes_into_raw(bytes: Vec<u8>) -> *mut codekeep_bytes {
    Box::into_raw(Box::new(bytes)).cast()
}

pub(crate) fn bytes_ref<'a>(bytes: *const codekeep_bytes) -> Option<&'a Vec<u8>> {
    // SAFETY: a non-NULL buffer was made by `bytes_into_raw` and not yet freed.
    unsafe { bytes.cast::<Vec<u8>>().as_ref() }
}

pub(crate) fn bytes_free(bytes: *mut codekeep_bytes) {
    if !bytes.is_null() {
        // SAFETY: made by `bytes_into_raw`, freed exactly once.
        drop(unsafe { Box::from_raw(bytes.cast::<Vec<u8>>()) });
    }
}

/// Writes `value` through an out-parameter the caller checked to be non-NULL.
pub(crate) fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: every caller checks `out` for NULL first; the C contract makes it writable.
    unsafe { out.write(value) };
}

pub(crate) fn string_free(s: *mut std::ffi::c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `CString::into_raw` in this library and is freed once.
        drop(unsafe { std::ffi::CString::from_raw(s) });
    }
}

pub(crate) fn server_into_raw(server: codekeep::server::Server) -> *mut crate::codekeep_server {
    Box::into_raw(Box::new(server)).cast()
}

pub(crate) fn server_ref<'a>(
    server: *const crate::codekeep_server,
) -> Result<&'a codekeep::server::Server, FfiError> {
    // SAFETY: a non-NULL server handle was made by `server_into_raw` and not yet stopped.
    unsafe { server.cast::<codekeep::server::Server>().as_ref() }
        .ok_or_else(|| FfiError::new(codekeep_status::NullArgument, "`server` is NULL"))
}

pub(crate) fn server_free(server: *mut crate::codekeep_server) {
    if !server.is_null() {
        // SAFETY: made by `server_into_raw`, stopped exactly once (the C contract). Dropping
        // it shuts the server down.
        drop(unsafe { Box::from_raw(server.cast::<codekeep::server::Server>()) });
    }
}
