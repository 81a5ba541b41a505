//! The C ABI of codekeep: a thin adapter over the `codekeep` crate.
//!
//! Argument conversion, error mapping and ownership only; every rule lives in the core.
#![expect(non_camel_case_types, reason = "C naming")]
#![expect(
    unsafe_code,
    reason = "a C ABI dereferences raw pointers; each block states why it is sound"
)]

mod envelope;
mod error;
mod events;
mod handle;
mod provider;
mod server;

use std::ffi::{CStr, CString, c_char};

use codekeep::{Caller, Keep};

pub use envelope::{
    codekeep_envelope_open_file, codekeep_envelope_open_stream, codekeep_envelope_read_range,
    codekeep_envelope_seal_file, codekeep_envelope_seal_stream, codekeep_read_callback,
    codekeep_write_callback,
};
pub use error::{codekeep_last_error_message, codekeep_status, codekeep_status_str};
pub use events::{
    codekeep_function_callback, codekeep_keep_application_messages,
    codekeep_keep_configure_webhooks, codekeep_keep_dead_letters,
    codekeep_keep_delete_application_message, codekeep_keep_register_function,
    codekeep_keep_remove_function, codekeep_webhook_verify,
};
pub use provider::{
    codekeep_free_callback, codekeep_keep_open_with_key_provider, codekeep_key_transform_callback,
};

pub use server::{
    codekeep_server, codekeep_server_describe, codekeep_server_start, codekeep_server_stop,
};

use error::{FfiError, boundary};

/// An open keep. Create with codekeep_keep_open() or codekeep_keep_open_memory(); free with
/// codekeep_keep_free(). Thread-safe.
#[derive(Debug)]
pub struct codekeep_keep {
    _private: [u8; 0],
}

/// A client of one service acting as one caller. Create with codekeep_client_new(); free with
/// codekeep_client_free(). Thread-safe; it keeps its keep alive.
#[derive(Debug)]
pub struct codekeep_client {
    _private: [u8; 0],
}

/// Bytes returned by the library. Read with codekeep_bytes_data() / codekeep_bytes_len();
/// free with codekeep_bytes_free().
#[derive(Debug)]
pub struct codekeep_bytes {
    _private: [u8; 0],
}

/// The library version, e.g. "0.1.0", as a static NUL-terminated string (never freed).
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Reads a required NUL-terminated UTF-8 string argument.
fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::new(
            codekeep_status::NullArgument,
            format!("`{name}` is NULL"),
        ));
    }
    // SAFETY: the caller passes a valid NUL-terminated string that outlives this call (the
    // documented contract of every `const char *` parameter).
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| {
        FfiError::new(
            codekeep_status::InvalidUtf8,
            format!("`{name}` is not valid UTF-8"),
        )
    })
}

/// Writes an owned C string to an out-parameter.
fn write_string(out: *mut *mut c_char, value: String) -> Result<(), FfiError> {
    let c = CString::new(value)
        .map_err(|_| FfiError::new(codekeep_status::Internal, "output contains a NUL byte"))?;
    handle::write_out(out, c.into_raw());
    Ok(())
}

/// Reads a byte buffer argument: `len` bytes at `ptr` (NULL allowed when `len` is 0).
fn bytes_arg<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::new(
            codekeep_status::NullArgument,
            format!("`{name}` is NULL"),
        ));
    }
    // SAFETY: the caller passes `len` readable bytes at `ptr` that stay valid for the call
    // (the documented contract of every buffer parameter).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

fn check_out<T>(out: *mut T, name: &str) -> Result<(), FfiError> {
    if out.is_null() {
        Err(FfiError::new(
            codekeep_status::NullArgument,
            format!("`{name}` is NULL"),
        ))
    } else {
        Ok(())
    }
}

fn json_arg(ptr: *const c_char, name: &str) -> Result<serde_json::Value, FfiError> {
    let text = str_arg(ptr, name)?;
    serde_json::from_str(text).map_err(|e| {
        FfiError::new(
            codekeep_status::InvalidJson,
            format!("`{name}` is not valid JSON: {e}"),
        )
    })
}

/// Opens (creating if needed) the embedded default in directory `path` and writes the handle
/// to `*out`. Free it with codekeep_keep_free().
///
/// Returns CODEKEEP_STATUS_NULL_ARGUMENT, _INVALID_UTF8, _IO, _STORAGE or _ACCESS_DENIED on
/// failure.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_open(
    path: *const c_char,
    out: *mut *mut codekeep_keep,
) -> codekeep_status {
    boundary(|| {
        check_out(out, "out")?;
        let keep = Keep::open(str_arg(path, "path")?)?;
        handle::write_out(out, handle::keep_into_raw(keep));
        Ok(())
    })
}

/// Opens a keep that lives only in memory and writes the handle to `*out`. Free it with
/// codekeep_keep_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_open_memory(out: *mut *mut codekeep_keep) -> codekeep_status {
    boundary(|| {
        check_out(out, "out")?;
        let keep = Keep::memory()?;
        handle::write_out(out, handle::keep_into_raw(keep));
        Ok(())
    })
}

