//! Users, groups and group membership.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Tags, already_exists, iam_arn, key, lower, merge_tags, no_such_entity, page, path_member,
    path_prefix, request_tags_context, resource_tags_context, tag_keys_member, tags_json,
    tags_member, unique_id,
};
use crate::api::{OpCtx, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::error::Result;
use crate::store::Txn;

/// A stored IAM user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub name: String,
    pub user_id: String,
    pub path: String,
    pub arn: String,
    pub create_date: i64,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub boundary: Option<String>,
}

impl UserRecord {
    pub fn to_json(&self) -> Value {
        let mut user = json!({
            "Path": self.path,
            "UserName": self.name,
            "UserId": self.user_id,
            "Arn": self.arn,
            "CreateDate": epoch_seconds(self.create_date),
        });
        if let Some(boundary) = &self.boundary {
            crate::api::set_member(&mut user, "PermissionsBoundary", boundary_json(boundary));
        }
        if !self.tags.is_empty() {
            crate::api::set_member(&mut user, "Tags", tags_json(&self.tags));
        }
        user
    }
}

/// A stored IAM group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    pub name: String,
    pub group_id: String,
    pub path: String,
    pub arn: String,
    pub create_date: i64,
}

impl GroupRecord {
    fn to_json(&self) -> Value {
        json!({
            "Path": self.path,
            "GroupName": self.name,
            "GroupId": self.group_id,
            "Arn": self.arn,
            "CreateDate": epoch_seconds(self.create_date),
        })
    }
}

pub(crate) fn boundary_json(arn: &str) -> Value {
    json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": arn})
}

pub(crate) fn user_key(account: &str, name: &str) -> crate::store::Key {
    key(account, &["user", &lower(name)])
}

pub(crate) fn group_key(account: &str, name: &str) -> crate::store::Key {
    key(account, &["group", &lower(name)])
}

/// Loads a user or fails with IAM's `NoSuchEntity`.
pub(crate) fn load_user(txn: &mut Txn<'_>, account: &str, name: &str) -> Result<UserRecord> {
    txn.get_json(&user_key(account, name))?
        .ok_or_else(|| no_such_entity(format!("The user with name {name} cannot be found.")))
}

pub(crate) fn load_group(txn: &mut Txn<'_>, account: &str, name: &str) -> Result<GroupRecord> {
    txn.get_json(&group_key(account, name))?
        .ok_or_else(|| no_such_entity(format!("The group with name {name} cannot be found.")))
}

/// Authorizes `ctx`'s operation on an existing user (with its tags as `aws:ResourceTag/*`) and
/// returns the user. A missing user is reported only to callers allowed to ask about it.
pub(crate) fn authorize_user(ctx: &mut OpCtx<'_, '_>, name: &str) -> Result<UserRecord> {
    let account = ctx.account()?.to_string();
    let user: Option<UserRecord> = ctx.txn.get_json(&user_key(&account, name))?;
    if let Some(user) = user {
        resource_tags_context(ctx, &user.tags);
        ctx.authorize(std::slice::from_ref(&user.arn))?;
        Ok(user)
    } else {
        ctx.authorize(&[iam_arn(&account, "user", "/", name)])?;
        Err(no_such_entity(format!(
            "The user with name {name} cannot be found."
        )))
    }
}

fn authorize_group(ctx: &mut OpCtx<'_, '_>, name: &str) -> Result<GroupRecord> {
    let account = ctx.account()?.to_string();
    let group: Option<GroupRecord> = ctx.txn.get_json(&group_key(&account, name))?;
    if let Some(group) = group {
        ctx.authorize(std::slice::from_ref(&group.arn))?;
        Ok(group)
    } else {
        ctx.authorize(&[iam_arn(&account, "group", "/", name)])?;
        Err(no_such_entity(format!(
            "The group with name {name} cannot be found."
        )))
    }
}

