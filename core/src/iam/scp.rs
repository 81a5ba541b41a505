//! Service control policies: the keep-level administration API (AWS Organizations' names and
//! shapes) that caps what any principal of an account may do, the root user included.
//!
//! An account with no SCP attached is not restricted (AWS attaches `FullAWSAccess` to every
//! account; here its absence means the same). With SCPs attached, at least one must allow and
//! none may deny.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{OpCtx, Operation, optional_str, required_str};
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{Policy, PolicyKind, policy_size};
use crate::store::{Key, Txn};

const ORG: &str = "o-codekeep";
/// Organizations' quota on an SCP document, in characters other than white space.
const MAX_SCP: usize = 5120;
const SCP_TYPE: &str = "SERVICE_CONTROL_POLICY";

macro_rules! scp_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        Operation {
            service: "organizations",
            iam_prefix: "organizations",
            event_source: "organizations.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: &[],
            resources: &[
                "arn:aws:organizations::000000000000:policy/o-codekeep/service_control_policy/*",
                "arn:aws:organizations::000000000000:account/o-codekeep/*",
                "arn:aws:organizations::000000000000:root/o-codekeep/r-root",
            ],
            handler: $handler,
        }
    };
}

/// The SCP operations.
pub(crate) static SCP_OPERATIONS: &[Operation] = &[
    scp_op!("CreatePolicy", create_policy, read_only = false),
    scp_op!("DescribePolicy", describe_policy, read_only = true),
    scp_op!("UpdatePolicy", update_policy, read_only = false),
    scp_op!("DeletePolicy", delete_policy, read_only = false),
    scp_op!("ListPolicies", list_policies, read_only = true),
    scp_op!("AttachPolicy", attach_policy, read_only = false),
    scp_op!("DetachPolicy", detach_policy, read_only = false),
    scp_op!(
        "ListPoliciesForTarget",
        list_policies_for_target,
        read_only = true
    ),
    scp_op!(
        "ListTargetsForPolicy",
        list_targets_for_policy,
        read_only = true
    ),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScpRecord {
    id: String,
    name: String,
    description: String,
    content: String,
}

impl ScpRecord {
    fn arn(&self) -> String {
        policy_arn(&self.id)
    }

    fn summary(&self) -> Value {
        json!({
            "Id": self.id,
            "Arn": self.arn(),
            "Name": self.name,
            "Description": self.description,
            "Type": SCP_TYPE,
            "AwsManaged": false,
        })
    }
}

fn policy_arn(id: &str) -> String {
    format!("arn:aws:organizations::000000000000:policy/{ORG}/service_control_policy/{id}")
}

fn account_arn(id: &str) -> String {
    format!("arn:aws:organizations::000000000000:account/{ORG}/{id}")
}

fn policy_key(id: &str) -> Key {
    Key::new("org").push("scp").push(id)
}

fn attachment_key(account: &str, id: &str) -> Key {
    Key::new("org")
        .push("scp-attachment")
        .push(account)
        .push(id)
}

fn target_key(id: &str, account: &str) -> Key {
    Key::new("org").push("scp-target").push(id).push(account)
}

fn not_found(what: &str) -> Error {
    Error::aws(
        ErrorKind::NotFound,
        "PolicyNotFoundException",
        format!("{what} was not found."),
    )
}

fn malformed(e: &Error) -> Error {
    Error::aws(
        ErrorKind::InvalidArgument,
        "MalformedPolicyDocumentException",
        e.message().to_owned(),
    )
}

fn check_content(content: &str) -> Result<()> {
    if policy_size(content) > MAX_SCP {
        return Err(Error::aws(
            ErrorKind::LimitExceeded,
            "ConstraintViolationException",
            format!("The policy is larger than the maximum size of {MAX_SCP} characters."),
        ));
    }
    Policy::parse(PolicyKind::ServiceControl, "scp", content)
        .map(|_| ())
        .map_err(|e| malformed(&e))
}

fn load(txn: &mut Txn<'_>, id: &str) -> Result<ScpRecord> {
    txn.get_json(&policy_key(id))?
        .ok_or_else(|| not_found(&format!("Policy {id}")))
}

fn policy_type(input: &Value, member: &str) -> Result<()> {
    match optional_str(input, member)? {
        None | Some(SCP_TYPE) => Ok(()),
        Some(other) => Err(Error::aws(
            ErrorKind::Unsupported,
            "PolicyTypeNotEnabledException",
            format!("Policy type {other} is not enabled; this keep supports {SCP_TYPE}"),
        )),
    }
}

/// Checks that `target` is an account of the keep; returns its id.
fn target_account(txn: &mut Txn<'_>, input: &Value) -> Result<String> {
    let target = required_str(input, "TargetId")?;
    if txn
        .get(&Key::new("org").push("account").push(target))?
        .is_none()
    {
        return Err(Error::aws(
            ErrorKind::NotFound,
            "TargetNotFoundException",
            format!("Target {target} was not found."),
        ));
    }
    Ok(target.to_owned())
}

/// The SCP documents attached to `account`, with their ARNs.
pub(crate) fn attached(txn: &mut Txn<'_>, account: &str) -> Result<Vec<(String, String)>> {
    let prefix = Key::new("org").push("scp-attachment").push(account);
    let mut out = Vec::new();
    for (k, _) in txn.scan_prefix(&prefix, None, usize::MAX)? {
        let id = k.last().unwrap_or_default();
        if let Some(record) = txn.get_json::<ScpRecord>(&policy_key(&id))? {
            out.push((record.arn(), record.content));
        }
    }
    Ok(out)
}

/// Marks the IAM data of every account `id` is attached to as changed.
fn touch_targets(txn: &mut Txn<'_>, id: &str) -> Result<()> {
    let prefix = Key::new("org").push("scp-target").push(id);
    for (k, _) in txn.scan_prefix(&prefix, None, usize::MAX)? {
        super::authz::bump_generation(txn, &k.last().unwrap_or_default())?;
    }
    Ok(())
}

fn create_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "Name")?;
    let content = required_str(input, "Content")?;
    let description = optional_str(input, "Description")?.unwrap_or_default();
    policy_type(input, "Type")?;
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidInputException",
            "Name must have 1 to 128 characters",
        ));
    }
    let mut id = format!("p-{}", crate::id::hex(&crate::id::random_bytes::<4>()));
    ctx.authorize(&[policy_arn(&id)])?;
    check_content(content)?;
    while ctx.txn.get(&policy_key(&id))?.is_some() {
        id = format!("p-{}", crate::id::hex(&crate::id::random_bytes::<4>()));
    }
    let record = ScpRecord {
        id: id.clone(),
        name: name.to_owned(),
        description: description.to_owned(),
        content: content.to_owned(),
    };
    ctx.txn.put_json(&policy_key(&id), &record)?;
    Ok(json!({"Policy": {"PolicySummary": record.summary(), "Content": record.content}}))
}

