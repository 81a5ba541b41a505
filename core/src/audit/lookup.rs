//! `cloudtrail:LookupEvents`.

use serde_json::{Value, json};

use super::{MAC_LEN, records_prefix};
use crate::api::{OpCtx, Operation, member, optional_i64, optional_str};
use crate::clock::{epoch_seconds, parse_timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Key;

/// The CloudTrail operations.
pub(crate) static CLOUDTRAIL_OPERATIONS: &[Operation] = &[Operation {
    service: "cloudtrail",
    iam_prefix: "cloudtrail",
    event_source: "cloudtrail.amazonaws.com",
    name: "LookupEvents",
    read_only: true,
    blob_members: &[],
    secret_members: &[],
    resources: &["*"],
    handler: lookup_events,
}];

/// The attribute keys LookupEvents accepts.
const LOOKUP_KEYS: &[&str] = &[
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

/// Records scanned per page at most, so one call stays bounded.
const SCAN_BUDGET: usize = 100_000;

fn invalid(code: &'static str, msg: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, code, msg)
}

struct Filter {
    attribute: String,
    value: String,
}

impl Filter {
    fn matches(&self, r: &Value) -> bool {
        let s = |p: &str| {
            r.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match self.attribute.as_str() {
            "EventId" => s("/eventID") == self.value,
            "EventName" => s("/eventName") == self.value,
            "ReadOnly" => {
                r.get("readOnly")
                    .and_then(Value::as_bool)
                    .map(|b| b.to_string())
                    == Some(self.value.clone())
            }
            "Username" => username(r) == self.value,
            "ResourceType" => resources(r).iter().any(|(t, _)| *t == self.value),
            "ResourceName" => resources(r).iter().any(|(_, n)| *n == self.value),
            "EventSource" => s("/eventSource") == self.value,
            "AccessKeyId" => s("/userIdentity/accessKeyId") == self.value,
            _ => false,
        }
    }
}

fn username(r: &Value) -> String {
    let id = r.get("userIdentity");
    match id.and_then(|i| i.get("type")).and_then(Value::as_str) {
        Some("Root") => "root".to_owned(),
        _ => id
            .and_then(|i| i.get("userName").or_else(|| i.get("principalId")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

fn resources(r: &Value) -> Vec<(String, String)> {
    r.get("resources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|x| {
                    let f = |k: &str| {
                        x.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    (f("type"), f("ARN"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_filter(input: &Value) -> Result<Option<Filter>> {
    Ok(match member(input, "LookupAttributes") {
        None => None,
        Some(Value::Array(list)) if list.is_empty() => None,
        Some(Value::Array(list)) if list.len() == 1 => {
            let a = list.first().cloned().unwrap_or_default();
            let attribute = a
                .get("AttributeKey")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let value = a
                .get("AttributeValue")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if !LOOKUP_KEYS.contains(&attribute.as_str()) {
                return Err(invalid(
                    "InvalidLookupAttributesException",
                    format!("`{attribute}` is not a lookup attribute key"),
                ));
            }
            if value.is_empty() || value.len() > 2000 {
                return Err(invalid(
                    "InvalidLookupAttributesException",
                    "AttributeValue must have 1 to 2000 characters",
                ));
            }
            Some(Filter { attribute, value })
        }
        Some(Value::Array(_)) => {
            return Err(invalid(
                "InvalidLookupAttributesException",
                "LookupAttributes may hold only one attribute",
            ));
        }
        Some(_) => {
            return Err(invalid(
                "InvalidLookupAttributesException",
                "LookupAttributes must be a list",
            ));
        }
    })
}

fn lookup_events(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    ctx.authorize(&["*".to_owned()])?;
    let filter = parse_filter(input)?;
    let start = member(input, "StartTime")
        .map(|v| {
            parse_timestamp(v)
                .ok_or_else(|| invalid("InvalidTimeRangeException", "StartTime is not a timestamp"))
        })
        .transpose()?;
    let end = member(input, "EndTime")
        .map(|v| {
            parse_timestamp(v)
                .ok_or_else(|| invalid("InvalidTimeRangeException", "EndTime is not a timestamp"))
        })
        .transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(invalid(
            "InvalidTimeRangeException",
            "StartTime must not be after EndTime",
        ));
    }
    let max = optional_i64(input, "MaxResults")?.unwrap_or(50);
    if !(1..=50).contains(&max) {
        return Err(invalid(
            "InvalidMaxResultsException",
            "MaxResults must be between 1 and 50",
        ));
    }
    let max = usize::try_from(max).unwrap_or(50);
    let before = match optional_str(input, "NextToken")? {
        Some(t) => Some(
            u64::from_str_radix(t, 16)
                .map(|seq| records_prefix().push_u64(seq))
                .map_err(|_| invalid("InvalidNextTokenException", "NextToken is not valid"))?,
        ),
        None => None,
    };
    let account = ctx.account().ok().map(ToString::to_string);
    let mut events = Vec::new();
    let mut cursor: Option<Key> = before;
    let mut scanned = 0usize;
    let mut next_token = None;
    'scan: loop {
        let rows = ctx
            .txn
            .scan_prefix_rev(&records_prefix(), cursor.as_ref(), 512)?;
        if rows.is_empty() {
            break;
        }
        for (k, v) in rows {
            if scanned >= SCAN_BUDGET {
                next_token = k.last_u64().map(|s| format!("{:x}", s + 1));
                break 'scan;
            }
            scanned += 1;
            cursor = Some(k.clone());
            let record: Value = match v.get(2 * MAC_LEN..).map(serde_json::from_slice) {
                Some(Ok(r)) => r,
                _ => continue,
            };
            // An account sees the events recorded for it, as CloudTrail shows a trail per account.
            if account.is_some()
                && record.get("recipientAccountId").and_then(Value::as_str) != account.as_deref()
            {
                continue;
            }
            let time = record
                .get("eventTime")
                .and_then(parse_timestamp)
                .unwrap_or(0);
            if end.is_some_and(|e| time > e) {
                continue;
            }
            // Not `break`: records are in commit order, and an event's time is taken before its
            // transaction commits (and host events carry their own time), so order by time is
            // only approximate. The scan budget bounds the walk.
            if start.is_some_and(|s| time < s) {
                continue;
            }
            if filter.as_ref().is_some_and(|f| !f.matches(&record)) {
                continue;
            }
            if events.len() == max {
                next_token = k.last_u64().map(|s| format!("{:x}", s + 1));
                break 'scan;
            }
            events.push(event_of(&record, time));
        }
    }
    let mut out = json!({"Events": events});
    if let (Some(t), Some(obj)) = (next_token, out.as_object_mut()) {
        obj.insert("NextToken".into(), json!(t));
    }
    Ok(out)
}

fn event_of(record: &Value, time: i64) -> Value {
    let s = |p: &str| record.pointer(p).cloned().unwrap_or(Value::Null);
    json!({
        "EventId": s("/eventID"),
        "EventName": s("/eventName"),
        "ReadOnly": record.get("readOnly").and_then(Value::as_bool).unwrap_or(false).to_string(),
        "AccessKeyId": s("/userIdentity/accessKeyId"),
        "EventTime": epoch_seconds(time),
        "EventSource": s("/eventSource"),
        "Username": username(record),
        "Resources": resources(record).into_iter().map(|(t, n)| json!({"ResourceType": t, "ResourceName": n})).collect::<Vec<_>>(),
        "CloudTrailEvent": record.to_string(),
    })
}
