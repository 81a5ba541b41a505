//! The IAM service: users, groups, roles, managed and inline policies, permissions boundaries
//! and access keys, with IAM's operation names, shapes and error codes; and the loading of a
//! principal's policies for the policy engine ([`crate::policy`]).
//!
//! Names of users, groups, roles and policies are unique without regard to case, as in IAM:
//! records are stored under the lower-cased name and keep the name as written.

#[cfg(feature = "crypto")]
mod access_keys;
mod authenticate;
pub(crate) mod authz;
pub(crate) mod entity_policies;
#[cfg(feature = "crypto")]
pub(crate) mod git_credentials;
#[cfg(feature = "crypto")]
mod mfa;
mod policies;
mod roles;
mod scp;
#[cfg(feature = "crypto")]
pub(crate) mod sigv4;
mod simulate;
pub(crate) mod ssh_keys;
#[cfg(feature = "crypto")]
pub(crate) mod sts;
#[cfg(feature = "crypto")]
mod totp;
pub(crate) mod users;

#[cfg(feature = "crypto")]
pub(crate) use mfa::MfaThrottle;
pub(crate) use scp::SCP_OPERATIONS;
#[cfg(feature = "crypto")]
pub(crate) use sts::{STS_OPERATIONS, TokenKey};

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{OpCtx, Operation, optional_i64, optional_str, required_str};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Key;

pub(crate) use users::UserRecord;

macro_rules! iam_op {
    ($name:literal, $handler:expr, read_only = $ro:expr, secrets = $secrets:expr) => {
        Operation {
            service: "iam",
            iam_prefix: "iam",
            event_source: "iam.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: $secrets,
            resources: IAM_RESOURCES,
            handler: $handler,
        }
    };
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        iam_op!($name, $handler, read_only = $ro, secrets = &[])
    };
}

/// IAM's resource types (`*` for listing policies and for unknown access keys).
const IAM_RESOURCES: &[&str] = &[
    "arn:aws:iam::*:user/*",
    "arn:aws:iam::*:group/*",
    "arn:aws:iam::*:role/*",
    "arn:aws:iam::*:policy/*",
    "arn:aws:iam::*:root",
    "arn:aws:iam::*:mfa/*",
    "*",
];

