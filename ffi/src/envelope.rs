//! Sealing and opening envelopes from C: between files, through callbacks, and by range.

use std::ffi::{c_char, c_void};
use std::io::{self, Read, Write};

use codekeep::crypto::EncryptionContext;

use crate::error::{FfiError, boundary};
use crate::{
    check_out, codekeep_bytes, codekeep_client, codekeep_status, handle, json_arg, str_arg,
};

/// Supplies input: write up to `len` bytes to `buf` and their number to `*out_n` (0 = end of
/// input); return CODEKEEP_STATUS_OK, or any other status to abort. Called on the calling
/// thread, never concurrently.
pub type codekeep_read_callback = Option<
    extern "C" fn(user_data: *mut c_void, buf: *mut u8, len: usize, out_n: *mut usize) -> u32,
>;

/// Receives output: `len` bytes at `buf` (valid only during the call); return
/// CODEKEEP_STATUS_OK, or any other status to abort. Called on the calling thread, never
/// concurrently.
pub type codekeep_write_callback =
    Option<extern "C" fn(user_data: *mut c_void, buf: *const u8, len: usize) -> u32>;

struct CallbackReader {
    cb: extern "C" fn(*mut c_void, *mut u8, usize, *mut usize) -> u32,
    user_data: *mut c_void,
}

impl Read for CallbackReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0usize;
        let status = (self.cb)(self.user_data, buf.as_mut_ptr(), buf.len(), &raw mut n);
        if status != 0 {
            return Err(io::Error::other(format!(
                "the read callback returned status {status}"
            )));
        }
        if n > buf.len() {
            return Err(io::Error::other(
                "the read callback reported more bytes than the buffer holds",
            ));
        }
        Ok(n)
    }
}

struct CallbackWriter {
    cb: extern "C" fn(*mut c_void, *const u8, usize) -> u32,
    user_data: *mut c_void,
}

impl Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let status = (self.cb)(self.user_data, buf.as_ptr(), buf.len());
        if status != 0 {
            return Err(io::Error::other(format!(
                "the write callback returned status {status}"
            )));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Wraps a pair of C callbacks as a reader and a writer; both must be non-NULL.
fn callbacks(
    read: codekeep_read_callback,
    read_user_data: *mut c_void,
    write: codekeep_write_callback,
    write_user_data: *mut c_void,
) -> Result<(CallbackReader, CallbackWriter), FfiError> {
    let (Some(rcb), Some(wcb)) = (read, write) else {
        return Err(FfiError::new(
            codekeep_status::NullArgument,
            "a callback is NULL",
        ));
    };
    Ok((
        CallbackReader {
            cb: rcb,
            user_data: read_user_data,
        },
        CallbackWriter {
            cb: wcb,
            user_data: write_user_data,
        },
    ))
}

fn context_arg(ptr: *const c_char) -> Result<EncryptionContext, FfiError> {
    if ptr.is_null() {
        return Ok(EncryptionContext::new());
    }
    let value = json_arg(ptr, "context_json")?;
    let map = value.as_object().ok_or_else(|| {
        FfiError::new(
            codekeep_status::InvalidArgument,
            "`context_json` must be a JSON object of strings",
        )
    })?;
    let mut ctx = EncryptionContext::new();
    for (k, v) in map {
        let v = v.as_str().ok_or_else(|| {
            FfiError::new(
                codekeep_status::InvalidArgument,
                "`context_json` values must be strings",
            )
        })?;
        ctx = ctx.with(k, v);
    }
    Ok(ctx)
}

fn io_err(e: &io::Error) -> FfiError {
    FfiError::new(codekeep_status::Io, format!("i/o error: {e}"))
}

/// Seals the file `in_path` into a new file `out_path` under a fresh data key from KMS key
/// `key_id`, bound to `context_json` (a JSON object of strings, or NULL for none). `client`
/// must be a "kms" client. On failure `out_path` is removed.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_envelope_seal_file(
    client: *const codekeep_client,
    key_id: *const c_char,
    context_json: *const c_char,
    in_path: *const c_char,
    out_path: *const c_char,
) -> codekeep_status {
    boundary(|| {
        // Every argument is checked before `out_path` is touched.
        let client = handle::client_ref(client)?;
        let context = context_arg(context_json)?;
        let key_id = str_arg(key_id, "key_id")?;
        let out_path = str_arg(out_path, "out_path")?;
        let mut input =
            std::fs::File::open(str_arg(in_path, "in_path")?).map_err(|e| io_err(&e))?;
        let output = std::fs::File::create(out_path).map_err(|e| io_err(&e))?;
        let sealed = client
            .seal(key_id, &context, &mut input, io::BufWriter::new(output))
            .map_err(FfiError::from)
            .and_then(|(w, _)| {
                let file = w.into_inner().map_err(|e| io_err(e.error()))?;
                file.sync_all().map_err(|e| io_err(&e))
            });
        if sealed.is_err() {
            let _ = std::fs::remove_file(out_path);
        }
        sealed
    })
}