/// Frees a keep handle. NULL is a no-op. Clients created from it stay valid.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_free(keep: *mut codekeep_keep) {
    let _ = boundary(|| {
        handle::keep_free(keep);
        Ok(())
    });
}

/// Creates an account named `name`; writes its description as JSON (with "Id") to `*json_out`.
/// Free the string with codekeep_string_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_create_account(
    keep: *const codekeep_keep,
    name: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let keep = handle::keep_ref(keep)?;
        let account = keep.create_account(str_arg(name, "name")?)?;
        write_string(json_out, account.to_string())
    })
}

/// Writes every account as a JSON array to `*json_out`. Free it with codekeep_string_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_list_accounts(
    keep: *const codekeep_keep,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let accounts = handle::keep_ref(keep)?.list_accounts()?;
        write_string(json_out, serde_json::Value::Array(accounts).to_string())
    })
}

/// Writes the description of account `account_id` as JSON to `*json_out`. Free it with
/// codekeep_string_free(). CODEKEEP_STATUS_NOT_FOUND for an unknown id.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_describe_account(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let id = str_arg(account_id, "account_id")?.parse()?;
        let account = handle::keep_ref(keep)?.describe_account(&id)?;
        write_string(json_out, account.to_string())
    })
}

/// Verifies the audit log; writes `{"Valid": bool, "RecordsChecked": n, "FirstInvalid": ...}`
/// to `*json_out`. Free it with codekeep_string_free(). Tampering is reported in the JSON, not
/// as a status.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_verify_audit_log(
    keep: *const codekeep_keep,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let report = handle::keep_ref(keep)?.verify_audit_log()?;
        let json = serde_json::to_string(&report)
            .map_err(|e| FfiError::new(codekeep_status::Internal, e.to_string()))?;
        write_string(json_out, json)
    })
}

/// Signs a checkpoint over the audit log's current head; writes it as JSON (`{"Seq": n,
/// "Mac": ..., "Time": ..., "Signature": ...}`, or `null` when every record is already covered)
/// to `*json_out`. Free it with codekeep_string_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_audit_checkpoint(
    keep: *const codekeep_keep,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let cp = handle::keep_ref(keep)?.audit().checkpoint()?;
        let json = serde_json::to_string(&cp)
            .map_err(|e| FfiError::new(codekeep_status::Internal, e.to_string()))?;
        write_string(json_out, json)
    })
}

/// Writes the audit log as JSON Lines to a new file at `path` (one CloudTrail record per line,
/// then the checkpoints and the checkpoint public key); the number of records goes to
/// `*out_records`. On failure the file is removed.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_export_audit_log(
    keep: *const codekeep_keep,
    path: *const c_char,
    out_records: *mut u64,
) -> codekeep_status {
    boundary(|| {
        check_out(out_records, "out_records")?;
        let keep = handle::keep_ref(keep)?;
        let path = str_arg(path, "path")?;
        let file = std::fs::File::create(path)
            .map_err(|e| FfiError::new(codekeep_status::Io, format!("i/o error: {e}")))?;
        let mut out = std::io::BufWriter::new(file);
        let written = keep
            .audit()
            .export_jsonl(&mut out)
            .map_err(FfiError::from)
            .and_then(|n| {
                std::io::Write::flush(&mut out)
                    .map(|()| n)
                    .map_err(|e| FfiError::new(codekeep_status::Io, format!("i/o error: {e}")))
            });
        match written {
            Ok(n) => {
                handle::write_out(out_records, n);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    })
}

/// Writes up to `limit` outbox events that `consumer` has not acknowledged, oldest first, to
/// `*json_out` as a JSON array of `{"Seq": n, "Event": <EventBridge envelope>}`. Free it with
/// codekeep_string_free(). Acknowledge with codekeep_keep_ack_events().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_read_events(
    keep: *const codekeep_keep,
    consumer: *const c_char,
    limit: usize,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let events = handle::keep_ref(keep)?.read_events(str_arg(consumer, "consumer")?, limit)?;
        write_string(json_out, serde_json::Value::Array(events).to_string())
    })
}

/// Acknowledges, for `consumer`, every outbox event up to and including `seq`.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_ack_events(
    keep: *const codekeep_keep,
    consumer: *const c_char,
    seq: u64,
) -> codekeep_status {
    boundary(|| {
        handle::keep_ref(keep)?.ack_events(str_arg(consumer, "consumer")?, seq)?;
        Ok(())
    })
}

/// Compacts repository `repository` of account `account_id` (see the Rust
/// `Keep::compact_repository`): `options_json` is NULL for the defaults or `{"GraceSeconds": n,
/// "RetiredBlobDelaySeconds": n}`. Writes the report (`{"PacksBefore", "PacksAfter",
/// "ReachableObjects", "CruftObjects", "DroppedObjects", "RetiredPacksDeleted"}`) to `*json_out`;
/// free it with codekeep_string_free(). CODEKEEP_STATUS_CONFLICT when the repository changed
/// meanwhile (run it again).
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_compact_repository(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    repository: *const c_char,
    options_json: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let options = if options_json.is_null() {
            codekeep::CompactOptions::default()
        } else {
            codekeep::CompactOptions::from_json(&json_arg(options_json, "options_json")?)?
        };
        let report = handle::keep_ref(keep)?.compact_repository(
            str_arg(account_id, "account_id")?,
            str_arg(repository, "repository")?,
            options,
        )?;
        write_string(json_out, report.to_string())
    })
}

