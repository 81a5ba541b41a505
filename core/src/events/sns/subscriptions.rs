//! Subscribe, ConfirmSubscription, Unsubscribe, ListSubscriptions(ByTopic),
//! Get/SetSubscriptionAttributes.
//!
//! Protocols: `lambda` (an in-process function, by its ARN), `http`/`https` (a webhook, signed
//! with the subscription's own secret, which Subscribe returns as `SigningSecret`; pending until
//! the endpoint calls ConfirmSubscription with the token it was sent), and `application` (an
//! in-process queue the host application reads, named by the endpoint).

use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use super::{
    FilterPolicy, Scope, Subscription, Topic, invalid_parameter, not_found, paged,
    parse_subscription_arn,
};
use crate::api::{OpCtx, optional_bool, optional_str, required_str};
use crate::error::Result;
use crate::events::dispatch::{Delivery, enqueue};

/// Attempts made to deliver to a subscription after the first (SNS's default for http).
pub(super) const RETRIES: u64 = 3;
#[cfg_attr(
    not(feature = "webhooks"),
    expect(dead_code, reason = "only webhook subscriptions have secrets")
)]
const WRAP_LABEL: &str = "codekeep sns subscription signing secret v1:";
const SETTABLE: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
];

fn sha256_hex(text: &str) -> String {
    crate::id::hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn check_endpoint(ctx: &OpCtx<'_, '_>, protocol: &str, endpoint: &str) -> Result<()> {
    // Only webhook endpoints are checked against the keep's configuration.
    #[cfg(not(feature = "webhooks"))]
    let _ = ctx;
    let bad = || {
        invalid_parameter(format!(
            "Invalid parameter: Endpoint {endpoint} is not valid for protocol {protocol}"
        ))
    };
    match protocol {
        "lambda" => {
            let arn = endpoint.parse::<crate::arn::Arn>().map_err(|_| bad())?;
            if arn.service() == "lambda" && arn.resource().starts_with("function:") {
                Ok(())
            } else {
                Err(bad())
            }
        }
        #[cfg(feature = "webhooks")]
        "http" | "https" => {
            if !endpoint.starts_with(&format!("{protocol}://")) {
                return Err(bad());
            }
            ctx.keep
                .webhooks()
                .check_endpoint(endpoint)
                .map(drop)
                .map_err(|e| {
                    invalid_parameter(format!("Invalid parameter: Endpoint: {}", e.message()))
                })
        }
        "application" => {
            let ok = (1..=80).contains(&endpoint.len())
                && endpoint
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
            if ok { Ok(()) } else { Err(bad()) }
        }
        other => Err(invalid_parameter(format!(
            "Invalid parameter: Protocol {other} is not supported by codekeep (lambda, http, https, application)"
        ))),
    }
}

/// Applies one subscription attribute, checked as SNS checks it.
fn apply(subscription: &mut Subscription, name: &str, value: &str) -> Result<()> {
    let reason =
        |why: &str| invalid_parameter(format!("Invalid parameter: Attributes Reason: {why}"));
    match name {
        "FilterPolicy" => {
            if value.trim().is_empty() || value.trim() == "{}" {
                subscription.filter_policy = None;
            } else {
                let scope = Scope::parse(
                    subscription
                        .filter_scope
                        .as_deref()
                        .unwrap_or("MessageAttributes"),
                )?;
                FilterPolicy::parse(value, scope)?;
                subscription.filter_policy = Some(value.to_owned());
            }
        }
        "FilterPolicyScope" => {
            let scope = Scope::parse(value)?;
            if let Some(policy) = &subscription.filter_policy {
                FilterPolicy::parse(policy, scope)?;
            }
            subscription.filter_scope = Some(scope.as_str().to_owned());
        }
        "RawMessageDelivery" => {
            let raw = match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(reason(&format!(
                        "RawMessageDelivery: Invalid value [{value}]. Must be true or false."
                    )));
                }
            };
            if raw && subscription.protocol == "lambda" {
                return Err(reason(
                    "Delivery protocol [lambda] does not support raw message delivery.",
                ));
            }
            subscription.raw = raw;
        }
        "RedrivePolicy" => {
            if value.trim().is_empty() {
                subscription.redrive_policy = None;
                return Ok(());
            }
            let parsed: Value = serde_json::from_str(value)
                .map_err(|_| reason("RedrivePolicy: failed to parse JSON."))?;
            let queue = parsed
                .get("deadLetterTargetArn")
                .and_then(Value::as_str)
                .ok_or_else(|| reason("RedrivePolicy: deadLetterTargetArn is missing"))?;
            if queue
                .parse::<crate::arn::Arn>()
                .map_or(true, |a| a.service() != "sqs")
            {
                return Err(reason(
                    "RedrivePolicy: deadLetterTargetArn is an invalid arn",
                ));
            }
            subscription.redrive_policy = Some(value.to_owned());
        }
        "DeliveryPolicy" => {
            serde_json::from_str::<Value>(value)
                .map_err(|_| reason("DeliveryPolicy: failed to parse JSON."))?;
        }
        other => {
            return Err(invalid_parameter(format!(
                "Invalid parameter: AttributeName {other}: must be one of {}",
                SETTABLE.join(", ")
            )));
        }
    }
    Ok(())
}

