//! Per-account CodeCommit limits, set by the host: repositories per account (CodeCommit's
//! default quota is 1,000), ref updates in one push (CodeCommit: 4,000), refs per repository
//! and bytes per push (CodeCommit has neither; unlimited unless set). `null` is unlimited.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{Key, Txn};

/// The limits of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[expect(
    clippy::struct_field_names,
    reason = "the names are the JSON members (MaxRepositories, ...)"
)]
pub(crate) struct Limits {
    pub max_repositories: Option<u64>,
    pub max_ref_updates_per_push: Option<u64>,
    pub max_refs_per_repository: Option<u64>,
    pub max_push_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_repositories: Some(1_000),
            max_ref_updates_per_push: Some(4_000),
            max_refs_per_repository: None,
            max_push_bytes: None,
        }
    }
}

fn limits_key(account: &str) -> Key {
    Key::new("codecommit").push(account).push("limits")
}

/// The account's limits (CodeCommit's defaults until the host sets others).
pub(crate) fn load(txn: &mut Txn<'_>, account: &str) -> Result<Limits> {
    Ok(txn.get_json(&limits_key(account))?.unwrap_or_default())
}

/// The error a limit gives, with CodeCommit's code where CodeCommit has one.
pub(crate) fn exceeded(code: &'static str, message: String) -> Error {
    Error::aws(ErrorKind::LimitExceeded, code, message)
}

impl crate::Keep {
    /// Sets the CodeCommit limits of `account` from `{"MaxRepositories": n, "MaxRefUpdatesPerPush":
    /// n, "MaxRefsPerRepository": n, "MaxPushBytes": n}`; a member left out keeps its value, `null`
    /// means unlimited. Returns the limits now in force.
    ///
    /// # Errors
    /// `InvalidArgument` for an unknown member or a value that is not a whole number or null;
    /// `NotFound` for an unknown account.
    pub fn set_codecommit_limits(&self, account: &str, limits: &Value) -> Result<Value> {
        let invalid = |why: String| Error::new(ErrorKind::InvalidArgument, why);
        let changes = limits
            .as_object()
            .ok_or_else(|| invalid("the limits must be a JSON object".to_owned()))?;
        self.describe_account(&account.parse()?)?;
        self.inner().meta.txn(|t| {
            let current = serde_json::to_value(load(t, account)?)?;
            let mut merged = current.as_object().cloned().unwrap_or_default();
            for (name, value) in changes {
                if !merged.contains_key(name) {
                    return Err(invalid(format!("unknown limit {name:?}")));
                }
                if !(value.is_null() || value.is_u64()) {
                    return Err(invalid(format!(
                        "{name} must be a whole number or null (unlimited)"
                    )));
                }
                merged.insert(name.clone(), value.clone());
            }
            let updated: Limits = serde_json::from_value(Value::Object(merged))?;
            t.put_json(&limits_key(account), &updated)?;
            Ok(serde_json::to_value(updated)?)
        })
    }

    /// The CodeCommit limits of `account` (see [`crate::Keep::set_codecommit_limits`]).
    ///
    /// # Errors
    /// `Storage`.
    pub fn codecommit_limits(&self, account: &str) -> Result<Value> {
        let limits = self.inner().meta.read(|t| load(t, account))?;
        Ok(serde_json::to_value(limits)?)
    }
}
