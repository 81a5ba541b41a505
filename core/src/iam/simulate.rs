//! IAM's policy simulator: SimulatePrincipalPolicy and SimulateCustomPolicy, the policy
//! engine with AWS's input and output shapes.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{lower, roles, users, validation_error};
use crate::api::{OpCtx, member, optional_str, required_str};
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{
    Context, DenyReason, EvalDecision, Policy, PolicyKind, PolicySet, PolicyType, PrincipalInfo,
    Request, explain,
};

pub(crate) fn simulate_principal_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let source = required_str(input, "PolicySourceArn")?;
    let account = ctx.account()?.to_string();
    let kind = source
        .strip_prefix(&format!("arn:aws:iam::{account}:"))
        .and_then(|r| r.split('/').next());
    if !matches!(kind, Some("user" | "group" | "role")) {
        return Err(super::invalid_input(format!(
            "PolicySourceArn {source} must be a user, group or role of this account"
        )));
    }
    ctx.authorize(&[source.to_owned()])?;
    let mut set = entity_policy_set(ctx, &account, source)?;
    set.identity
        .extend(policy_list(input, "PolicyInputList", PolicyKind::Identity)?);
    if let Some(b) = policy_list(
        input,
        "PermissionsBoundaryPolicyInputList",
        PolicyKind::Identity,
    )?
    .pop()
    {
        set.boundary = Some(b);
    }
    let caller = optional_str(input, "CallerArn")?
        .unwrap_or(source)
        .to_owned();
    simulate(input, &set, &caller, &account)
}

pub(crate) fn simulate_custom_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    ctx.authorize(&["*".to_owned()])?;
    let account = ctx.account()?.to_string();
    let identity = policy_list(input, "PolicyInputList", PolicyKind::Identity)?;
    if identity.is_empty() {
        return Err(validation_error(
            "PolicyInputList must name at least one policy",
        ));
    }
    let set = PolicySet {
        identity,
        boundary: policy_list(
            input,
            "PermissionsBoundaryPolicyInputList",
            PolicyKind::Identity,
        )?
        .pop(),
        session: Vec::new(),
        service_control: Vec::new(),
    };
    let caller = match optional_str(input, "CallerArn")? {
        Some(c) => c.to_owned(),
        None => ctx.req.principal.arn(),
    };
    simulate(input, &set, &caller, &account)
}

/// The policies of the user, group or role `source`.
fn entity_policy_set(ctx: &mut OpCtx<'_, '_>, account: &str, source: &str) -> Result<PolicySet> {
    let missing = || super::no_such_entity(format!("{source} does not exist"));
    let arn: crate::arn::Arn = source
        .parse()
        .map_err(|_| super::invalid_input(format!("ARN {source} is not valid.")))?;
    if arn.service() != "iam" || arn.account() != account {
        return Err(missing());
    }
    let name = arn.resource().rsplit('/').next().unwrap_or_default();
    let cache = &ctx.keep.policy_cache;
    let mut set = PolicySet::default();
    super::authz::add_scps(cache, ctx.txn, account, &mut set)?;
    let resource = arn.resource();
    if resource.starts_with("user/") {
        let user = users::load_user(ctx.txn, account, name)?;
        if user.arn != source {
            return Err(missing());
        }
        super::authz::add_user(cache, ctx.txn, account, &user, &mut set)?;
    } else if resource.starts_with("group/") {
        let group = users::load_group(ctx.txn, account, name)?;
        let lname = lower(&group.name);
        super::authz::add_entity(
            cache, ctx.txn, account, "group", &lname, &group.arn, &mut set,
        )?;
    } else if resource.starts_with("role/") {
        let role: roles::RoleRecord = ctx
            .txn
            .get_json(&roles::role_key(account, name))?
            .filter(|r: &roles::RoleRecord| r.arn == source)
            .ok_or_else(missing)?;
        super::authz::add_role(cache, ctx.txn, account, &role, &mut set)?;
    } else {
        return Err(missing());
    }
    Ok(set)
}

fn policy_list(input: &Value, name: &str, kind: PolicyKind) -> Result<Vec<Arc<Policy>>> {
    let Some(list) = member(input, name) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| validation_error(format!("{name} must be a list of policy documents")))?;
    list.iter()
        .enumerate()
        .map(|(i, doc)| {
            let text = doc.as_str().ok_or_else(|| {
                validation_error(format!("{name} must be a list of policy documents"))
            })?;
            Policy::parse(kind, &format!("{name}.{}", i + 1), text).map(Arc::new)
        })
        .collect()
}

fn strings(input: &Value, name: &str) -> Result<Option<Vec<String>>> {
    match member(input, name) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| validation_error(format!("{name} must be a list of strings"))),
    }
}

/// IAM's context key types.
const CONTEXT_KEY_TYPES: &[&str] = &[
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
];

