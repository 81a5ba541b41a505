//! The policy engine: AWS IAM's policy language and evaluation logic.
//!
//! A [`Policy`] is parsed, validated and compiled once ([`Policy::parse`]); a document IAM would
//! reject is refused with `MalformedPolicyDocument`, naming the statement and element. Requests
//! are decided by [`evaluate`] over a [`PolicySet`] (the principal's identity policies,
//! permissions boundary, session policies and service control policies) and the resource's own
//! policy, in IAM's documented order: an explicit deny anywhere wins; service control policies
//! must allow; then the resource-based and identity-based policies, limited by the boundary and
//! the session policies, with IAM's same-account and cross-account rules. Evaluation does not
//! allocate; [`explain`] gives the full account of a decision (every matching statement, and
//! the context keys the conditions wanted but the request lacked).

mod condition;
mod context;
mod document;
mod eval;
mod pattern;

use std::sync::Arc;

pub use context::{Context, ContextValue};
pub(crate) use document::PrincipalEntry;
pub use eval::{
    DenyReason, EvalDecision, Evaluation, Explanation, MatchedStatement, PolicyType, evaluate,
    explain,
};

use crate::error::Result;

/// What a policy is attached to; decides which elements its grammar allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyKind {
    /// Identity-based: managed and inline policies, permissions boundaries, session policies.
    /// No `Principal`.
    Identity,
    /// Resource-based (KMS key policies, ...): `Principal` required.
    Resource,
    /// A role trust policy: `Principal` required, no `Resource`, only STS actions.
    Trust,
    /// A service control policy (Organizations): no `Principal`.
    ServiceControl,
}

/// A parsed, validated and compiled policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    name: Box<str>,
    kind: PolicyKind,
    id: Option<Box<str>>,
    variables: bool,
    statements: Box<[Statement]>,
    /// Which statements can match an action of a given service.
    index: ActionIndex,
}

/// Statements by the service of their actions, so a request looks only at statements that can
/// name its action: those of its service, plus those with `NotAction` or a wildcard service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ActionIndex {
    /// Lower-cased service prefix and the statements naming it, sorted by prefix.
    by_service: Box<[ServiceStatements]>,
    /// Statements that may match any service.
    any_service: Box<[u32]>,
}

impl ActionIndex {
    fn build(statements: &[Statement]) -> ActionIndex {
        let mut by_service: Vec<(Box<str>, Vec<u32>)> = Vec::new();
        let mut any_service = Vec::new();
        for (i, statement) in statements.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let services: Option<Vec<String>> = if statement.not_action {
                None
            } else {
                statement
                    .actions
                    .iter()
                    .map(|a| {
                        a.literal_prefix()
                            .split_once(':')
                            .map(|(service, _)| service.to_ascii_lowercase())
                    })
                    .collect()
            };
            let Some(mut services) = services else {
                any_service.push(i);
                continue;
            };
            services.sort_unstable();
            services.dedup();
            for service in services {
                match by_service.binary_search_by(|(s, _)| (**s).cmp(service.as_str())) {
                    Ok(at) => {
                        if let Some((_, list)) = by_service.get_mut(at) {
                            list.push(i);
                        }
                    }
                    Err(at) => by_service.insert(at, (service.into_boxed_str(), vec![i])),
                }
            }
        }
        ActionIndex {
            by_service: by_service
                .into_iter()
                .map(|(s, l)| (s, l.into_boxed_slice()))
                .collect(),
            any_service: any_service.into_boxed_slice(),
        }
    }

    /// The statements that may match `action`.
    fn candidates(&self, action: &str) -> impl Iterator<Item = usize> + '_ {
        let service = action.split_once(':').map_or(action, |(s, _)| s);
        let listed: &[u32] = self
            .by_service
            .binary_search_by(|(s, _)| cmp_ignore_ascii_case(s, service))
            .ok()
            .and_then(|at| self.by_service.get(at))
            .map_or(&[], |(_, list)| list);
        self.any_service
            .iter()
            .chain(listed)
            .map(|i| usize::try_from(*i).unwrap_or(usize::MAX))
    }
}

/// A lower-cased service prefix and the indexes of the statements naming it.
type ServiceStatements = (Box<str>, Box<[u32]>);

/// Compares `a` (already lower case) with `b` as if `b` were lower-cased.
fn cmp_ignore_ascii_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes().cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

impl Policy {
    fn new(
        name: Box<str>,
        kind: PolicyKind,
        id: Option<Box<str>>,
        variables: bool,
        statements: Box<[Statement]>,
    ) -> Policy {
        let index = ActionIndex::build(&statements);
        Policy {
            name,
            kind,
            id,
            variables,
            statements,
            index,
        }
    }

    /// The statements that may match `action`, in no particular order.
    fn candidates(&self, action: &str) -> impl Iterator<Item = &Statement> {
        self.index
            .candidates(action)
            .filter_map(|i| self.statements.get(i))
    }

