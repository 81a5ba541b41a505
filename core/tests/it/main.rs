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
