//! Dead-letter queues through SQS's API (`sqs`): GetQueueUrl, ReceiveMessage, DeleteMessage and
//! StartMessageMoveTask. A queue exists once a target or subscription names it as its
//! dead-letter queue; its messages are the deliveries that ran out of retries. Re-driving
//! (StartMessageMoveTask with the queue as SourceArn) puts each message back as a fresh
//! delivery to the target it failed for, in one transaction.
//!
//! Differences from SQS, on purpose: no CreateQueue (a dead-letter queue needs none), and
//! ReceiveMessage has no visibility timeout: a message stays visible until DeleteMessage or a
//! move takes it.

use md5::Digest as _;
use serde_json::{Value, json};

use super::dispatch::{Delivery, dead_letter_prefix, enqueue};
use crate::api::{OpCtx, Operation, optional_i64, optional_str, required_str};
use crate::error::{Error, ErrorKind, Result};

macro_rules! sqs_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        Operation {
            service: "sqs",
            iam_prefix: "sqs",
            event_source: "sqs.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: &[],
            resources: &["arn:aws:sqs:*:*:*", "*"],
            handler: $handler,
        }
    };
}

pub(crate) static SQS_OPERATIONS: &[Operation] = &[
    sqs_op!("GetQueueUrl", get_queue_url, read_only = true),
    sqs_op!("ReceiveMessage", receive_message, read_only = true),
    sqs_op!("DeleteMessage", delete_message, read_only = false),
    sqs_op!(
        "StartMessageMoveTask",
        start_message_move_task,
        read_only = false
    ),
];

fn no_queue() -> Error {
    Error::aws(
        ErrorKind::NotFound,
        "QueueDoesNotExist",
        "The specified queue does not exist.",
    )
    .with_status(400)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "InvalidParameterValue", message).with_status(400)
}

/// The caller's queue named by a queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`)
/// or ARN, as its ARN, after authorizing the call on it.
fn queue_arn(ctx: &mut OpCtx<'_, '_>, reference: &str) -> Result<String> {
    let region = ctx.req.region.as_str().to_owned();
    let account = ctx.account()?.to_string();
    let arn = if reference.starts_with("arn:") {
        reference.to_owned()
    } else {
        let path = reference
            .strip_prefix(&format!("https://sqs.{region}.amazonaws.com/"))
            .ok_or_else(no_queue)?;
        let (owner, name) = path.split_once('/').ok_or_else(no_queue)?;
        format!("arn:aws:sqs:{region}:{owner}:{name}")
    };
    let parsed = arn.parse::<crate::arn::Arn>().map_err(|_| no_queue())?;
    if parsed.service() != "sqs" || parsed.account() != account || parsed.region() != region {
        return Err(no_queue());
    }
    ctx.authorize(std::slice::from_ref(&arn))?;
    Ok(arn)
}

fn url_of(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        [_, _, _, region, account, name] => {
            format!("https://sqs.{region}.amazonaws.com/{account}/{name}")
        }
        _ => String::new(),
    }
}

fn get_queue_url(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "QueueName")?;
    let owner = match optional_str(input, "QueueOwnerAWSAccountId")? {
        Some(owner) => owner.to_owned(),
        None => ctx.account()?.to_string(),
    };
    let arn = format!("arn:aws:sqs:{}:{owner}:{name}", ctx.req.region.as_str());
    let arn = queue_arn(ctx, &arn)?;
    Ok(json!({"QueueUrl": url_of(&arn)}))
}

/// A dead letter as an SQS message: the event (or notification) as the body, and what
/// EventBridge attaches to its dead-letter messages as attributes.
fn message(id: &str, delivery: &Delivery) -> Value {
    let target = delivery
        .target
        .get("Arn")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let string = |v: &str| json!({"DataType": "String", "StringValue": v});
    let mut attributes = json!({
        "TARGET_ARN": string(target),
        "ERROR_MESSAGE": string(delivery.last_error.as_deref().unwrap_or_default()),
        "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": delivery.attempts.saturating_sub(1).to_string()},
    });
    if !delivery.rule_arn.is_empty() {
        crate::api::set_member(&mut attributes, "RULE_ARN", string(&delivery.rule_arn));
    }
    let body = delivery.event.to_string();
    json!({
        "MessageId": delivery.id,
        "ReceiptHandle": id,
        "Body": body,
        "MD5OfBody": crate::id::hex(&md5::Md5::digest(body.as_bytes())),
        "MessageAttributes": attributes,
    })
}

fn receive_message(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = queue_arn(ctx, required_str(input, "QueueUrl")?)?;
    let max = match optional_i64(input, "MaxNumberOfMessages")? {
        None => 1,
        Some(n) if (1..=10).contains(&n) => usize::try_from(n).unwrap_or(1),
        Some(n) => {
            return Err(invalid(format!(
                "Value {n} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
            )));
        }
    };
    let messages = ctx
        .txn
        .scan_prefix(&dead_letter_prefix(&arn), None, max)?
        .into_iter()
        .map(|(key, v)| {
            let delivery: Delivery = ctx.txn.open_json(&key, &v)?;
            Ok(message(&key.last().unwrap_or_default(), &delivery))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({"Messages": messages}))
}

fn delete_message(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = queue_arn(ctx, required_str(input, "QueueUrl")?)?;
    let handle = required_str(input, "ReceiptHandle")?;
    let key = dead_letter_prefix(&arn).push(handle);
    if ctx.txn.get(&key)?.is_none() {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
        .with_status(400));
    }
    ctx.txn.delete(&key)?;
    Ok(json!({}))
}

/// Re-drives a dead-letter queue: every message goes back to the target it failed for, as a
/// new delivery with its retries restored. (SQS moves to the source queue; here the source is
/// the target itself.) Without a DestinationArn only; the move completes within the call.
fn start_message_move_task(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = queue_arn(ctx, required_str(input, "SourceArn")?)?;
    if optional_str(input, "DestinationArn")?.is_some() {
        return Err(Error::aws(
            ErrorKind::Unsupported,
            "UnsupportedOperation",
            "codekeep re-drives dead letters to the targets they failed for; DestinationArn is not supported",
        )
        .with_status(400));
    }
    let now = ctx.now();
    let letters = ctx
        .txn
        .scan_prefix(&dead_letter_prefix(&arn), None, usize::MAX)?;
    for (key, value) in &letters {
        let mut delivery: Delivery = ctx.txn.open_json(key, value)?;
        delivery.attempts = 0;
        delivery.due_millis = 0;
        // The event's age restarts: a re-drive is a decision to deliver it now.
        delivery.event_millis = now;
        delivery.last_error = None;
        enqueue(ctx.txn, &delivery)?;
        ctx.txn.delete(key)?;
    }
    Ok(
        json!({"TaskHandle": crate::id::uuid_v4(), "ApproximateNumberOfMessagesMoved": letters.len()}),
    )
}
