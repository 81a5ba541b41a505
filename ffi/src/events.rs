//! Events from C: functions (the keep's Lambda) as C callbacks, dead-letter queues, webhook
//! settings and the receiver's signature check.

use std::ffi::{CString, c_char, c_void};

use codekeep::events::webhook::{self, WebhookConfig};

use crate::error::{FfiError, boundary};
use crate::provider::codekeep_free_callback;
use crate::{check_out, codekeep_keep, codekeep_status, handle, json_arg, str_arg, write_string};

/// A function: receives an event (or the target's shaped input) as NUL-terminated JSON text of
/// `payload_len` bytes, valid only during the call. Returns 0 when it handled the event;
/// anything else fails the delivery, which is retried as the target's RetryPolicy says. Called
/// from the keep's delivery threads, possibly concurrently; it may call into the keep through
/// a client, but must not free the keep.
pub type codekeep_function_callback = Option<
    extern "C" fn(user_data: *mut c_void, payload: *const c_char, payload_len: usize) -> i32,
>;

struct CFunction {
    call: extern "C" fn(*mut c_void, *const c_char, usize) -> i32,
    user_data: *mut c_void,
    free_user_data: codekeep_free_callback,
}

// SAFETY: codekeep_keep_register_function documents that the callback is called from other
// threads, concurrently, with `user_data`; the pointer is only ever passed back to it.
unsafe impl Send for CFunction {}
// SAFETY: as above.
unsafe impl Sync for CFunction {}

impl Drop for CFunction {
    fn drop(&mut self) {
        if let Some(free) = self.free_user_data {
            free(self.user_data);
        }
    }
}

impl CFunction {
    fn invoke(&self, payload: &str) -> Result<(), String> {
        let text = CString::new(payload).map_err(|_| "the payload holds a NUL byte".to_owned())?;
        match (self.call)(self.user_data, text.as_ptr(), payload.len()) {
            0 => Ok(()),
            status => Err(format!("the function returned {status}")),
        }
    }
}

