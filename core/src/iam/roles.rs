//! Roles: trust policies, session limits, boundaries and tags.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::users::boundary_json;
use super::{
    Tags, already_exists, iam_arn, key, lower, merge_tags, no_such_entity, page, path_member,
    path_prefix, request_tags_context, resource_tags_context, tag_keys_member, tags_json,
    tags_member, unique_id, validation_error,
};
use crate::api::{OpCtx, optional_i64, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::error::Result;
use crate::policy::{Policy, PolicyKind, policy_size};

/// IAM's default quota for a role trust policy, in characters other than white space.
const MAX_TRUST_POLICY: usize = 2048;

/// A stored IAM role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoleRecord {
    pub name: String,
    pub role_id: String,
    pub path: String,
    pub arn: String,
    pub create_date: i64,
    pub trust_policy: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub boundary: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

impl RoleRecord {
    fn to_json(&self) -> Value {
        let mut role = json!({
            "Path": self.path,
            "RoleName": self.name,
            "RoleId": self.role_id,
            "Arn": self.arn,
            "CreateDate": epoch_seconds(self.create_date),
            "AssumeRolePolicyDocument": document_json(&self.trust_policy),
            "MaxSessionDuration": self.max_session_duration,
            "RoleLastUsed": {},
        });
        if let Some(d) = &self.description {
            crate::api::set_member(&mut role, "Description", json!(d));
        }
        if let Some(b) = &self.boundary {
            crate::api::set_member(&mut role, "PermissionsBoundary", boundary_json(b));
        }
        if !self.tags.is_empty() {
            crate::api::set_member(&mut role, "Tags", tags_json(&self.tags));
        }
        role
    }
}

/// A stored document as the SDKs hand it out: the JSON object.
pub(crate) fn document_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

pub(crate) fn role_key(account: &str, name: &str) -> crate::store::Key {
    key(account, &["role", &lower(name)])
}

pub(crate) fn authorize_role(ctx: &mut OpCtx<'_, '_>, name: &str) -> Result<RoleRecord> {
    let account = ctx.account()?.to_string();
    let role: Option<RoleRecord> = ctx.txn.get_json(&role_key(&account, name))?;
    if let Some(role) = role {
        resource_tags_context(ctx, &role.tags);
        ctx.authorize(std::slice::from_ref(&role.arn))?;
        Ok(role)
    } else {
        ctx.authorize(&[iam_arn(&account, "role", "/", name)])?;
        Err(no_such_entity(format!(
            "The role with name {name} cannot be found."
        )))
    }
}

/// Validates a trust policy as IAM does for `AssumeRolePolicyDocument`.
fn check_trust_policy(text: &str) -> Result<()> {
    if policy_size(text) > MAX_TRUST_POLICY {
        return Err(super::limit_exceeded(format!(
            "Cannot exceed quota for ACLSizePerRole: {MAX_TRUST_POLICY}"
        )));
    }
    Policy::parse(PolicyKind::Trust, "trust policy", text).map(|_| ())
}

fn session_duration(input: &Value) -> Result<Option<i64>> {
    match optional_i64(input, "MaxSessionDuration")? {
        Some(d) if !(3600..=43200).contains(&d) => Err(validation_error(format!(
            "1 validation error detected: Value '{d}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value between 3600 and 43200"
        ))),
        d => Ok(d),
    }
}

fn description(input: &Value) -> Result<Option<String>> {
    match optional_str(input, "Description")? {
        Some(d) if d.chars().count() > 1000 => Err(validation_error(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        )),
        d => Ok(d.map(str::to_owned)),
    }
}

pub(crate) fn create_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    super::check_name("RoleName", name, 64)?;
    let path = path_member(input, "Path")?;
    let trust = required_str(input, "AssumeRolePolicyDocument")?;
    let max_session_duration = session_duration(input)?.unwrap_or(3600);
    let description = description(input)?;
    let tags = tags_member(input)?;
    let boundary = optional_str(input, "PermissionsBoundary")?.map(str::to_owned);
    let account = ctx.account()?.to_string();
    let arn = iam_arn(&account, "role", &path, name);
    request_tags_context(ctx, &tags);
    if let Some(b) = &boundary {
        ctx.context_mut().insert("iam:PermissionsBoundary", b);
    }
    ctx.authorize(std::slice::from_ref(&arn))?;
    check_trust_policy(trust)?;
    if ctx.txn.get(&role_key(&account, name))?.is_some() {
        return Err(already_exists(format!(
            "Role with name {name} already exists."
        )));
    }
    if let Some(b) = &boundary {
        super::policies::check_boundary(ctx.txn, &account, b)?;
        super::policies::adjust_boundary_usage(ctx.txn, &account, b, 1)?;
    }
    let role = RoleRecord {
        name: name.to_owned(),
        role_id: unique_id("AROA", 21),
        path,
        arn,
        create_date: ctx.now(),
        trust_policy: trust.to_owned(),
        description,
        max_session_duration,
        boundary,
        tags,
    };
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    ctx.audit_resources
        .push(("AWS::IAM::Role".into(), role.arn.clone()));
    Ok(json!({"Role": role.to_json()}))
}

