//! Integration tests: one binary, one module per area.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    clippy::format_collect,
    clippy::panic,
    reason = "test helpers panic on purpose; the lints guard library code"
)]

mod audit;
mod codecommit;
#[cfg(feature = "server")]
mod codecommit_content;
mod crash;
mod credentials;
mod delivery;
mod dispatch;
mod envelope;
mod event_patterns;
mod events;
#[cfg(feature = "server")]
mod git_http;
#[cfg(feature = "server")]
mod git_protocol;
#[cfg(feature = "server")]
mod git_ssh;
#[cfg(feature = "server")]
mod git_support;
mod iam;
mod iam_vectors;
mod kms;
mod policy_props;
mod producers;
mod simulate;
#[cfg(feature = "webhooks")]
mod sns;
mod sns_filters;
mod store;
mod sts;
#[cfg(feature = "webhooks")]
mod webhooks;

use codekeep::{Caller, Client, Keep};
use serde_json::Value;

/// A keep in memory with one account; returns the keep, the account id and a client.
pub fn keep_with_account(service: &str) -> (Keep, String, Client) {
    let keep = Keep::memory().unwrap();
    let (account, client) = account_client(&keep, service);
    (keep, account, client)
}

/// A fresh account in `keep` and a client of `service` acting as its root.
pub fn account_client(keep: &Keep, service: &str) -> (String, Client) {
    let account = keep.create_account("test").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = keep
        .client(service, Caller::account_root(account.parse().unwrap()))
        .unwrap();
    (account, client)
}

/// A keep whose failed deliveries are retried quickly (10 ms base), an account, and a client of
/// `service` acting as the account's root.
pub fn quick_retry_keep(service: &str) -> (Keep, String, Client) {
    let keep = Keep::builder()
        .delivery_retry_base(std::time::Duration::from_millis(10))
        .build()
        .unwrap();
    let (account, client) = account_client(&keep, service);
    (keep, account, client)
}

/// Waits (up to 30 s) until `done` holds; fails the test naming `what` otherwise.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Registers function `name` of `account`, which notes every payload it gets (parsed).
pub fn recorder(
    keep: &Keep,
    account: &str,
    name: &str,
) -> std::sync::Arc<std::sync::Mutex<Vec<Value>>> {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let log = std::sync::Arc::clone(&seen);
    keep.register_function(account, name, move |payload: &str| {
        log.lock()
            .unwrap()
            .push(serde_json::from_str(payload).unwrap());
        Ok(())
    })
    .unwrap();
    seen
}

/// Puts rule `name` with `pattern` on the default bus and gives it `targets`.
pub fn rule(events: &Client, name: &str, pattern: &Value, targets: &Value) {
    events
        .call(
            "PutRule",
            serde_json::json!({"Name": name, "EventPattern": pattern.to_string()}),
        )
        .unwrap();
    events
        .call(
            "PutTargets",
            serde_json::json!({"Rule": name, "Targets": targets}),
        )
        .unwrap();
}

/// A keep whose clock only moves when the test says so.
pub fn keep_with_clock() -> (codekeep::clock::ManualClock, Keep) {
    let clock = codekeep::clock::ManualClock::new(1_700_000_000_000);
    let keep = Keep::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .build()
        .unwrap();
    (clock, keep)
}

/// Creates a KMS key and returns its id.
pub fn create_key(kms: &Client) -> String {
    kms.call("CreateKey", serde_json::json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The AWS error code of a failed call.
pub fn code(result: codekeep::Result<Value>) -> String {
    result.unwrap_err().code().to_owned()
}