/// Registers function `name` of account `account_id` (addressed by rules as
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`), replacing one of that name. `free_user_data`
/// (may be NULL) is called once when the function is removed or replaced and no call to it is
/// running, or when the keep is freed — also when this call fails.
///
/// Returns CODEKEEP_STATUS_NULL_ARGUMENT for a NULL callback, _INVALID_ARGUMENT for a name
/// that is not 1 to 64 letters, digits, '-' or '_'.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_register_function(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    name: *const c_char,
    callback: codekeep_function_callback,
    user_data: *mut c_void,
    free_user_data: codekeep_free_callback,
) -> codekeep_status {
    boundary(|| {
        let Some(call) = callback else {
            if let Some(free) = free_user_data {
                free(user_data);
            }
            return Err(FfiError::new(
                codekeep_status::NullArgument,
                "the function callback is NULL",
            ));
        };
        // Owned from here: dropping it (on any error below) frees the user data.
        let function = CFunction {
            call,
            user_data,
            free_user_data,
        };
        let keep = handle::keep_ref(keep)?;
        keep.register_function(
            str_arg(account_id, "account_id")?,
            str_arg(name, "name")?,
            move |payload: &str| function.invoke(payload),
        )?;
        Ok(())
    })
}

/// Removes function `name` of account `account_id`; writes 1 to `*removed` when it existed,
/// else 0.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_remove_function(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    name: *const c_char,
    removed: *mut i32,
) -> codekeep_status {
    boundary(|| {
        check_out(removed, "removed")?;
        let existed = handle::keep_ref(keep)?
            .remove_function(str_arg(account_id, "account_id")?, str_arg(name, "name")?)?;
        handle::write_out(removed, i32::from(existed));
        Ok(())
    })
}

/// Writes the dead letters of queue `queue_arn` (a target's DeadLetterConfig.Arn) to
/// `*json_out` as a JSON array of `{"Event", "RuleArn", "TargetId", "Attempts", "Error"}`.
/// Free it with codekeep_string_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_dead_letters(
    keep: *const codekeep_keep,
    queue_arn: *const c_char,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let letters = handle::keep_ref(keep)?.dead_letters(str_arg(queue_arn, "queue_arn")?)?;
        write_string(json_out, serde_json::Value::from(letters).to_string())
    })
}

/// Writes up to `max` messages waiting in the in-process application queue `queue` of account
/// `account_id` (filled by `sns` subscriptions with protocol "application") to `*json_out`, a
/// JSON array of `{"ReceiptHandle", "MessageId", "SubscriptionArn", "Body"}`, oldest first.
/// Free it with codekeep_string_free().
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_application_messages(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    queue: *const c_char,
    max: usize,
    json_out: *mut *mut c_char,
) -> codekeep_status {
    boundary(|| {
        check_out(json_out, "json_out")?;
        let messages = handle::keep_ref(keep)?.application_messages(
            str_arg(account_id, "account_id")?,
            str_arg(queue, "queue")?,
            max,
        )?;
        write_string(json_out, serde_json::Value::from(messages).to_string())
    })
}

/// Deletes a message read with codekeep_keep_application_messages(); writes 1 to `*deleted`
/// when it was there, else 0.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_delete_application_message(
    keep: *const codekeep_keep,
    account_id: *const c_char,
    queue: *const c_char,
    receipt_handle: *const c_char,
    deleted: *mut i32,
) -> codekeep_status {
    boundary(|| {
        check_out(deleted, "deleted")?;
        let existed = handle::keep_ref(keep)?.delete_application_message(
            str_arg(account_id, "account_id")?,
            str_arg(queue, "queue")?,
            str_arg(receipt_handle, "receipt_handle")?,
        )?;
        handle::write_out(deleted, i32::from(existed));
        Ok(())
    })
}

/// Sets where webhooks may go, from `config_json`: `{"hosts": ["hooks.example.com",
/// "*.example.org"], "networks": ["127.0.0.0/8"], "timeout_ms": 5000, "ca_file": "ca.pem"}`
/// (every member optional). Until it is called no webhook goes anywhere; loopback, private and
/// link-local addresses also need their network listed.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_keep_configure_webhooks(
    keep: *const codekeep_keep,
    config_json: *const c_char,
) -> codekeep_status {
    boundary(|| {
        let config = WebhookConfig::from_json(&json_arg(config_json, "config_json")?)?;
        handle::keep_ref(keep)?.configure_webhooks(&config)?;
        Ok(())
    })
}

/// Checks a received webhook: `signature` (the webhook-signature header, one or more
/// space-separated `v1,<base64>`) must sign `id`.`timestamp`.`body` under `secret` (the
/// destination's `whsec_...` signing secret), and `timestamp` must be within
/// `tolerance_seconds` of `now_seconds` (0 for the current time).
///
/// Returns CODEKEEP_STATUS_OK when it verifies, _ACCESS_DENIED for a wrong signature or a stale
/// timestamp, _INVALID_ARGUMENT for a malformed secret or header.
#[unsafe(no_mangle)]
pub extern "C" fn codekeep_webhook_verify(
    secret: *const c_char,
    id: *const c_char,
    timestamp: *const c_char,
    signature: *const c_char,
    body: *const u8,
    body_len: usize,
    now_seconds: i64,
    tolerance_seconds: i64,
) -> codekeep_status {
    boundary(|| {
        let body = crate::bytes_arg(body, body_len, "body")?;
        let now = if now_seconds == 0 {
            codekeep::clock::Clock::now_millis(&codekeep::clock::SystemClock) / 1000
        } else {
            now_seconds
        };
        webhook::verify(
            str_arg(secret, "secret")?,
            str_arg(id, "id")?,
            str_arg(timestamp, "timestamp")?,
            str_arg(signature, "signature")?,
            body,
            now,
            tolerance_seconds,
        )?;
        Ok(())
    })
}
