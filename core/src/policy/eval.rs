//! IAM's evaluation logic over compiled policies.

use std::fmt;

use super::{
    Effect, Policy, PolicySet, PrincipalEntry, PrincipalInfo, PrincipalKind, Request, Statement,
};

/// The three outcomes IAM's policy simulator reports (`EvalDecision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalDecision {
    /// An applicable policy allows the request and nothing denies it.
    Allowed,
    /// A statement denies the request.
    ExplicitDeny,
    /// Nothing allows the request (or a policy that must allow did not).
    ImplicitDeny,
}

impl EvalDecision {
    /// IAM's spelling: `allowed`, `explicitDeny`, `implicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalDecision::Allowed => "allowed",
            EvalDecision::ExplicitDeny => "explicitDeny",
            EvalDecision::ImplicitDeny => "implicitDeny",
        }
    }
}

impl fmt::Display for EvalDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of policy a decision can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// A service control policy.
    ServiceControl,
    /// The resource's own policy.
    Resource,
    /// An identity-based policy.
    Identity,
    /// A permissions boundary.
    Boundary,
    /// A session policy.
    Session,
}

impl PolicyType {
    /// The phrase AWS uses in denial messages: `identity-based policy`, ...
    pub fn phrase(self) -> &'static str {
        match self {
            PolicyType::ServiceControl => "service control policy",
            PolicyType::Resource => "resource-based policy",
            PolicyType::Identity => "identity-based policy",
            PolicyType::Boundary => "permissions boundary",
            PolicyType::Session => "session policy",
        }
    }

    /// IAM's `SourcePolicyType` in simulation results.
    pub fn simulator_name(self) -> &'static str {
        match self {
            PolicyType::ServiceControl => "aws-managed",
            PolicyType::Resource => "resource",
            PolicyType::Identity => "IAM Policy",
            PolicyType::Boundary => "permissions-boundary",
            PolicyType::Session => "session",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// A statement of this type of policy denied it.
    ExplicitDeny(PolicyType),
    /// No policy of this type allowed it (and one had to).
    NoAllow(PolicyType),
}

impl DenyReason {
    /// The end of AWS's `AccessDenied` message: `because no identity-based policy allows the
    /// kms:Decrypt action` or `with an explicit deny in a service control policy`.
    pub fn message(self, action: &str) -> String {
        match self {
            DenyReason::ExplicitDeny(t) => {
                let article = if t == PolicyType::Identity { "an" } else { "a" };
                format!("with an explicit deny in {article} {}", t.phrase())
            }
            DenyReason::NoAllow(PolicyType::Boundary) => {
                format!("because no permissions boundary allows the {action} action")
            }
            DenyReason::NoAllow(t) => {
                format!("because no {} allows the {action} action", t.phrase())
            }
        }
    }
}

/// A decision and the statement that made it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation<'p> {
    /// The decision.
    pub decision: EvalDecision,
    /// The deciding statement: the deny, or an allow; `None` for an implicit deny and for the
    /// root user acting in its own account.
    pub statement: Option<(&'p Policy, usize)>,
    /// Why, for a denial.
    pub reason: Option<DenyReason>,
}

impl Evaluation<'_> {
    /// True when allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision == EvalDecision::Allowed
    }

    /// Which policy and statement decided, in words.
    pub fn describe(&self) -> String {
        match self.statement {
            Some((policy, index)) => describe_statement(policy, index),
            None => "no statement matched".to_owned(),
        }
    }
}

fn describe_statement(policy: &Policy, index: usize) -> String {
    match policy.sid(index) {
        Some(sid) => format!("statement {index} (Sid {sid}) of {}", policy.name()),
        None => format!("statement {index} of {}", policy.name()),
    }
}

/// One statement that matched a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedStatement {
    /// The policy's name (an ARN or a description of an inline policy).
    pub policy: String,
    /// What kind of policy it is.
    pub policy_type: PolicyType,
    /// The statement's index in the policy.
    pub index: usize,
    /// The statement's `Sid`.
    pub sid: Option<String>,
    /// Its effect.
    pub effect: super::Effect,
}

/// The full account of a decision, for the policy simulator and `authorize` with explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The decision.
    pub decision: EvalDecision,
    /// Why, for a denial.
    pub reason: Option<DenyReason>,
    /// The deciding statement, in words.
    pub deciding: String,
    /// Every statement whose action, resource, principal and conditions matched.
    pub matched: Vec<MatchedStatement>,
    /// Condition keys (as written) that a statement wanted and the request did not have.
    pub missing_context_values: Vec<String>,
}

/// How a resource policy's statement names the principal; decides what the grant is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PrincipalMatch {
    /// Through the account (id or root ARN): the account's own policies must allow.
    Account,
    /// Through the role's ARN: the session is still limited by boundary and session policies.
    Role,
    /// The user, the session, `*`, or a service by name: the grant stands alone (same account).
    Direct,
}

