//! Managed policies and their versions, attachments, inline policies and permissions
//! boundaries; plus the AWS managed policies every keep has.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::roles::{RoleRecord, authorize_role, document_json, role_key};
use super::users::{UserRecord, authorize_user, user_key};
use super::{
    Tags, already_exists, delete_conflict, iam_arn, invalid_input, key, limit_exceeded, lower,
    no_such_entity, page, path_member, path_prefix, request_tags_context, tags_json, tags_member,
    unique_id, validation_error,
};
use crate::api::{OpCtx, optional_bool, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::error::Result;
use crate::policy::{Policy, PolicyKind, policy_size};
use crate::store::Txn;

const MAX_MANAGED_POLICY: usize = 6144;
const MAX_VERSIONS: usize = 5;

/// AWS managed policies: `arn:aws:iam::aws:policy/NAME`, the same in every account.
pub(crate) const AWS_MANAGED: &[(&str, &str)] = &[
    (
        "AdministratorAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "PowerUserAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":["iam:*","organizations:*","account:*"],"Resource":"*"},{"Effect":"Allow","Action":["iam:CreateServiceLinkedRole","iam:DeleteServiceLinkedRole","iam:ListRoles","organizations:DescribeOrganization","account:ListRegions","account:GetAccountInformation"],"Resource":"*"}]}"#,
    ),
    (
        "IAMFullAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","organizations:DescribeAccount","organizations:DescribeOrganization","organizations:DescribeOrganizationalUnit","organizations:DescribePolicy","organizations:ListChildren","organizations:ListParents","organizations:ListPoliciesForTarget","organizations:ListRoots","organizations:ListPolicies","organizations:ListTargetsForPolicy"],"Resource":"*"}]}"#,
    ),
    (
        "IAMReadOnlyAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:GenerateCredentialReport","iam:GenerateServiceLastAccessedDetails","iam:Get*","iam:List*","iam:SimulateCustomPolicy","iam:SimulatePrincipalPolicy"],"Resource":"*"}]}"#,
    ),
    (
        "AWSCodeCommitFullAccess",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"CodeCommitFullAccess","Effect":"Allow","Action":["codecommit:*"],"Resource":"*"},{"Sid":"IAMReadOnlyListAccess","Effect":"Allow","Action":["iam:ListUsers"],"Resource":"*"},{"Sid":"IAMUserSSHKeys","Effect":"Allow","Action":["iam:DeleteSSHPublicKey","iam:GetSSHPublicKey","iam:ListSSHPublicKeys","iam:UpdateSSHPublicKey","iam:UploadSSHPublicKey"],"Resource":"arn:aws:iam::*:user/${aws:username}"},{"Sid":"IAMSelfManageServiceSpecificCredentials","Effect":"Allow","Action":["iam:CreateServiceSpecificCredential","iam:UpdateServiceSpecificCredential","iam:DeleteServiceSpecificCredential","iam:ResetServiceSpecificCredential"],"Resource":"arn:aws:iam::*:user/${aws:username}"}]}"#,
    ),
    (
        "AWSCodeCommitReadOnly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["codecommit:BatchGet*","codecommit:BatchDescribe*","codecommit:Describe*","codecommit:EvaluatePullRequestApprovalRules","codecommit:Get*","codecommit:List*","codecommit:GitPull"],"Resource":"*"}]}"#,
    ),
];

/// A stored customer managed policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManagedPolicyRecord {
    pub name: String,
    pub policy_id: String,
    pub path: String,
    pub arn: String,
    #[serde(default)]
    pub description: Option<String>,
    pub default_version: u32,
    pub next_version: u32,
    pub attachment_count: i64,
    pub boundary_usage_count: i64,
    pub create_date: i64,
    pub update_date: i64,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionRecord {
    document: String,
    create_date: i64,
}

