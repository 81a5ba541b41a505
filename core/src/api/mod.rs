//! The AWS API, in-process: callers, the operation registry and the one dispatcher.
//!
//! Every operation of every service goes through [`Client::call`], which
//! 1. builds the request context (principal, source IP, user agent, time, request id),
//! 2. runs the operation in one metadata transaction; the operation resolves its resources and
//!    must ask the policy engine ([`crate::policy`]) before it changes or reveals anything (the
//!    dispatcher refuses an operation that returns without having been authorized),
//! 3. writes the audit record in the same transaction (or, for a failed or denied call, in a
//!    transaction of its own after the rollback),
//! 4. returns the AWS output shape, or an AWS-style [`Error`].

mod authz;
mod caller;
mod principal;
mod registry;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

#[cfg(feature = "crypto")]
pub use crate::iam::sigv4::SignedRequest;
pub use authz::Authorization;
#[cfg(feature = "crypto")]
pub(crate) use authz::access_denied;
pub(crate) use authz::authorize_explained;
pub(crate) use caller::invalid_token;
pub use caller::{Caller, RequestContext};
pub use principal::{Principal, RoleSession, SessionFacts};
pub(crate) use registry::{Operation, find_operation, operations};
pub use registry::{OperationInfo, catalog};

use crate::error::{Error, ErrorKind, Result};
use crate::keep::KeepInner;
use crate::store::Txn;

/// A client for one service, acting as one caller: the in-process equivalent of a boto3 client.
#[derive(Clone)]
pub struct Client {
    keep: Arc<KeepInner>,
    service: &'static str,
    caller: Caller,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(keep: Arc<KeepInner>, service: &str, caller: Caller) -> Result<Self> {
        let service = registry::service_name(service).ok_or_else(|| {
            Error::aws(
                ErrorKind::InvalidArgument,
                "UnknownServiceError",
                format!("unknown service `{service}`"),
            )
        })?;
        Ok(Client {
            keep,
            service,
            caller,
        })
    }

    /// The service this client calls, e.g. `kms`.
    pub fn service(&self) -> &str {
        self.service
    }

    /// The caller this client acts as.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The names of the operations this client can call, sorted.
    pub fn operation_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = operations()
            .filter(|op| op.service == self.service)
            .map(|op| op.name)
            .collect();
        names.sort_unstable();
        names
    }

    /// Calls `operation` (e.g. `CreateKey`) with its JSON input shape and returns its JSON output
    /// shape. Blob members are base64 strings, timestamps epoch seconds, as in AWS's JSON
    /// protocol.
    ///
    /// # Errors
    /// The AWS error of the operation: `AccessDeniedException`, `NotFoundException`,
    /// `ValidationException`, ... ([`Error::code`]).
    #[expect(
        clippy::needless_pass_by_value,
        reason = "callers build the input with json! and hand it over"
    )]
    pub fn call(&self, operation: &str, input: Value) -> Result<Value> {
        let op = find_operation(self.service, operation).ok_or_else(|| {
            Error::aws(
                ErrorKind::InvalidArgument,
                "InvalidAction",
                format!("`{operation}` is not an operation of `{}`", self.service),
            )
        })?;
        dispatch(&self.keep, op, &self.caller, &input)
    }

    /// Names of top-level output members of `operation` that are blobs (base64 in JSON), so
    /// bindings can hand them out as bytes.
    pub fn blob_members(&self, operation: &str) -> &'static [&'static str] {
        find_operation(self.service, operation).map_or(&[], |op| op.blob_members)
    }
}

/// Output members (at any depth) that are timestamps: epoch seconds in JSON, as AWS's JSON
/// protocol writes them; bindings turn them into their language's date type.
pub const TIMESTAMP_MEMBERS: &[&str] = &[
    "CreationDate",
    "DeletionDate",
    "LastUpdatedDate",
    "NextRotationDate",
    "OnDemandRotationStartDate",
    "RotationDate",
    "EventTime",
    "JoinedTimestamp",
    "RequestedTimestamp",
    "CompletedTimestamp",
    "CreateDate",
    "UpdateDate",
    "UploadDate",
    "EnableDate",
    "Expiration",
    "LastUsedDate",
    "creationDate",
    "lastModifiedDate",
];