fn describe_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "PolicyId")?;
    ctx.authorize(&[policy_arn(id)])?;
    let record = load(ctx.txn, id)?;
    Ok(json!({"Policy": {"PolicySummary": record.summary(), "Content": record.content}}))
}

fn update_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "PolicyId")?;
    ctx.authorize(&[policy_arn(id)])?;
    let mut record = load(ctx.txn, id)?;
    if let Some(content) = optional_str(input, "Content")? {
        check_content(content)?;
        content.clone_into(&mut record.content);
    }
    if let Some(name) = optional_str(input, "Name")? {
        name.clone_into(&mut record.name);
    }
    if let Some(d) = optional_str(input, "Description")? {
        d.clone_into(&mut record.description);
    }
    ctx.txn.put_json(&policy_key(id), &record)?;
    touch_targets(ctx.txn, id)?;
    Ok(json!({"Policy": {"PolicySummary": record.summary(), "Content": record.content}}))
}

fn delete_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "PolicyId")?;
    ctx.authorize(&[policy_arn(id)])?;
    load(ctx.txn, id)?;
    let prefix = Key::new("org").push("scp-target").push(id);
    if !ctx.txn.scan_prefix(&prefix, None, 1)?.is_empty() {
        return Err(Error::aws(
            ErrorKind::InvalidState,
            "PolicyInUseException",
            "The policy is attached to one or more entities. You must detach it from all roots, OUs, and accounts before performing this operation.",
        ));
    }
    ctx.txn.delete(&policy_key(id))?;
    Ok(json!({}))
}

fn list_policies(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    policy_type(input, "Filter")?;
    ctx.authorize(&["arn:aws:organizations::000000000000:root/o-codekeep/r-root".to_owned()])?;
    let mut out = Vec::new();
    for (_, v) in ctx
        .txn
        .scan_prefix(&Key::new("org").push("scp"), None, usize::MAX)?
    {
        let record: ScpRecord = serde_json::from_slice(&v)?;
        out.push(record.summary());
    }
    Ok(json!({"Policies": out}))
}

fn attach_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "PolicyId")?;
    let target = required_str(input, "TargetId")?;
    ctx.authorize(&[policy_arn(id), account_arn(target)])?;
    load(ctx.txn, id)?;
    let account = target_account(ctx.txn, input)?;
    if ctx.txn.get(&attachment_key(&account, id))?.is_some() {
        return Err(Error::aws(
            ErrorKind::AlreadyExists,
            "DuplicatePolicyAttachmentException",
            "The selected policy is already attached to the specified target.",
        ));
    }
    ctx.txn.put(&attachment_key(&account, id), b"{}")?;
    ctx.txn.put(&target_key(id, &account), b"{}")?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn detach_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "PolicyId")?;
    let target = required_str(input, "TargetId")?;
    ctx.authorize(&[policy_arn(id), account_arn(target)])?;
    let account = target_account(ctx.txn, input)?;
    if !ctx.txn.delete(&attachment_key(&account, id))? {
        return Err(Error::aws(
            ErrorKind::NotFound,
            "PolicyNotAttachedException",
            "The policy is not attached to the specified target.",
        ));
    }
    ctx.txn.delete(&target_key(id, &account))?;
    super::authz::bump_generation(ctx.txn, &account)?;
    Ok(json!({}))
}

fn list_policies_for_target(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    policy_type(input, "Filter")?;
    let target = required_str(input, "TargetId")?;
    ctx.authorize(&[account_arn(target)])?;
    let account = target_account(ctx.txn, input)?;
    let prefix = Key::new("org").push("scp-attachment").push(&account);
    let mut out = Vec::new();
    for (k, _) in ctx.txn.scan_prefix(&prefix, None, usize::MAX)? {
        if let Some(record) = ctx
            .txn
            .get_json::<ScpRecord>(&policy_key(&k.last().unwrap_or_default()))?
        {
            out.push(record.summary());
        }
    }
    Ok(json!({"Policies": out}))
}

fn list_targets_for_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "PolicyId")?;
    ctx.authorize(&[policy_arn(id)])?;
    load(ctx.txn, id)?;
    let prefix = Key::new("org").push("scp-target").push(id);
    let targets: Vec<Value> = ctx
        .txn
        .scan_prefix(&prefix, None, usize::MAX)?
        .into_iter()
        .filter_map(|(k, _)| k.last())
        .map(
            |account| json!({"TargetId": account, "Arn": account_arn(&account), "Type": "ACCOUNT"}),
        )
        .collect();
    Ok(json!({"Targets": targets}))
}