/// Every IAM operation.
pub(crate) static IAM_OPERATIONS: &[Operation] = &[
    iam_op!("CreateUser", users::create_user, read_only = false),
    iam_op!("GetUser", users::get_user, read_only = true),
    iam_op!("ListUsers", users::list_users, read_only = true),
    iam_op!("UpdateUser", users::update_user, read_only = false),
    iam_op!("DeleteUser", users::delete_user, read_only = false),
    iam_op!("TagUser", users::tag_user, read_only = false),
    iam_op!("UntagUser", users::untag_user, read_only = false),
    iam_op!("ListUserTags", users::list_user_tags, read_only = true),
    iam_op!(
        "SimulatePrincipalPolicy",
        simulate::simulate_principal_policy,
        read_only = true
    ),
    iam_op!(
        "SimulateCustomPolicy",
        simulate::simulate_custom_policy,
        read_only = true
    ),
    iam_op!(
        "UploadSSHPublicKey",
        ssh_keys::upload_ssh_public_key,
        read_only = false
    ),
    iam_op!(
        "GetSSHPublicKey",
        ssh_keys::get_ssh_public_key,
        read_only = true
    ),
    iam_op!(
        "ListSSHPublicKeys",
        ssh_keys::list_ssh_public_keys,
        read_only = true
    ),
    iam_op!(
        "UpdateSSHPublicKey",
        ssh_keys::update_ssh_public_key,
        read_only = false
    ),
    iam_op!(
        "DeleteSSHPublicKey",
        ssh_keys::delete_ssh_public_key,
        read_only = false
    ),
    iam_op!("CreateGroup", users::create_group, read_only = false),
    iam_op!("GetGroup", users::get_group, read_only = true),
    iam_op!("ListGroups", users::list_groups, read_only = true),
    iam_op!("DeleteGroup", users::delete_group, read_only = false),
    iam_op!(
        "AddUserToGroup",
        users::add_user_to_group,
        read_only = false
    ),
    iam_op!(
        "RemoveUserFromGroup",
        users::remove_user_from_group,
        read_only = false
    ),
    iam_op!(
        "ListGroupsForUser",
        users::list_groups_for_user,
        read_only = true
    ),
    iam_op!("CreateRole", roles::create_role, read_only = false),
    iam_op!("GetRole", roles::get_role, read_only = true),
    iam_op!("ListRoles", roles::list_roles, read_only = true),
    iam_op!("DeleteRole", roles::delete_role, read_only = false),
    iam_op!(
        "UpdateAssumeRolePolicy",
        roles::update_assume_role_policy,
        read_only = false
    ),
    iam_op!("UpdateRole", roles::update_role, read_only = false),
    iam_op!("TagRole", roles::tag_role, read_only = false),
    iam_op!("UntagRole", roles::untag_role, read_only = false),
    iam_op!("CreatePolicy", policies::create_policy, read_only = false),
    iam_op!("GetPolicy", policies::get_policy, read_only = true),
    iam_op!("ListPolicies", policies::list_policies, read_only = true),
    iam_op!("DeletePolicy", policies::delete_policy, read_only = false),
    iam_op!(
        "CreatePolicyVersion",
        policies::create_policy_version,
        read_only = false
    ),
    iam_op!(
        "GetPolicyVersion",
        policies::get_policy_version,
        read_only = true
    ),
    iam_op!(
        "ListPolicyVersions",
        policies::list_policy_versions,
        read_only = true
    ),
    iam_op!(
        "SetDefaultPolicyVersion",
        policies::set_default_policy_version,
        read_only = false
    ),
    iam_op!(
        "DeletePolicyVersion",
        policies::delete_policy_version,
        read_only = false
    ),
    iam_op!(
        "AttachUserPolicy",
        entity_policies::attach_user_policy,
        read_only = false
    ),
    iam_op!(
        "DetachUserPolicy",
        entity_policies::detach_user_policy,
        read_only = false
    ),
    iam_op!(
        "AttachGroupPolicy",
        entity_policies::attach_group_policy,
        read_only = false
    ),
    iam_op!(
        "DetachGroupPolicy",
        entity_policies::detach_group_policy,
        read_only = false
    ),
    iam_op!(
        "AttachRolePolicy",
        entity_policies::attach_role_policy,
        read_only = false
    ),
    iam_op!(
        "DetachRolePolicy",
        entity_policies::detach_role_policy,
        read_only = false
    ),
    iam_op!(
        "ListAttachedUserPolicies",
        entity_policies::list_attached_user_policies,
        read_only = true
    ),
    iam_op!(
        "ListAttachedGroupPolicies",
        entity_policies::list_attached_group_policies,
        read_only = true
    ),
    iam_op!(
        "ListAttachedRolePolicies",
        entity_policies::list_attached_role_policies,
        read_only = true
    ),
    iam_op!(
        "PutUserPolicy",
        entity_policies::put_user_policy,
        read_only = false
    ),
    iam_op!(
        "GetUserPolicy",
        entity_policies::get_user_policy,
        read_only = true
    ),
    iam_op!(
        "DeleteUserPolicy",
        entity_policies::delete_user_policy,
        read_only = false
    ),
    iam_op!(
        "ListUserPolicies",
        entity_policies::list_user_policies,
        read_only = true
    ),
    iam_op!(
        "PutGroupPolicy",
        entity_policies::put_group_policy,
        read_only = false
    ),
    iam_op!(
        "GetGroupPolicy",
        entity_policies::get_group_policy,
        read_only = true
    ),
    iam_op!(
        "DeleteGroupPolicy",
        entity_policies::delete_group_policy,
        read_only = false
    ),
    iam_op!(
        "ListGroupPolicies",
        entity_policies::list_group_policies,
        read_only = true
    ),
    iam_op!(
        "PutRolePolicy",
        entity_policies::put_role_policy,
        read_only = false
    ),
    iam_op!(
        "GetRolePolicy",
        entity_policies::get_role_policy,
        read_only = true
    ),
    iam_op!(
        "DeleteRolePolicy",
        entity_policies::delete_role_policy,
        read_only = false
    ),
    iam_op!(
        "ListRolePolicies",
        entity_policies::list_role_policies,
        read_only = true
    ),
    iam_op!(
        "PutUserPermissionsBoundary",
        policies::put_user_permissions_boundary,
        read_only = false
    ),
    iam_op!(
        "DeleteUserPermissionsBoundary",
        policies::delete_user_permissions_boundary,
        read_only = false
    ),
    iam_op!(
        "PutRolePermissionsBoundary",
        policies::put_role_permissions_boundary,
        read_only = false
    ),
    iam_op!(
        "DeleteRolePermissionsBoundary",
        policies::delete_role_permissions_boundary,
        read_only = false
    ),
];