fn key_of(arn: &str) -> Result<(crate::store::Key, String)> {
    let (account, topic, id) = parse_subscription_arn(arn)
        .ok_or_else(|| invalid_parameter("Invalid parameter: SubscriptionArn"))?;
    let topic_arn = arn
        .rsplit_once(':')
        .map(|(t, _)| t.to_owned())
        .unwrap_or_default();
    Ok((
        super::subscription_prefix(&account, &topic).push(&id),
        topic_arn,
    ))
}

fn load(ctx: &mut OpCtx<'_, '_>, arn: &str) -> Result<Subscription> {
    let (key, topic_arn) = key_of(arn)?;
    ctx.authorize(&[topic_arn])?;
    ctx.txn
        .get_json(&key)?
        .ok_or_else(|| not_found("Subscription does not exist"))
}

fn store(ctx: &mut OpCtx<'_, '_>, subscription: &Subscription) -> Result<()> {
    let (key, _) = key_of(&subscription.arn)?;
    ctx.txn.put_json(&key, subscription)
}

pub(super) fn subscribe(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let topic_arn = required_str(input, "TopicArn")?;
    let protocol = required_str(input, "Protocol")?.to_ascii_lowercase();
    let endpoint = optional_str(input, "Endpoint")?
        .ok_or_else(|| invalid_parameter("Invalid parameter: Endpoint"))?;
    let topic: Topic = super::topics::load(ctx, topic_arn)?;
    check_endpoint(ctx, &protocol, endpoint)?;
    let return_arn = optional_bool(input, "ReturnSubscriptionArn")?.unwrap_or(false);
    let existing = super::subscriptions_of(ctx.txn, &topic.arn)?;
    if let Some(same) = existing
        .iter()
        .find(|s| s.protocol == protocol && s.endpoint == endpoint)
    {
        let shown = if same.pending && !return_arn {
            "pending confirmation"
        } else {
            &same.arn
        };
        return Ok(json!({"SubscriptionArn": shown}));
    }
    let id = crate::id::uuid_v4();
    let webhook = protocol == "http" || protocol == "https";
    let mut subscription = Subscription {
        arn: format!("{}:{id}", topic.arn),
        topic_arn: topic.arn.clone(),
        owner: ctx.account()?.to_string(),
        protocol: protocol.clone(),
        endpoint: endpoint.to_owned(),
        pending: webhook,
        token_sha256: None,
        authenticated_unsubscribe: false,
        raw: false,
        filter_policy: None,
        filter_scope: None,
        redrive_policy: None,
        secret_wrapped: None,
    };
    if let Some(attributes) = input.get("Attributes") {
        let map = attributes
            .as_object()
            .ok_or_else(|| invalid_parameter("Invalid parameter: Attributes"))?;
        // The scope first, so the policy is checked for it.
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by_key(|(k, _)| *k != "FilterPolicyScope");
        for (name, value) in entries {
            let value = value.as_str().ok_or_else(|| {
                invalid_parameter(format!(
                    "Invalid parameter: Attributes Reason: {name} must be a string"
                ))
            })?;
            apply(&mut subscription, name, value)?;
        }
    }
    let mut out = Map::new();
    if webhook {
        let token = crate::id::hex(&crate::id::random_bytes::<32>());
        subscription.token_sha256 = Some(sha256_hex(&token));
        let secret = new_secret(ctx, &mut subscription)?;
        out.insert("SigningSecret".to_owned(), json!(secret.as_str()));
        let now = ctx.now();
        let confirmation = Delivery {
            id: format!("sns-confirm-{id}"),
            event: json!({
                "Type": "SubscriptionConfirmation",
                "MessageId": crate::id::uuid_v4(),
                "Token": token,
                "TopicArn": topic.arn,
                "Message": format!("You have chosen to subscribe to the topic {}.\nTo confirm the subscription, call ConfirmSubscription with this Token.", topic.arn),
                "Timestamp": crate::clock::iso8601(now),
            }),
            rule_arn: topic.arn.clone(),
            rule_name: String::new(),
            target: json!({"Id": id, "Arn": subscription.arn, "RetryPolicy": {"MaximumRetryAttempts": RETRIES}}),
            attempts: 0,
            event_millis: now,
            due_millis: 0,
            last_error: None,
        };
        enqueue(ctx.txn, &confirmation)?;
    }
    store(ctx, &subscription)?;
    let shown = if subscription.pending && !return_arn {
        "pending confirmation".to_owned()
    } else {
        subscription.arn.clone()
    };
    out.insert("SubscriptionArn".to_owned(), json!(shown));
    Ok(Value::Object(out))
}

