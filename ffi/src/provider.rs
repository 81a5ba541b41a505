//! Key providers implemented in C: the host's KMS or HSM wraps codekeep's key material.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use codekeep::crypto::KeyProvider;
use codekeep::{Error, ErrorKind, Keep};

use crate::error::{FfiError, boundary};
use crate::{check_out, codekeep_keep, codekeep_status, handle, str_arg};

/// Wraps or unwraps key material: transform `input` (bound to `aad`) into `out` (room for
/// `out_cap` bytes) and write the result's length to `*out_len`. When `out_cap` is too small,
/// write the needed length to `*out_len` and return CODEKEEP_STATUS_BUFFER_TOO_SMALL: the call
/// is repeated with a larger buffer. An unwrap whose input or `aad` does not authenticate must
/// return CODEKEEP_STATUS_DECRYPT_FAILED. May be called from any thread, concurrently, and
/// inside codekeep's transactions: it must not call back into the same keep.
pub type codekeep_key_transform_callback = Option<
    extern "C" fn(
        user_data: *mut c_void,
        input: *const u8,
        input_len: usize,
        aad: *const u8,
        aad_len: usize,
        out: *mut u8,
        out_cap: usize,
        out_len: *mut usize,
    ) -> u32,
>;

/// Frees the user data of a key provider; called exactly once, when the last handle that uses
/// the provider is freed.
pub type codekeep_free_callback = Option<extern "C" fn(user_data: *mut c_void)>;

type Transform = extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut usize,
) -> u32;

struct CKeyProvider {
    wrap: Transform,
    unwrap: Transform,
    user_data: *mut c_void,
    free_user_data: codekeep_free_callback,
}

// SAFETY: the registering function documents that the callbacks and `user_data` may be used
// from any thread, concurrently; the pointer itself is only passed back to those callbacks.
unsafe impl Send for CKeyProvider {}
// SAFETY: as above.
unsafe impl Sync for CKeyProvider {}

impl std::fmt::Debug for CKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CKeyProvider").finish_non_exhaustive()
    }
}

impl Drop for CKeyProvider {
    fn drop(&mut self) {
        if let Some(free) = self.free_user_data {
            free(self.user_data);
        }
    }
}

/// Largest output a provider may produce: key material is small.
const MAX_OUTPUT: usize = 1 << 20;

impl CKeyProvider {
    fn call(
        &self,
        f: Transform,
        input: &[u8],
        aad: &[u8],
        what: &str,
    ) -> codekeep::Result<Vec<u8>> {
        let mut cap = input.len() + 256;
        loop {
            let mut out = vec![0u8; cap];
            let mut len = 0usize;
            let status = f(
                self.user_data,
                input.as_ptr(),
                input.len(),
                aad.as_ptr(),
                aad.len(),
                out.as_mut_ptr(),
                cap,
                &raw mut len,
            );
            match status {
                0 if len <= cap => {
                    out.truncate(len);
                    return Ok(out);
                }
                s if s == codekeep_status::BufferTooSmall as u32
                    && len > cap
                    && len <= MAX_OUTPUT =>
                {
                    cap = len;
                }
                s if s == codekeep_status::DecryptFailed as u32 => return Err(Error::decrypt()),
                s => {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!("the key provider's {what} callback failed with status {s}"),
                    ));
                }
            }
        }
    }
}

impl KeyProvider for CKeyProvider {
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> codekeep::Result<Vec<u8>> {
        self.call(self.wrap, plaintext, aad, "wrap")
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> codekeep::Result<zeroize::Zeroizing<Vec<u8>>> {
        self.call(self.unwrap, wrapped, aad, "unwrap")
            .map(zeroize::Zeroizing::new)
    }
}

/// Opens (creating if needed) a keep whose key material is wrapped by callbacks instead of a
/// master key file: in directory `path`, or in memory when `path` is NULL. `free_user_data`
/// (may be NULL) is called once when the keep and every client made from it are freed — also
/// when this call fails. Free the keep with codekeep_keep_free().
///
/// Returns CODEKEEP_STATUS_ACCESS_DENIED when the provider cannot unwrap the keep's existing keys.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_open_with_key_provider(
    path: *const c_char,
    wrap: codekeep_key_transform_callback,
    unwrap: codekeep_key_transform_callback,
    user_data: *mut c_void,
    free_user_data: codekeep_free_callback,
    out: *mut *mut codekeep_keep,
) -> codekeep_status {
    boundary(|| {
        let (Some(wrap), Some(unwrap)) = (wrap, unwrap) else {
            if let Some(free) = free_user_data {
                free(user_data);
            }
            return Err(FfiError::new(
                codekeep_status::NullArgument,
                "a key provider callback is NULL",
            ));
        };
        let provider = Arc::new(CKeyProvider {
            wrap,
            unwrap,
            user_data,
            free_user_data,
        });
        check_out(out, "out")?;
        let keep = if path.is_null() {
            Keep::builder().key_provider(provider).build()?
        } else {
            Keep::open_with_key_provider(str_arg(path, "path")?, provider)?
        };
        handle::write_out(out, handle::keep_into_raw(keep));
        Ok(())
    })
}