/// Sets the CodeCommit limits of account `account_id` from `limits_json` (`{"MaxRepositories",
/// "MaxRefUpdatesPerPush", "MaxRefsPerRepository", "MaxPushBytes"}`: whole numbers, or null for
/// unlimited; members left out keep their value) and writes the limits now in force to
/// `*json_out` (free with codekeep_string_free()).
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_set_codecommit_limits(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    limits_json: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let limits = handle::keep_ref(keep)?.set_codecommit_limits(
            str_arg(account_id, "account_id")?,
            &json_arg(limits_json, "limits_json")?,
        )?;
        write_string(json_out, limits.to_string())
    })
}

/// Creates a client of `service` ("iam", "sts", "kms", "cloudtrail", "organizations") acting as
/// the caller described by `caller_json`: `{"AccountId": "111122223333"}` (the account's root),
/// `{"AccountId": ..., "UserName": "alice"}` (an IAM user the host authenticated),
/// `{"AccessKeyId": ..., "SecretAccessKey": ...[, "SessionToken": ...]}`, `{"SignedRequest":
/// {"Method", "Path", "Query", "Headers": [[name, value], ...], "Body": base64}}` (SigV4), or
/// `{"Admin": true}`; optional "SourceIp", "UserAgent", "SecureTransport". Credentials are
/// checked on every call. Free it with codekeep_client_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_client_new(
    keep: *const codekeep_keep,
    service: *const c_char,
    caller_json: *const c_char,
    out: *mut *mut codekeep_client,
) -> codekeep_status {
    boundary(|| {
        check_out(out, "out")?;
        let caller = Caller::from_json(&json_arg(caller_json, "caller_json")?)?;
        let client = handle::keep_ref(keep)?.client(str_arg(service, "service")?, caller)?;
        handle::write_out(out, handle::client_into_raw(client));
        Ok(())
    })
}

/// Decides, without performing it, whether the caller described by `caller_json` may perform
/// `action` (e.g. "kms:Decrypt") on `resource` (an ARN or "*"), with the request context a call
/// would have plus the keys of `context_json` (`{"key": "value" | ["a", "b"]}`, or NULL).
/// Writes `{"EvalDecision": "allowed"|"explicitDeny"|"implicitDeny", "Message": ...,
/// "DecidedBy": ..., "MatchedStatements": [...], "MissingContextValues": [...]}` to
/// `*json_out` (free with codekeep_string_free()). A denial is reported in the JSON, not as a
/// status.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_authorize(
    keep: *const codekeep_keep,
    caller_json: *const c_char,
    action: *const c_char,
    resource: *const c_char,
    context_json: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let caller = Caller::from_json(&json_arg(caller_json, "caller_json")?)?;
        let context = if context_json.is_null() {
            codekeep::policy::Context::new()
        } else {
            codekeep::policy::Context::from_json(&json_arg(context_json, "context_json")?)?
        };
        let decision = handle::keep_ref(keep)?.authorize(
            &caller,
            str_arg(action, "action")?,
            str_arg(resource, "resource")?,
            &context,
        )?;
        write_string(json_out, decision.to_json().to_string())
    })
}

/// Frees a client. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_client_free(client: *mut codekeep_client) {
    let _ = boundary(|| {
        handle::client_free(client);
        Ok(())
    });
}

/// Calls `operation` (e.g. "CreateKey") with the JSON input `json_in`; writes the JSON output
/// to `*json_out` (free with codekeep_string_free()). On an AWS error the status reflects its
/// kind and codekeep_last_error_message() reads "<Code>: <message>".
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_client_call(
    client: *const codekeep_client,
    operation: *const c_char,
    json_in: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let input = json_arg(json_in, "json_in")?;
        let output = handle::client_ref(client)?.call(str_arg(operation, "operation")?, input)?;
        write_string(json_out, output.to_string())
    })
}

/// Frees a string returned by the library. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_string_free(s: *mut c_char) {
    handle::string_free(s);
}

/// The bytes of a buffer returned by the library (valid until codekeep_bytes_free()); NULL for
/// a NULL buffer.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_bytes_data(bytes: *const codekeep_bytes) -> *const u8 {
    handle::bytes_ref(bytes).map_or(std::ptr::null(), Vec::as_ptr)
}

/// The length of a buffer returned by the library; 0 for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_bytes_len(bytes: *const codekeep_bytes) -> usize {
    handle::bytes_ref(bytes).map_or(0, Vec::len)
}

/// Frees a buffer returned by the library. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_bytes_free(bytes: *mut codekeep_bytes) {
    handle::bytes_free(bytes);
}