/// Opens the envelope in file `in_path` with `context_json` and writes the plaintext to a new
/// file `out_path`. Nothing unauthenticated is written: on failure `out_path` is removed.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_envelope_open_file(
    client: *const codekeep_client,
    context_json: *const c_char,
    in_path: *const c_char,
    out_path: *const c_char,
) -> codekeep_status {
    boundary(|| {
        let client = handle::client_ref(client)?;
        let context = context_arg(context_json)?;
        let input = std::fs::File::open(str_arg(in_path, "in_path")?).map_err(|e| io_err(&e))?;
        let out_path = str_arg(out_path, "out_path")?;
        let run = || -> Result<(), FfiError> {
            let mut reader = client.open_reader(&context, io::BufReader::new(input))?;
            let mut output =
                io::BufWriter::new(std::fs::File::create(out_path).map_err(|e| io_err(&e))?);
            copy(&mut reader, &mut output)?;
            output.flush().map_err(|e| io_err(&e))
        };
        run().inspect_err(|_| {
            let _ = std::fs::remove_file(out_path);
        })
    })
}

/// Copies, recovering codekeep errors carried through `io::Error`.
fn copy(r: &mut dyn Read, w: &mut dyn Write) -> Result<u64, FfiError> {
    io::copy(r, w).map_err(|e| {
        match e
            .get_ref()
            .and_then(|i| i.downcast_ref::<codekeep::Error>())
        {
            Some(inner) => FfiError::new(
                crate::error::status_of(inner.kind()),
                format!("{}: {}", inner.code(), inner.message()),
            ),
            None => io_err(&e),
        }
    })
}

/// Seals everything `read` supplies and passes the envelope to `write`.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_envelope_seal_stream(
    client: *const codekeep_client,
    key_id: *const c_char,
    context_json: *const c_char,
    read: codekeep_read_callback,
    read_user_data: *mut c_void,
    write: codekeep_write_callback,
    write_user_data: *mut c_void,
) -> codekeep_status {
    boundary(|| {
        let client = handle::client_ref(client)?;
        let context = context_arg(context_json)?;
        let (mut reader, writer) = callbacks(read, read_user_data, write, write_user_data)?;
        let mut sealer = client.seal_writer(str_arg(key_id, "key_id")?, &context, writer)?;
        copy(&mut reader, &mut sealer)?;
        sealer.finish()?;
        Ok(())
    })
}

/// Opens the envelope `read` supplies and passes its plaintext to `write`, each segment only
/// after it was authenticated. On failure some authenticated plaintext may already have been
/// passed on; the status says the whole was not.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_envelope_open_stream(
    client: *const codekeep_client,
    context_json: *const c_char,
    read: codekeep_read_callback,
    read_user_data: *mut c_void,
    write: codekeep_write_callback,
    write_user_data: *mut c_void,
) -> codekeep_status {
    boundary(|| {
        let client = handle::client_ref(client)?;
        let context = context_arg(context_json)?;
        let (reader, mut writer) = callbacks(read, read_user_data, write, write_user_data)?;
        let mut opened = client.open_reader(&context, reader)?;
        copy(&mut opened, &mut writer)?;
        Ok(())
    })
}

/// Decrypts `len` plaintext bytes at `offset` of the envelope in file `path`, reading only the
/// covering segments; writes the buffer to `*out` (free with codekeep_bytes_free()).
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_envelope_read_range(
    client: *const codekeep_client,
    context_json: *const c_char,
    path: *const c_char,
    offset: u64,
    len: u64,
    out: *mut *mut codekeep_bytes,
) -> codekeep_status {
    boundary(|| {
        check_out(out, "out")?;
        let client = handle::client_ref(client)?;
        let context = context_arg(context_json)?;
        let file = std::fs::File::open(str_arg(path, "path")?).map_err(|e| io_err(&e))?;
        let bytes = client.open_range(&context, &file, offset, len)?;
        handle::write_out(out, handle::bytes_into_raw(bytes));
        Ok(())
    })
}
