//! A rule's targets (PutTargets, RemoveTargets, ListTargetsByRule): where matching events
//! go (an in-process function, a topic, a webhook destination), how the event is shaped on
//! the way (Input, InputPath, InputTransformer), and how failed deliveries are retried and
//! where they end (RetryPolicy, DeadLetterConfig).

use serde_json::{Map, Value, json};

use super::rules::{check_name, load, paged, store};
use super::{limit_exceeded, validation};
use crate::api::{OpCtx, optional_str};
use crate::error::Result;

/// EventBridge's quota of targets per rule.
pub(crate) const MAX_TARGETS: usize = 5;

/// Target ARNs codekeep delivers to: in-process functions, topics and (with webhooks) API
/// destinations.
const TARGET_SERVICES: &[(&str, &str)] = &[
    ("lambda", "function:"),
    ("sns", ""),
    #[cfg(feature = "webhooks")]
    ("events", "api-destination/"),
];

pub(crate) fn put_targets(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut rule = load(ctx, input, "Rule")?;
    let targets = input
        .get("Targets")
        .and_then(Value::as_array)
        .filter(|t| (1..=100).contains(&t.len()))
        .ok_or_else(|| validation("Targets must hold 1 to 100 targets"))?;
    let mut checked = Vec::with_capacity(targets.len());
    for target in targets {
        checked.push(check_target(target)?);
    }
    for target in checked {
        let id = target.get("Id").cloned();
        match rule.targets.iter_mut().find(|t| t.get("Id") == id.as_ref()) {
            Some(existing) => *existing = target,
            None => rule.targets.push(target),
        }
    }
    if rule.targets.len() > MAX_TARGETS {
        return Err(limit_exceeded(
            "The requested resource exceeds the maximum number allowed.",
        ));
    }
    store(ctx, &rule)?;
    Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
}

/// Checks one target and keeps only the members EventBridge defines.
fn check_target(target: &Value) -> Result<Value> {
    let object = target
        .as_object()
        .ok_or_else(|| validation("A target must be an object"))?;
    let id = optional_str(target, "Id")?.ok_or_else(|| validation("A target needs an Id"))?;
    check_name("targets.id", id)?;
    let arn = optional_str(target, "Arn")?
        .ok_or_else(|| validation(format!("Target {id} needs an Arn")))?;
    check_target_arn(id, arn)?;
    let shapes = ["Input", "InputPath", "InputTransformer"]
        .iter()
        .filter(|k| object.contains_key(**k))
        .count();
    if shapes > 1 {
        return Err(validation(format!(
            "Target {id}: only one of Input, InputPath and InputTransformer may be given"
        )));
    }
    if let Some(input) = optional_str(target, "Input")? {
        serde_json::from_str::<Value>(input)
            .map_err(|_| validation(format!("Target {id}: Input is not valid JSON")))?;
    }
    if let Some(path) = optional_str(target, "InputPath")? {
        super::transform::check_path(path)?;
    }
    if let Some(transformer) = object.get("InputTransformer") {
        super::transform::check_transformer(transformer)?;
    }
    if let Some(http) = object.get("HttpParameters") {
        check_http_parameters(id, http)?;
    }
    if let Some(retry) = object.get("RetryPolicy") {
        check_range(retry, "MaximumRetryAttempts", 0, 185)?;
        check_range(retry, "MaximumEventAgeInSeconds", 60, 86_400)?;
    }
    if let Some(dlq) = object.get("DeadLetterConfig") {
        let queue = dlq.get("Arn").and_then(Value::as_str).unwrap_or_default();
        if queue
            .parse::<crate::arn::Arn>()
            .map_or(true, |a| a.service() != "sqs")
        {
            return Err(validation(format!(
                "Target {id}: DeadLetterConfig.Arn must be a queue ARN (arn:aws:sqs:...)"
            )));
        }
    }
    let mut kept = Map::new();
    for member in [
        "Id",
        "Arn",
        "RoleArn",
        "Input",
        "InputPath",
        "InputTransformer",
        "HttpParameters",
        "RetryPolicy",
        "DeadLetterConfig",
    ] {
        if let Some(v) = object.get(member) {
            kept.insert(member.to_owned(), v.clone());
        }
    }
    Ok(Value::Object(kept))
}