/// What scanning one group of policies found.
struct Scan<'p> {
    allow: Option<(&'p Policy, usize, PrincipalMatch)>,
    deny: Option<(&'p Policy, usize)>,
}

/// Decides `request` for a principal whose policies are `set`. Does not allocate.
pub fn evaluate<'p>(set: &'p PolicySet, request: &Request<'p>) -> Evaluation<'p> {
    decide(set, request, &mut None)
}

/// Like [`evaluate`], and also lists every matching statement and the missing context keys.
pub fn explain(set: &PolicySet, request: &Request<'_>) -> Explanation {
    let mut notes = Some(Notes::default());
    let evaluation = decide(set, request, &mut notes);
    let notes = notes.unwrap_or_default();
    Explanation {
        decision: evaluation.decision,
        reason: evaluation.reason,
        deciding: evaluation.describe(),
        matched: notes.matched,
        missing_context_values: notes.missing,
    }
}

#[derive(Default)]
struct Notes {
    matched: Vec<MatchedStatement>,
    missing: Vec<String>,
}

fn decide<'p>(set: &'p PolicySet, req: &Request<'p>, notes: &mut Option<Notes>) -> Evaluation<'p> {
    let scope = Scope {
        req,
        has_boundary: set.boundary.is_some(),
    };
    let scp = scan(
        set.service_control.iter().map(|p| &**p),
        PolicyType::ServiceControl,
        scope,
        notes,
    );
    let resource = scan(
        req.resource_policy.into_iter(),
        PolicyType::Resource,
        scope,
        notes,
    );
    let identity = scan(
        set.identity.iter().map(|p| &**p),
        PolicyType::Identity,
        scope,
        notes,
    );
    let boundary = scan(
        set.boundary.iter().map(|p| &**p),
        PolicyType::Boundary,
        scope,
        notes,
    );
    let session = scan(
        set.session.iter().map(|p| &**p),
        PolicyType::Session,
        scope,
        notes,
    );

    if let Some(denied) = first_deny(&[&scp, &resource, &identity, &boundary, &session]) {
        return denied;
    }
    let refuse = |policy_type| Evaluation {
        decision: EvalDecision::ImplicitDeny,
        statement: None,
        reason: Some(DenyReason::NoAllow(policy_type)),
    };
    if !set.service_control.is_empty() && scp.allow.is_none() {
        return refuse(PolicyType::ServiceControl);
    }

    let root = req.principal.kind == PrincipalKind::Root;
    let same_account = req
        .resource_account
        .is_none_or(|a| a == req.principal.account);
    let grant = resource.allow;
    let allowed = |statement: Option<(&'p Policy, usize)>| Evaluation {
        decision: EvalDecision::Allowed,
        statement,
        reason: None,
    };
    let grant_statement = grant.map(|(p, i, _)| (p, i));
    // The identity side: identity policies allow, within the boundary and session policies.
    let identity_side = || -> Result<Option<(&'p Policy, usize)>, PolicyType> {
        if root {
            return Ok(None);
        }
        let Some((p, i, _)) = identity.allow else {
            return Err(PolicyType::Identity);
        };
        if set.boundary.is_some() && boundary.allow.is_none() {
            return Err(PolicyType::Boundary);
        }
        if !set.session.is_empty() && session.allow.is_none() {
            return Err(PolicyType::Session);
        }
        Ok(Some((p, i)))
    };
    let limits_allow = || {
        (set.boundary.is_none() || boundary.allow.is_some())
            && (set.session.is_empty() || session.allow.is_some())
    };

    if same_account {
        match grant.map(|(_, _, m)| m) {
            // A resource policy that names the user, the session or everyone grants alone.
            Some(PrincipalMatch::Direct) => return allowed(grant_statement),
            // Naming the role still leaves the session within its boundary and session policy.
            Some(PrincipalMatch::Role) if limits_allow() => return allowed(grant_statement),
            None if req.resource_policy_required => return refuse(PolicyType::Resource),
            _ => {}
        }
        return match identity_side() {
            Ok(statement) => allowed(statement.or(grant_statement)),
            Err(policy_type) => refuse(policy_type),
        };
    }
    // Cross-account: the resource's account and the principal's account must both allow.
    if grant.is_none() {
        return refuse(PolicyType::Resource);
    }
    match identity_side() {
        Ok(statement) => allowed(statement.or(grant_statement)),
        Err(policy_type) => refuse(policy_type),
    }
}

/// The explicit deny among the scans, in the order IAM reports them.
fn first_deny<'p>(scans: &[&Scan<'p>; 5]) -> Option<Evaluation<'p>> {
    const TYPES: [PolicyType; 5] = [
        PolicyType::ServiceControl,
        PolicyType::Resource,
        PolicyType::Identity,
        PolicyType::Boundary,
        PolicyType::Session,
    ];
    scans.iter().zip(TYPES).find_map(|(scan, policy_type)| {
        scan.deny.map(|deny| Evaluation {
            decision: EvalDecision::ExplicitDeny,
            statement: Some(deny),
            reason: Some(DenyReason::ExplicitDeny(policy_type)),
        })
    })
}

