//! Policies of users, groups and roles: attaching managed policies and the inline policies
//! each entity carries.

use serde_json::{Value, json};

use super::policies::{PolicyRef, policy_key, resolve};
use super::roles::{authorize_role, document_json};
use super::users::{authorize_user, load_group};
use super::{iam_arn, key, limit_exceeded, lower, no_such_entity, page, path_prefix};
use crate::api::{OpCtx, required_str};
use crate::error::Result;
use crate::policy::{Policy, PolicyKind, policy_size};
use crate::store::Txn;

/// IAM's quota of managed policies attached to one user, group or role.
const MAX_ATTACHED: usize = 10;

// ---- attachments ----

/// The principal entity a policy is attached to.
#[derive(Clone, Copy)]
enum Entity {
    User,
    Group,
    Role,
}

impl Entity {
    fn member(self) -> &'static str {
        match self {
            Entity::User => "UserName",
            Entity::Group => "GroupName",
            Entity::Role => "RoleName",
        }
    }

    fn area(self, what: &str) -> String {
        let prefix = match self {
            Entity::User => "user",
            Entity::Group => "group",
            Entity::Role => "role",
        };
        format!("{prefix}-{what}")
    }

    fn quota_name(self) -> &'static str {
        match self {
            Entity::User => "PoliciesPerUser",
            Entity::Group => "PoliciesPerGroup",
            Entity::Role => "PoliciesPerRole",
        }
    }

    /// IAM's quota on the aggregate size of an entity's inline policies.
    fn inline_quota(self) -> usize {
        match self {
            Entity::User => 2048,
            Entity::Group => 5120,
            Entity::Role => 10240,
        }
    }

    /// Authorizes the operation on the entity and returns its stored (lower-cased) name.
    fn authorize(self, ctx: &mut OpCtx<'_, '_>, name: &str) -> Result<String> {
        match self {
            Entity::User => authorize_user(ctx, name).map(|u| lower(&u.name)),
            Entity::Role => authorize_role(ctx, name).map(|r| lower(&r.name)),
            Entity::Group => {
                let account = ctx.account()?.to_string();
                match load_group(ctx.txn, &account, name) {
                    Ok(group) => {
                        ctx.authorize(std::slice::from_ref(&group.arn))?;
                        Ok(lower(&group.name))
                    }
                    Err(e) => {
                        ctx.authorize(&[iam_arn(&account, "group", "/", name)])?;
                        Err(e)
                    }
                }
            }
        }
    }
}

fn attach(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let arn = required_str(input, "PolicyArn")?;
    ctx.context_mut().insert("iam:PolicyARN", arn);
    let lname = entity.authorize(ctx, name)?;
    let account = ctx.account()?.to_string();
    let target = resolve(ctx.txn, &account, arn)?;
    let attachment = key(&account, &[&entity.area("attached"), &lname, arn]);
    if ctx.txn.get(&attachment)?.is_some() {
        return Ok(json!({}));
    }
    let attached = ctx
        .txn
        .scan_prefix(
            &key(&account, &[&entity.area("attached"), &lname]),
            None,
            usize::MAX,
        )?
        .len();
    if attached >= MAX_ATTACHED {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for {}: {MAX_ATTACHED}",
            entity.quota_name()
        )));
    }
    ctx.txn.put(&attachment, b"{}")?;
    if let PolicyRef::Local(mut record) = target {
        record.attachment_count += 1;
        ctx.txn
            .put_json(&policy_key(&account, &record.name), &record)?;
    }
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn detach(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let arn = required_str(input, "PolicyArn")?;
    ctx.context_mut().insert("iam:PolicyARN", arn);
    let lname = entity.authorize(ctx, name)?;
    let account = ctx.account()?.to_string();
    if !ctx
        .txn
        .delete(&key(&account, &[&entity.area("attached"), &lname, arn]))?
    {
        return Err(no_such_entity(format!("Policy {arn} was not found.")));
    }
    if let Ok(PolicyRef::Local(mut record)) = resolve(ctx.txn, &account, arn) {
        record.attachment_count = (record.attachment_count - 1).max(0);
        ctx.txn
            .put_json(&policy_key(&account, &record.name), &record)?;
    }
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn list_attached(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let lname = entity.authorize(ctx, name)?;
    let account = ctx.account()?.to_string();
    let prefix = path_prefix(input)?;
    let mut rows = Vec::new();
    for (k, _) in ctx.txn.scan_prefix(
        &key(&account, &[&entity.area("attached"), &lname]),
        None,
        usize::MAX,
    )? {
        let arn = k.last().unwrap_or_default();
        let path_ok = arn
            .split_once(":policy")
            .is_some_and(|(_, rest)| rest.starts_with(&prefix));
        if path_ok {
            let policy_name = arn.rsplit('/').next().unwrap_or_default().to_owned();
            rows.push((
                arn.clone(),
                json!({"PolicyName": policy_name, "PolicyArn": arn}),
            ));
        }
    }
    page(rows, input, "AttachedPolicies", json!({}))
}

/// The managed policy ARNs attached to an entity (`user`, `group`, `role`; lower-cased name).
pub(crate) fn attached_arns(
    txn: &mut Txn<'_>,
    account: &str,
    entity: &str,
    lname: &str,
) -> Result<Vec<String>> {
    super::index_entries(txn, account, &format!("{entity}-attached"), lname)
}

/// The inline policies of an entity: `(policy name, document)`.
pub(crate) fn inline_policies(
    txn: &mut Txn<'_>,
    account: &str,
    entity: &str,
    lname: &str,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in txn.scan_prefix(
        &key(account, &[&format!("{entity}-policy"), lname]),
        None,
        usize::MAX,
    )? {
        let name = k.last().unwrap_or_default();
        out.push((
            name,
            String::from_utf8(v)
                .map_err(|_| crate::Error::storage("stored policy is not UTF-8"))?,
        ));
    }
    Ok(out)
}

pub(crate) fn attach_user_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    attach(ctx, input, Entity::User)
}
pub(crate) fn detach_user_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    detach(ctx, input, Entity::User)
}
pub(crate) fn attach_group_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    attach(ctx, input, Entity::Group)
}
pub(crate) fn detach_group_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    detach(ctx, input, Entity::Group)
}
pub(crate) fn attach_role_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    attach(ctx, input, Entity::Role)
}
pub(crate) fn detach_role_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    detach(ctx, input, Entity::Role)
}
pub(crate) fn list_attached_user_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    list_attached(ctx, input, Entity::User)
}
pub(crate) fn list_attached_group_policies(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    list_attached(ctx, input, Entity::Group)
}
pub(crate) fn list_attached_role_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    list_attached(ctx, input, Entity::Role)
}