/// IAM operations on credentials: access keys and virtual MFA devices (their secrets are
/// wrapped by the keep's key provider).
#[cfg(feature = "crypto")]
pub(crate) static CREDENTIAL_OPERATIONS: &[Operation] = &[
    iam_op!(
        "CreateServiceSpecificCredential",
        git_credentials::create_service_specific_credential,
        read_only = false,
        secrets = &["ServicePassword"]
    ),
    iam_op!(
        "ResetServiceSpecificCredential",
        git_credentials::reset_service_specific_credential,
        read_only = false,
        secrets = &["ServicePassword"]
    ),
    iam_op!(
        "UpdateServiceSpecificCredential",
        git_credentials::update_service_specific_credential,
        read_only = false
    ),
    iam_op!(
        "ListServiceSpecificCredentials",
        git_credentials::list_service_specific_credentials,
        read_only = true
    ),
    iam_op!(
        "DeleteServiceSpecificCredential",
        git_credentials::delete_service_specific_credential,
        read_only = false
    ),
    iam_op!(
        "CreateVirtualMFADevice",
        mfa::create_virtual_mfa_device,
        read_only = false
    ),
    iam_op!("EnableMFADevice", mfa::enable_mfa_device, read_only = false),
    iam_op!(
        "DeactivateMFADevice",
        mfa::deactivate_mfa_device,
        read_only = false
    ),
    iam_op!("ListMFADevices", mfa::list_mfa_devices, read_only = true),
    iam_op!(
        "DeleteVirtualMFADevice",
        mfa::delete_virtual_mfa_device,
        read_only = false
    ),
    iam_op!(
        "CreateAccessKey",
        access_keys::create_access_key,
        read_only = false,
        secrets = &["SecretAccessKey"]
    ),
    iam_op!(
        "UpdateAccessKey",
        access_keys::update_access_key,
        read_only = false
    ),
    iam_op!(
        "DeleteAccessKey",
        access_keys::delete_access_key,
        read_only = false
    ),
    iam_op!(
        "ListAccessKeys",
        access_keys::list_access_keys,
        read_only = true
    ),
    iam_op!(
        "GetAccessKeyLastUsed",
        access_keys::get_access_key_last_used,
        read_only = true
    ),
];

/// Records the use of the caller's long-term access key (for GetAccessKeyLastUsed).
#[cfg(feature = "crypto")]
pub(crate) fn note_access_key_used(
    txn: &mut crate::store::Txn<'_>,
    principal: &crate::api::Principal,
    service: &str,
    region: &str,
    now: i64,
) -> Result<()> {
    match principal {
        crate::api::Principal::User {
            access_key_id: Some(id),
            session: None,
            ..
        } => access_keys::note_used(txn, id, service, region, now),
        _ => Ok(()),
    }
}