/// The request and the facts about the principal that statements are matched against.
#[derive(Clone, Copy)]
struct Scope<'r, 'a> {
    req: &'r Request<'a>,
    has_boundary: bool,
}

fn scan<'p>(
    policies: impl Iterator<Item = &'p Policy>,
    policy_type: PolicyType,
    scope: Scope<'_, '_>,
    notes: &mut Option<Notes>,
) -> Scan<'p> {
    let mut found = Scan {
        allow: None,
        deny: None,
    };
    for policy in policies {
        for statement in policy.candidates(scope.req.action) {
            let Some(principal_match) = applies(statement, scope, notes) else {
                continue;
            };
            if let Some(notes) = notes.as_mut() {
                notes.matched.push(MatchedStatement {
                    policy: policy.name().to_owned(),
                    policy_type,
                    index: statement.index,
                    sid: statement.sid.as_deref().map(str::to_owned),
                    effect: statement.effect,
                });
            }
            match statement.effect {
                Effect::Deny => {
                    if found.deny.is_none() {
                        found.deny = Some((policy, statement.index));
                    }
                    if notes.is_none() {
                        return found;
                    }
                }
                Effect::Allow => {
                    if found.allow.is_none_or(|(_, _, m)| principal_match > m) {
                        found.allow = Some((policy, statement.index, principal_match));
                    }
                }
            }
        }
    }
    found
}

/// Does `statement` apply to the request? Returns how it names the principal (always
/// `Direct` for policies without a principal element).
fn applies(
    s: &Statement,
    scope: Scope<'_, '_>,
    notes: &mut Option<Notes>,
) -> Option<PrincipalMatch> {
    let req = scope.req;
    let action = s.actions.iter().any(|p| p.matches(req.action, req.context)) != s.not_action;
    if !action {
        return None;
    }
    if let Some(resources) = &s.resources {
        let hit = resources
            .iter()
            .any(|p| p.matches(req.resource, req.context));
        if hit == s.not_resource {
            return None;
        }
    }
    let principal_match = match &s.principals {
        None => PrincipalMatch::Direct,
        Some(entries) if s.not_principal => {
            // NotPrincipal lists exact principals (an account's root ARN is the root only).
            // IAM documents that a Deny with NotPrincipal always applies to a principal with a
            // permissions boundary.
            let excluded = entries.iter().any(|e| exactly_names(e, req.principal));
            if excluded && !(scope.has_boundary && s.effect == Effect::Deny) {
                return None;
            }
            PrincipalMatch::Direct
        }
        Some(entries) => entries
            .iter()
            .filter_map(|e| principal_entry_match(e, req.principal))
            .max()?,
    };
    if let Some(notes) = notes.as_mut() {
        for condition in &*s.conditions {
            let keys = std::iter::once((condition.key(), &*condition.key_name))
                .chain(condition.variables().map(|v| (v, v)));
            for (key, name) in keys {
                if req.context.lookup(key).is_none()
                    && !notes.missing.iter().any(|m| m.eq_ignore_ascii_case(name))
                {
                    notes.missing.push(name.to_owned());
                }
            }
        }
    }
    s.conditions
        .iter()
        .all(|c| c.holds(req.context))
        .then_some(principal_match)
}

fn exactly_names(entry: &PrincipalEntry, principal: &PrincipalInfo) -> bool {
    match entry {
        PrincipalEntry::Everyone => true,
        PrincipalEntry::Account(account) => {
            principal.kind == PrincipalKind::Root && **account == principal.account
        }
        PrincipalEntry::Arn(arn) | PrincipalEntry::Other(arn) => **arn == principal.arn,
    }
}

fn principal_entry_match(
    entry: &PrincipalEntry,
    principal: &PrincipalInfo,
) -> Option<PrincipalMatch> {
    match entry {
        PrincipalEntry::Everyone => Some(PrincipalMatch::Direct),
        PrincipalEntry::Account(account) if **account == principal.account => {
            Some(if principal.kind == PrincipalKind::Root {
                PrincipalMatch::Direct
            } else {
                PrincipalMatch::Account
            })
        }
        PrincipalEntry::Arn(arn) if **arn == principal.arn => Some(PrincipalMatch::Direct),
        PrincipalEntry::Arn(arn) => match &principal.kind {
            PrincipalKind::RoleSession { role_arn } if **arn == *role_arn => {
                Some(PrincipalMatch::Role)
            }
            _ => None,
        },
        PrincipalEntry::Other(name)
            if principal.kind == PrincipalKind::Service && **name == principal.arn =>
        {
            Some(PrincipalMatch::Direct)
        }
        _ => None,
    }
}
