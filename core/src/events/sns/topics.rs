//! CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes, SetTopicAttributes.

use serde_json::{Value, json};

use super::{Topic, invalid_parameter, not_found, paged, parse_topic_arn};
use crate::api::{OpCtx, optional_str, required_str};
use crate::error::Result;

/// SNS's topic name rule: 1 to 256 letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<()> {
    let ok = (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if name
        .rsplit_once('.')
        .is_some_and(|(_, suffix)| suffix == "fifo")
    {
        return Err(invalid_parameter(
            "Invalid parameter: FIFO topics are not supported by codekeep",
        ));
    }
    if ok {
        Ok(())
    } else {
        Err(invalid_parameter("Invalid parameter: Topic Name"))
    }
}

fn topic_arn(ctx: &OpCtx<'_, '_>, account: &str, name: &str) -> String {
    format!("arn:aws:sns:{}:{account}:{name}", ctx.req.region)
}

/// Loads the topic an ARN names, after authorizing the call on it.
pub(super) fn load(ctx: &mut OpCtx<'_, '_>, arn: &str) -> Result<Topic> {
    let (account, name) =
        parse_topic_arn(arn).ok_or_else(|| invalid_parameter("Invalid parameter: TopicArn"))?;
    ctx.authorize(&[arn.to_owned()])?;
    let found: Option<Topic> = ctx
        .txn
        .get_json(&super::topic_prefix(&account).push(&name))?;
    found
        .filter(|t| t.arn == arn)
        .ok_or_else(|| not_found("Topic does not exist"))
}

/// Topic attributes SetTopicAttributes and CreateTopic take.
const SETTABLE: &[&str] = &["DisplayName", "Policy", "DeliveryPolicy", "KmsMasterKeyId"];

fn check_attributes(attributes: Option<&Value>) -> Result<Option<String>> {
    let Some(attributes) = attributes else {
        return Ok(None);
    };
    let map = attributes
        .as_object()
        .ok_or_else(|| invalid_parameter("Invalid parameter: Attributes"))?;
    let mut display = None;
    for (name, value) in map {
        let text = value.as_str().ok_or_else(|| {
            invalid_parameter(format!(
                "Invalid parameter: Attributes Reason: {name} must be a string"
            ))
        })?;
        if name == "FifoTopic" && text == "true" {
            return Err(invalid_parameter(
                "Invalid parameter: FIFO topics are not supported by codekeep",
            ));
        }
        if !SETTABLE.contains(&name.as_str()) && name != "FifoTopic" {
            return Err(invalid_parameter(format!(
                "Invalid parameter: Attributes Reason: Unknown attribute {name}"
            )));
        }
        if name == "DisplayName" {
            if text.chars().count() > 100 {
                return Err(invalid_parameter("Invalid parameter: DisplayName"));
            }
            display = Some(text.to_owned());
        }
    }
    Ok(display)
}

pub(super) fn create_topic(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "Name")?;
    check_name(name)?;
    let display = check_attributes(input.get("Attributes"))?;
    let account = ctx.account()?.to_string();
    let arn = topic_arn(ctx, &account, name);
    ctx.authorize(std::slice::from_ref(&arn))?;
    let key = super::topic_prefix(&account).push(name);
    // CreateTopic is idempotent: the same name answers the same ARN, unless the attributes
    // asked for differ.
    if let Some(existing) = ctx.txn.get_json::<Topic>(&key)? {
        if display
            .as_ref()
            .is_some_and(|d| *d != existing.display_name)
        {
            return Err(invalid_parameter(
                "Invalid parameter: Attributes Reason: Topic already exists with different attributes",
            ));
        }
        return Ok(json!({"TopicArn": existing.arn}));
    }
    let topic = Topic {
        name: name.to_owned(),
        arn: arn.clone(),
        owner: account,
        display_name: display.unwrap_or_default(),
    };
    ctx.txn.put_json(&key, &topic)?;
    Ok(json!({"TopicArn": arn}))
}

pub(super) fn delete_topic(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "TopicArn")?;
    let (account, name) =
        parse_topic_arn(arn).ok_or_else(|| invalid_parameter("Invalid parameter: TopicArn"))?;
    ctx.authorize(&[arn.to_owned()])?;
    // Deleting a topic that does not exist succeeds, as in SNS; its subscriptions go with it.
    ctx.txn.delete(&super::topic_prefix(&account).push(&name))?;
    let prefix = super::subscription_prefix(&account, &name);
    for (key, _) in ctx.txn.scan_prefix(&prefix, None, usize::MAX)? {
        ctx.txn.delete(&key)?;
    }
    Ok(json!({}))
}

pub(super) fn list_topics(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let account = ctx.account()?.to_string();
    ctx.authorize(&[topic_arn(ctx, &account, "*")])?;
    let rows: Vec<Value> = ctx
        .txn
        .scan_prefix(&super::topic_prefix(&account), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice::<Topic>(&v).map(|t| json!({"TopicArn": t.arn})))
        .collect::<std::result::Result<_, _>>()?;
    paged(&rows, input, "Topics")
}

pub(super) fn get_topic_attributes(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let topic = load(ctx, required_str(input, "TopicArn")?)?;
    let subscriptions = super::subscriptions_of(ctx.txn, &topic.arn)?;
    let pending = subscriptions.iter().filter(|s| s.pending).count();
    Ok(json!({"Attributes": {
        "TopicArn": topic.arn,
        "Owner": topic.owner,
        "DisplayName": topic.display_name,
        "SubscriptionsConfirmed": (subscriptions.len() - pending).to_string(),
        "SubscriptionsPending": pending.to_string(),
        "SubscriptionsDeleted": "0",
    }}))
}

pub(super) fn set_topic_attributes(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut topic = load(ctx, required_str(input, "TopicArn")?)?;
    let name = required_str(input, "AttributeName")?;
    let value = optional_str(input, "AttributeValue")?.unwrap_or("");
    if let Some(display) = check_attributes(Some(&json!({ name: value })))? {
        topic.display_name = display;
    }
    let (account, topic_name) = parse_topic_arn(&topic.arn).unwrap_or_default();
    ctx.txn
        .put_json(&super::topic_prefix(&account).push(&topic_name), &topic)?;
    Ok(json!({}))
}