/// Authenticates an access key and its secret (compared in constant time) to its user.
#[cfg(feature = "crypto")]
pub(crate) fn authenticate_access_key(
    txn: &mut crate::store::Txn<'_>,
    keep: &crate::keep::KeepInner,
    id: &str,
    secret: &str,
) -> Result<crate::api::Principal> {
    let record = access_keys::find_access_key(txn, id)?
        .filter(access_keys::AccessKeyRecord::is_active)
        .ok_or_else(|| crate::api::invalid_token(id))?;
    let stored = record.secret(keep)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        stored.as_slice(),
        secret.as_bytes(),
    )) {
        return Err(signature_mismatch());
    }
    let account: crate::arn::AccountId = record.account.parse()?;
    let user = users::load_user(txn, &record.account, &record.user)?;
    Ok(crate::api::Principal::from_user(
        account,
        user,
        Some(record.access_key_id),
    ))
}

/// Authenticates a SigV4-signed request: the access key's (or the session's) secret must
/// produce the request's signature.
#[cfg(feature = "crypto")]
pub(crate) fn authenticate_signed(
    txn: &mut crate::store::Txn<'_>,
    keep: &crate::keep::KeepInner,
    request: &sigv4::SignedRequest,
) -> Result<crate::api::Principal> {
    let auth = sigv4::parse_authorization(request)?;
    let now = keep.clock.now_millis();
    let region = keep.region.as_str();
    let id = auth.access_key_id;
    let token = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
        .map(|(_, v)| v.as_str());
    if let Some(token) = token {
        let secret = sts::session_secret(keep, id, token)?;
        sigv4::verify(request, &auth, secret.as_bytes(), region, now)?;
        return sts::authenticate_session(txn, keep, id, &secret, token, now);
    }
    let record = access_keys::find_access_key(txn, id)?
        .filter(access_keys::AccessKeyRecord::is_active)
        .ok_or_else(|| crate::api::invalid_token(id))?;
    let secret = record.secret(keep)?;
    sigv4::verify(request, &auth, &secret, region, now)?;
    let secret =
        std::str::from_utf8(&secret).map_err(|_| Error::storage("stored secret is not text"))?;
    authenticate_access_key(txn, keep, id, secret)
}

// ---- errors, in IAM's codes and wording ----

pub(crate) fn no_such_entity(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::NotFound, "NoSuchEntity", message).with_status(404)
}

pub(crate) fn already_exists(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::AlreadyExists, "EntityAlreadyExists", message).with_status(409)
}

pub(crate) fn delete_conflict(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidState, "DeleteConflict", message).with_status(409)
}

pub(crate) fn limit_exceeded(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::LimitExceeded, "LimitExceeded", message).with_status(409)
}

pub(crate) fn invalid_input(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "InvalidInput", message)
}

pub(crate) fn validation_error(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "ValidationError", message)
}

/// The user an operation on credentials is about: `UserName`, or the calling IAM user (IAM's
/// operations on one's own credentials may leave the name out).
pub(crate) fn user_name_or_caller(ctx: &OpCtx<'_, '_>, input: &Value) -> Result<String> {
    match optional_str(input, "UserName")? {
        Some(name) => Ok(name.to_owned()),
        None => ctx
            .req
            .principal
            .user_name()
            .map(str::to_owned)
            .ok_or_else(|| {
                validation_error("UserName is required when the caller is not an IAM user")
            }),
    }
}

/// Reads a `Status` member: `Active` or `Inactive`.
pub(crate) fn status_member(input: &Value) -> Result<&str> {
    let status = required_str(input, "Status")?;
    if status == "Active" || status == "Inactive" {
        Ok(status)
    } else {
        Err(validation_error(format!(
            "1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
        )))
    }
}