/// `ContextEntries`: `[{ContextKeyName, ContextKeyValues, ContextKeyType}]`.
fn context_entries(input: &Value) -> Result<Context> {
    let mut context = Context::new();
    let Some(entries) = member(input, "ContextEntries") else {
        return Ok(context);
    };
    let entries = entries
        .as_array()
        .ok_or_else(|| validation_error("ContextEntries must be a list"))?;
    for entry in entries {
        let name = entry
            .get("ContextKeyName")
            .and_then(Value::as_str)
            .ok_or_else(|| validation_error("each context entry needs a ContextKeyName"))?;
        let values: Vec<String> = entry
            .get("ContextKeyValues")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| {
                validation_error("each context entry needs ContextKeyValues, a list of strings")
            })?;
        let kind = entry
            .get("ContextKeyType")
            .and_then(Value::as_str)
            .unwrap_or("string");
        if !CONTEXT_KEY_TYPES.contains(&kind) {
            return Err(validation_error(format!(
                "ContextKeyType {kind} is not valid"
            )));
        }
        match (kind.ends_with("List"), values.as_slice()) {
            (false, [one]) => context.insert(name, one),
            (false, _) => {
                return Err(Error::aws(
                    ErrorKind::InvalidArgument,
                    "InvalidInput",
                    format!("context key {name} of type {kind} takes exactly one value"),
                ));
            }
            (true, many) => context.insert_multi(name, many),
        }
    }
    Ok(context)
}

fn simulate(input: &Value, set: &PolicySet, caller_arn: &str, account: &str) -> Result<Value> {
    let actions = strings(input, "ActionNames")?
        .filter(|a| !a.is_empty())
        .ok_or_else(|| validation_error("ActionNames must name at least one action"))?;
    let resources = strings(input, "ResourceArns")?.unwrap_or_else(|| vec!["*".to_owned()]);
    let resource_policy = optional_str(input, "ResourcePolicy")?
        .map(|d| Policy::parse(PolicyKind::Resource, "ResourcePolicy", d))
        .transpose()?;
    let owner = optional_str(input, "ResourceOwner")?.map(|o| {
        o.strip_prefix("arn:aws:iam::")
            .and_then(|r| r.strip_suffix(":root"))
            .unwrap_or(o)
            .to_owned()
    });
    let context = context_entries(input)?;
    // The simulator evaluates the given policies: even a root caller is simulated as a
    // principal whose identity policies are the ones in the input.
    let mut principal = PrincipalInfo::from_arn(caller_arn).unwrap_or_else(|| PrincipalInfo {
        arn: caller_arn.to_owned(),
        account: account.to_owned(),
        kind: crate::policy::PrincipalKind::User,
    });
    if principal.kind == crate::policy::PrincipalKind::Root {
        principal.kind = crate::policy::PrincipalKind::User;
    }
    let mut results = Vec::new();
    for action in &actions {
        for resource in &resources {
            let resource_account = owner.clone().or_else(|| {
                resource
                    .split(':')
                    .nth(4)
                    .filter(|a| a.len() == 12)
                    .map(str::to_owned)
            });
            let request = Request {
                principal: &principal,
                action,
                resource,
                resource_account: resource_account.as_deref(),
                context: &context,
                resource_policy: resource_policy.as_ref(),
                resource_policy_required: false,
            };
            let explanation = explain(set, &request);
            let blocked_by = |t: PolicyType| matches!(explanation.reason, Some(DenyReason::ExplicitDeny(x) | DenyReason::NoAllow(x)) if x == t);
            let mut result = json!({
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": explanation.decision.as_str(),
                "MatchedStatements": explanation.matched.iter().map(|m| json!({
                    "SourcePolicyId": m.policy,
                    "SourcePolicyType": m.policy_type.simulator_name(),
                })).collect::<Vec<_>>(),
                "MissingContextValues": explanation.missing_context_values,
                "EvalDecisionDetails": {},
            });
            if !set.service_control.is_empty() {
                crate::api::set_member(
                    &mut result,
                    "OrganizationsDecisionDetail",
                    json!({"AllowedByOrganizations": !blocked_by(PolicyType::ServiceControl)}),
                );
            }
            if set.boundary.is_some() {
                crate::api::set_member(
                    &mut result,
                    "PermissionsBoundaryDecisionDetail",
                    json!({"AllowedByPermissionsBoundary": !blocked_by(PolicyType::Boundary)}),
                );
            }
            if resource_policy.is_some() {
                let decision = if explanation.decision == EvalDecision::Allowed
                    || !blocked_by(PolicyType::Resource)
                {
                    explanation.decision
                } else {
                    EvalDecision::ImplicitDeny
                };
                crate::api::set_member(
                    &mut result,
                    "EvalDecisionDetails",
                    json!({"resource-based policy": decision.as_str()}),
                );
            }
            results.push((format!("{:08}", results.len()), result));
        }
    }
    super::page(results, input, "EvaluationResults", json!({}))
}