/// What an operation sees while it runs.
pub(crate) struct OpCtx<'a, 't> {
    pub keep: &'a KeepInner,
    pub req: &'a RequestContext,
    pub txn: &'a mut Txn<'t>,
    op: &'static Operation,
    authorized: bool,
    authz: authz::AuthzState,
    /// `(type, name)` pairs for CloudTrail's `resources`.
    pub audit_resources: Vec<(String, String)>,
}

impl OpCtx<'_, '_> {
    /// Asks the authorizer whether the caller may perform this operation on `resources` (ARNs,
    /// or `*` for operations without a resource). Must be called before the operation changes
    /// or reveals anything.
    pub fn authorize(&mut self, resources: &[String]) -> Result<()> {
        let action = format!("{}:{}", self.op.iam_prefix, self.op.name);
        self.authorize_as(&action, resources)
    }

    /// Like [`OpCtx::authorize`] for an action other than the operation's own name (AWS's
    /// `ReEncrypt` needs `kms:ReEncryptFrom` and `kms:ReEncryptTo`).
    pub fn authorize_as(&mut self, action: &str, resources: &[String]) -> Result<()> {
        if let Some(stray) = resources
            .iter()
            .find(|r| !authz::declared(self.op.resources, r))
        {
            return Err(Error::internal(format!(
                "operation `{}` authorized `{stray}`, which is not one of its declared resource types",
                self.op.name
            )));
        }
        self.authz
            .check(self.keep, self.txn, self.req, action, resources)?;
        self.authorized = true;
        Ok(())
    }

    /// Marks an operation that AWS performs without any permission check
    /// (`sts:GetCallerIdentity`, `sts:GetSessionToken`): the caller only learns about, or gets
    /// a session of, itself.
    #[cfg_attr(
        not(feature = "crypto"),
        expect(dead_code, reason = "only STS (with crypto) uses it")
    )]
    pub fn authorized_without_permission(&mut self) {
        self.authorized = true;
    }

    /// Would the caller be allowed `action` on `resource` if the resource's policy were
    /// `document`? (KMS's key-policy lockout safety check.)
    #[cfg_attr(
        not(feature = "crypto"),
        expect(dead_code, reason = "only KMS (with crypto) uses it")
    )]
    pub fn would_allow_with_policy(
        &mut self,
        action: &str,
        resource: &str,
        document: &str,
    ) -> Result<bool> {
        self.authz
            .allows_with_policy(self.keep, self.txn, self.req, action, resource, document)
    }

    /// The request context the next authorization sees; operations add their own keys
    /// (`aws:RequestTag/*`, `aws:ResourceTag/*`, service keys) before authorizing.
    pub fn context_mut(&mut self) -> &mut crate::policy::Context {
        &mut self.authz.context
    }

    /// The account the caller acts in.
    pub fn account(&self) -> Result<&crate::arn::AccountId> {
        self.req.principal.account().ok_or_else(|| {
            Error::invalid("this operation needs a caller that belongs to an account")
        })
    }

    /// The current time in milliseconds.
    pub fn now(&self) -> i64 {
        self.req.time_millis
    }
}

fn dispatch(
    keep: &Arc<KeepInner>,
    op: &'static Operation,
    caller: &Caller,
    input: &Value,
) -> Result<Value> {
    run(keep, op, caller, input, |ctx| {
        Ok(((op.handler)(ctx, input)?, ()))
    })
    .map(|(out, ())| out)
}

