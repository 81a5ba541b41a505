//! Authorization: every operation's check goes through the policy engine
//! ([`crate::policy`]) with the caller's policies, the resource's own policy and the request
//! context the dispatcher fills.

use std::sync::Arc;

use super::caller::RequestContext;
use super::principal::Principal;
use crate::error::{Error, ErrorKind, Result};
use crate::keep::KeepInner;
use crate::policy::{Context, Policy, PolicyKind, PolicySet, Request, evaluate};
use crate::store::Txn;

/// The global condition keys of a request: time, transport, principal, region.
pub(crate) fn base_context(req: &RequestContext) -> Context {
    let mut ctx = Context::new();
    ctx.insert("aws:CurrentTime", &crate::clock::iso8601(req.time_millis));
    ctx.insert(
        "aws:EpochTime",
        &(req.time_millis.div_euclid(1000)).to_string(),
    );
    ctx.insert(
        "aws:SecureTransport",
        if req.secure_transport {
            "true"
        } else {
            "false"
        },
    );
    ctx.insert("aws:SourceIp", &req.source_ip);
    ctx.insert("aws:UserAgent", &req.user_agent);
    ctx.insert("aws:RequestedRegion", req.region.as_str());
    req.principal.add_context(&mut ctx, req.time_millis);
    ctx
}

/// What one operation's authorization checks share.
pub(crate) struct AuthzState {
    /// The request context, plus the keys the operation added (`aws:RequestTag/*`, ...).
    pub context: Context,
    /// The caller's policies, loaded at the first check.
    policy_set: Option<Arc<PolicySet>>,
}

impl AuthzState {
    pub fn new(req: &RequestContext) -> Self {
        AuthzState {
            context: base_context(req),
            policy_set: None,
        }
    }

    /// Decides whether `req.principal` may perform `action` on every one of `resources`.
    pub fn check(
        &mut self,
        keep: &KeepInner,
        txn: &mut Txn<'_>,
        req: &RequestContext,
        action: &str,
        resources: &[String],
    ) -> Result<()> {
        // The host application administering the keep is not an AWS principal.
        if req.principal == Principal::KeepAdmin {
            return Ok(());
        }
        let set = self.policy_set(keep, txn, req)?;
        if let Some(reason) = session_restriction(&req.principal, action) {
            let resource = resources.first().map_or("*", String::as_str);
            return Err(access_denied(&req.principal, action, resource, reason));
        }
        let principal = req.principal.policy_principal();
        let unauthenticated = matches!(req.principal, Principal::Unauthenticated { .. });
        for resource in resources {
            let resource_account = resource_account(resource);
            match resource_account {
                Some(a) => self.context.insert("aws:ResourceAccount", a),
                None => self.context.remove("aws:ResourceAccount"),
            }
            let resource_policy =
                crate::iam::authz::resource_policy(&keep.policy_cache, txn, action, resource)?;
            let request = Request {
                principal: &principal,
                action,
                resource,
                resource_account,
                context: &self.context,
                resource_policy: resource_policy.as_ref().map(|(p, _)| &**p),
                resource_policy_required: resource_policy.as_ref().is_some_and(|(_, r)| *r),
            };
            let evaluation = evaluate(&set, &request);
            if unauthenticated || !evaluation.is_allowed() {
                let reason = evaluation.reason.map_or_else(
                    || "because the caller is not authenticated".to_owned(),
                    |r| r.message(action),
                );
                return Err(access_denied(&req.principal, action, resource, &reason));
            }
        }
        Ok(())
    }
}

impl AuthzState {
    fn policy_set(
        &mut self,
        keep: &KeepInner,
        txn: &mut Txn<'_>,
        req: &RequestContext,
    ) -> Result<Arc<PolicySet>> {
        if let Some(set) = &self.policy_set {
            return Ok(Arc::clone(set));
        }
        let set = crate::iam::authz::policy_set(&keep.policy_cache, txn, &req.principal)?;
        self.policy_set = Some(Arc::clone(&set));
        Ok(set)
    }

