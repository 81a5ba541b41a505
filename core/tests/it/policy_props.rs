//! Property tests of the policy engine's evaluation logic, over small random policy sets
//! (identity policies, sometimes a permissions boundary, session policies, service control
//! policies and a resource policy) and random requests:
//!
//! 1. An explicit deny always wins: adding a Deny statement that surely matches the request to
//!    any of the policies makes the decision `ExplicitDeny`.
//! 2. Adding a statement is monotonic: it never turns `ExplicitDeny` into anything else, a Deny
//!    never turns a refusal into `Allowed`, and when an added statement turns a refusal into
//!    `Allowed` it is an Allow that matches the request on its own.
//! 3. Order never matters: shuffling the statements of each policy and the policies of each
//!    list leaves the decision unchanged.

use std::sync::Arc;

use codekeep::policy::{
    Context, Effect, EvalDecision, Policy, PolicyKind, PolicySet, PrincipalInfo, Request, evaluate,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Value, json};

/// The principal of every request.
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
/// The account that owns the resource in cross-account requests.
const OTHER_ACCOUNT: &str = "444455556666";

/// Actions requests ask for; policies name them too.
const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "kms:Decrypt",
    "kms:Encrypt",
    "codecommit:GitPush",
    "codecommit:GitPull",
    "iam:ListUsers",
];
/// Wildcard actions only policies use.
const ACTION_PATTERNS: &[&str] = &["s3:*", "kms:*", "*", "codecommit:Git*", "s3:?etObject"];

/// Resources requests ask for; policies name them too.
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::bucket/a",
    "arn:aws:s3:::bucket/b",
    "arn:aws:s3:::other/a",
    "arn:aws:kms:us-east-1:111122223333:key/k1",
    "arn:aws:codecommit:us-east-1:111122223333:repo",
];
/// Wildcard resources only policies use.
const RESOURCE_PATTERNS: &[&str] = &[
    "arn:aws:s3:::bucket/*",
    "arn:aws:kms:us-east-1:111122223333:key/*",
    "arn:aws:codecommit:*:111122223333:*",
];

/// User names in conditions and in the context.
const NAMES: &[&str] = &["alice", "bob"];
/// Source addresses of requests: one in 10.0.0.0/8, one outside it.
const SOURCE_IPS: &[&str] = &["10.1.2.3", "192.0.2.1"];
/// Branches a push may update.
const REFERENCES: &[&str] = &["refs/heads/main", "refs/heads/dev"];

/// Whom a statement in a resource policy names: `*` or an `AWS` principal.
const RESOURCE_PRINCIPALS: &[&str] = &[
    "*",
    ALICE,
    "111122223333",
    "arn:aws:iam::111122223333:user/bob",
];

/// The resource principals that surely name the principal of every request.
const MATCHING_PRINCIPALS: &[&str] = &["*", ALICE];

/// One of the conditions statements may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    /// `StringEquals aws:username NAME`.
    Username(&'static str),
    /// `Bool aws:SecureTransport true`.
    SecureTransport,
    /// `IpAddress aws:SourceIp 10.0.0.0/8`.
    SourceIpInTen,
    /// `StringEqualsIfExists codecommit:References refs/heads/main`.
    MainBranchIfExists,
    /// `Null codecommit:References false`.
    ReferencesPresent,
    /// `ForAnyValue:StringLike aws:TagKeys team*`.
    TeamTagKey,
}

impl Cond {
    /// The operator, the key and the value, as the policy writes them.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Cond::Username(name) => ("StringEquals", "aws:username", name),
            Cond::SecureTransport => ("Bool", "aws:SecureTransport", "true"),
            Cond::SourceIpInTen => ("IpAddress", "aws:SourceIp", "10.0.0.0/8"),
            Cond::MainBranchIfExists => (
                "StringEqualsIfExists",
                "codecommit:References",
                "refs/heads/main",
            ),
            Cond::ReferencesPresent => ("Null", "codecommit:References", "false"),
            Cond::TeamTagKey => ("ForAnyValue:StringLike", "aws:TagKeys", "team*"),
        }
    }
}