/// AWS's answer to a secret that does not match.
#[cfg_attr(
    not(feature = "crypto"),
    expect(dead_code, reason = "only signature checks (with crypto) use it")
)]
pub(crate) fn signature_mismatch() -> Error {
    Error::aws(
        ErrorKind::AccessDenied,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    )
    .with_status(403)
}

// ---- names, paths, ids ----

/// Checks a user, group, role or policy name: 1..=`max` characters of `[\w+=,.@-]`.
pub(crate) fn check_name(member: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(validation_error(format!(
            "1 validation error detected: Value '{name}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and {max}",
            lower_first(member)
        )))
    }
}

/// Reads a `Path` member: `/` by default; otherwise it starts and ends with `/`.
pub(crate) fn path_member(input: &Value, member: &str) -> Result<String> {
    let Some(path) = optional_str(input, member)? else {
        return Ok("/".to_owned());
    };
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if ok {
        Ok(path.to_owned())
    } else {
        Err(validation_error(format!(
            "The specified value for {} is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.",
            lower_first(member)
        )))
    }
}

/// Reads an optional `PathPrefix` filter.
pub(crate) fn path_prefix(input: &Value) -> Result<String> {
    Ok(optional_str(input, "PathPrefix")?.unwrap_or("/").to_owned())
}

/// An IAM unique id: a four-letter prefix (`AIDA` users, `AGPA` groups, `AROA` roles, `ANPA`
/// policies, `AKIA` access keys, ...) and random base32 characters, `len` in all.
pub(crate) fn unique_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = crate::id::random_bytes::<32>();
    let mut id = prefix.to_owned();
    for b in bytes.iter().take(len.saturating_sub(prefix.len())) {
        if let Some(c) = ALPHABET.get(usize::from(b & 31)) {
            id.push(char::from(*c));
        }
    }
    id
}

pub(crate) fn iam_arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:{kind}{path}{name}")
}

pub(crate) fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A store key under the account's IAM space: `iam / account / parts...`.
pub(crate) fn key(account: &str, parts: &[&str]) -> Key {
    parts
        .iter()
        .fold(Key::new("iam").push(account), |k, p| k.push(p))
}

/// The last components of the index entries under `iam/<account>/<area>/<owner>`: the ids,
/// names or ARNs an entity's index lists (its keys, groups, attached policies, ...).
pub(crate) fn index_entries(
    txn: &mut crate::store::Txn<'_>,
    account: &str,
    area: &str,
    owner: &str,
) -> Result<Vec<String>> {
    Ok(txn
        .scan_prefix(&key(account, &[area, owner]), None, usize::MAX)?
        .into_iter()
        .filter_map(|(k, _)| k.last())
        .collect())
}

/// IAM's `DeleteConflict` for the first of `areas` under which `owner` still has an entry:
/// an entity is deleted only once what hangs off it is gone.
pub(crate) fn refuse_if_in_use(
    txn: &mut crate::store::Txn<'_>,
    account: &str,
    owner: &str,
    areas: &[(&str, &str)],
) -> Result<()> {
    for (area, message) in areas {
        if !txn
            .scan_prefix(&key(account, &[area, owner]), None, 1)?
            .is_empty()
        {
            return Err(delete_conflict(*message));
        }
    }
    Ok(())
}

// ---- tags ----

pub(crate) type Tags = BTreeMap<String, String>;

const MAX_TAGS: usize = 50;