// ---- inline policies ----

fn put_inline(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let policy_name = required_str(input, "PolicyName")?;
    super::check_name("PolicyName", policy_name, 128)?;
    let document = required_str(input, "PolicyDocument")?;
    let lname = entity.authorize(ctx, name)?;
    Policy::parse(PolicyKind::Identity, policy_name, document)?;
    let account = ctx.account()?.to_string();
    let area = entity.area("policy");
    let total: usize = inline_policies(ctx.txn, &account, &area[..area.len() - 7], &lname)?
        .iter()
        .filter(|(n, _)| n != policy_name)
        .map(|(_, d)| policy_size(d))
        .sum::<usize>()
        + policy_size(document);
    if total > entity.inline_quota() {
        return Err(limit_exceeded(format!(
            "Maximum policy size of {} bytes exceeded for {} {name}.",
            entity.inline_quota(),
            entity.member().trim_end_matches("Name").to_lowercase()
        )));
    }
    ctx.txn.put(
        &key(&account, &[&area, &lname, policy_name]),
        document.as_bytes(),
    )?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn get_inline(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let policy_name = required_str(input, "PolicyName")?;
    let lname = entity.authorize(ctx, name)?;
    let account = ctx.account()?.to_string();
    let doc = ctx
        .txn
        .get(&key(
            &account,
            &[&entity.area("policy"), &lname, policy_name],
        ))?
        .ok_or_else(|| {
            no_such_entity(format!(
                "The {} policy with name {policy_name} cannot be found.",
                entity.member().trim_end_matches("Name").to_lowercase()
            ))
        })?;
    let doc =
        String::from_utf8(doc).map_err(|_| crate::Error::storage("stored policy is not UTF-8"))?;
    let mut out = json!({"PolicyName": policy_name, "PolicyDocument": document_json(&doc)});
    crate::api::set_member(&mut out, entity.member(), json!(name));
    Ok(out)
}

fn delete_inline(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let policy_name = required_str(input, "PolicyName")?;
    let lname = entity.authorize(ctx, name)?;
    let account = ctx.account()?.to_string();
    if !ctx.txn.delete(&key(
        &account,
        &[&entity.area("policy"), &lname, policy_name],
    ))? {
        return Err(no_such_entity(format!(
            "The {} policy with name {policy_name} cannot be found.",
            entity.member().trim_end_matches("Name").to_lowercase()
        )));
    }
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn list_inline(ctx: &mut OpCtx<'_, '_>, input: &Value, entity: Entity) -> Result<Value> {
    let name = required_str(input, entity.member())?;
    let lname = entity.authorize(ctx, name)?;
    let account = ctx.account()?.to_string();
    let rows = ctx
        .txn
        .scan_prefix(
            &key(&account, &[&entity.area("policy"), &lname]),
            None,
            usize::MAX,
        )?
        .into_iter()
        .filter_map(|(k, _)| k.last())
        .map(|n| (n.clone(), json!(n)))
        .collect();
    page(rows, input, "PolicyNames", json!({}))
}

pub(crate) fn put_user_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    put_inline(ctx, input, Entity::User)
}
pub(crate) fn get_user_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    get_inline(ctx, input, Entity::User)
}
pub(crate) fn delete_user_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    delete_inline(ctx, input, Entity::User)
}
pub(crate) fn list_user_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    list_inline(ctx, input, Entity::User)
}
pub(crate) fn put_group_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    put_inline(ctx, input, Entity::Group)
}
pub(crate) fn get_group_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    get_inline(ctx, input, Entity::Group)
}
pub(crate) fn delete_group_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    delete_inline(ctx, input, Entity::Group)
}
pub(crate) fn list_group_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    list_inline(ctx, input, Entity::Group)
}
pub(crate) fn put_role_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    put_inline(ctx, input, Entity::Role)
}
pub(crate) fn get_role_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    get_inline(ctx, input, Entity::Role)
}
pub(crate) fn delete_role_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    delete_inline(ctx, input, Entity::Role)
}
pub(crate) fn list_role_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    list_inline(ctx, input, Entity::Role)
}
