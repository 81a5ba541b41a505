//! Integration tests: one binary, one module per area.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    clippy::format_collect,
    reason = "test helpers panic on purpose; the lints guard library code"
)]

mod audit;
mod dispatch;
mod envelope;
mod kms;
mod store;

use codekeep::{Caller, Client, Keep};
use serde_json::Value;

/// A keep in memory with one account; returns the keep, the account id and a client.
pub fn keep_with_account(service: &str) -> (Keep, String, Client) {
    let keep = Keep::memory().unwrap();
    let account = keep.create_account("test").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = keep
        .client(service, Caller::account_root(account.parse().unwrap()))
        .unwrap();
    (keep, account, client)
}

/// The AWS error code of a failed call.
pub fn code(result: codekeep::Result<Value>) -> String {
    result.unwrap_err().code().to_owned()
}
