//! Rules on the default event bus (EventBridge's PutRule, DescribeRule, ListRules, DeleteRule,
//! EnableRule, DisableRule) and TestEventPattern. A rule is stored with its targets in one
//! record, so a rule and its targets always change together.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::pattern::Pattern;
use super::{bus_name, not_found, validation};
use crate::api::{OpCtx, optional_i64, optional_str, required_str};
use crate::error::Result;
use crate::store::Key;

/// EventBridge's rule name rule: 1 to 64 of `.`, `-`, `_`, letters and digits.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{what}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+ and have length between 1 and 64"
        )))
    }
}

/// A stored rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RuleRecord {
    pub name: String,
    pub arn: String,
    pub event_pattern: String,
    pub state: String,
    pub description: Option<String>,
    pub role_arn: Option<String>,
    pub created_by: String,
    /// Targets as PutTargets accepted them.
    pub targets: Vec<Value>,
}

impl RuleRecord {
    fn describe(&self) -> Value {
        let mut out = json!({
            "Name": self.name,
            "Arn": self.arn,
            "EventPattern": self.event_pattern,
            "State": self.state,
            "EventBusName": "default",
            "CreatedBy": self.created_by,
        });
        if let Some(d) = &self.description {
            crate::api::set_member(&mut out, "Description", json!(d));
        }
        if let Some(r) = &self.role_arn {
            crate::api::set_member(&mut out, "RoleArn", json!(r));
        }
        out
    }
}

pub(crate) fn rules_prefix(account: &str) -> Key {
    Key::new("events").push(account).push("rule")
}

fn rule_key(account: &str, name: &str) -> Key {
    rules_prefix(account).push(name)
}

pub(crate) fn rule_arn(ctx: &OpCtx<'_, '_>, account: &str, name: &str) -> String {
    format!("arn:aws:events:{}:{account}:rule/{name}", ctx.req.region)
}

/// Loads rule `name` of the caller's account after authorizing the call on it.
pub(crate) fn load(ctx: &mut OpCtx<'_, '_>, input: &Value, member: &str) -> Result<RuleRecord> {
    let name = required_str(input, member)?;
    bus_name(input)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[rule_arn(ctx, &account, name)])?;
    ctx.txn
        .get_json(&rule_key(&account, name))?
        .ok_or_else(|| not_found(format!("Rule {name} does not exist on EventBus default.")))
}

pub(crate) fn store(ctx: &mut OpCtx<'_, '_>, rule: &RuleRecord) -> Result<()> {
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&rule_key(&account, &rule.name), rule)?;
    super::bump_generation(ctx.txn, &account)
}

pub(crate) fn put_rule(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "Name")?;
    check_name("name", name)?;
    bus_name(input)?;
    if optional_str(input, "ScheduleExpression")?.is_some() {
        return Err(validation(
            "ScheduleExpression is not supported: codekeep rules match events",
        ));
    }
    let pattern = optional_str(input, "EventPattern")?.ok_or_else(|| {
        validation("Parameter(s) EventPattern or ScheduleExpression must be specified.")
    })?;
    Pattern::parse(pattern)?;
    let state = optional_str(input, "State")?.unwrap_or("ENABLED");
    if ![
        "ENABLED",
        "DISABLED",
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    ]
    .contains(&state)
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{state}' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]"
        )));
    }
    let description = optional_str(input, "Description")?;
    if description.is_some_and(|d| d.chars().count() > 512) {
        return Err(validation("Description must be at most 512 characters"));
    }
    let account = ctx.account()?.to_string();
    let arn = rule_arn(ctx, &account, name);
    ctx.authorize(std::slice::from_ref(&arn))?;
    let existing: Option<RuleRecord> = ctx.txn.get_json(&rule_key(&account, name))?;
    let rule = RuleRecord {
        name: name.to_owned(),
        arn: arn.clone(),
        event_pattern: pattern.to_owned(),
        state: state.to_owned(),
        description: description.map(str::to_owned),
        role_arn: optional_str(input, "RoleArn")?.map(str::to_owned),
        created_by: account.clone(),
        targets: existing.map(|r| r.targets).unwrap_or_default(),
    };
    store(ctx, &rule)?;
    Ok(json!({"RuleArn": arn}))
}