    /// Evaluates `action` on `resource` as if the resource's policy were `document`.
    #[cfg_attr(
        not(feature = "crypto"),
        allow(
            dead_code,
            reason = "only KMS (with crypto) uses it, through would_allow_with_policy"
        )
    )]
    pub fn allows_with_policy(
        &mut self,
        keep: &KeepInner,
        txn: &mut Txn<'_>,
        req: &RequestContext,
        action: &str,
        resource: &str,
        document: &str,
    ) -> Result<bool> {
        if req.principal == Principal::KeepAdmin {
            return Ok(true);
        }
        let policy = Policy::parse(PolicyKind::Resource, resource, document)?;
        let set = self.policy_set(keep, txn, req)?;
        let principal = req.principal.policy_principal();
        let request = Request {
            principal: &principal,
            action,
            resource,
            resource_account: resource_account(resource),
            context: &self.context,
            resource_policy: Some(&policy),
            resource_policy_required: true,
        };
        Ok(evaluate(&set, &request).is_allowed())
    }
}

/// Global keys that describe the caller and its transport: only the request sets them.
const CALLER_KEYS: &[&str] = &[
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:MultiFactorAuthAge",
    "aws:MultiFactorAuthPresent",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalType",
    "aws:RequestedRegion",
    "aws:SecureTransport",
    "aws:SourceIdentity",
    "aws:SourceIp",
    "aws:TokenIssueTime",
    "aws:UserAgent",
    "aws:userid",
    "aws:username",
    "kms:CallerAccount",
];

/// What GetSessionToken credentials may not do whatever their policies say: without MFA, call
/// IAM; in STS, anything but AssumeRole and GetCallerIdentity.
fn session_restriction(principal: &Principal, action: &str) -> Option<&'static str> {
    let Principal::User {
        session: Some(facts),
        ..
    } = principal
    else {
        return None;
    };
    let (service, name) = action.split_once(':').unwrap_or((action, ""));
    if service.eq_ignore_ascii_case("iam") && facts.mfa_at.is_none() {
        return Some("because credentials from GetSessionToken call IAM only with MFA");
    }
    // AWS limits the calls, not the actions AssumeRole checks along the way.
    let assume_role_actions = ["AssumeRole", "TagSession", "SetSourceIdentity"];
    if service.eq_ignore_ascii_case("sts")
        && !assume_role_actions
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a))
    {
        return Some(
            "because credentials from GetSessionToken call only AssumeRole and GetCallerIdentity in STS",
        );
    }
    None
}

/// Is `resource` one of the declared resource types?
pub(crate) fn declared(types: &[&str], resource: &str) -> bool {
    types.iter().any(|t| {
        if *t == "*" {
            resource == "*"
        } else {
            crate::policy::arn_like(t, resource)
        }
    })
}

/// The account that owns `resource`: the ARN's account field, when it has one.
fn resource_account(resource: &str) -> Option<&str> {
    let mut parts = resource.splitn(6, ':');
    let account = parts.nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// AWS's `AccessDeniedException`: `User: ARN is not authorized to perform: ACTION on
/// resource: ARN because ...`.
pub(crate) fn access_denied(
    principal: &Principal,
    action: &str,
    resource: &str,
    reason: &str,
) -> Error {
    let on_resource = if resource == "*" {
        String::new()
    } else {
        format!(" on resource: {resource}")
    };
    Error::aws(
        ErrorKind::AccessDenied,
        "AccessDeniedException",
        format!(
            "User: {} is not authorized to perform: {action}{on_resource} {reason}",
            principal.arn()
        ),
    )
}

/// The answer to [`crate::Keep::authorize`]: the decision and how it was reached.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Authorization {
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: crate::policy::EvalDecision,
    /// For a denial, AWS's `AccessDenied` message.
    pub message: Option<String>,
    /// Every matching statement, the deciding one, and missing context keys.
    pub explanation: crate::policy::Explanation,
}

