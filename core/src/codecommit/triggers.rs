//! Repository triggers (PutRepositoryTriggers, GetRepositoryTriggers, TestRepositoryTriggers):
//! on ref changes, CodeCommit's trigger payload (`Records[…]` with `codecommit.references`) goes
//! to an in-process function or a topic, through the events dispatcher (so with its retries),
//! written in the push's own transaction.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::repositories::{RepositoryRecord, authorize_repository};
use super::{error, required};
use crate::api::OpCtx;
use crate::error::{ErrorKind, Result};
use crate::events::dispatch::{Delivery, enqueue};
use crate::git::receive::RefUpdate;
use crate::store::{Key, Txn};

/// CodeCommit's limits.
const MAX_TRIGGERS: usize = 10;
const MAX_BRANCHES: usize = 10;
const MAX_CUSTOM_DATA: usize = 1000;
const MAX_NAME: usize = 100;
const EVENTS: &[&str] = &[
    "all",
    "updateReference",
    "createReference",
    "deleteReference",
];
/// Retries of a trigger's delivery after the first attempt.
const RETRIES: u64 = 2;

/// One trigger, as CodeCommit shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trigger {
    name: String,
    destination_arn: String,
    custom_data: String,
    branches: Vec<String>,
    events: Vec<String>,
}

/// A repository's triggers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    configuration_id: String,
    triggers: Vec<Trigger>,
}

fn key(repository_id: &str) -> Key {
    Key::new("codecommit-triggers").push(repository_id)
}

fn invalid(code: &'static str, message: impl Into<String>) -> crate::Error {
    error(ErrorKind::InvalidArgument, code, message).with_status(400)
}

/// Checks a trigger list as CodeCommit does.
fn check(ctx: &OpCtx<'_, '_>, input: &Value) -> Result<Vec<Trigger>> {
    let triggers = match input.get("triggers") {
        Some(Value::Array(t)) => t,
        Some(_) => {
            return Err(invalid(
                "InvalidParameterException",
                "triggers must be a list",
            ));
        }
        None => {
            return Err(invalid(
                "RepositoryTriggersListRequiredException",
                "A list of triggers is required.",
            ));
        }
    };
    if triggers.len() > MAX_TRIGGERS {
        return Err(invalid(
            "MaximumRepositoryTriggersExceededException",
            format!("The number of triggers cannot exceed {MAX_TRIGGERS}."),
        ));
    }
    let mut out: Vec<Trigger> = Vec::with_capacity(triggers.len());
    for trigger in triggers {
        let checked = check_trigger(ctx, trigger)?;
        if out.iter().any(|t| t.name == checked.name) {
            return Err(invalid(
                "InvalidRepositoryTriggerNameException",
                format!("The trigger name {:?} is used twice.", checked.name),
            ));
        }
        out.push(checked);
    }
    Ok(out)
}

/// A list member of a trigger: strings only.
fn strings<'v>(
    trigger: &'v Value,
    member: &str,
    code: &'static str,
) -> Result<Option<Vec<&'v str>>> {
    match trigger.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| invalid(code, format!("{member} must hold strings")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(invalid(code, format!("{member} must be a list"))),
    }
}