pub(crate) fn create_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    super::check_name("UserName", name, 64)?;
    let path = path_member(input, "Path")?;
    let tags = tags_member(input)?;
    let boundary = optional_str(input, "PermissionsBoundary")?.map(str::to_owned);
    let account = ctx.account()?.to_string();
    let arn = iam_arn(&account, "user", &path, name);
    request_tags_context(ctx, &tags);
    if let Some(b) = &boundary {
        ctx.context_mut().insert("iam:PermissionsBoundary", b);
    }
    ctx.authorize(std::slice::from_ref(&arn))?;
    if ctx.txn.get(&user_key(&account, name))?.is_some() {
        return Err(already_exists(format!(
            "User with name {name} already exists."
        )));
    }
    if let Some(b) = &boundary {
        super::policies::check_boundary(ctx.txn, &account, b)?;
        super::policies::adjust_boundary_usage(ctx.txn, &account, b, 1)?;
    }
    let user = UserRecord {
        name: name.to_owned(),
        user_id: unique_id("AIDA", 21),
        path,
        arn,
        create_date: ctx.now(),
        tags,
        boundary,
    };
    ctx.txn.put_json(&user_key(&account, name), &user)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    ctx.audit_resources
        .push(("AWS::IAM::User".into(), user.arn.clone()));
    Ok(json!({"User": user.to_json()}))
}

pub(crate) fn get_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = match optional_str(input, "UserName")? {
        Some(name) => name.to_owned(),
        None => match &ctx.req.principal {
            crate::api::Principal::User { name, .. } => name.clone(),
            crate::api::Principal::Root(account) => {
                // The root user asking about itself, as IAM answers it.
                let arn = format!("arn:aws:iam::{account}:root");
                let account = account.to_string();
                ctx.authorize(std::slice::from_ref(&arn))?;
                return Ok(json!({"User": {
                    "UserId": account, "Arn": arn, "Path": "/", "UserName": "root",
                    "CreateDate": epoch_seconds(0),
                }}));
            }
            _ => {
                return Err(super::validation_error(
                    "Must specify userName when calling with non-User credentials",
                ));
            }
        },
    };
    let user = authorize_user(ctx, &name)?;
    Ok(json!({"User": user.to_json()}))
}

pub(crate) fn list_users(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let prefix = path_prefix(input)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[iam_arn(&account, "user", &prefix, "")])?;
    let mut rows = Vec::new();
    for (_, v) in ctx
        .txn
        .scan_prefix(&key(&account, &["user"]), None, usize::MAX)?
    {
        let user: UserRecord = serde_json::from_slice(&v)?;
        if user.path.starts_with(&prefix) {
            let mut json = user.to_json();
            if let Some(obj) = json.as_object_mut() {
                obj.remove("Tags");
            }
            rows.push((user.name.clone(), json));
        }
    }
    page(rows, input, "Users", json!({}))
}

pub(crate) fn update_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let new_name = optional_str(input, "NewUserName")?;
    let new_path = match optional_str(input, "NewPath")? {
        Some(_) => Some(path_member(input, "NewPath")?),
        None => None,
    };
    if let Some(n) = new_name {
        super::check_name("NewUserName", n, 64)?;
    }
    let mut user = authorize_user(ctx, name)?;
    let account = ctx.account()?.to_string();
    if let Some(n) = new_name
        && !n.eq_ignore_ascii_case(name)
        && ctx.txn.get(&user_key(&account, n))?.is_some()
    {
        return Err(already_exists(format!(
            "User with name {n} already exists."
        )));
    }
    let final_name = new_name.unwrap_or(&user.name).to_owned();
    let final_path = new_path.unwrap_or_else(|| user.path.clone());
    // IAM wants permission on the user as it will be too (a new path can bring it under
    // other policies).
    let target = iam_arn(&account, "user", &final_path, &final_name);
    if target != user.arn {
        ctx.authorize(std::slice::from_ref(&target))?;
    }
    ctx.txn.delete(&user_key(&account, name))?;
    if lower(&final_name) != lower(name) {
        for area in [
            "user-policy",
            "user-attached",
            "user-group",
            "user-key",
            "user-credential",
            "user-ssh",
            "user-mfa",
        ] {
            move_prefix(
                ctx.txn,
                &key(&account, &[area, &lower(name)]),
                &key(&account, &[area, &lower(&final_name)]),
            )?;
        }
        let groups = ctx.txn.scan_prefix(
            &key(&account, &["user-group", &lower(&final_name)]),
            None,
            usize::MAX,
        )?;
        for (k, _) in groups {
            let group = k.last().unwrap_or_default();
            ctx.txn
                .delete(&key(&account, &["member", &group, &lower(name)]))?;
            ctx.txn.put(
                &key(&account, &["member", &group, &lower(&final_name)]),
                b"{}",
            )?;
        }
        super::ssh_keys::rename_owner(ctx.txn, &account, &lower(&final_name), &final_name)?;
        #[cfg(feature = "crypto")]
        super::mfa::rename_owner(ctx.txn, &account, &lower(&final_name), &final_name)?;
        #[cfg(feature = "crypto")]
        super::git_credentials::rename_owner(ctx.txn, &account, &lower(&final_name), &final_name)?;
        #[cfg(feature = "crypto")]
        super::access_keys::rename_owner(ctx.txn, &account, &lower(&final_name), &final_name)?;
    }
    user.arn = iam_arn(&account, "user", &final_path, &final_name);
    user.name = final_name;
    user.path = final_path;
    ctx.txn.put_json(&user_key(&account, &user.name), &user)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