impl Authorization {
    /// True when allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision == crate::policy::EvalDecision::Allowed
    }

    /// The JSON form the C and Python bindings return.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "EvalDecision": self.decision.as_str(),
            "Message": self.message,
            "DecidedBy": self.explanation.deciding,
            "MatchedStatements": self.explanation.matched.iter().map(|m| serde_json::json!({
                "SourcePolicyId": m.policy,
                "SourcePolicyType": m.policy_type.simulator_name(),
                "StatementIndex": m.index,
                "Sid": m.sid,
                "Effect": match m.effect { crate::policy::Effect::Allow => "Allow", crate::policy::Effect::Deny => "Deny" },
            })).collect::<Vec<_>>(),
            "MissingContextValues": self.explanation.missing_context_values,
        })
    }
}

/// Decides, without performing it, whether `caller` may perform `action` on `resource`, with
/// the request context a call would have plus `extra` keys; explains the decision.
pub(crate) fn authorize_explained(
    keep: &KeepInner,
    caller: &super::Caller,
    action: &str,
    resource: &str,
    extra: &Context,
) -> Result<Authorization> {
    let now = keep.clock.now_millis();
    keep.meta.read(|txn| {
        let principal = caller.resolve(txn, keep)?;
        let req = caller.request_context(principal, now, keep.region.clone());
        // The caller's keys come from the request, not from `extra`: extra keys that name
        // them (`aws:SourceIp`, `aws:PrincipalTag/...`) are overwritten.
        let base = base_context(&req);
        let mut context = extra.clone();
        context.remove_prefix("aws:PrincipalTag/");
        for key in CALLER_KEYS {
            context.remove(key);
        }
        for key in base.keys() {
            match base.get(key) {
                Some(crate::policy::ContextValue::Single(v)) => context.insert(key, v),
                Some(crate::policy::ContextValue::Multi(vs)) => {
                    context.insert_multi(key, vs.iter());
                }
                None => {}
            }
        }
        let resource_account = resource_account(resource);
        match resource_account {
            Some(a) => context.insert("aws:ResourceAccount", a),
            None => context.remove("aws:ResourceAccount"),
        }
        if action.starts_with("kms:")
            && let Some(a) = req.principal.account()
        {
            context.insert("kms:CallerAccount", a.as_str());
        }
        let set = crate::iam::authz::policy_set(&keep.policy_cache, txn, &req.principal)?;
        let resource_policy =
            crate::iam::authz::resource_policy(&keep.policy_cache, txn, action, resource)?;
        let info = req.principal.policy_principal();
        let request = Request {
            principal: &info,
            action,
            resource,
            resource_account,
            context: &context,
            resource_policy: resource_policy.as_ref().map(|(p, _)| &**p),
            resource_policy_required: resource_policy.as_ref().is_some_and(|(_, r)| *r),
        };
        let mut explanation = crate::policy::explain(&set, &request);
        if let Some(why) = session_restriction(&req.principal, action) {
            explanation.decision = crate::policy::EvalDecision::ImplicitDeny;
            why.clone_into(&mut explanation.deciding);
            let message = access_denied(&req.principal, action, resource, why)
                .message()
                .to_owned();
            return Ok(Authorization {
                decision: explanation.decision,
                message: Some(message),
                explanation,
            });
        }
        if req.principal == Principal::KeepAdmin {
            explanation.decision = crate::policy::EvalDecision::Allowed;
            explanation.reason = None;
            "the keep administrator".clone_into(&mut explanation.deciding);
        }
        let message = explanation.reason.map(|r| {
            access_denied(&req.principal, action, resource, &r.message(action))
                .message()
                .to_owned()
        });
        Ok(Authorization {
            decision: explanation.decision,
            message,
            explanation,
        })
    })
}
