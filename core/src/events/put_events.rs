//! PutEvents: custom events onto the default bus, each appended to the outbox in the call's
//! transaction (so a rule matching it is delivered at least once), with EventBridge's
//! per-entry results and error codes.

use serde_json::{Value, json};

use super::{bus_name, validation};
use crate::api::OpCtx;
use crate::error::Result;

/// EventBridge's limits: entries per call, and bytes per entry.
const MAX_ENTRIES: usize = 10;
const MAX_ENTRY_BYTES: usize = 256 * 1024;

pub(crate) fn put_events(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let entries = input
        .get("Entries")
        .and_then(Value::as_array)
        .filter(|e| (1..=MAX_ENTRIES).contains(&e.len()))
        .ok_or_else(|| validation(format!("Entries must hold 1 to {MAX_ENTRIES} entries")))?;
    let account = ctx.account()?.to_string();
    let bus = format!(
        "arn:aws:events:{}:{account}:event-bus/default",
        ctx.req.region
    );
    ctx.authorize(&[bus])?;
    let mut results = Vec::with_capacity(entries.len());
    let mut failed = 0;
    for entry in entries {
        match check_entry(entry) {
            Ok((source, detail_type, detail, resources, time_millis)) => {
                let time = time_millis.unwrap_or(ctx.req.time_millis);
                let (_, id) =
                    ctx.txn
                        .append_event(time, source, detail_type, &account, resources, detail)?;
                results.push(json!({"EventId": id}));
            }
            Err((code, message)) => {
                failed += 1;
                results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
            }
        }
    }
    Ok(json!({"FailedEntryCount": failed, "Entries": results}))
}

type Checked<'e> = (&'e str, &'e str, Value, Vec<String>, Option<i64>);

/// One entry's source, detail-type, detail, resources and time, or EventBridge's error code
/// and message for it.
fn check_entry(entry: &Value) -> std::result::Result<Checked<'_>, (&'static str, String)> {
    let required = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                (
                    "InvalidArgument",
                    format!(
                        "Parameter {name} is not valid. Reason: {name} is a required argument."
                    ),
                )
            })
    };
    if entry.to_string().len() > MAX_ENTRY_BYTES {
        return Err(("InvalidArgument", "The entry exceeds 256 KB.".to_owned()));
    }
    if bus_name(entry).is_err() {
        return Err((
            "InvalidArgument",
            "Parameter EventBusName is not valid: only the default bus exists.".to_owned(),
        ));
    }
    let source = required("Source")?;
    let detail_type = required("DetailType")?;
    if source.starts_with("aws.") {
        return Err((
            "NotAuthorizedForSourceException",
            "Not authorized for the source.".to_owned(),
        ));
    }
    let detail: Value = serde_json::from_str(required("Detail")?)
        .ok()
        .filter(Value::is_object)
        .ok_or(("MalformedDetail", "Detail is malformed.".to_owned()))?;
    let resources = match entry.get("Resources") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| r.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(("InvalidArgument", "Resources must be strings.".to_owned()))?,
        Some(_) => return Err(("InvalidArgument", "Resources must be a list.".to_owned())),
    };
    let time = match entry.get("Time") {
        None => None,
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|seconds| seconds.checked_mul(1000))
            .map(Some)
            .ok_or((
                "InvalidArgument",
                "Time must be whole seconds since the epoch.".to_owned(),
            ))?,
        Some(_) => {
            return Err((
                "InvalidArgument",
                "Time must be seconds since the epoch.".to_owned(),
            ));
        }
    };
    Ok((source, detail_type, detail, resources, time))
}