pub(crate) fn get_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let role = authorize_role(ctx, name)?;
    Ok(json!({"Role": role.to_json()}))
}

pub(crate) fn list_roles(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let prefix = path_prefix(input)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[iam_arn(&account, "role", &prefix, "")])?;
    let mut rows = Vec::new();
    for (_, v) in ctx
        .txn
        .scan_prefix(&key(&account, &["role"]), None, usize::MAX)?
    {
        let role: RoleRecord = serde_json::from_slice(&v)?;
        if role.path.starts_with(&prefix) {
            let mut json = role.to_json();
            if let Some(obj) = json.as_object_mut() {
                obj.remove("Tags");
                obj.remove("PermissionsBoundary");
                obj.remove("RoleLastUsed");
            }
            rows.push((role.name.clone(), json));
        }
    }
    page(rows, input, "Roles", json!({}))
}

pub(crate) fn delete_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let role = authorize_role(ctx, name)?;
    let account = ctx.account()?.to_string();
    super::refuse_if_in_use(
        ctx.txn,
        &account,
        &lower(name),
        &[
            (
                "role-policy",
                "Cannot delete entity, must delete policies first.",
            ),
            (
                "role-attached",
                "Cannot delete entity, must detach all policies first.",
            ),
        ],
    )?;
    ctx.txn.delete(&role_key(&account, name))?;
    if let Some(b) = &role.boundary {
        super::policies::adjust_boundary_usage(ctx.txn, &account, b, -1)?;
    }
    super::authz::bump_generation(ctx.txn, &account)?;
    ctx.audit_resources
        .push(("AWS::IAM::Role".into(), role.arn));
    Ok(json!({}))
}

pub(crate) fn update_assume_role_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let document = required_str(input, "PolicyDocument")?;
    let mut role = authorize_role(ctx, name)?;
    check_trust_policy(document)?;
    document.clone_into(&mut role.trust_policy);
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn update_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let duration = session_duration(input)?;
    let description = description(input)?;
    let mut role = authorize_role(ctx, name)?;
    if let Some(d) = duration {
        role.max_session_duration = d;
    }
    if description.is_some() {
        role.description = description;
    }
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    Ok(json!({}))
}

pub(crate) fn tag_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let tags = tags_member(input)?;
    request_tags_context(ctx, &tags);
    let mut role = authorize_role(ctx, name)?;
    merge_tags(&mut role.tags, tags)?;
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn untag_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let keys = tag_keys_member(input)?;
    ctx.context_mut().insert_multi("aws:TagKeys", &keys);
    let mut role = authorize_role(ctx, name)?;
    role.tags
        .retain(|k, _| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}
