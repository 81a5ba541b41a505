//! The keep's Lambda: functions registered in-process (a Rust closure; C and Python register
//! through the bindings) and addressed as `arn:aws:lambda:REGION:ACCOUNT:function:NAME`. A
//! function gets the event (or the target's shaped input) as JSON text; an error or a panic
//! is a failed delivery, retried like any other, and never reaches the keep.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};

/// A registered function: takes the payload, answers `Err(reason)` to fail the delivery.
pub type Function = Arc<dyn Fn(&str) -> std::result::Result<(), String> + Send + Sync>;

/// Registered functions by ARN.
#[derive(Default)]
pub(crate) struct Functions {
    by_arn: RwLock<HashMap<String, Function>>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.by_arn.read().map_or(0, |m| m.len());
        f.debug_struct("Functions").field("count", &count).finish()
    }
}

/// Lambda's function name rule: 1 to 64 letters, digits, `-` and `_`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "function name {name:?} must be 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}

impl Functions {
    pub(crate) fn register(&self, arn: String, function: Function) -> Result<()> {
        self.by_arn
            .write()
            .map_err(|_| Error::internal("the function table lock was poisoned"))?
            .insert(arn, function);
        Ok(())
    }

    /// Whether a function is registered at `arn`.
    #[cfg_attr(
        not(feature = "git"),
        expect(dead_code, reason = "only repository triggers (git) ask")
    )]
    pub(crate) fn contains(&self, arn: &str) -> bool {
        self.by_arn.read().is_ok_and(|m| m.contains_key(arn))
    }

    pub(crate) fn remove(&self, arn: &str) -> Result<bool> {
        Ok(self
            .by_arn
            .write()
            .map_err(|_| Error::internal("the function table lock was poisoned"))?
            .remove(arn)
            .is_some())
    }

    /// Calls the function at `arn` with `payload`; a missing function, an error and a panic
    /// are all failures, with a reason.
    pub(crate) fn invoke(&self, arn: &str, payload: &str) -> std::result::Result<(), String> {
        let function = self
            .by_arn
            .read()
            .map_err(|_| "the function table lock was poisoned".to_owned())?
            .get(arn)
            .cloned()
            .ok_or_else(|| format!("no function is registered as {arn}"))?;
        match catch_unwind(AssertUnwindSafe(|| function(payload))) {
            Ok(outcome) => outcome,
            Err(panic) => Err(format!(
                "the function panicked: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned())
            )),
        }
    }
}
