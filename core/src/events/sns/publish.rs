//! Publish: checks the message as SNS does, then writes one delivery per confirmed
//! subscription whose filter policy passes, in the same transaction.

use serde_json::{Map, Value, json};

use super::subscriptions::RETRIES;
use super::{FilterPolicy, Scope, Topic, invalid_parameter, not_found, parse_topic_arn};
use crate::api::{OpCtx, optional_str};
use crate::error::Result;
use crate::events::dispatch::{Delivery, enqueue};
use crate::store::Txn;

/// SNS's message size limit (body and attributes), in bytes.
const MAX_MESSAGE_BYTES: usize = 262_144;
const MAX_ATTRIBUTES: usize = 10;

pub(super) fn publish(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let target = optional_str(input, "TopicArn")?.or(optional_str(input, "TargetArn")?);
    let Some(topic_arn) = target else {
        if optional_str(input, "PhoneNumber")?.is_some() {
            return Err(invalid_parameter(
                "Invalid parameter: PhoneNumber: codekeep publishes to topics only",
            ));
        }
        return Err(invalid_parameter(
            "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
        ));
    };
    let topic: Topic = super::topics::load(ctx, topic_arn)?;
    let message = optional_str(input, "Message")?.unwrap_or("");
    let subject = optional_str(input, "Subject")?;
    let structure = optional_str(input, "MessageStructure")?;
    let attributes = input.get("MessageAttributes").cloned().unwrap_or(json!({}));
    let now = ctx.now();
    let id = publish_in(
        ctx.txn,
        now,
        &topic.arn,
        message,
        subject,
        structure,
        &attributes,
    )?;
    Ok(json!({"MessageId": id}))
}

/// Checks a message and fans it out to the topic's subscriptions; answers the message id.
/// Also how a rule's topic target publishes.
pub(crate) fn publish_in(
    txn: &mut Txn<'_>,
    now: i64,
    topic_arn: &str,
    message: &str,
    subject: Option<&str>,
    structure: Option<&str>,
    attributes: &Value,
) -> Result<String> {
    let per_protocol = check_message(message, subject, structure, attributes)?;
    let shaped = check_attributes(attributes)?;
    let (account, name) = parse_topic_arn(topic_arn).unwrap_or_default();
    let topic: Option<Topic> = txn.get_json(&super::topic_prefix(&account).push(&name))?;
    if topic.is_none() {
        return Err(not_found("Topic does not exist"));
    }
    let id = crate::id::uuid_v4();
    let subscriptions = super::subscriptions_of(txn, topic_arn)?;
    for subscription in subscriptions.iter().filter(|s| !s.pending) {
        let text = per_protocol
            .as_ref()
            .and_then(|m| m.get(&subscription.protocol).or_else(|| m.get("default")))
            .and_then(Value::as_str)
            .unwrap_or(message);
        if let Some(policy) = &subscription.filter_policy {
            let scope = Scope::parse(
                subscription
                    .filter_scope
                    .as_deref()
                    .unwrap_or("MessageAttributes"),
            )?;
            // A stored policy was checked when set; one that no longer parses filters out.
            let passes =
                FilterPolicy::parse(policy, scope).is_ok_and(|p| p.matches(attributes, text));
            if !passes {
                continue;
            }
        }
        let mut notification = json!({
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": topic_arn,
            "Message": text,
            "Timestamp": crate::clock::iso8601(now),
        });
        if let Some(subject) = subject {
            crate::api::set_member(&mut notification, "Subject", json!(subject));
        }
        if !shaped.is_empty() {
            crate::api::set_member(
                &mut notification,
                "MessageAttributes",
                Value::Object(shaped.clone()),
            );
        }
        let sub_id = subscription.arn.rsplit(':').next().unwrap_or_default();
        let mut target = json!({"Id": sub_id, "Arn": subscription.arn, "RetryPolicy": {"MaximumRetryAttempts": RETRIES}});
        if let Some(queue) = subscription
            .redrive_policy
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p.get("deadLetterTargetArn").cloned())
        {
            crate::api::set_member(&mut target, "DeadLetterConfig", json!({"Arn": queue}));
        }
        enqueue(
            txn,
            &Delivery {
                id: format!("sns-{id}-{sub_id}"),
                event: notification,
                rule_arn: topic_arn.to_owned(),
                rule_name: String::new(),
                target,
                attempts: 0,
                event_millis: now,
                due_millis: 0,
                last_error: None,
            },
        )?;
    }
    Ok(id)
}