/// Moves every record under `from` to the same suffix under `to`.
pub(crate) fn move_prefix(
    txn: &mut Txn<'_>,
    from: &crate::store::Key,
    to: &crate::store::Key,
) -> Result<()> {
    for (k, v) in txn.scan_prefix(from, None, usize::MAX)? {
        let suffix = k
            .as_bytes()
            .get(from.as_bytes().len()..)
            .unwrap_or_default()
            .to_vec();
        let mut target = to.as_bytes().to_vec();
        target.extend_from_slice(&suffix);
        txn.delete(&k)?;
        txn.put(&crate::store::Key::from_raw(target), &v)?;
    }
    Ok(())
}

pub(crate) fn delete_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let user = authorize_user(ctx, name)?;
    let account = ctx.account()?.to_string();
    let lname = lower(name);
    super::refuse_if_in_use(
        ctx.txn,
        &account,
        &lname,
        &[
            (
                "user-policy",
                "Cannot delete entity, must delete policies first.",
            ),
            (
                "user-attached",
                "Cannot delete entity, must detach all policies first.",
            ),
            (
                "user-group",
                "Cannot delete entity, must remove users from group first.",
            ),
            (
                "user-key",
                "Cannot delete entity, must delete access keys first.",
            ),
            (
                "user-credential",
                "Cannot delete entity, must delete service specific credentials first.",
            ),
            (
                "user-ssh",
                "Cannot delete entity, must delete SSH public keys first.",
            ),
            (
                "user-mfa",
                "Cannot delete entity, must delete MFA device first.",
            ),
        ],
    )?;
    ctx.txn.delete(&user_key(&account, name))?;
    if let Some(b) = &user.boundary {
        super::policies::adjust_boundary_usage(ctx.txn, &account, b, -1)?;
    }
    super::authz::bump_generation(ctx.txn, &account)?;
    ctx.audit_resources
        .push(("AWS::IAM::User".into(), user.arn));
    Ok(json!({}))
}

pub(crate) fn tag_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let tags = tags_member(input)?;
    request_tags_context(ctx, &tags);
    let mut user = authorize_user(ctx, name)?;
    merge_tags(&mut user.tags, tags)?;
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&user_key(&account, name), &user)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn untag_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let keys = tag_keys_member(input)?;
    ctx.context_mut().insert_multi("aws:TagKeys", &keys);
    let mut user = authorize_user(ctx, name)?;
    user.tags
        .retain(|k, _| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
    let account = ctx.account()?.to_string();
    ctx.txn.put_json(&user_key(&account, name), &user)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn list_user_tags(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let user = authorize_user(ctx, name)?;
    let rows = user
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), json!({"Key": k, "Value": v})))
        .collect();
    page(rows, input, "Tags", json!({}))
}

// ---- groups ----

pub(crate) fn create_group(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "GroupName")?;
    super::check_name("GroupName", name, 128)?;
    let path = path_member(input, "Path")?;
    let account = ctx.account()?.to_string();
    let arn = iam_arn(&account, "group", &path, name);
    ctx.authorize(std::slice::from_ref(&arn))?;
    if ctx.txn.get(&group_key(&account, name))?.is_some() {
        return Err(already_exists(format!(
            "Group with name {name} already exists."
        )));
    }
    let group = GroupRecord {
        name: name.to_owned(),
        group_id: unique_id("AGPA", 21),
        path,
        arn,
        create_date: ctx.now(),
    };
    ctx.txn.put_json(&group_key(&account, name), &group)?;
    ctx.audit_resources
        .push(("AWS::IAM::Group".into(), group.arn.clone()));
    Ok(json!({"Group": group.to_json()}))
}