    /// Parses `document`, validating it as IAM does for a policy of `kind`. `name` identifies
    /// the policy in explanations (an ARN, or `user/alice inline policy P`).
    ///
    /// # Errors
    /// `MalformedPolicyDocument` (kind `InvalidArgument`) with IAM's reason and the place:
    /// `... (statement 1, element Resource)`.
    pub fn parse(kind: PolicyKind, name: &str, document: &str) -> Result<Policy> {
        document::parse(kind, name, document)
    }

    /// The name given when parsing.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind it was validated as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The document's `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// True for Version 2012-10-17, where `${...}` are policy variables.
    pub fn uses_variables(&self) -> bool {
        self.variables
    }

    /// The number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// The `Sid` of statement `index`.
    pub fn sid(&self, index: usize) -> Option<&str> {
        self.statements.get(index).and_then(|s| s.sid.as_deref())
    }
}

/// `ArnLike`: does `arn` match `pattern` segment by segment (`*` and `?` wildcards)?
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    pattern::ArnPattern::compile(pattern, false).matches(arn, &Context::new())
}

/// The size IAM counts against its policy quotas: characters other than white space.
pub fn policy_size(document: &str) -> usize {
    document::counted_len(document)
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement refuses; an explicit deny always wins.
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    sid: Option<Box<str>>,
    index: usize,
    effect: Effect,
    principals: Option<Box<[PrincipalEntry]>>,
    not_principal: bool,
    actions: Box<[pattern::Pattern]>,
    not_action: bool,
    /// `None` in trust policies, which have no resource element.
    resources: Option<Box<[pattern::ArnPattern]>>,
    not_resource: bool,
    conditions: Box<[condition::Condition]>,
}

/// Who is asking, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalInfo {
    /// The principal's ARN (`arn:aws:iam::1:user/alice`, `arn:aws:sts::1:assumed-role/R/s`).
    pub arn: String,
    /// Its account.
    pub account: String,
    /// What kind of principal it is.
    pub kind: PrincipalKind,
}

/// The kinds of principal the evaluation rules tell apart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// The account's root user: allowed everything in its own account unless denied.
    Root,
    /// An IAM user.
    User,
    /// A role session; `role_arn` is the role's ARN (with its path).
    RoleSession {
        /// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
        role_arn: String,
    },
    /// An AWS service principal such as `codepipeline.amazonaws.com`.
    Service,
}

impl PrincipalInfo {
    /// Builds the principal from its ARN: a root, user or assumed-role ARN. For a role session
    /// the role's ARN is rebuilt without a path; use [`PrincipalInfo::role_session`] when the
    /// role has one.
    pub fn from_arn(arn: &str) -> Option<PrincipalInfo> {
        let parsed: crate::arn::Arn = arn.parse().ok()?;
        let account = parsed.account().to_owned();
        let kind = match (parsed.service(), parsed.resource()) {
            ("iam", "root") => PrincipalKind::Root,
            ("iam", r) if r.starts_with("user/") => PrincipalKind::User,
            ("sts", r) if r.starts_with("assumed-role/") => {
                let role = r.get("assumed-role/".len()..)?.split('/').next()?;
                PrincipalKind::RoleSession {
                    role_arn: format!("arn:{}:iam::{account}:role/{role}", parsed.partition()),
                }
            }
            _ => return None,
        };
        Some(PrincipalInfo {
            arn: arn.to_owned(),
            account,
            kind,
        })
    }

    /// A role session of `role_arn`.
    pub fn role_session(session_arn: &str, role_arn: &str, account: &str) -> PrincipalInfo {
        PrincipalInfo {
            arn: session_arn.to_owned(),
            account: account.to_owned(),
            kind: PrincipalKind::RoleSession {
                role_arn: role_arn.to_owned(),
            },
        }
    }
}

/// The policies that apply to a principal (everything except the resource's own policy).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// Identity-based policies: inline and managed, of the user, its groups, or the role.
    pub identity: Vec<Arc<Policy>>,
    /// The permissions boundary, if one is set.
    pub boundary: Option<Arc<Policy>>,
    /// Session policies (AssumeRole's `Policy` and `PolicyArns`); empty outside sessions.
    pub session: Vec<Arc<Policy>>,
    /// Service control policies of the principal's account; empty means none restrict it.
    pub service_control: Vec<Arc<Policy>>,
}

/// One authorization question for the engine.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who asks.
    pub principal: &'a PrincipalInfo,
    /// The action, e.g. `kms:Decrypt`.
    pub action: &'a str,
    /// The resource ARN, or `*`.
    pub resource: &'a str,
    /// The account that owns the resource (the principal's when `None`).
    pub resource_account: Option<&'a str>,
    /// Condition keys of the request.
    pub context: &'a Context,
    /// The resource's own policy (a KMS key policy, a role trust policy, ...).
    pub resource_policy: Option<&'a Policy>,
    /// True when the resource policy must allow explicitly, as for KMS key policies and role
    /// trust policies.
    pub resource_policy_required: bool,
}