/// A statement before it is written as JSON.
#[derive(Debug, Clone)]
struct Stmt {
    effect: Effect,
    not_action: bool,
    actions: Vec<&'static str>,
    not_resource: bool,
    resources: Vec<&'static str>,
    /// At most one per operator and key.
    conditions: Vec<Cond>,
    /// Whom the statement names when it sits in a resource policy; ignored elsewhere.
    principal: &'static str,
}

impl Stmt {
    fn to_json(&self, with_principal: bool) -> Value {
        let mut s = Map::new();
        let effect = match self.effect {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        };
        s.insert("Effect".to_owned(), json!(effect));
        if with_principal {
            let principal = if self.principal == "*" {
                json!("*")
            } else {
                json!({ "AWS": self.principal })
            };
            s.insert("Principal".to_owned(), principal);
        }
        let action = if self.not_action {
            "NotAction"
        } else {
            "Action"
        };
        s.insert(action.to_owned(), json!(self.actions));
        let resource = if self.not_resource {
            "NotResource"
        } else {
            "Resource"
        };
        s.insert(resource.to_owned(), json!(self.resources));
        if !self.conditions.is_empty() {
            let mut block = Map::new();
            for (operator, key, value) in self.conditions.iter().map(|c| c.parts()) {
                let keys = block
                    .entry(operator)
                    .or_insert_with(|| Value::Object(Map::new()));
                keys.as_object_mut()
                    .unwrap()
                    .insert(key.to_owned(), json!(value));
            }
            s.insert("Condition".to_owned(), Value::Object(block));
        }
        Value::Object(s)
    }
}

/// The statements of one policy.
type Doc = Vec<Stmt>;

/// The policies of one scenario, before they are parsed.
#[derive(Debug, Clone, Default)]
struct Policies {
    identity: Vec<Doc>,
    boundary: Option<Doc>,
    session: Vec<Doc>,
    service_control: Vec<Doc>,
    resource: Option<Doc>,
}

/// The request context, key by key.
#[derive(Debug, Clone)]
struct Ctx {
    username: Option<&'static str>,
    secure_transport: Option<bool>,
    source_ip: Option<&'static str>,
    references: Option<&'static str>,
    tag_keys: bool,
}

impl Ctx {
    fn build(&self) -> Context {
        let mut context = Context::new();
        if let Some(name) = self.username {
            context.insert("aws:username", name);
        }
        if let Some(secure) = self.secure_transport {
            context.insert("aws:SecureTransport", if secure { "true" } else { "false" });
        }
        if let Some(ip) = self.source_ip {
            context.insert("aws:SourceIp", ip);
        }
        if let Some(reference) = self.references {
            context.insert("codecommit:References", reference);
        }
        if self.tag_keys {
            context.insert_multi("aws:TagKeys", ["team", "cost"]);
        }
        context
    }
}

/// The request, before it is built.
#[derive(Debug, Clone)]
struct Req {
    action: &'static str,
    resource: &'static str,
    cross_account: bool,
    resource_policy_required: bool,
    context: Ctx,
}

fn parse(kind: PolicyKind, name: &str, doc: &[Stmt]) -> Policy {
    let statements: Vec<Value> = doc
        .iter()
        .map(|s| s.to_json(kind == PolicyKind::Resource))
        .collect();
    let text = json!({ "Version": "2012-10-17", "Statement": statements }).to_string();
    Policy::parse(kind, name, &text)
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{text}"))
}

fn parse_list(kind: PolicyKind, name: &str, docs: &[Doc]) -> Vec<Arc<Policy>> {
    docs.iter()
        .enumerate()
        .map(|(i, doc)| Arc::new(parse(kind, &format!("{name}[{i}]"), doc)))
        .collect()
}

