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

/// Target ARNs codekeep delivers to: in-process functions. (Topics and webhook destinations
/// are accepted once they are delivered to.)
const TARGET_SERVICES: &[(&str, &str)] = &[("lambda", "function:")];

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
    });
    if supported {
        Ok(())
    } else {
        Err(validation(format!(
            "Target {id}: {arn} is not a target codekeep delivers to (a function, arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
        )))
    }
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
