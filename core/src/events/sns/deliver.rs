//! Delivering one notification (or a subscription confirmation) to one subscription, and the
//! in-process application queues `application` subscriptions fill.

use serde_json::{Value, json};

use super::{Subscription, parse_subscription_arn};
use crate::error::Result;
use crate::events::dispatch::{Delivery, Outcome};
use crate::keep::KeepInner;
use crate::store::Key;

fn queue_prefix(account: &str, queue: &str) -> Key {
    Key::new("sns-application").push(account).push(queue)
}

/// One attempt for a subscription's delivery. A delivery whose subscription is gone is
/// dropped (reported delivered): nobody is there to receive it.
pub(crate) fn attempt(inner: &KeepInner, delivery: &Delivery) -> Outcome {
    let arn = delivery
        .target
        .get("Arn")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some((account, topic, id)) = parse_subscription_arn(arn) else {
        return Outcome::Fail(format!("{arn} is not a subscription"));
    };
    let key = super::subscription_prefix(&account, &topic).push(&id);
    let subscription: Subscription = match inner.meta.read(|t| t.get_json(&key)) {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::Delivered,
        Err(e) => return Outcome::Retry(e.message().to_owned()),
    };
    let message = &delivery.event;
    match subscription.protocol.as_str() {
        "lambda" => {
            let mut sns = message.clone();
            if sns.get("Subject").is_none() {
                crate::api::set_member(&mut sns, "Subject", Value::Null);
            }
            if sns.get("MessageAttributes").is_none() {
                crate::api::set_member(&mut sns, "MessageAttributes", json!({}));
            }
            let payload = json!({"Records": [{
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription.arn,
                "Sns": sns,
            }]});
            match inner
                .functions
                .invoke(&subscription.endpoint, &payload.to_string())
            {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Retry(e),
            }
        }
        "application" => {
            let body = body_of(&subscription, message);
            let record = json!({
                "MessageId": message.get("MessageId"),
                "SubscriptionArn": subscription.arn,
                "Body": body,
            });
            // Ordered by publish time (standard topics promise no order beyond that).
            let handle = format!("{:020}-{}", delivery.event_millis, delivery.id);
            let written = inner.meta.txn(|t| {
                t.put_sealed_json(
                    &queue_prefix(&account, &subscription.endpoint).push(&handle),
                    &record,
                )
            });
            match written {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Retry(e.message().to_owned()),
            }
        }
        #[cfg(feature = "webhooks")]
        "http" | "https" => post(inner, delivery, &subscription),
        other => Outcome::Fail(format!("protocol {other} is not delivered by codekeep")),
    }
}

/// What a subscriber receives as the body: the message alone with RawMessageDelivery, else
/// the notification document.
fn body_of(subscription: &Subscription, message: &Value) -> String {
    let notification = message.get("Type").and_then(Value::as_str) == Some("Notification");
    if subscription.raw && notification {
        message
            .get("Message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    } else {
        message.to_string()
    }
}

#[cfg(feature = "webhooks")]
fn post(inner: &KeepInner, delivery: &Delivery, subscription: &Subscription) -> Outcome {
    use crate::events::webhook::http::Outcome as Http;
    let message = &delivery.event;
    let kind = message
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or("Notification");
    let body = body_of(subscription, message);
    let secret = match super::subscriptions::secret(inner, subscription) {
        Ok(s) => s,
        Err(e) => return Outcome::Retry(e.message().to_owned()),
    };
    let signed = match crate::events::webhook::signature_headers(
        &secret,
        &delivery.id,
        inner.clock.now_millis() / 1000,
        body.as_bytes(),
    ) {
        Ok(h) => h,
        Err(e) => return Outcome::Fail(e.message().to_owned()),
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut headers = vec![
        (
            "Content-Type".to_owned(),
            "text/plain; charset=UTF-8".to_owned(),
        ),
        ("x-amz-sns-message-type".to_owned(), kind.to_owned()),
        (
            "x-amz-sns-message-id".to_owned(),
            text(message.get("MessageId")),
        ),
        (
            "x-amz-sns-topic-arn".to_owned(),
            subscription.topic_arn.clone(),
        ),
    ];
    headers.extend(signed);
    if kind == "Notification" {
        headers.push((
            "x-amz-sns-subscription-arn".to_owned(),
            subscription.arn.clone(),
        ));
        if subscription.raw {
            headers.push(("x-amz-sns-rawdelivery".to_owned(), "true".to_owned()));
        }
    }
    match inner
        .webhooks()
        .send("POST", &subscription.endpoint, &headers, body.as_bytes())
    {
        Http::Delivered(_) => Outcome::Delivered,
        Http::Retry(why) => Outcome::Retry(why),
        Http::Fail(why) => Outcome::Fail(why),
    }
}

/// Up to `max` messages waiting in application queue `queue` of `account`, oldest first:
/// each `{"ReceiptHandle", "MessageId", "SubscriptionArn", "Body"}`.
pub(crate) fn application_messages(
    inner: &KeepInner,
    account: &str,
    queue: &str,
    max: usize,
) -> Result<Vec<Value>> {
    inner.meta.read(|t| {
        t.scan_prefix(&queue_prefix(account, queue), None, max)?
            .into_iter()
            .map(|(key, v)| {
                let mut record: Value = t.open_json(&key, &v)?;
                let handle = key.last().unwrap_or_default();
                crate::api::set_member(&mut record, "ReceiptHandle", json!(handle));
                Ok(record)
            })
            .collect()
    })
}

/// Deletes a received application message; true when it was there.
pub(crate) fn delete_application_message(
    inner: &KeepInner,
    account: &str,
    queue: &str,
    handle: &str,
) -> Result<bool> {
    let key = queue_prefix(account, queue).push(handle);
    inner.meta.txn(|t| {
        let existed = t.get(&key)?.is_some();
        t.delete(&key)?;
        Ok(existed)
    })
}