/// The engine's decision on `req` under `policies`.
fn decide(policies: &Policies, req: &Req) -> EvalDecision {
    let set = PolicySet {
        identity: parse_list(PolicyKind::Identity, "identity", &policies.identity),
        boundary: policies
            .boundary
            .as_ref()
            .map(|doc| Arc::new(parse(PolicyKind::Identity, "boundary", doc))),
        session: parse_list(PolicyKind::Identity, "session", &policies.session),
        service_control: parse_list(PolicyKind::ServiceControl, "scp", &policies.service_control),
    };
    let resource_policy = policies
        .resource
        .as_ref()
        .map(|doc| parse(PolicyKind::Resource, "resource", doc));
    let principal = PrincipalInfo::from_arn(ALICE).unwrap();
    let context = req.context.build();
    let request = Request {
        principal: &principal,
        action: req.action,
        resource: req.resource,
        resource_account: req.cross_account.then_some(OTHER_ACCOUNT),
        context: &context,
        resource_policy: resource_policy.as_ref(),
        resource_policy_required: req.resource_policy_required,
    };
    evaluate(&set, &request).decision
}

/// Is `stmt` an Allow that matches `req` by itself: alone as an identity policy, with no
/// boundary, session, service control or resource policy, in the principal's own account?
fn allows_alone(stmt: &Stmt, req: &Req) -> bool {
    let alone = Policies {
        identity: vec![vec![stmt.clone()]],
        ..Policies::default()
    };
    let plain = Req {
        cross_account: false,
        resource_policy_required: false,
        ..req.clone()
    };
    decide(&alone, &plain) == EvalDecision::Allowed
}

/// Which policy a statement is added to.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Identity,
    Boundary,
    Session,
    ServiceControl,
    Resource,
}

/// Where to add a statement: a list, and in it an existing policy or a new one. The boundary
/// and the resource policy are created when missing.
#[derive(Debug, Clone)]
struct Placement {
    slot: Slot,
    policy: Index,
    new_policy: bool,
}

fn with_statement(policies: &Policies, place: &Placement, stmt: Stmt) -> Policies {
    let mut out = policies.clone();
    match place.slot {
        Slot::Identity => add_to_list(&mut out.identity, place, stmt),
        Slot::Session => add_to_list(&mut out.session, place, stmt),
        Slot::ServiceControl => add_to_list(&mut out.service_control, place, stmt),
        Slot::Boundary => out.boundary.get_or_insert_with(Vec::new).push(stmt),
        Slot::Resource => out.resource.get_or_insert_with(Vec::new).push(stmt),
    }
    out
}

fn add_to_list(list: &mut Vec<Doc>, place: &Placement, stmt: Stmt) {
    if place.new_policy || list.is_empty() {
        list.push(vec![stmt]);
    } else {
        let i = place.policy.index(list.len());
        list[i].push(stmt);
    }
}

/// `stmt` naming the request's own action and resource first, so that it more often matches.
fn aimed_at(mut stmt: Stmt, req: &Req) -> Stmt {
    stmt.actions[0] = req.action;
    stmt.resources[0] = req.resource;
    stmt
}

/// How a surely-matching deny covers the request's action or resource.
#[derive(Debug, Clone, Copy)]
enum Cover {
    /// `*`.
    Star,
    /// The request's own action or resource.
    Exact,
    /// `NotAction` / `NotResource` of something the request never names.
    AllBut,
}

/// A Deny without conditions that matches `req` whatever else is around it.
fn covering_deny(req: &Req, action: Cover, resource: Cover, principal: &'static str) -> Stmt {
    let (not_action, action) = match action {
        Cover::Star => (false, "*"),
        Cover::Exact => (false, req.action),
        Cover::AllBut => (true, "sts:AssumeRole"),
    };
    let (not_resource, resource) = match resource {
        Cover::Star => (false, "*"),
        Cover::Exact => (false, req.resource),
        Cover::AllBut => (true, "arn:aws:s3:::nowhere/*"),
    };
    Stmt {
        effect: Effect::Deny,
        not_action,
        actions: vec![action],
        not_resource,
        resources: vec![resource],
        conditions: Vec::new(),
        principal,
    }
}

// ---- Strategies ----

/// Mostly Allow, so that some requests are allowed at all.
fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![2 => Just(Effect::Allow), 1 => Just(Effect::Deny)]
}

fn condition() -> impl Strategy<Value = Cond> {
    prop_oneof![
        select(NAMES).prop_map(Cond::Username),
        Just(Cond::SecureTransport),
        Just(Cond::SourceIpInTen),
        Just(Cond::MainBranchIfExists),
        Just(Cond::ReferencesPresent),
        Just(Cond::TeamTagKey),
    ]
}