pub(crate) fn describe_rule(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    Ok(load(ctx, input, "Name")?.describe())
}

pub(crate) fn list_rules(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    bus_name(input)?;
    let prefix = optional_str(input, "NamePrefix")?.unwrap_or("");
    let account = ctx.account()?.to_string();
    ctx.authorize(&[rule_arn(ctx, &account, "*")])?;
    let rules: Vec<RuleRecord> = ctx
        .txn
        .scan_prefix(&rules_prefix(&account), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v))
        .collect::<std::result::Result<_, _>>()?;
    let rows: Vec<Value> = rules
        .iter()
        .filter(|r| r.name.starts_with(prefix))
        .map(RuleRecord::describe)
        .collect();
    paged(&rows, input, "Rules")
}

/// EventBridge paging: `Limit` (1 to 100) and an opaque `NextToken`.
pub(crate) fn paged(rows: &[Value], input: &Value, member: &str) -> Result<Value> {
    let limit = match optional_i64(input, "Limit")? {
        None => 100,
        Some(n) if (1..=100).contains(&n) => usize::try_from(n).unwrap_or(100),
        Some(_) => return Err(validation("Limit must be between 1 and 100")),
    };
    let start = match optional_str(input, "NextToken")? {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= rows.len())
            .ok_or_else(|| validation("The NextToken is not valid."))?,
    };
    let end = (start + limit).min(rows.len());
    let page: Vec<Value> = rows.get(start..end).unwrap_or_default().to_vec();
    let mut out = json!({ member: page });
    if end < rows.len() {
        crate::api::set_member(&mut out, "NextToken", json!(end.to_string()));
    }
    Ok(out)
}

pub(crate) fn delete_rule(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "Name")?;
    bus_name(input)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[rule_arn(ctx, &account, name)])?;
    // Deleting a rule that does not exist succeeds, as in EventBridge.
    let Some(rule) = ctx.txn.get_json::<RuleRecord>(&rule_key(&account, name))? else {
        return Ok(json!({}));
    };
    if !rule.targets.is_empty() {
        return Err(validation("Rule can't be deleted since it has targets."));
    }
    ctx.txn.delete(&rule_key(&account, name))?;
    super::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn set_state(ctx: &mut OpCtx<'_, '_>, input: &Value, state: &str) -> Result<Value> {
    let mut rule = load(ctx, input, "Name")?;
    state.clone_into(&mut rule.state);
    store(ctx, &rule)?;
    Ok(json!({}))
}

pub(crate) fn enable_rule(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    set_state(ctx, input, "ENABLED")
}

pub(crate) fn disable_rule(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    set_state(ctx, input, "DISABLED")
}

/// The fields TestEventPattern requires of its event.
const REQUIRED_EVENT_FIELDS: &[&str] = &[
    "id",
    "account",
    "source",
    "time",
    "region",
    "resources",
    "detail-type",
];

pub(crate) fn test_event_pattern(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let pattern = Pattern::parse(required_str(input, "EventPattern")?)?;
    let event: Value = serde_json::from_str(required_str(input, "Event")?)
        .map_err(|_| validation("Parameter Event is not valid."))?;
    if let Some(missing) = REQUIRED_EVENT_FIELDS
        .iter()
        .find(|f| event.get(**f).is_none())
    {
        return Err(validation(format!(
            "Parameter Event is not valid. Reason: Provided event is missing required field {missing}."
        )));
    }
    ctx.authorize(&["*".to_owned()])?;
    Ok(json!({"Result": pattern.matches(&event)}))
}