#[cfg(feature = "webhooks")]
fn new_secret(
    ctx: &mut OpCtx<'_, '_>,
    subscription: &mut Subscription,
) -> Result<zeroize::Zeroizing<String>> {
    let (secret, wrapped) = crate::events::webhook::new_wrapped_secret(
        ctx.keep,
        &format!("{WRAP_LABEL}{}", subscription.arn),
    )?;
    subscription.secret_wrapped = Some(wrapped);
    Ok(secret)
}

#[cfg(not(feature = "webhooks"))]
fn new_secret(_: &mut OpCtx<'_, '_>, _: &mut Subscription) -> Result<zeroize::Zeroizing<String>> {
    Err(crate::error::Error::new(
        crate::error::ErrorKind::Unsupported,
        "webhooks are not built in",
    ))
}

/// The signing secret of an http/https subscription, unwrapped.
#[cfg(feature = "webhooks")]
pub(super) fn secret(
    keep: &crate::keep::KeepInner,
    subscription: &Subscription,
) -> Result<zeroize::Zeroizing<String>> {
    crate::events::webhook::unwrap_secret(
        keep,
        &format!("{WRAP_LABEL}{}", subscription.arn),
        subscription.secret_wrapped.as_deref().unwrap_or_default(),
    )
}

pub(super) fn confirm(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let topic: Topic = super::topics::load(ctx, required_str(input, "TopicArn")?)?;
    let token = required_str(input, "Token")?;
    let authenticate = optional_str(input, "AuthenticateOnUnsubscribe")?
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let hash = sha256_hex(token);
    let subscriptions = super::subscriptions_of(ctx.txn, &topic.arn)?;
    let found = subscriptions.into_iter().find(|s| {
        s.token_sha256
            .as_deref()
            .is_some_and(|h| bool::from(h.as_bytes().ct_eq(hash.as_bytes())))
    });
    let Some(mut subscription) = found else {
        return Err(invalid_parameter("Invalid token"));
    };
    subscription.pending = false;
    subscription.token_sha256 = None;
    subscription.authenticated_unsubscribe = authenticate;
    store(ctx, &subscription)?;
    Ok(json!({"SubscriptionArn": subscription.arn}))
}

pub(super) fn unsubscribe(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let subscription = load(ctx, required_str(input, "SubscriptionArn")?)?;
    let (key, _) = key_of(&subscription.arn)?;
    ctx.txn.delete(&key)?;
    Ok(json!({}))
}

fn row(s: &Subscription) -> Value {
    json!({
        "SubscriptionArn": if s.pending { "PendingConfirmation" } else { s.arn.as_str() },
        "Owner": s.owner,
        "Protocol": s.protocol,
        "Endpoint": s.endpoint,
        "TopicArn": s.topic_arn,
    })
}

pub(super) fn list_by_topic(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let topic: Topic = super::topics::load(ctx, required_str(input, "TopicArn")?)?;
    let rows: Vec<Value> = super::subscriptions_of(ctx.txn, &topic.arn)?
        .iter()
        .map(row)
        .collect();
    paged(&rows, input, "Subscriptions")
}

pub(super) fn list_all(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let account = ctx.account()?.to_string();
    ctx.authorize(&["*".to_owned()])?;
    let rows: Vec<Value> = ctx
        .txn
        .scan_prefix(&super::all_subscriptions_prefix(&account), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice::<Subscription>(&v).map(|s| row(&s)))
        .collect::<std::result::Result<_, _>>()?;
    paged(&rows, input, "Subscriptions")
}

pub(super) fn get_attributes(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let s = load(ctx, required_str(input, "SubscriptionArn")?)?;
    let mut attributes = json!({
        "SubscriptionArn": s.arn,
        "TopicArn": s.topic_arn,
        "Owner": s.owner,
        "Protocol": s.protocol,
        "Endpoint": s.endpoint,
        "PendingConfirmation": s.pending.to_string(),
        "ConfirmationWasAuthenticated": s.authenticated_unsubscribe.to_string(),
        "RawMessageDelivery": s.raw.to_string(),
    });
    for (name, value) in [
        ("FilterPolicy", &s.filter_policy),
        ("FilterPolicyScope", &s.filter_scope),
        ("RedrivePolicy", &s.redrive_policy),
    ] {
        if let Some(v) = value {
            crate::api::set_member(&mut attributes, name, json!(v));
        }
    }
    if s.filter_policy.is_some() && s.filter_scope.is_none() {
        crate::api::set_member(
            &mut attributes,
            "FilterPolicyScope",
            json!("MessageAttributes"),
        );
    }
    Ok(json!({"Attributes": attributes}))
}

pub(super) fn set_attributes(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut subscription = load(ctx, required_str(input, "SubscriptionArn")?)?;
    let name = required_str(input, "AttributeName")?;
    let value = optional_str(input, "AttributeValue")?.unwrap_or("");
    apply(&mut subscription, name, value)?;
    store(ctx, &subscription)?;
    Ok(json!({}))
}