/// Usually none, else one or two conditions, at most one per operator and key.
fn conditions() -> impl Strategy<Value = Vec<Cond>> {
    let some = prop::collection::vec(condition(), 1..=2);
    prop_oneof![Just(Vec::new()), some].prop_map(|mut conditions| {
        let mut seen = Vec::new();
        conditions.retain(|c| {
            let (operator, key, _) = c.parts();
            let fresh = !seen.contains(&(operator, key));
            seen.push((operator, key));
            fresh
        });
        conditions
    })
}

fn statement() -> impl Strategy<Value = Stmt> {
    let action = prop_oneof![select(ACTIONS), select(ACTION_PATTERNS)];
    let resource = prop_oneof![select(RESOURCES), select(RESOURCE_PATTERNS)];
    (
        effect(),
        prop::bool::weighted(0.2),
        prop::collection::vec(action, 1..=2),
        prop::bool::weighted(0.2),
        prop::collection::vec(resource, 1..=2),
        conditions(),
        select(RESOURCE_PRINCIPALS),
    )
        .prop_map(
            |(effect, not_action, actions, not_resource, resources, conditions, principal)| Stmt {
                effect,
                not_action,
                actions,
                not_resource,
                resources,
                conditions,
                principal,
            },
        )
}

fn doc() -> impl Strategy<Value = Doc> {
    prop::collection::vec(statement(), 1..=3)
}

/// Usually none, sometimes one or two policies.
fn few_docs() -> impl Strategy<Value = Vec<Doc>> {
    prop::option::weighted(0.3, prop::collection::vec(doc(), 1..=2))
        .prop_map(Option::unwrap_or_default)
}

fn policies() -> impl Strategy<Value = Policies> {
    (
        prop::collection::vec(doc(), 0..=3),
        prop::option::weighted(0.25, doc()),
        few_docs(),
        few_docs(),
        prop::option::weighted(0.3, doc()),
    )
        .prop_map(
            |(identity, boundary, session, service_control, resource)| Policies {
                identity,
                boundary,
                session,
                service_control,
                resource,
            },
        )
}

fn context() -> impl Strategy<Value = Ctx> {
    (
        prop::option::of(select(NAMES)),
        prop::option::of(any::<bool>()),
        prop::option::of(select(SOURCE_IPS)),
        prop::option::of(select(REFERENCES)),
        any::<bool>(),
    )
        .prop_map(
            |(username, secure_transport, source_ip, references, tag_keys)| Ctx {
                username,
                secure_transport,
                source_ip,
                references,
                tag_keys,
            },
        )
}

fn request() -> impl Strategy<Value = Req> {
    (
        select(ACTIONS),
        select(RESOURCES),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        context(),
    )
        .prop_map(
            |(action, resource, cross_account, resource_policy_required, context)| Req {
                action,
                resource,
                cross_account,
                resource_policy_required,
                context,
            },
        )
}

fn placement() -> impl Strategy<Value = Placement> {
    let slot = prop_oneof![
        3 => Just(Slot::Identity),
        1 => Just(Slot::Boundary),
        1 => Just(Slot::Session),
        1 => Just(Slot::ServiceControl),
        1 => Just(Slot::Resource),
    ];
    (slot, any::<Index>(), any::<bool>()).prop_map(|(slot, policy, new_policy)| Placement {
        slot,
        policy,
        new_policy,
    })
}

fn cover() -> impl Strategy<Value = Cover> {
    prop_oneof![Just(Cover::Star), Just(Cover::Exact), Just(Cover::AllBut)]
}

fn shuffled_doc(doc: Doc) -> impl Strategy<Value = Doc> {
    Just(doc).prop_shuffle()
}

fn shuffled_list(docs: Vec<Doc>) -> impl Strategy<Value = Vec<Doc>> {
    docs.into_iter()
        .map(shuffled_doc)
        .collect::<Vec<_>>()
        .prop_flat_map(|docs| Just(docs).prop_shuffle())
}