fn check_target_arn(id: &str, arn: &str) -> Result<()> {
    let parsed = arn
        .parse::<crate::arn::Arn>()
        .map_err(|_| validation(format!("Target {id}: {arn} is not a valid ARN")))?;
    let supported = TARGET_SERVICES.iter().any(|(service, resource)| {
        parsed.service() == *service && parsed.resource().starts_with(resource)
    }) && !(parsed.service() == "sns" && parsed.resource().contains(':'));
    if supported {
        Ok(())
    } else {
        Err(validation(format!(
            "Target {id}: {arn} is not a target codekeep delivers to (a function, arn:aws:lambda:REGION:ACCOUNT:function:NAME, a topic, arn:aws:sns:REGION:ACCOUNT:NAME, or an API destination, arn:aws:events:REGION:ACCOUNT:api-destination/NAME/ID)"
        )))
    }
}

/// HttpParameters: header and query maps of strings, path values for the endpoint's `*`s.
fn check_http_parameters(id: &str, http: &Value) -> Result<()> {
    let bad = |why: &str| validation(format!("Target {id}: HttpParameters.{why}"));
    for member in ["HeaderParameters", "QueryStringParameters"] {
        let Some(map) = http.get(member) else {
            continue;
        };
        let map = map
            .as_object()
            .ok_or_else(|| bad(&format!("{member} must map names to strings")))?;
        for (name, value) in map {
            let value = value
                .as_str()
                .ok_or_else(|| bad(&format!("{member} values must be strings")))?;
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || value.contains(['\r', '\n']) || value.len() > 512 {
                return Err(bad(&format!("{member} has an invalid entry {name:?}")));
            }
        }
    }
    if let Some(values) = http.get("PathParameterValues") {
        let ok = values
            .as_array()
            .is_some_and(|v| v.len() <= 1 && v.iter().all(Value::is_string));
        if !ok {
            return Err(bad("PathParameterValues must hold at most one string"));
        }
    }
    Ok(())
}

/// A destination endpoint with the target's path value in place of its `*` and its query
/// parameters appended.
#[cfg(feature = "webhooks")]
pub(crate) fn endpoint_with_query(endpoint: &str, target: &Value) -> String {
    let http = target.get("HttpParameters");
    let mut out = match http
        .and_then(|h| h.pointer("/PathParameterValues/0"))
        .and_then(Value::as_str)
    {
        Some(value) => endpoint.replacen(
            '*',
            &url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>(),
            1,
        ),
        None => endpoint.to_owned(),
    };
    if let Some(query) = http
        .and_then(|h| h.get("QueryStringParameters"))
        .and_then(Value::as_object)
        .filter(|q| !q.is_empty())
    {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in query {
            serializer.append_pair(name, value.as_str().unwrap_or_default());
        }
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(&serializer.finish());
    }
    out
}

fn check_range(object: &Value, member: &str, low: i64, high: i64) -> Result<()> {
    match object.get(member) {
        None => Ok(()),
        Some(v) => match v.as_i64() {
            Some(n) if (low..=high).contains(&n) => Ok(()),
            _ => Err(validation(format!(
                "{member} must be an integer from {low} to {high}"
            ))),
        },
    }
}

pub(crate) fn remove_targets(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut rule = load(ctx, input, "Rule")?;
    let ids: Vec<&str> = input
        .get("Ids")
        .and_then(Value::as_array)
        .filter(|ids| (1..=100).contains(&ids.len()))
        .ok_or_else(|| validation("Ids must hold 1 to 100 target ids"))?
        .iter()
        .map(|v| v.as_str().ok_or_else(|| validation("Ids must be strings")))
        .collect::<Result<_>>()?;
    rule.targets
        .retain(|t| !ids.contains(&t.get("Id").and_then(Value::as_str).unwrap_or_default()));
    store(ctx, &rule)?;
    Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
}

pub(crate) fn list_targets_by_rule(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let rule = load(ctx, input, "Rule")?;
    paged(&rule.targets, input, "Targets")
}