/// Runs `body` as the operation `op` called by `caller` with `input`: the caller is resolved,
/// the body runs in one transaction and must authorize, and the call is audited (the body's
/// `Value` is the response CloudTrail records). Besides API calls, the git front ends use it
/// for the actions of a git request (`codecommit:GitPull`, `codecommit:GitPush`), whose body
/// hands back what the request needs (`R`).
pub(crate) fn run<R>(
    keep: &Arc<KeepInner>,
    op: &'static Operation,
    caller: &Caller,
    input: &Value,
    mut body: impl FnMut(&mut OpCtx<'_, '_>) -> Result<(Value, R)>,
) -> Result<(Value, R)> {
    let now = keep.clock.now_millis();
    let principal = match caller
        .check_binding(op.iam_prefix, op.name, input)
        .and_then(|()| keep.meta.read(|txn| caller.resolve(txn, keep)))
    {
        Ok(principal) => principal,
        Err(err) => {
            let req =
                caller.request_context(caller.unresolved_principal(), now, keep.region.clone());
            let err = if err.kind() == ErrorKind::NotFound {
                caller::invalid_token("")
            } else {
                err
            };
            return Err(record_failure(keep, op, &req, input, err));
        }
    };
    let req = caller.request_context(principal, now, keep.region.clone());
    if !input.is_object() {
        let err = Error::aws(
            ErrorKind::InvalidArgument,
            "SerializationException",
            "the input must be a JSON object",
        );
        return Err(record_failure(keep, op, &req, input, err));
    }
    #[cfg(feature = "crypto")]
    if op.service == "kms" {
        crate::crypto::sweep_deleted_keys(&keep.meta, &keep.key_cache, req.time_millis)
            .map_err(|err| record_failure(keep, op, &req, input, err))?;
    }
    let result = keep.meta.txn(|txn| {
        let mut ctx = OpCtx {
            keep,
            req: &req,
            txn,
            op,
            authorized: false,
            authz: authz::AuthzState::new(&req),
            audit_resources: Vec::new(),
        };
        #[cfg(feature = "crypto")]
        if op.service == "kms" {
            let account = req.principal.account().map(crate::arn::AccountId::as_str);
            crate::crypto::add_condition_keys(ctx.context_mut(), input, account);
        }
        let (output, extra) = body(&mut ctx)?;
        if !ctx.authorized {
            return Err(Error::internal(format!(
                "operation `{}` returned without authorizing the caller",
                op.name
            )));
        }
        #[cfg(feature = "crypto")]
        crate::iam::note_access_key_used(
            ctx.txn,
            &req.principal,
            op.iam_prefix,
            req.region.as_str(),
            req.time_millis,
        )?;
        #[cfg(feature = "audit")]
        {
            let resources = std::mem::take(&mut ctx.audit_resources);
            let record = crate::audit::api_call_record(op, &req, input, Ok(&output), &resources);
            crate::audit::append(ctx.txn, keep, &record)?;
            crate::audit::publish_api_call(ctx.txn, op, req.time_millis, &record)?;
        }
        Ok((output, extra))
    });
    result.map_err(|err| record_failure(keep, op, &req, input, err))
}

/// Writes the audit record of a call that failed or was denied, after its transaction rolled
/// back. Returns the call's error (or the audit failure, which is more serious).
fn record_failure(
    keep: &KeepInner,
    op: &'static Operation,
    req: &RequestContext,
    input: &Value,
    err: Error,
) -> Error {
    #[cfg(feature = "audit")]
    {
        let record = crate::audit::api_call_record(op, req, input, Err(&err), &[]);
        if let Err(audit_err) = keep.meta.txn(|txn| {
            crate::audit::append(txn, keep, &record)?;
            crate::audit::publish_api_call(txn, op, req.time_millis, &record)
        }) {
            return audit_err;
        }
    }
    #[cfg(not(feature = "audit"))]
    let _ = (keep, op, req, input);
    err
}

/// Sets `name` in a JSON object (no-op on anything else).
pub(crate) fn set_member(object: &mut Value, name: &str, value: Value) {
    if let Some(obj) = object.as_object_mut() {
        obj.insert(name.to_owned(), value);
    }
}

/// Reads an optional member of an input object.
pub(crate) fn member<'v>(input: &'v Value, name: &str) -> Option<&'v Value> {
    input.get(name).filter(|v| !v.is_null())
}

/// Reads a required string member.
pub(crate) fn required_str<'v>(input: &'v Value, name: &str) -> Result<&'v str> {
    match member(input, name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::invalid(format!("`{name}` must be a string"))),
        None => Err(Error::invalid(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))),
    }
}

/// Reads an optional string member.
pub(crate) fn optional_str<'v>(input: &'v Value, name: &str) -> Result<Option<&'v str>> {
    match member(input, name) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(format!("`{name}` must be a string"))),
        None => Ok(None),
    }
}

/// Reads an optional integer member.
pub(crate) fn optional_i64(input: &Value, name: &str) -> Result<Option<i64>> {
    match member(input, name) {
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("`{name}` must be an integer"))),
        None => Ok(None),
    }
}

/// Reads an optional boolean member.
pub(crate) fn optional_bool(input: &Value, name: &str) -> Result<Option<bool>> {
    match member(input, name) {
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(format!("`{name}` must be a boolean"))),
        None => Ok(None),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