fn shuffled_option(doc: Option<Doc>) -> BoxedStrategy<Option<Doc>> {
    match doc {
        Some(doc) => shuffled_doc(doc).prop_map(Some).boxed(),
        None => Just(None).boxed(),
    }
}

/// `policies` with the statements of every policy and the policies of every list reordered.
fn shuffled(policies: Policies) -> impl Strategy<Value = Policies> {
    (
        shuffled_list(policies.identity),
        shuffled_option(policies.boundary),
        shuffled_list(policies.session),
        shuffled_list(policies.service_control),
        shuffled_option(policies.resource),
    )
        .prop_map(
            |(identity, boundary, session, service_control, resource)| Policies {
                identity,
                boundary,
                session,
                service_control,
                resource,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A Deny that matches the request, added to any policy, decides: `ExplicitDeny`.
    #[test]
    fn a_matching_deny_always_wins(
        policies in policies(),
        req in request(),
        place in placement(),
        action in cover(),
        resource in cover(),
        principal in select(MATCHING_PRINCIPALS),
    ) {
        let deny = covering_deny(&req, action, resource, principal);
        let denied = with_statement(&policies, &place, deny);
        prop_assert_eq!(decide(&denied, &req), EvalDecision::ExplicitDeny);
    }

    /// The order of statements in a policy and of policies in a list never matters.
    #[test]
    fn order_does_not_matter(
        (policies, reordered) in policies()
            .prop_flat_map(|p| (Just(p.clone()), shuffled(p))),
        req in request(),
    ) {
        prop_assert_eq!(decide(&policies, &req), decide(&reordered, &req));
    }
}

proptest! {
    // More cases here: an added statement turns a refusal into an allow in only a few percent
    // of them, and that is the case the property is about.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Adding a statement keeps an explicit deny; it turns a refusal into `Allowed` only when
    /// it is an Allow that matches the request, so a Deny never does.
    #[test]
    fn adding_a_statement_is_monotonic(
        policies in policies(),
        req in request(),
        place in placement(),
        added in statement(),
        aimed in any::<bool>(),
    ) {
        let added = if aimed { aimed_at(added, &req) } else { added };
        let before = decide(&policies, &req);
        let after = decide(&with_statement(&policies, &place, added.clone()), &req);
        if before == EvalDecision::ExplicitDeny {
            prop_assert_eq!(after, EvalDecision::ExplicitDeny);
        }
        if before != EvalDecision::Allowed && after == EvalDecision::Allowed {
            prop_assert_eq!(added.effect, Effect::Allow, "a Deny turned {} into allowed", before);
            prop_assert!(
                allows_alone(&added, &req),
                "a statement that does not match turned {} into allowed",
                before
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Untrusted documents never panic the parser: any text, and JSON shaped like a policy
    /// with arbitrary strings where IAM expects actions, ARNs, operators and values, parse to a
    /// policy or to `MalformedPolicyDocument`.
    #[test]
    fn parsing_never_panics(
        text in ".{0,200}",
        action in ".{0,40}",
        resource in ".{0,60}",
        operator in ".{0,30}",
        key in ".{0,30}",
        value in ".{0,40}",
    ) {
        for kind in [PolicyKind::Identity, PolicyKind::Resource, PolicyKind::Trust, PolicyKind::ServiceControl] {
            if let Err(e) = Policy::parse(kind, "p", &text) {
                prop_assert!(e.code().starts_with("MalformedPolicyDocument"), "{}", e);
            }
            let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": action, "Resource": resource,
                "Condition": {operator.clone(): {key.clone(): value.clone()}}}]});
            if let Ok(policy) = Policy::parse(kind, "p", &doc.to_string()) {
                // A policy that parses also evaluates without panicking.
                let principal = PrincipalInfo::from_arn("arn:aws:iam::111122223333:user/alice").unwrap();
                let mut context = Context::new();
                context.insert(&key, &value);
                let set = PolicySet { identity: vec![std::sync::Arc::new(policy)], ..PolicySet::default() };
                let req = Request {
                    principal: &principal,
                    action: &action,
                    resource: &resource,
                    resource_account: None,
                    context: &context,
                    resource_policy: None,
                    resource_policy_required: false,
                };
                let _ = evaluate(&set, &req);
            }
        }
    }
}
