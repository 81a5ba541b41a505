//! Events: EventBridge's pattern language ([`pattern`]), the `events` service on the default
//! bus (rules, targets, PutEvents, TestEventPattern), in-process functions (the keep's
//! Lambda) and the dispatcher that drains the outbox and delivers to them at least once.

#[cfg(feature = "webhooks")]
pub(crate) mod destinations;
pub(crate) mod dispatch;
pub(crate) mod functions;
pub mod pattern;
mod put_events;
mod rules;
pub mod sns;
pub(crate) mod sqs;
mod targets;
mod transform;
#[cfg(feature = "webhooks")]
pub mod webhook;

use serde_json::Value;

use crate::api::{Operation, optional_str};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Key, Txn};

macro_rules! events_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        events_op!($name, $handler, read_only = $ro, secrets = &[])
    };
    ($name:literal, $handler:expr, read_only = $ro:expr, secrets = $secrets:expr) => {
        Operation {
            service: "events",
            iam_prefix: "events",
            event_source: "events.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: $secrets,
            resources: &[
                "arn:aws:events:*:*:rule/*",
                "arn:aws:events:*:*:api-destination/*",
                "arn:aws:events:*:*:event-bus/*",
                "*",
            ],
            handler: $handler,
        }
    };
}

pub(crate) static EVENTS_OPERATIONS: &[Operation] = &[
    events_op!("PutRule", rules::put_rule, read_only = false),
    events_op!("DescribeRule", rules::describe_rule, read_only = true),
    events_op!("ListRules", rules::list_rules, read_only = true),
    events_op!("DeleteRule", rules::delete_rule, read_only = false),
    events_op!("EnableRule", rules::enable_rule, read_only = false),
    events_op!("DisableRule", rules::disable_rule, read_only = false),
    events_op!("PutTargets", targets::put_targets, read_only = false),
    events_op!("RemoveTargets", targets::remove_targets, read_only = false),
    events_op!(
        "ListTargetsByRule",
        targets::list_targets_by_rule,
        read_only = true
    ),
    events_op!(
        "TestEventPattern",
        rules::test_event_pattern,
        read_only = true
    ),
    // An event's detail is customer content: kept out of the audit log (sealed in the outbox).
    events_op!(
        "PutEvents",
        put_events::put_events,
        read_only = false,
        secrets = &["Detail"]
    ),
    #[cfg(feature = "webhooks")]
    events_op!(
        "CreateApiDestination",
        destinations::create,
        read_only = false,
        secrets = &["SigningSecret"]
    ),
    #[cfg(feature = "webhooks")]
    events_op!(
        "DescribeApiDestination",
        destinations::describe,
        read_only = true
    ),
    #[cfg(feature = "webhooks")]
    events_op!("ListApiDestinations", destinations::list, read_only = true),
    #[cfg(feature = "webhooks")]
    events_op!(
        "UpdateApiDestination",
        destinations::update,
        read_only = false
    ),
    #[cfg(feature = "webhooks")]
    events_op!(
        "DeleteApiDestination",
        destinations::delete,
        read_only = false
    ),
];

/// The bus a call names: only `default` exists (or its ARN).
fn bus_name(input: &Value) -> Result<()> {
    match optional_str(input, "EventBusName")? {
        None | Some("default") => Ok(()),
        Some(arn) if arn.starts_with("arn:") && arn.ends_with(":event-bus/default") => Ok(()),
        Some(other) => Err(not_found(format!("Event bus {other} does not exist."))),
    }
}

fn validation(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "ValidationException", message).with_status(400)
}

fn not_found(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::NotFound, "ResourceNotFoundException", message).with_status(400)
}

fn limit_exceeded(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::LimitExceeded, "LimitExceededException", message).with_status(400)
}

/// A per-account counter bumped with every rule or target change, in the same transaction:
/// a compiled matcher is current while its generation is.
fn generation_key(account: &str) -> Key {
    Key::new("events").push(account).push("generation")
}

fn bump_generation(txn: &mut Txn<'_>, account: &str) -> Result<()> {
    let n = generation(txn, account)? + 1;
    txn.put_json(&generation_key(account), &n)
}

/// The account's rule generation.
fn generation(txn: &mut Txn<'_>, account: &str) -> Result<u64> {
    Ok(txn.get_json::<u64>(&generation_key(account))?.unwrap_or(0))
}