impl ManagedPolicyRecord {
    fn to_json(&self) -> Value {
        let mut p = json!({
            "PolicyName": self.name,
            "PolicyId": self.policy_id,
            "Arn": self.arn,
            "Path": self.path,
            "DefaultVersionId": format!("v{}", self.default_version),
            "AttachmentCount": self.attachment_count,
            "PermissionsBoundaryUsageCount": self.boundary_usage_count,
            "IsAttachable": true,
            "CreateDate": epoch_seconds(self.create_date),
            "UpdateDate": epoch_seconds(self.update_date),
        });
        if let Some(d) = &self.description {
            crate::api::set_member(&mut p, "Description", json!(d));
        }
        if !self.tags.is_empty() {
            crate::api::set_member(&mut p, "Tags", tags_json(&self.tags));
        }
        p
    }
}

pub(super) fn policy_key(account: &str, name: &str) -> crate::store::Key {
    key(account, &["policy", &lower(name)])
}

fn version_key(account: &str, name: &str, version: u32) -> crate::store::Key {
    key(account, &["policy-version", &lower(name)]).push_u64(u64::from(version))
}

/// Where a policy ARN points.
pub(super) enum PolicyRef {
    AwsManaged(&'static str, &'static str),
    Local(ManagedPolicyRecord),
}

/// Resolves a policy ARN in `account`: an AWS managed policy or one of the account's own.
pub(super) fn resolve(txn: &mut Txn<'_>, account: &str, arn: &str) -> Result<PolicyRef> {
    let missing = || no_such_entity(format!("Policy {arn} does not exist or is not attachable."));
    if let Some(name) = arn.strip_prefix("arn:aws:iam::aws:policy/") {
        // Exactly the policy's ARN: a path would let `ArnLike iam:PolicyARN` conditions be
        // matched by one name while another policy is attached.
        return AWS_MANAGED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, d)| PolicyRef::AwsManaged(n, d))
            .ok_or_else(missing);
    }
    let prefix = format!("arn:aws:iam::{account}:policy/");
    let Some(rest) = arn.strip_prefix(&prefix) else {
        return Err(if arn.starts_with("arn:") {
            missing()
        } else {
            invalid_input(format!("ARN {arn} is not valid."))
        });
    };
    let name = rest.rsplit('/').next().unwrap_or(rest);
    match txn.get_json::<ManagedPolicyRecord>(&policy_key(account, name))? {
        Some(record) if record.arn == arn => Ok(PolicyRef::Local(record)),
        _ => Err(missing()),
    }
}

/// The default version's document of the managed policy `arn`, for the authorizer.
pub(crate) fn managed_document(
    txn: &mut Txn<'_>,
    account: &str,
    arn: &str,
) -> Result<Option<String>> {
    match resolve(txn, account, arn) {
        Ok(PolicyRef::AwsManaged(_, doc)) => Ok(Some(doc.to_owned())),
        Ok(PolicyRef::Local(record)) => Ok(txn
            .get_json::<VersionRecord>(&version_key(account, &record.name, record.default_version))?
            .map(|v| v.document)),
        Err(_) => Ok(None),
    }
}

/// Checks that a permissions boundary names an existing managed policy.
pub(crate) fn check_boundary(txn: &mut Txn<'_>, account: &str, arn: &str) -> Result<()> {
    resolve(txn, account, arn).map(|_| ()).map_err(|_| {
        invalid_input(format!(
            "ARN {arn} is not valid or does not name a managed policy."
        ))
    })
}

fn check_document(text: &str, max: usize) -> Result<()> {
    if policy_size(text) > max {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for PolicySize: {max}"
        )));
    }
    let policy = Policy::parse(PolicyKind::Identity, "policy", text)?;
    // IAM takes the 2008 grammar only in inline policies: managed ones must be 2012-10-17.
    if !policy.uses_variables() {
        return Err(crate::Error::aws(
            crate::ErrorKind::InvalidArgument,
            "MalformedPolicyDocument",
            "Policy document must be version 2012-10-17 or greater.",
        ));
    }
    Ok(())
}

fn authorize_policy(ctx: &mut OpCtx<'_, '_>, arn: &str) -> Result<PolicyRef> {
    ctx.authorize(&[arn.to_owned()])?;
    let account = ctx.account()?.to_string();
    resolve(ctx.txn, &account, arn)
}