fn check_trigger(ctx: &OpCtx<'_, '_>, trigger: &Value) -> Result<Trigger> {
    let name = required(trigger, "name", "RepositoryTriggerNameRequiredException")?;
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(invalid(
            "InvalidRepositoryTriggerNameException",
            format!("The trigger name {name:?} is not valid."),
        ));
    }
    let destination = required(
        trigger,
        "destinationArn",
        "RepositoryTriggerDestinationArnRequiredException",
    )?;
    check_destination(ctx, destination)?;
    let events = strings(trigger, "events", "InvalidRepositoryTriggerEventsException")?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            invalid(
                "RepositoryTriggerEventsListRequiredException",
                format!("Trigger {name}: a list of events is required."),
            )
        })?;
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(e)) {
        return Err(invalid(
            "InvalidRepositoryTriggerEventsException",
            format!(
                "Trigger {name}: {bad:?} is not one of {}",
                EVENTS.join(", ")
            ),
        ));
    }
    if events.contains(&"all") && events.len() > 1 {
        return Err(invalid(
            "InvalidRepositoryTriggerEventsException",
            format!("Trigger {name}: \"all\" cannot be combined with other events."),
        ));
    }
    let branches = strings(
        trigger,
        "branches",
        "InvalidRepositoryTriggerBranchNameException",
    )?
    .unwrap_or_default();
    if branches.len() > MAX_BRANCHES {
        return Err(invalid(
            "MaximumBranchesExceededException",
            format!("Trigger {name}: the number of branches cannot exceed {MAX_BRANCHES}."),
        ));
    }
    if let Some(bad) = branches
        .iter()
        .find(|b| super::branches::check_branch_name(b).is_err())
    {
        return Err(invalid(
            "InvalidRepositoryTriggerBranchNameException",
            format!("Trigger {name}: {bad:?} is not a valid branch name."),
        ));
    }
    let custom = match trigger.get("customData") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(invalid(
                "InvalidRepositoryTriggerCustomDataException",
                "customData must be a string",
            ));
        }
    };
    if custom.chars().count() > MAX_CUSTOM_DATA {
        return Err(invalid(
            "InvalidRepositoryTriggerCustomDataException",
            format!("Trigger {name}: customData is limited to {MAX_CUSTOM_DATA} characters."),
        ));
    }
    Ok(Trigger {
        name: name.to_owned(),
        destination_arn: destination.to_owned(),
        custom_data: custom.to_owned(),
        branches: branches.into_iter().map(str::to_owned).collect(),
        events: events.into_iter().map(str::to_owned).collect(),
    })
}

/// A destination must be a function or a topic of this region.
fn check_destination(ctx: &OpCtx<'_, '_>, destination: &str) -> Result<()> {
    let parsed = destination.parse::<crate::arn::Arn>().ok();
    let kind_ok = parsed.as_ref().is_some_and(|a| {
        (a.service() == "lambda" && a.resource().starts_with("function:"))
            || (a.service() == "sns" && !a.resource().contains(':'))
    });
    if !kind_ok {
        return Err(invalid(
            "InvalidRepositoryTriggerDestinationArnException",
            format!(
                "{destination} is not a valid destination: use a topic (arn:aws:sns:...) or a function (arn:aws:lambda:...:function:NAME)."
            ),
        ));
    }
    if parsed.is_some_and(|a| a.region() != ctx.req.region.as_str()) {
        return Err(invalid(
            "InvalidRepositoryTriggerRegionException",
            format!("The destination {destination} is not in this region."),
        ));
    }
    Ok(())
}

pub(super) fn put(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let record = authorize_repository(ctx, name)?;
    let triggers = check(ctx, input)?;
    let config = Config {
        configuration_id: crate::id::uuid_v4(),
        triggers,
    };
    ctx.txn.put_json(&key(&record.id), &config)?;
    Ok(json!({"configurationId": config.configuration_id}))
}

pub(super) fn get(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let record = authorize_repository(ctx, name)?;
    let config: Config = ctx.txn.get_json(&key(&record.id))?.unwrap_or_default();
    Ok(serde_json::to_value(config)?)
}

/// Sends each trigger a `TriggerEventTest` record; a trigger whose destination is not there
/// (no such function registered, no such topic) is reported as failed.
pub(super) fn test(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let record = authorize_repository(ctx, name)?;
    let triggers = check(ctx, input)?;
    let arn = record.arn(ctx.req.region.as_str());
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    for trigger in &triggers {
        if let Some(why) = missing_destination(ctx, &trigger.destination_arn)? {
            failed.push(json!({"trigger": trigger.name, "failureMessage": why}));
            continue;
        }
        let commit = match record.default_branch.as_deref() {
            Some(branch) => {
                super::git::current_ref(ctx.txn, &record.id, &format!("refs/heads/{branch}"))?
                    .map(|id| (format!("refs/heads/{branch}"), id.to_string()))
            }
            None => None,
        };
        let references: Vec<Value> = commit
            .map(|(r, c)| json!({"commit": c, "ref": r}))
            .into_iter()
            .collect();
        let payload = payload(ctx, &arn, "", trigger, "TriggerEventTest", &references);
        deliver(ctx.txn, ctx.req.time_millis, trigger, payload)?;
        succeeded.push(json!(trigger.name));
    }
    Ok(json!({"successfulExecutions": succeeded, "failedExecutions": failed}))
}