/// Checks a message as Publish does; answers the per-protocol messages of a `json`
/// MessageStructure.
fn check_message(
    message: &str,
    subject: Option<&str>,
    structure: Option<&str>,
    attributes: &Value,
) -> Result<Option<Map<String, Value>>> {
    if message.is_empty() {
        return Err(invalid_parameter("Invalid parameter: Empty message"));
    }
    if let Some(subject) = subject {
        // "UTF-8 text with no line breaks or control characters, and less than 100
        // characters long" (the Publish API reference).
        let ok = !subject.trim().is_empty()
            && subject.chars().count() < 100
            && !subject.chars().any(char::is_control);
        if !ok {
            return Err(invalid_parameter("Invalid parameter: Subject"));
        }
    }
    check_attributes(attributes)?;
    let size = message.len() + serde_json::to_string(attributes).map_or(0, |s| s.len());
    if size > MAX_MESSAGE_BYTES {
        return Err(invalid_parameter("Invalid parameter: Message too long"));
    }
    match structure {
        None => Ok(None),
        Some("json") => {
            let parsed: Map<String, Value> = serde_json::from_str(message).map_err(|_| {
                invalid_parameter(
                    "Invalid parameter: Message Structure - JSON message body failed to parse",
                )
            })?;
            if !parsed.get("default").is_some_and(Value::is_string) {
                return Err(invalid_parameter(
                    "Invalid parameter: Message Structure - No default entry in JSON message body",
                ));
            }
            Ok(Some(parsed))
        }
        Some(other) => Err(invalid_parameter(format!(
            "Invalid parameter: MessageStructure: {other} (must be json)"
        ))),
    }
}

/// Checks Publish's MessageAttributes; answers them as notifications show them
/// (`{"Type", "Value"}`).
fn check_attributes(attributes: &Value) -> Result<Map<String, Value>> {
    let map = attributes
        .as_object()
        .ok_or_else(|| invalid_parameter("Invalid parameter: MessageAttributes"))?;
    if map.len() > MAX_ATTRIBUTES {
        return Err(invalid_parameter(format!(
            "Invalid parameter: Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            map.len()
        )));
    }
    let mut shaped = Map::new();
    for (name, attribute) in map {
        let name_ok = (1..=256).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && !name.to_ascii_lowercase().starts_with("aws.")
            && !name.to_ascii_lowercase().starts_with("amazon.");
        if !name_ok {
            return Err(invalid_parameter(format!(
                "Invalid parameter: MessageAttributes Reason: Invalid attribute name: {name}"
            )));
        }
        let data_type = attribute
            .get("DataType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let base = data_type.split('.').next().unwrap_or_default();
        let value = match base {
            "String" | "Number" => attribute.get("StringValue").and_then(Value::as_str),
            "Binary" => attribute.get("BinaryValue").and_then(Value::as_str),
            _ => {
                return Err(invalid_parameter(format!(
                    "Invalid parameter: MessageAttributes Reason: The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
                )));
            }
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(invalid_parameter(format!(
                "Invalid parameter: MessageAttributes Reason: The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{base}'."
            )));
        };
        if base == "Number" && value.trim().parse::<f64>().map_or(true, |n| !n.is_finite()) {
            return Err(invalid_parameter(format!(
                "Invalid parameter: MessageAttributes Reason: Could not cast message attribute '{name}' value to number."
            )));
        }
        if data_type == "String.Array" && serde_json::from_str::<Vec<Value>>(value).is_err() {
            return Err(invalid_parameter(format!(
                "Invalid parameter: MessageAttributes Reason: The message attribute '{name}' with type 'String.Array' must be a JSON array."
            )));
        }
        shaped.insert(name.clone(), json!({"Type": data_type, "Value": value}));
    }
    Ok(shaped)
}