fn authorize_local_policy(ctx: &mut OpCtx<'_, '_>, arn: &str) -> Result<ManagedPolicyRecord> {
    match authorize_policy(ctx, arn)? {
        PolicyRef::Local(record) => Ok(record),
        PolicyRef::AwsManaged(..) => Err(super::Error::aws(
            crate::error::ErrorKind::InvalidArgument,
            "UnmodifiableEntity",
            format!("Policy {arn} is an AWS managed policy and cannot be changed."),
        )),
    }
}

pub(crate) fn create_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "PolicyName")?;
    super::check_name("PolicyName", name, 128)?;
    let path = path_member(input, "Path")?;
    let document = required_str(input, "PolicyDocument")?;
    let description = optional_str(input, "Description")?.map(str::to_owned);
    let tags = tags_member(input)?;
    let account = ctx.account()?.to_string();
    let arn = iam_arn(&account, "policy", &path, name);
    request_tags_context(ctx, &tags);
    ctx.authorize(std::slice::from_ref(&arn))?;
    check_document(document, MAX_MANAGED_POLICY)?;
    if ctx.txn.get(&policy_key(&account, name))?.is_some() {
        return Err(already_exists(format!(
            "A policy called {name} already exists. Duplicate names are not allowed."
        )));
    }
    let now = ctx.now();
    let record = ManagedPolicyRecord {
        name: name.to_owned(),
        policy_id: unique_id("ANPA", 21),
        path,
        arn,
        description,
        default_version: 1,
        next_version: 2,
        attachment_count: 0,
        boundary_usage_count: 0,
        create_date: now,
        update_date: now,
        tags,
    };
    ctx.txn.put_json(&policy_key(&account, name), &record)?;
    ctx.txn.put_json(
        &version_key(&account, name, 1),
        &VersionRecord {
            document: document.to_owned(),
            create_date: now,
        },
    )?;
    ctx.audit_resources
        .push(("AWS::IAM::Policy".into(), record.arn.clone()));
    let mut policy = record.to_json();
    if let Some(obj) = policy.as_object_mut() {
        obj.remove("Description");
    }
    Ok(json!({"Policy": policy}))
}

pub(crate) fn get_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    Ok(match authorize_policy(ctx, arn)? {
        PolicyRef::Local(record) => json!({"Policy": record.to_json()}),
        PolicyRef::AwsManaged(name, _) => json!({"Policy": aws_managed_json(name)}),
    })
}

fn aws_managed_json(name: &str) -> Value {
    json!({
        "PolicyName": name,
        "PolicyId": format!("ANPAAWS{}", name.to_ascii_uppercase().chars().filter(char::is_ascii_alphanumeric).take(14).collect::<String>()),
        "Arn": format!("arn:aws:iam::aws:policy/{name}"),
        "Path": "/",
        "DefaultVersionId": "v1",
        "AttachmentCount": 0,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": true,
        "CreateDate": epoch_seconds(0),
        "UpdateDate": epoch_seconds(0),
    })
}

pub(crate) fn list_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let scope = optional_str(input, "Scope")?.unwrap_or("All");
    if !["All", "AWS", "Local"].contains(&scope) {
        return Err(validation_error("Scope must be All, AWS or Local"));
    }
    let only_attached = optional_bool(input, "OnlyAttached")?.unwrap_or(false);
    let prefix = path_prefix(input)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&["*".to_owned()])?;
    let mut rows = Vec::new();
    if scope != "Local" && !only_attached && prefix == "/" {
        for (name, _) in AWS_MANAGED {
            rows.push((
                format!("arn:aws:iam::aws:policy/{name}"),
                aws_managed_json(name),
            ));
        }
    }
    if scope != "AWS" {
        for (_, v) in ctx
            .txn
            .scan_prefix(&key(&account, &["policy"]), None, usize::MAX)?
        {
            let record: ManagedPolicyRecord = serde_json::from_slice(&v)?;
            if record.path.starts_with(&prefix) && (!only_attached || record.attachment_count > 0) {
                let mut json = record.to_json();
                if let Some(obj) = json.as_object_mut() {
                    obj.remove("Description");
                    obj.remove("Tags");
                }
                rows.push((record.arn.clone(), json));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    page(rows, input, "Policies", json!({}))
}

pub(crate) fn delete_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    let record = authorize_local_policy(ctx, arn)?;
    if record.attachment_count > 0 || record.boundary_usage_count > 0 {
        return Err(delete_conflict(
            "Cannot delete a policy attached to entities.",
        ));
    }
    let account = ctx.account()?.to_string();
    let versions = ctx.txn.scan_prefix(
        &key(&account, &["policy-version", &lower(&record.name)]),
        None,
        usize::MAX,
    )?;
    if versions.len() > 1 {
        return Err(delete_conflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        ));
    }
    for (k, _) in versions {
        ctx.txn.delete(&k)?;
    }
    ctx.txn.delete(&policy_key(&account, &record.name))?;
    // Role sessions may name it as a session policy.
    super::authz::bump_generation(ctx.txn, &account)?;
    ctx.audit_resources
        .push(("AWS::IAM::Policy".into(), record.arn));
    Ok(json!({}))
}