fn missing_destination(ctx: &mut OpCtx<'_, '_>, destination: &str) -> Result<Option<String>> {
    if destination.starts_with("arn:aws:lambda:") {
        return Ok((!ctx.keep.functions.contains(destination))
            .then(|| format!("Function {destination} is not registered with the keep.")));
    }
    let exists = crate::events::sns::topic_exists(ctx.txn, destination)?;
    Ok((!exists).then(|| format!("Topic {destination} does not exist.")))
}

fn payload(
    ctx: &OpCtx<'_, '_>,
    arn: &str,
    config_id: &str,
    trigger: &Trigger,
    event_name: &str,
    references: &[Value],
) -> Value {
    json!({"Records": [{
        "awsRegion": ctx.req.region.as_str(),
        "codecommit": {"references": references},
        "customData": trigger.custom_data,
        "eventId": crate::id::uuid_v4(),
        "eventName": event_name,
        "eventPartNumber": 1,
        "eventSource": "aws:codecommit",
        "eventSourceARN": arn,
        "eventTime": crate::clock::iso8601(ctx.req.time_millis).replace('Z', "+0000"),
        "eventTotalParts": 1,
        "eventTriggerConfigId": config_id,
        "eventTriggerName": trigger.name,
        "eventVersion": "1.0",
        "userIdentityARN": ctx.req.principal.arn(),
    }]})
}

fn deliver(txn: &mut Txn<'_>, now: i64, trigger: &Trigger, payload: Value) -> Result<()> {
    let event_id = payload
        .pointer("/Records/0/eventId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = trigger.name.as_str();
    enqueue(
        txn,
        &Delivery {
            id: format!("codecommit-trigger-{event_id}"),
            event: payload,
            rule_arn: String::new(),
            rule_name: name.to_owned(),
            target: json!({"Id": name, "Arn": trigger.destination_arn,
                           "RetryPolicy": {"MaximumRetryAttempts": RETRIES}}),
            attempts: 0,
            event_millis: now,
            due_millis: 0,
            last_error: None,
        },
    )
}

/// Whether a trigger covers a ref change.
fn covers(trigger: &Trigger, update: &RefUpdate) -> bool {
    let event = if update.is_create() {
        "createReference"
    } else if update.is_delete() {
        "deleteReference"
    } else {
        "updateReference"
    };
    let wanted = trigger.events.iter().any(|e| e == "all" || e == event);
    let on_branch = trigger.branches.is_empty()
        || update
            .name
            .strip_prefix("refs/heads/")
            .is_some_and(|b| trigger.branches.iter().any(|x| x == b));
    wanted && on_branch
}

/// Fires the repository's triggers for the ref changes one push (or branch call) made: one
/// delivery per trigger that covers any of them, listing the references it covers.
pub(crate) fn fire(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
    arn: &str,
    updates: &[&RefUpdate],
) -> Result<()> {
    let Some(config) = ctx.txn.get_json::<Config>(&key(&record.id))? else {
        return Ok(());
    };
    for trigger in &config.triggers {
        let references: Vec<Value> = updates
            .iter()
            .filter(|u| covers(trigger, u))
            .map(|u| {
                let mut reference = json!({"ref": u.name});
                if u.is_delete() {
                    crate::api::set_member(&mut reference, "commit", json!(u.old.to_string()));
                    crate::api::set_member(&mut reference, "deleted", json!(true));
                } else {
                    crate::api::set_member(&mut reference, "commit", json!(u.new.to_string()));
                    if u.is_create() {
                        crate::api::set_member(&mut reference, "created", json!(true));
                    }
                }
                reference
            })
            .collect();
        if references.is_empty() {
            continue;
        }
        let payload = payload(
            ctx,
            arn,
            &config.configuration_id,
            trigger,
            "ReferenceChanges",
            &references,
        );
        deliver(ctx.txn, ctx.req.time_millis, trigger, payload)?;
    }
    Ok(())
}
