//! The operation registry: every operation of every service, in one table.

use serde_json::Value;

use super::OpCtx;
use crate::error::Result;

/// One operation of one service.
#[derive(Debug)]
pub(crate) struct Operation {
    /// Service name as clients use it: `kms`, `cloudtrail`, `organizations`.
    pub service: &'static str,
    /// IAM action prefix, e.g. `kms` (in `kms:CreateKey`).
    pub iam_prefix: &'static str,
    /// CloudTrail `eventSource`, e.g. `kms.amazonaws.com`.
    #[cfg_attr(
        not(feature = "audit"),
        expect(dead_code, reason = "the audit trail reads it")
    )]
    pub event_source: &'static str,
    /// Operation name, e.g. `CreateKey`.
    pub name: &'static str,
    /// True when the operation changes nothing (CloudTrail `readOnly`).
    #[cfg_attr(
        not(feature = "audit"),
        expect(dead_code, reason = "the audit trail reads it")
    )]
    pub read_only: bool,
    /// Output members that are blobs (base64 in JSON).
    pub blob_members: &'static [&'static str],
    /// Input and output members never written to the audit log.
    #[cfg_attr(
        not(feature = "audit"),
        expect(dead_code, reason = "the audit trail reads it")
    )]
    pub secret_members: &'static [&'static str],
    /// The resource types the operation authorizes against: ARN patterns (`*` and `?`
    /// wildcards), or `*` for actions without a resource, as AWS's service authorization
    /// reference lists them. The dispatcher refuses a check on anything else.
    pub resources: &'static [&'static str],
    /// The implementation.
    pub handler: fn(&mut OpCtx<'_, '_>, &Value) -> Result<Value>,
}

/// Every registered operation.
pub(crate) fn operations() -> impl Iterator<Item = &'static Operation> {
    let tables: [&'static [Operation]; 11] = [
        crate::keep::ORGANIZATION_OPERATIONS,
        crate::events::EVENTS_OPERATIONS,
        crate::events::sns::SNS_OPERATIONS,
        crate::events::sqs::SQS_OPERATIONS,
        #[cfg(feature = "git")]
        crate::codecommit::CODECOMMIT_OPERATIONS,
        #[cfg(not(feature = "git"))]
        &[],
        crate::iam::SCP_OPERATIONS,
        crate::iam::IAM_OPERATIONS,
        #[cfg(feature = "crypto")]
        crate::iam::CREDENTIAL_OPERATIONS,
        #[cfg(not(feature = "crypto"))]
        &[],
        #[cfg(feature = "crypto")]
        crate::iam::STS_OPERATIONS,
        #[cfg(not(feature = "crypto"))]
        &[],
        #[cfg(feature = "crypto")]
        crate::crypto::KMS_OPERATIONS,
        #[cfg(not(feature = "crypto"))]
        &[],
        #[cfg(feature = "audit")]
        crate::audit::CLOUDTRAIL_OPERATIONS,
        #[cfg(not(feature = "audit"))]
        &[],
    ];
    tables.into_iter().flatten()
}

/// The operation `name` of `service`.
pub(crate) fn find_operation(service: &str, name: &str) -> Option<&'static Operation> {
    operations().find(|op| op.service == service && op.name == name)
}

/// The canonical name of a service that has operations.
pub(crate) fn service_name(service: &str) -> Option<&'static str> {
    operations()
        .find(|op| op.service == service)
        .map(|op| op.service)
}

/// What the registry says about one operation: its service, name, IAM action and the
/// resource types it is authorized against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationInfo {
    /// The service, e.g. `kms`.
    pub service: &'static str,
    /// The operation, e.g. `Decrypt`.
    pub name: &'static str,
    /// The IAM action, e.g. `kms:Decrypt`.
    pub action: String,
    /// ARN patterns of the resources it is authorized against, or `*`.
    pub resources: &'static [&'static str],
}

/// Every operation of every service, with its action and resource types.
pub fn catalog() -> Vec<OperationInfo> {
    operations()
        .map(|op| OperationInfo {
            service: op.service,
            name: op.name,
            action: format!("{}:{}", op.iam_prefix, op.name),
            resources: op.resources,
        })
        .collect()
}