fn version_id(input: &Value) -> Result<u32> {
    let id = required_str(input, "VersionId")?;
    id.strip_prefix('v')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| validation_error(format!("Value '{id}' at 'versionId' failed to satisfy constraint: Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?")))
}

fn version_json(account_doc: &VersionRecord, version: u32, default: u32) -> Value {
    json!({
        "Document": document_json(&account_doc.document),
        "VersionId": format!("v{version}"),
        "IsDefaultVersion": version == default,
        "CreateDate": epoch_seconds(account_doc.create_date),
    })
}

pub(crate) fn create_policy_version(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    let document = required_str(input, "PolicyDocument")?;
    let set_default = optional_bool(input, "SetAsDefault")?.unwrap_or(false);
    let mut record = authorize_local_policy(ctx, arn)?;
    check_document(document, MAX_MANAGED_POLICY)?;
    let account = ctx.account()?.to_string();
    let count = ctx
        .txn
        .scan_prefix(
            &key(&account, &["policy-version", &lower(&record.name)]),
            None,
            usize::MAX,
        )?
        .len();
    if count >= MAX_VERSIONS {
        return Err(limit_exceeded(format!(
            "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
        )));
    }
    let version = record.next_version;
    let stored = VersionRecord {
        document: document.to_owned(),
        create_date: ctx.now(),
    };
    ctx.txn
        .put_json(&version_key(&account, &record.name, version), &stored)?;
    record.next_version += 1;
    record.update_date = ctx.now();
    if set_default {
        record.default_version = version;
    }
    ctx.txn
        .put_json(&policy_key(&account, &record.name), &record)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    let mut out = version_json(&stored, version, record.default_version);
    if let Some(obj) = out.as_object_mut() {
        obj.remove("Document");
    }
    Ok(json!({"PolicyVersion": out}))
}

pub(crate) fn get_policy_version(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    let version = version_id(input)?;
    match authorize_policy(ctx, arn)? {
        PolicyRef::AwsManaged(_, doc) if version == 1 => Ok(json!({"PolicyVersion": {
            "Document": document_json(doc), "VersionId": "v1", "IsDefaultVersion": true,
            "CreateDate": epoch_seconds(0),
        }})),
        PolicyRef::AwsManaged(..) => Err(no_such_entity(format!(
            "Policy {arn} version v{version} does not exist or is not attachable."
        ))),
        PolicyRef::Local(record) => {
            let account = ctx.account()?.to_string();
            let stored: VersionRecord = ctx
                .txn
                .get_json(&version_key(&account, &record.name, version))?
                .ok_or_else(|| {
                    no_such_entity(format!(
                        "Policy {arn} version v{version} does not exist or is not attachable."
                    ))
                })?;
            Ok(json!({"PolicyVersion": version_json(&stored, version, record.default_version)}))
        }
    }
}

pub(crate) fn list_policy_versions(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    let record = match authorize_policy(ctx, arn)? {
        PolicyRef::Local(record) => record,
        PolicyRef::AwsManaged(..) => {
            let v = json!({"VersionId": "v1", "IsDefaultVersion": true, "CreateDate": epoch_seconds(0)});
            return page(vec![("v1".to_owned(), v)], input, "Versions", json!({}));
        }
    };
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for (k, v) in ctx.txn.scan_prefix(
        &key(&account, &["policy-version", &lower(&record.name)]),
        None,
        usize::MAX,
    )? {
        let stored: VersionRecord = serde_json::from_slice(&v)?;
        let version = u32::try_from(k.last_u64().unwrap_or_default()).unwrap_or_default();
        let mut json = version_json(&stored, version, record.default_version);
        if let Some(obj) = json.as_object_mut() {
            obj.remove("Document");
        }
        // Newest first, as IAM lists them.
        rows.push((format!("{:010}", u32::MAX - version), json));
    }
    page(rows, input, "Versions", json!({}))
}