pub(crate) fn get_group(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "GroupName")?;
    let group = authorize_group(ctx, name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for (k, _) in
        ctx.txn
            .scan_prefix(&key(&account, &["member", &lower(name)]), None, usize::MAX)?
    {
        let member = k.last().unwrap_or_default();
        if let Some(user) = ctx
            .txn
            .get_json::<UserRecord>(&user_key(&account, &member))?
        {
            rows.push((user.name.clone(), user.to_json()));
        }
    }
    page(rows, input, "Users", json!({"Group": group.to_json()}))
}

pub(crate) fn list_groups(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let prefix = path_prefix(input)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[iam_arn(&account, "group", &prefix, "")])?;
    let mut rows = Vec::new();
    for (_, v) in ctx
        .txn
        .scan_prefix(&key(&account, &["group"]), None, usize::MAX)?
    {
        let group: GroupRecord = serde_json::from_slice(&v)?;
        if group.path.starts_with(&prefix) {
            rows.push((group.name.clone(), group.to_json()));
        }
    }
    page(rows, input, "Groups", json!({}))
}

pub(crate) fn delete_group(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "GroupName")?;
    let group = authorize_group(ctx, name)?;
    let account = ctx.account()?.to_string();
    let lname = lower(name);
    super::refuse_if_in_use(
        ctx.txn,
        &account,
        &lname,
        &[
            (
                "member",
                "Cannot delete entity, must remove users from group first.",
            ),
            (
                "group-policy",
                "Cannot delete entity, must delete policies first.",
            ),
            (
                "group-attached",
                "Cannot delete entity, must detach all policies first.",
            ),
        ],
    )?;
    ctx.txn.delete(&group_key(&account, name))?;
    ctx.audit_resources
        .push(("AWS::IAM::Group".into(), group.arn));
    Ok(json!({}))
}

pub(crate) fn add_user_to_group(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let group_name = required_str(input, "GroupName")?;
    let user_name = required_str(input, "UserName")?;
    let group = authorize_group(ctx, group_name)?;
    let account = ctx.account()?.to_string();
    let user = load_user(ctx.txn, &account, user_name)?;
    let (lg, lu) = (lower(&group.name), lower(&user.name));
    if ctx
        .txn
        .get(&key(&account, &["member", &lg, &lu]))?
        .is_none()
    {
        let count = ctx
            .txn
            .scan_prefix(&key(&account, &["user-group", &lu]), None, usize::MAX)?
            .len();
        if count >= 10 {
            return Err(super::limit_exceeded(
                "Cannot exceed quota for GroupsPerUser: 10",
            ));
        }
    }
    ctx.txn.put(&key(&account, &["member", &lg, &lu]), b"{}")?;
    ctx.txn
        .put(&key(&account, &["user-group", &lu, &lg]), b"{}")?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn remove_user_from_group(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let group_name = required_str(input, "GroupName")?;
    let user_name = required_str(input, "UserName")?;
    let group = authorize_group(ctx, group_name)?;
    let account = ctx.account()?.to_string();
    let user = load_user(ctx.txn, &account, user_name)?;
    let (lg, lu) = (lower(&group.name), lower(&user.name));
    if !ctx.txn.delete(&key(&account, &["member", &lg, &lu]))? {
        return Err(no_such_entity(format!(
            "The user with name {user_name} cannot be found in group {group_name}."
        )));
    }
    ctx.txn.delete(&key(&account, &["user-group", &lu, &lg]))?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn list_groups_for_user(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let user = authorize_user(ctx, name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for group in groups_of(ctx.txn, &account, &user.name)? {
        rows.push((group.name.clone(), group.to_json()));
    }
    page(rows, input, "Groups", json!({}))
}

/// The groups a user belongs to.
pub(crate) fn groups_of(txn: &mut Txn<'_>, account: &str, user: &str) -> Result<Vec<GroupRecord>> {
    let mut groups = Vec::new();
    for name in super::index_entries(txn, account, "user-group", &lower(user))? {
        if let Some(group) = txn.get_json::<GroupRecord>(&key(account, &["group", &name]))? {
            groups.push(group);
        }
    }
    Ok(groups)
}