/// Reads a `Tags` list (`[{"Key": ..., "Value": ...}]`).
pub(crate) fn tags_member(input: &Value) -> Result<Tags> {
    let mut tags = Tags::new();
    let Some(list) = crate::api::member(input, "Tags") else {
        return Ok(tags);
    };
    let list = list
        .as_array()
        .ok_or_else(|| validation_error("Tags must be a list of {Key, Value}"))?;
    for tag in list {
        let key = tag.get("Key").and_then(Value::as_str);
        let value = tag.get("Value").and_then(Value::as_str);
        let (Some(key), Some(value)) = (key, value) else {
            return Err(validation_error("each tag needs a Key and a Value"));
        };
        check_tag(key, value)?;
        if tags.keys().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(invalid_input(format!("Duplicate tag keys found: {key}")));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    if tags.len() > MAX_TAGS {
        return Err(limit_exceeded(
            "The number of tags has reached the maximum limit of 50.",
        ));
    }
    Ok(tags)
}

fn check_tag(key: &str, value: &str) -> Result<()> {
    let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
    if key.is_empty() || key.chars().count() > 128 || !key.chars().all(allowed) {
        return Err(validation_error(format!("tag key `{key}` is not valid")));
    }
    if value.chars().count() > 256 || !value.chars().all(allowed) {
        return Err(validation_error(format!(
            "the value of tag `{key}` is not valid"
        )));
    }
    Ok(())
}

/// Merges `new` into `tags` (a key that differs only in case replaces the old one).
pub(crate) fn merge_tags(tags: &mut Tags, new: Tags) -> Result<()> {
    for (k, v) in new {
        tags.retain(|old, _| !old.eq_ignore_ascii_case(&k));
        tags.insert(k, v);
    }
    if tags.len() > MAX_TAGS {
        return Err(limit_exceeded(
            "The number of tags has reached the maximum limit of 50.",
        ));
    }
    Ok(())
}

/// Reads `TagKeys`.
pub(crate) fn tag_keys_member(input: &Value) -> Result<Vec<String>> {
    crate::api::member(input, "TagKeys")
        .and_then(Value::as_array)
        .ok_or_else(|| validation_error("TagKeys must be a list of strings"))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_owned)
                .ok_or_else(|| validation_error("TagKeys must be a list of strings"))
        })
        .collect()
}

pub(crate) fn tags_json(tags: &Tags) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// Puts `aws:RequestTag/*` and `aws:TagKeys` into the request context.
pub(crate) fn request_tags_context(ctx: &mut OpCtx<'_, '_>, tags: &Tags) {
    for (k, v) in tags {
        ctx.context_mut().insert(&format!("aws:RequestTag/{k}"), v);
    }
    if !tags.is_empty() {
        ctx.context_mut().insert_multi("aws:TagKeys", tags.keys());
    }
}

/// Puts `aws:ResourceTag/*` into the request context.
pub(crate) fn resource_tags_context(ctx: &mut OpCtx<'_, '_>, tags: &Tags) {
    for (k, v) in tags {
        ctx.context_mut().insert(&format!("aws:ResourceTag/{k}"), v);
    }
}

// ---- paging (Marker / MaxItems / IsTruncated) ----

/// Pages rows sorted by a string id, IAM style.
pub(crate) fn page(
    rows: Vec<(String, Value)>,
    input: &Value,
    member: &str,
    mut body: Value,
) -> Result<Value> {
    let max = match optional_i64(input, "MaxItems")? {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => usize::try_from(n).unwrap_or(100),
        Some(_) => return Err(validation_error("MaxItems must be between 1 and 1000")),
    };
    let marker = optional_str(input, "Marker")?;
    let mut rows = rows;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rows: Vec<(String, Value)> = rows
        .into_iter()
        .filter(|(id, _)| marker.is_none_or(|m| id.as_str() > m))
        .collect();
    let truncated = rows.len() > max;
    let next = truncated
        .then(|| rows.get(max - 1).map(|(id, _)| id.clone()))
        .flatten();
    rows.truncate(max);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            member.to_owned(),
            Value::Array(rows.into_iter().map(|(_, v)| v).collect()),
        );
        obj.insert("IsTruncated".to_owned(), json!(truncated));
        if let Some(m) = next {
            obj.insert("Marker".to_owned(), json!(m));
        }
    }
    Ok(body)
}