pub(crate) fn set_default_policy_version(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    let version = version_id(input)?;
    let mut record = authorize_local_policy(ctx, arn)?;
    let account = ctx.account()?.to_string();
    if ctx
        .txn
        .get(&version_key(&account, &record.name, version))?
        .is_none()
    {
        return Err(no_such_entity(format!(
            "Policy {arn} version v{version} does not exist or is not attachable."
        )));
    }
    record.default_version = version;
    record.update_date = ctx.now();
    ctx.txn
        .put_json(&policy_key(&account, &record.name), &record)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn delete_policy_version(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let arn = required_str(input, "PolicyArn")?;
    let version = version_id(input)?;
    let record = authorize_local_policy(ctx, arn)?;
    if version == record.default_version {
        return Err(delete_conflict(
            "Cannot delete the default version of a policy.",
        ));
    }
    let account = ctx.account()?.to_string();
    if !ctx
        .txn
        .delete(&version_key(&account, &record.name, version))?
    {
        return Err(no_such_entity(format!(
            "Policy {arn} version v{version} does not exist or is not attachable."
        )));
    }
    Ok(json!({}))
}

// ---- permissions boundaries ----

/// Counts a user or role that uses (`delta` 1) or stops using (-1) `arn` as its boundary.
pub(crate) fn adjust_boundary_usage(
    txn: &mut Txn<'_>,
    account: &str,
    arn: &str,
    delta: i64,
) -> Result<()> {
    if let Ok(PolicyRef::Local(mut record)) = resolve(txn, account, arn) {
        record.boundary_usage_count = (record.boundary_usage_count + delta).max(0);
        txn.put_json(&policy_key(account, &record.name), &record)?;
    }
    Ok(())
}

pub(crate) fn put_user_permissions_boundary(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let arn = required_str(input, "PermissionsBoundary")?;
    ctx.context_mut().insert("iam:PermissionsBoundary", arn);
    let mut user: UserRecord = authorize_user(ctx, name)?;
    let account = ctx.account()?.to_string();
    check_boundary(ctx.txn, &account, arn)?;
    if let Some(old) = user.boundary.replace(arn.to_owned()) {
        adjust_boundary_usage(ctx.txn, &account, &old, -1)?;
    }
    adjust_boundary_usage(ctx.txn, &account, arn, 1)?;
    ctx.txn.put_json(&user_key(&account, name), &user)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn delete_user_permissions_boundary(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let mut user: UserRecord = authorize_user(ctx, name)?;
    let account = ctx.account()?.to_string();
    if let Some(old) = user.boundary.take() {
        adjust_boundary_usage(ctx.txn, &account, &old, -1)?;
    }
    ctx.txn.put_json(&user_key(&account, name), &user)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn put_role_permissions_boundary(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let arn = required_str(input, "PermissionsBoundary")?;
    ctx.context_mut().insert("iam:PermissionsBoundary", arn);
    let mut role: RoleRecord = authorize_role(ctx, name)?;
    let account = ctx.account()?.to_string();
    check_boundary(ctx.txn, &account, arn)?;
    if let Some(old) = role.boundary.replace(arn.to_owned()) {
        adjust_boundary_usage(ctx.txn, &account, &old, -1)?;
    }
    adjust_boundary_usage(ctx.txn, &account, arn, 1)?;
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

pub(crate) fn delete_role_permissions_boundary(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required_str(input, "RoleName")?;
    let mut role: RoleRecord = authorize_role(ctx, name)?;
    let account = ctx.account()?.to_string();
    if let Some(old) = role.boundary.take() {
        adjust_boundary_usage(ctx.txn, &account, &old, -1)?;
    }
    ctx.txn.put_json(&role_key(&account, name), &role)?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}
