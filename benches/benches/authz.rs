//! Authorization decisions: codekeep's IAM policy engine vs Amazon's Cedar (`cedar-policy`).
//!
//! Two scenarios, each decided by both engines over the same fixed mix of 64 requests:
//! a typical IAM user (3 groups, 6 policies, 40 statements with action and resource wildcards
//! and conditions), and the same user with 9,960 generated statements added (10,000 in all),
//! most of which match nothing in the mix. Every policy is written once, in a small model
//! ([`Doc`] / [`Stmt`]), and rendered both as an IAM JSON document and as Cedar policies, one
//! Cedar `permit`/`forbid` per IAM statement. Before anything is timed, both engines decide
//! every request of the mix and must agree (allowed, explicit deny, implicit deny, and the
//! deciding statement), so the comparison is of equal work.
//!
//! How IAM's language maps onto Cedar, and why the mapping is exact for the requests asked:
//! - Groups become Cedar `Group` entities that are parents of `User::"alice"`; a group's policy
//!   is `principal in Group::"..."`, a user's is `principal == User::"alice"`.
//! - Cedar has no action wildcards. Each IAM action pattern (`codecommit:Get*`) becomes a Cedar
//!   action group, an `Action` entity with that name, whose members are the concrete actions of
//!   a fixed universe that IAM's pattern matches (IAM compares actions without case). The
//!   universe holds every action of every request, so membership is exact for the mix. This is
//!   Cedar's own idiom for sets of actions, and keeps Cedar's check a hierarchy lookup.
//! - Resources are `Resource` entities with an `arn` attribute; an IAM resource pattern becomes
//!   `resource.arn like "..."`. IAM matches ARN fields one by one, Cedar's `like` the whole
//!   text; they agree because every wildcard here is in the last field, and no `?` is used.
//! - Conditions read the request context: `aws:PrincipalTag/team` is `context.team`,
//!   `aws:SourceIp` is `context.source_ip` (an `ipaddr`, tested with `isInRange`),
//!   `aws:SecureTransport` is `context.secure_transport`, and `codecommit:References`, present
//!   only on requests that name a reference, is `context.references` behind `has`, as IAM
//!   treats a missing key as not matching.
//!
//! Latency is measured per decision with `Instant`, 16 decisions to a sample (one decision is
//! near the timer's resolution), and reported as the p50 and p99 of those per-decision means.
//! Compile cost is the time to parse and compile the 10,000 statements; compiled size is the
//! heap the compiled set keeps, counted by the counting allocator below.
//!
//! With `CODEKEEP_AUTHZ_CHECK_ONLY` set, the bench builds both scenarios, checks that the
//! engines agree on every request, prints the tallies and stops, in a second or two.
#![expect(
    clippy::expect_used,
    reason = "benchmark harness: a setup failure must stop the run, saying why"
)]
#![expect(clippy::print_stdout, reason = "benchmarks report on stdout")]
#![expect(clippy::cast_precision_loss, reason = "counts and sizes as figures")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use cedar_policy as cedar;
use codekeep::policy::{
    Context, EvalDecision, Policy, PolicyKind, PolicySet, PrincipalInfo, Request, evaluate,
};
use codekeep_bench::{median_time, summary};
use criterion::{Criterion, SamplingMode, Throughput};
use serde_json::{Map, Value, json};

const ACCOUNT: &str = "111122223333";
const USER: &str = "alice";
const GROUPS: [&str; 3] = ["developers", "readers", "ci"];

/// Decisions per timing sample.
const BATCH: usize = 16;
/// Enough samples that every start offset in the 64-request mix is timed at least once.
const MIN_SAMPLES: usize = 64;
/// A cap on memory for the fast cases.
const MAX_SAMPLES: usize = 200_000;

/// The statements of the large scenario, and how the generated ones are split into policies.
const LARGE_STATEMENTS: usize = 10_000;
const GENERATED_PER_POLICY: usize = 120;

// A counting allocator, for what a compiled policy set keeps on the heap. It counts only while
// `COUNTING` is set, so the timed loops pay one relaxed load per allocation and nothing more,
// the same for both engines.

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

struct CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn note(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

#[expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one forwards"
)]
// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches no memory of the allocation.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are passed on to `System`.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(signed(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through this type).
        unsafe { System.dealloc(ptr, layout) };
        note(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller's guarantees for `new_size` pass on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(signed(new_size) - signed(layout.size()));
        }
        new
    }
}

/// Runs `f` and returns what it built with the bytes it left allocated: what the result keeps,
/// since the scratch space of the work has been freed by the time `f` returns.
fn retained<T>(f: impl FnOnce() -> T) -> (T, isize) {
    LIVE_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let value = f();
    COUNTING.store(false, Ordering::SeqCst);
    (value, LIVE_BYTES.load(Ordering::SeqCst))
}

// The policy model both engines' policies are rendered from.

/// Who a policy is attached to.
#[derive(Clone, Copy)]
enum Attached {
    Group(&'static str),
    User,
}

/// The condition keys and operators the scenarios use.
enum Cond {
    /// `StringEquals` on `aws:PrincipalTag/team`.
    Team(String),
    /// `IpAddress` on `aws:SourceIp`.
    SourceIp(String),
    /// `Bool` on `aws:SecureTransport`.
    SecureTransport(bool),
    /// `StringLike` on `codecommit:References`.
    ReferencesLike(String),
}

struct Stmt {
    deny: bool,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Cond>,
}

struct Doc {
    name: String,
    attached: Attached,
    statements: Vec<Stmt>,
}

fn allow(actions: &[&str], resources: &[&str], conditions: Vec<Cond>) -> Stmt {
    Stmt {
        deny: false,
        actions: actions.iter().map(|&a| a.to_owned()).collect(),
        resources: resources.iter().map(|&r| r.to_owned()).collect(),
        conditions,
    }
}

fn deny(actions: &[&str], resources: &[&str], conditions: Vec<Cond>) -> Stmt {
    Stmt {
        deny: true,
        ..allow(actions, resources, conditions)
    }
}

fn team(value: &str) -> Cond {
    Cond::Team(value.to_owned())
}

fn source_ip(cidr: &str) -> Cond {
    Cond::SourceIp(cidr.to_owned())
}

fn refs(pattern: &str) -> Cond {
    Cond::ReferencesLike(pattern.to_owned())
}

fn repo(name: &str) -> String {
    format!("arn:aws:codecommit:us-east-1:{ACCOUNT}:{name}")
}

fn arn(service: &str, resource: &str) -> String {
    format!("arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}")
}

fn managed(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{name}")
}

/// The typical user: alice, in the groups developers, readers and ci; 6 policies, 40
/// statements, one of them a Deny.
fn typical_user() -> Vec<Doc> {
    let secure = || Cond::SecureTransport(true);
    let any = "*";
    let build_platform = arn("codebuild", "project/platform-*");
    let pipeline_platform = arn("codepipeline", "platform-*");
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/{USER}");
    vec![
        Doc {
            name: managed("DevelopersRead"),
            attached: Attached::Group("developers"),
            statements: vec![
                allow(
                    &[
                        "codecommit:Get*",
                        "codecommit:BatchGet*",
                        "codecommit:Describe*",
                    ],
                    &[&repo("repo-*")],
                    vec![team("platform")],
                ),
                allow(&["codecommit:List*"], &[any], vec![]),
                allow(&["codecommit:GitPull"], &[&repo("repo-*")], vec![secure()]),
                allow(
                    &[
                        "codecommit:GetPullRequest",
                        "codecommit:DescribePullRequestEvents",
                        "codecommit:GetCommentsForPullRequest",
                    ],
                    &[&repo("legacy-*")],
                    vec![],
                ),
                allow(
                    &["codebuild:BatchGetBuilds", "codebuild:BatchGetProjects"],
                    &[&build_platform],
                    vec![],
                ),
                allow(
                    &["logs:GetLogEvents", "logs:FilterLogEvents"],
                    &[&arn("logs", "log-group:/aws/codebuild/platform-*")],
                    vec![],
                ),
                allow(
                    &["codepipeline:GetPipelineState", "codepipeline:GetPipeline"],
                    &[&pipeline_platform],
                    vec![],
                ),
                allow(
                    &["codecommit:GetRepositoryTriggers"],
                    &[&repo("*")],
                    vec![source_ip("10.0.0.0/8")],
                ),
            ],
        },
        Doc {
            name: managed("DevelopersWrite"),
            attached: Attached::Group("developers"),
            statements: vec![
                allow(
                    &[
                        "codecommit:GitPush",
                        "codecommit:CreateBranch",
                        "codecommit:PutFile",
                        "codecommit:CreateCommit",
                    ],
                    &[&repo("repo-*")],
                    vec![
                        refs("refs/heads/feature/*"),
                        source_ip("10.0.0.0/8"),
                        secure(),
                    ],
                ),
                allow(
                    &[
                        "codecommit:CreatePullRequest",
                        "codecommit:UpdatePullRequest*",
                        "codecommit:PostCommentForPullRequest",
                    ],
                    &[&repo("repo-*")],
                    vec![team("platform")],
                ),
                allow(
                    &["codecommit:Merge*"],
                    &[&repo("repo-*")],
                    vec![team("platform"), source_ip("10.0.0.0/8")],
                ),
                allow(
                    &["codecommit:DeleteBranch"],
                    &[&repo("repo-*")],
                    vec![refs("refs/heads/feature/*")],
                ),
                allow(
                    &["codebuild:StartBuild", "codebuild:StopBuild"],
                    &[&build_platform],
                    vec![secure()],
                ),
                allow(
                    &["codepipeline:StartPipelineExecution"],
                    &[&pipeline_platform],
                    vec![source_ip("10.0.0.0/8")],
                ),
                allow(
                    &["codecommit:TagResource", "codecommit:UntagResource"],
                    &[&repo("sandbox-*")],
                    vec![],
                ),
                allow(&["codecommit:Get*"], &[&repo("sandbox-*")], vec![]),
            ],
        },
        Doc {
            name: managed("ReadOnly"),
            attached: Attached::Group("readers"),
            statements: vec![
                allow(
                    &[
                        "codecommit:Get*",
                        "codecommit:List*",
                        "codecommit:Describe*",
                        "codecommit:BatchGet*",
                    ],
                    &[&repo("docs-*")],
                    vec![],
                ),
                allow(&["codecommit:GitPull"], &[&repo("docs-*")], vec![]),
                allow(
                    &["codecommit:GetFile", "codecommit:GetFolder"],
                    &[&repo("legacy-*")],
                    vec![source_ip("192.168.0.0/16")],
                ),
                allow(
                    &["codebuild:BatchGetBuilds"],
                    &[&arn("codebuild", "project/*")],
                    vec![],
                ),
                allow(
                    &["logs:GetLogEvents"],
                    &[&arn("logs", "log-group:/aws/codebuild/*")],
                    vec![secure()],
                ),
                allow(
                    &[
                        "codecommit:GetApprovalRuleTemplate",
                        "codecommit:ListApprovalRuleTemplates",
                    ],
                    &[any],
                    vec![],
                ),
            ],
        },
        Doc {
            name: managed("CiPipelines"),
            attached: Attached::Group("ci"),
            statements: vec![
                allow(
                    &[
                        "codecommit:GitPull",
                        "codecommit:GetBranch",
                        "codecommit:GetCommit",
                    ],
                    &[&repo("repo-*")],
                    vec![source_ip("10.20.0.0/16")],
                ),
                allow(
                    &[
                        "codecommit:UploadArchive",
                        "codecommit:GetUploadArchiveStatus",
                        "codecommit:CancelUploadArchive",
                    ],
                    &[&repo("repo-*")],
                    vec![],
                ),
                allow(
                    &["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
                    &[&arn("codebuild", "project/ci-*")],
                    vec![],
                ),
                allow(
                    &[
                        "codepipeline:PutJobSuccessResult",
                        "codepipeline:PutJobFailureResult",
                    ],
                    &[any],
                    vec![],
                ),
                allow(
                    &["codecommit:GitPush"],
                    &[&repo("repo-*")],
                    vec![refs("refs/tags/v*"), source_ip("10.20.0.0/16")],
                ),
                allow(
                    &["codecommit:CreateBranch"],
                    &[&repo("repo-*")],
                    vec![refs("refs/heads/release/*"), team("platform")],
                ),
            ],
        },
        Doc {
            name: format!("user/{USER} inline policy AliceInline"),
            attached: Attached::User,
            statements: vec![
                allow(&["codecommit:*"], &[&repo("sandbox-alice")], vec![]),
                allow(
                    &["codecommit:CreateRepository", "codecommit:TagResource"],
                    &[&repo("sandbox-alice-*")],
                    vec![],
                ),
                allow(
                    &["codecommit:GitPush"],
                    &[&repo("repo-web")],
                    vec![refs("refs/heads/hotfix/*"), secure()],
                ),
                allow(
                    &["kms:Decrypt", "kms:GenerateDataKey"],
                    &[&arn("kms", "key/*")],
                    vec![source_ip("10.0.0.0/8")],
                ),
                allow(&["iam:GetUser", "iam:ListAccessKeys"], &[&alice], vec![]),
                allow(
                    &["iam:CreateAccessKey", "iam:DeleteAccessKey"],
                    &[&alice],
                    vec![secure()],
                ),
            ],
        },
        Doc {
            name: managed("ProtectProduction"),
            attached: Attached::User,
            statements: vec![
                deny(
                    &[
                        "codecommit:GitPush",
                        "codecommit:DeleteBranch",
                        "codecommit:PutFile",
                        "codecommit:Merge*",
                    ],
                    &[&repo("repo-prod-*")],
                    vec![refs("refs/heads/main")],
                ),
                allow(
                    &[
                        "codecommit:GetBranch",
                        "codecommit:GetCommit",
                        "codecommit:GitPull",
                    ],
                    &[&repo("repo-prod-*")],
                    vec![secure()],
                ),
                allow(
                    &["codecommit:CreatePullRequest"],
                    &[&repo("repo-prod-*")],
                    vec![team("platform")],
                ),
                allow(
                    &["codecommit:GetMergeConflicts", "codecommit:GetMergeOptions"],
                    &[&repo("repo-prod-*")],
                    vec![],
                ),
                allow(
                    &["codecommit:DescribeMergeConflicts"],
                    &[&repo("repo-prod-*")],
                    vec![source_ip("10.0.0.0/8")],
                ),
                allow(
                    &["codecommit:ListTagsForResource"],
                    &[&repo("repo-prod-*")],
                    vec![],
                ),
            ],
        },
    ]
}

// The vocabulary of the generated statements: made-up actions of real services, so that the
// action check passes for some statements and the resource check has to reject them.
const SERVICES: [&str; 10] = [
    "codecommit",
    "codebuild",
    "codepipeline",
    "codedeploy",
    "codeartifact",
    "s3",
    "dynamodb",
    "sqs",
    "sns",
    "lambda",
];
const VERBS: [&str; 8] = [
    "Get", "List", "Describe", "Create", "Update", "Delete", "Put", "Tag",
];
const NOUNS: [&str; 12] = [
    "Widget", "Gadget", "Report", "Schedule", "Endpoint", "Channel", "Bundle", "Profile", "Quota",
    "Snapshot", "Alias", "Token",
];
const TEAMS: [&str; 5] = ["platform", "mobile", "data", "security", "web"];

/// Real CodeCommit actions beyond those the policies and requests name, so that wildcards
/// such as `codecommit:Get*` cover a realistic number of actions.
const MORE_ACTIONS: [&str; 24] = [
    "codecommit:GetBlob",
    "codecommit:GetDifferences",
    "codecommit:GetFolder",
    "codecommit:GetRepository",
    "codecommit:GetCommentsForComparedCommit",
    "codecommit:GetPullRequestApprovalStates",
    "codecommit:GetPullRequestOverrideState",
    "codecommit:GetMergeCommit",
    "codecommit:GetApprovalRuleTemplate",
    "codecommit:BatchGetCommits",
    "codecommit:BatchGetRepositories",
    "codecommit:BatchDescribeMergeConflicts",
    "codecommit:DescribePullRequestEvents",
    "codecommit:ListBranches",
    "codecommit:ListPullRequests",
    "codecommit:ListRepositories",
    "codecommit:ListTagsForResource",
    "codecommit:MergeBranchesByFastForward",
    "codecommit:MergeBranchesBySquash",
    "codecommit:MergePullRequestByFastForward",
    "codecommit:MergePullRequestBySquash",
    "codecommit:UpdatePullRequestStatus",
    "codecommit:UpdatePullRequestTitle",
    "codecommit:UpdateRepositoryDescription",
];

/// `items[i % len]`, for cycling through the vocabulary.
fn pick<'a>(items: &[&'a str], i: usize) -> &'a str {
    items.get(i % items.len()).copied().unwrap_or_default()
}

fn generated_actions() -> impl Iterator<Item = String> {
    SERVICES.into_iter().flat_map(|service| {
        VERBS.into_iter().flat_map(move |verb| {
            NOUNS
                .into_iter()
                .map(move |noun| format!("{service}:{verb}{noun}"))
        })
    })
}

/// Generated statement `k`: on resources of its own (`gen-0xxxx`), so that it matches no
/// request of the mix, except three placed statements that do and change some decisions.
fn generated_statement(k: usize) -> Stmt {
    match k {
        1_234 => return allow(&["codecommit:GetFile"], &[&repo("legacy-*")], vec![]),
        4_321 => {
            return deny(
                &["codebuild:StartBuild"],
                &[&arn("codebuild", "project/platform-*")],
                vec![Cond::SecureTransport(false)],
            );
        }
        7_777 => {
            return allow(
                &["codecommit:DeleteRepository"],
                &[&repo("repo-api")],
                vec![source_ip("10.20.0.0/16")],
            );
        }
        _ => {}
    }
    let service = pick(&SERVICES, k);
    let verb = pick(&VERBS, k / SERVICES.len());
    let noun = pick(&NOUNS, k / (SERVICES.len() * VERBS.len()));
    let actions = if k.is_multiple_of(7) {
        vec![format!("{service}:{verb}*")]
    } else if k.is_multiple_of(3) {
        let next_verb = pick(&VERBS, k / SERVICES.len() + 1);
        let next_noun = pick(&NOUNS, k / (SERVICES.len() * VERBS.len()) + 1);
        vec![
            format!("{service}:{verb}{noun}"),
            format!("{service}:{next_verb}{noun}"),
            format!("{service}:{verb}{next_noun}"),
        ]
    } else {
        vec![format!("{service}:{verb}{noun}")]
    };
    let mut resources = vec![arn(service, &format!("gen-{k:05}"))];
    if k.is_multiple_of(5) {
        resources.push(arn(service, &format!("gen-{k:05}-*")));
    }
    let mut conditions = Vec::new();
    if k.is_multiple_of(4) {
        conditions.push(team(pick(&TEAMS, k)));
    }
    if k.is_multiple_of(6) {
        conditions.push(source_ip(&format!("10.{}.0.0/16", k % 256)));
    }
    if k.is_multiple_of(9) {
        conditions.push(Cond::SecureTransport(true));
    }
    Stmt {
        deny: k.is_multiple_of(50),
        actions,
        resources,
        conditions,
    }
}

/// The typical user's policies plus generated ones attached in turn to the three groups and
/// the user, 10,000 statements in all. (IAM's quotas would not let one principal have this
/// many; the engine has no such limit, and this is the stress case.)
fn ten_thousand_statements() -> Vec<Doc> {
    let mut docs = typical_user();
    let typical: usize = docs.iter().map(|d| d.statements.len()).sum();
    let attach = [
        Attached::Group("developers"),
        Attached::Group("readers"),
        Attached::Group("ci"),
        Attached::User,
    ];
    let generated: Vec<Stmt> = (0..LARGE_STATEMENTS - typical)
        .map(generated_statement)
        .collect();
    let mut statements = generated.into_iter().peekable();
    let mut n = 0;
    while statements.peek().is_some() {
        docs.push(Doc {
            name: managed(&format!("Generated{n:03}")),
            attached: attach
                .get(n % attach.len())
                .copied()
                .unwrap_or(Attached::User),
            statements: statements.by_ref().take(GENERATED_PER_POLICY).collect(),
        });
        n += 1;
    }
    docs
}

// Rendering the model as IAM JSON and as Cedar.

impl Cond {
    fn iam(&self) -> (&'static str, &'static str, String) {
        match self {
            Cond::Team(v) => ("StringEquals", "aws:PrincipalTag/team", v.clone()),
            Cond::SourceIp(v) => ("IpAddress", "aws:SourceIp", v.clone()),
            Cond::SecureTransport(v) => ("Bool", "aws:SecureTransport", v.to_string()),
            Cond::ReferencesLike(v) => ("StringLike", "codecommit:References", v.clone()),
        }
    }

    fn cedar(&self) -> String {
        match self {
            Cond::Team(v) => format!("context.team == {}", cedar_str(v)),
            Cond::SourceIp(v) => format!("context.source_ip.isInRange(ip({}))", cedar_str(v)),
            Cond::SecureTransport(v) => format!("context.secure_transport == {v}"),
            Cond::ReferencesLike(v) => format!(
                "(context has references && context.references like {})",
                cedar_pattern(v)
            ),
        }
    }
}

fn iam_json(doc: &Doc) -> String {
    let statements: Vec<Value> = doc
        .statements
        .iter()
        .map(|s| {
            let mut statement = Map::new();
            let effect = if s.deny { "Deny" } else { "Allow" };
            statement.insert("Effect".into(), json!(effect));
            statement.insert("Action".into(), json!(s.actions));
            statement.insert("Resource".into(), json!(s.resources));
            if !s.conditions.is_empty() {
                let mut block: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
                for condition in &s.conditions {
                    let (operator, key, value) = condition.iam();
                    let previous = block
                        .entry(operator)
                        .or_default()
                        .insert(key.into(), json!(value));
                    assert!(
                        previous.is_none(),
                        "one value per condition key in the model"
                    );
                }
                statement.insert("Condition".into(), json!(block));
            }
            Value::Object(statement)
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// A Cedar string literal. The model's strings need no escapes; refuse any that would.
fn cedar_str(text: &str) -> String {
    assert!(
        !text.contains(['"', '\\']),
        "{text:?} would need escaping in Cedar"
    );
    format!("\"{text}\"")
}

/// A Cedar `like` pattern for an IAM wildcard pattern. Both read `*` as any run of
/// characters; IAM's `?` has no Cedar counterpart, so the model must not use it.
fn cedar_pattern(iam: &str) -> String {
    assert!(!iam.contains('?'), "{iam:?}: Cedar's like has no `?`");
    cedar_str(iam)
}

fn is_pattern(action: &str) -> bool {
    action.contains(['*', '?'])
}

/// One Cedar policy per statement, in order: Cedar names them `policy0`, `policy1`, ...
fn cedar_text(docs: &[Doc]) -> String {
    let mut out = String::new();
    for doc in docs {
        let principal = match doc.attached {
            Attached::Group(group) => format!("principal in Group::{}", cedar_str(group)),
            Attached::User => format!("principal == User::{}", cedar_str(USER)),
        };
        for s in &doc.statements {
            let action = if s.actions.iter().any(|a| a == "*") {
                "action".to_owned()
            } else {
                let ids: Vec<String> = s
                    .actions
                    .iter()
                    .map(|a| format!("Action::{}", cedar_str(a)))
                    .collect();
                match (s.actions.as_slice(), ids.as_slice()) {
                    ([a], [id]) if !is_pattern(a) => format!("action == {id}"),
                    ([_], [id]) => format!("action in {id}"),
                    _ => format!("action in [{}]", ids.join(", ")),
                }
            };
            let mut when: Vec<String> = Vec::new();
            if !s.resources.iter().any(|r| r == "*") {
                let arns: Vec<String> = s
                    .resources
                    .iter()
                    .map(|r| format!("resource.arn like {}", cedar_pattern(r)))
                    .collect();
                when.push(if arns.len() == 1 {
                    arns.concat()
                } else {
                    format!("({})", arns.join(" || "))
                });
            }
            when.extend(s.conditions.iter().map(Cond::cedar));
            let effect = if s.deny { "forbid" } else { "permit" };
            let _ = write!(out, "{effect} ({principal}, {action}, resource)");
            if !when.is_empty() {
                let _ = write!(out, " when {{ {} }}", when.join(" && "));
            }
            out.push_str(";\n");
        }
    }
    out
}

/// IAM's action match: `*` any run, `?` one character, letters without case.
fn action_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            (0..=text.len()).any(|i| text.get(i..).is_some_and(|tail| action_matches(rest, tail)))
        }
        Some((b'?', rest)) => text
            .split_first()
            .is_some_and(|(_, tail)| action_matches(rest, tail)),
        Some((p, rest)) => text
            .split_first()
            .is_some_and(|(c, tail)| c.eq_ignore_ascii_case(p) && action_matches(rest, tail)),
    }
}

// The requests.

/// One request of the mix.
struct Ask {
    action: String,
    resource: String,
    team: &'static str,
    source_ip: &'static str,
    secure: bool,
    references: Option<&'static str>,
}

/// 16 operations, each asked from 4 request contexts: 64 requests, a mix of allowed,
/// explicitly denied and implicitly denied ones.
fn request_mix() -> Vec<Ask> {
    // (team tag, source IP, secure transport)
    const CONTEXTS: [(&str, &str, bool); 4] = [
        ("platform", "10.1.2.3", true),
        ("mobile", "10.20.5.6", true),
        ("platform", "203.0.113.9", false),
        ("platform", "192.168.1.20", true),
    ];
    let operations: [(&str, String, Option<&'static str>); 16] = [
        ("codecommit:GetBranch", repo("repo-api"), None),
        ("codecommit:GitPull", repo("repo-web"), None),
        (
            "codecommit:GitPush",
            repo("repo-api"),
            Some("refs/heads/feature/login"),
        ),
        (
            "codecommit:GitPush",
            repo("repo-prod-billing"),
            Some("refs/heads/main"),
        ),
        (
            "codecommit:GitPush",
            repo("repo-prod-auth"),
            Some("refs/heads/feature/sso"),
        ),
        (
            "codecommit:DeleteBranch",
            repo("repo-prod-billing"),
            Some("refs/heads/main"),
        ),
        (
            "codecommit:MergePullRequestBySquash",
            repo("repo-prod-auth"),
            None,
        ),
        ("codecommit:ListRepositories", "*".to_owned(), None),
        ("codecommit:DeleteRepository", repo("repo-api"), None),
        ("codecommit:GetFile", repo("legacy-tools"), None),
        (
            "codecommit:CreateRepository",
            repo("sandbox-alice-scratch"),
            None,
        ),
        (
            "codecommit:PutFile",
            repo("sandbox-alice"),
            Some("refs/heads/main"),
        ),
        (
            "codebuild:StartBuild",
            arn("codebuild", "project/platform-api"),
            None,
        ),
        (
            "kms:Decrypt",
            arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            None,
        ),
        (
            "codecommit:GitPush",
            repo("repo-web"),
            Some("refs/heads/hotfix/urgent"),
        ),
        (
            "iam:DeleteAccessKey",
            format!("arn:aws:iam::{ACCOUNT}:user/{USER}"),
            None,
        ),
    ];
    operations
        .iter()
        .flat_map(|(action, resource, references)| {
            CONTEXTS.iter().map(|&(team, source_ip, secure)| Ask {
                action: (*action).to_owned(),
                resource: resource.clone(),
                team,
                source_ip,
                secure,
                references: *references,
            })
        })
        .collect()
}

// Both engines, set up for one scenario.

fn compile_ours(documents: &[(String, String)]) -> PolicySet {
    PolicySet {
        identity: documents
            .iter()
            .map(|(name, json)| {
                Arc::new(
                    Policy::parse(PolicyKind::Identity, name, json)
                        .expect("the model renders valid IAM policies"),
                )
            })
            .collect(),
        ..PolicySet::default()
    }
}

fn compile_cedar(text: &str) -> cedar::PolicySet {
    cedar::PolicySet::from_str(text).expect("the model renders valid Cedar policies")
}

fn uid(type_name: &str, id: &str) -> cedar::EntityUid {
    cedar::EntityUid::from_type_name_and_id(
        cedar::EntityTypeName::from_str(type_name).expect("entity type name"),
        cedar::EntityId::new(id),
    )
}

/// Cedar's entities: alice in her groups, the action universe with its wildcard groups, and
/// the resources of the mix.
fn cedar_entities(docs: &[Doc], asks: &[Ask]) -> cedar::Entities {
    let patterns: BTreeSet<&str> = docs
        .iter()
        .flat_map(|d| &d.statements)
        .flat_map(|s| &s.actions)
        .map(String::as_str)
        .filter(|a| *a != "*" && is_pattern(a))
        .collect();
    let mut actions: BTreeSet<String> = generated_actions().collect();
    actions.extend(MORE_ACTIONS.iter().map(|&a| a.to_owned()));
    actions.extend(asks.iter().map(|a| a.action.clone()));
    actions.extend(
        docs.iter()
            .flat_map(|d| &d.statements)
            .flat_map(|s| &s.actions)
            .filter(|a| !is_pattern(a))
            .cloned(),
    );
    let mut entities = Vec::new();
    let groups: HashSet<cedar::EntityUid> = GROUPS.iter().map(|g| uid("Group", g)).collect();
    entities.extend(
        groups
            .iter()
            .map(|g| cedar::Entity::new_no_attrs(g.clone(), HashSet::new())),
    );
    entities.push(cedar::Entity::new_no_attrs(uid("User", USER), groups));
    entities.extend(
        patterns
            .iter()
            .map(|p| cedar::Entity::new_no_attrs(uid("Action", p), HashSet::new())),
    );
    for action in &actions {
        let parents = patterns
            .iter()
            .filter(|p| action_matches(p.as_bytes(), action.as_bytes()))
            .map(|p| uid("Action", p))
            .collect();
        entities.push(cedar::Entity::new_no_attrs(uid("Action", action), parents));
    }
    let resources: BTreeSet<&str> = asks.iter().map(|a| a.resource.as_str()).collect();
    for resource in resources {
        let attrs = HashMap::from([(
            "arn".to_owned(),
            cedar::RestrictedExpression::new_string(resource.to_owned()),
        )]);
        entities.push(
            cedar::Entity::new(uid("Resource", resource), attrs, HashSet::new())
                .expect("resource entity"),
        );
    }
    cedar::Entities::from_entities(entities, None).expect("Cedar entities")
}

fn our_context(ask: &Ask) -> Context {
    let mut context = Context::new();
    context.insert("aws:PrincipalTag/team", ask.team);
    context.insert("aws:SourceIp", ask.source_ip);
    context.insert(
        "aws:SecureTransport",
        if ask.secure { "true" } else { "false" },
    );
    if let Some(references) = ask.references {
        context.insert("codecommit:References", references);
    }
    context
}

fn cedar_request(ask: &Ask) -> cedar::Request {
    let mut pairs = vec![
        (
            "team".to_owned(),
            cedar::RestrictedExpression::new_string(ask.team.to_owned()),
        ),
        (
            "source_ip".to_owned(),
            cedar::RestrictedExpression::new_ip(ask.source_ip),
        ),
        (
            "secure_transport".to_owned(),
            cedar::RestrictedExpression::new_bool(ask.secure),
        ),
    ];
    if let Some(references) = ask.references {
        pairs.push((
            "references".to_owned(),
            cedar::RestrictedExpression::new_string(references.to_owned()),
        ));
    }
    cedar::Request::new(
        uid("User", USER),
        uid("Action", &ask.action),
        uid("Resource", &ask.resource),
        cedar::Context::from_pairs(pairs).expect("Cedar context"),
        None,
    )
    .expect("Cedar request")
}

struct Prepared {
    statements: usize,
    policies: usize,
    documents: Vec<(String, String)>,
    cedar_text: String,
    asks: Vec<Ask>,
    ours: PolicySet,
    principal: PrincipalInfo,
    contexts: Vec<Context>,
    cedar: cedar::PolicySet,
    entities: cedar::Entities,
    cedar_requests: Vec<cedar::Request>,
    authorizer: cedar::Authorizer,
    /// The position among all statements (Cedar's `policy{k}`) of each policy's first one.
    first_statement: HashMap<String, usize>,
}

impl Prepared {
    fn new(docs: &[Doc]) -> Prepared {
        let asks = request_mix();
        let documents: Vec<(String, String)> =
            docs.iter().map(|d| (d.name.clone(), iam_json(d))).collect();
        let cedar_text = cedar_text(docs);
        let mut first_statement = HashMap::new();
        let mut statements = 0;
        for doc in docs {
            first_statement.insert(doc.name.clone(), statements);
            statements += doc.statements.len();
        }
        let ours = compile_ours(&documents);
        let cedar = compile_cedar(&cedar_text);
        assert_eq!(
            cedar.num_of_policies(),
            statements,
            "one Cedar policy per statement"
        );
        Prepared {
            statements,
            policies: docs.len(),
            principal: PrincipalInfo::from_arn(&format!("arn:aws:iam::{ACCOUNT}:user/{USER}"))
                .expect("user ARN"),
            contexts: asks.iter().map(our_context).collect(),
            cedar_requests: asks.iter().map(cedar_request).collect(),
            entities: cedar_entities(docs, &asks),
            authorizer: cedar::Authorizer::new(),
            documents,
            cedar_text,
            asks,
            ours,
            cedar,
            first_statement,
        }
    }

    fn our_requests(&self) -> Vec<Request<'_>> {
        self.asks
            .iter()
            .zip(&self.contexts)
            .map(|(ask, context)| Request {
                principal: &self.principal,
                action: &ask.action,
                resource: &ask.resource,
                resource_account: None,
                context,
                resource_policy: None,
                resource_policy_required: false,
            })
            .collect()
    }

    /// Both engines decide every request; they must agree on the decision, on whether a
    /// denial is explicit, and Cedar's reasons must include the statement ours decided by.
    /// Returns (allowed, explicit deny, implicit deny).
    fn check_agreement(&self, scenario: &str) -> (usize, usize, usize) {
        let mut tally = (0, 0, 0);
        let requests = self.our_requests();
        for ((ask, request), cedar_request) in
            self.asks.iter().zip(&requests).zip(&self.cedar_requests)
        {
            let ours = evaluate(&self.ours, request);
            let theirs = self
                .authorizer
                .is_authorized(cedar_request, &self.cedar, &self.entities);
            let what = format!(
                "{scenario}: {} on {} (team {}, from {}, secure {}, references {:?})",
                ask.action, ask.resource, ask.team, ask.source_ip, ask.secure, ask.references
            );
            let errors: Vec<String> = theirs
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect();
            assert!(
                errors.is_empty(),
                "{what}: Cedar could not evaluate a policy, so the sets are not equivalent: \
                 {errors:?}"
            );
            let reasons: Vec<String> = theirs
                .diagnostics()
                .reason()
                .map(ToString::to_string)
                .collect();
            let cedar_allowed = theirs.decision() == cedar::Decision::Allow;
            // A Cedar denial with reasons was made by a forbid: IAM's explicit deny.
            let cedar_explicit = !cedar_allowed && !reasons.is_empty();
            let ours_explicit = ours.decision == EvalDecision::ExplicitDeny;
            assert!(
                ours.is_allowed() == cedar_allowed && ours_explicit == cedar_explicit,
                "{what}: the engines disagree, so the benchmark would compare unequal work. \
                 codekeep: {} ({}); Cedar: {:?} by {reasons:?}",
                ours.decision,
                ours.describe(),
                theirs.decision(),
            );
            if let Some((policy, index)) = ours.statement {
                let k = self
                    .first_statement
                    .get(policy.name())
                    .map(|first| first + index);
                let id = k.map(|k| format!("policy{k}"));
                assert!(
                    id.as_ref().is_some_and(|id| reasons.contains(id)),
                    "{what}: codekeep decided by {} (Cedar {id:?}), which is not among Cedar's \
                     reasons {reasons:?}",
                    ours.describe(),
                );
            }
            match ours.decision {
                EvalDecision::Allowed => tally.0 += 1,
                EvalDecision::ExplicitDeny => tally.1 += 1,
                EvalDecision::ImplicitDeny => tally.2 += 1,
            }
        }
        tally
    }
}

// Measuring.

/// Per-decision latencies in nanoseconds, sorted: each sample times `BATCH` consecutive
/// requests of the mix and divides. Successive samples start `BATCH + 1` requests apart, so
/// over 64 samples every window of the mix is timed, not only four of them.
fn latencies(n: usize, budget: Duration, decide: impl Fn(usize) -> bool) -> Vec<f64> {
    for i in 0..n * 4 {
        black_box(decide(i % n));
    }
    let mut samples = Vec::with_capacity(MAX_SAMPLES.min(1 << 16));
    let started = Instant::now();
    let mut cursor = 0;
    while samples.len() < MAX_SAMPLES && (samples.len() < MIN_SAMPLES || started.elapsed() < budget)
    {
        let t = Instant::now();
        for j in 0..BATCH {
            black_box(decide((cursor + j) % n));
        }
        let elapsed = t.elapsed();
        samples.push(elapsed.as_secs_f64() * 1e9 / BATCH as f64);
        cursor = (cursor + BATCH + 1) % n;
    }
    samples.sort_by(f64::total_cmp);
    samples
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], percent: usize) -> f64 {
    let rank = (sorted.len() * percent).div_ceil(100).saturating_sub(1);
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// Runs one scenario: agreement, criterion's view of the whole mix, and the latency summary.
/// Returns the prepared engines for the compile measurements.
fn run_scenario(
    c: &mut Criterion,
    label: &str,
    docs: &[Doc],
    (budget, sampling): (Duration, SamplingMode),
    check_only: bool,
) -> Prepared {
    let prepared = Prepared::new(docs);
    let (allowed, explicit, implicit) = prepared.check_agreement(label);
    let n = prepared.asks.len();
    println!(
        "authz {label}: {} policies, {} statements, {n} requests: {allowed} allowed, \
         {explicit} explicitly denied, {implicit} implicitly denied; codekeep and Cedar agree \
         on every one",
        prepared.policies, prepared.statements
    );
    if check_only {
        return prepared;
    }
    let requests = prepared.our_requests();
    let ours = |i: usize| {
        requests
            .get(i)
            .is_some_and(|r| evaluate(&prepared.ours, black_box(r)).is_allowed())
    };
    let peer = |i: usize| {
        prepared.cedar_requests.get(i).is_some_and(|r| {
            prepared
                .authorizer
                .is_authorized(black_box(r), &prepared.cedar, &prepared.entities)
                .decision()
                == cedar::Decision::Allow
        })
    };

    let mut group = c.benchmark_group(format!("authz/{label}"));
    group.throughput(Throughput::Elements(n as u64));
    group.sampling_mode(sampling);
    group.bench_function(format!("codekeep/requests={n}"), |b| {
        b.iter(|| (0..n).filter(|&i| ours(i)).count());
    });
    group.bench_function(format!("cedar_peer/requests={n}"), |b| {
        b.iter(|| (0..n).filter(|&i| peer(i)).count());
    });
    group.finish();

    let ours_ns = latencies(n, budget, ours);
    let peer_ns = latencies(n, budget, peer);
    for percent in [50, 99] {
        summary(
            &format!("authz_{label}_p{percent}_ns_lower_is_better"),
            percentile(&ours_ns, percent),
            percentile(&peer_ns, percent),
            "ns",
        );
    }
    drop(requests);
    prepared
}

fn main() {
    let check_only = std::env::var_os("CODEKEEP_AUTHZ_CHECK_ONLY").is_some();
    if !check_only {
        // Cargo runs a package's benches in name order, so this one, not `envelope`, comes
        // first and starts the summary file.
        codekeep_bench::reset_summary();
    }
    let mut c = Criterion::default().sample_size(10).configure_from_args();

    run_scenario(
        &mut c,
        "typical_user",
        &typical_user(),
        (Duration::from_secs(2), SamplingMode::Auto),
        check_only,
    );
    let large = run_scenario(
        &mut c,
        "10000_statements",
        &ten_thousand_statements(),
        // Flat: one pass over the mix takes milliseconds here, so criterion's default linear
        // sampling would run it dozens of times over for no better estimate.
        (Duration::from_secs(3), SamplingMode::Flat),
        check_only,
    );
    assert_eq!(large.statements, LARGE_STATEMENTS);
    if check_only {
        return;
    }

    // Compile time: parsing and compiling all 10,000 statements, as each engine's users load
    // policies (ours a document at a time, Cedar one policy-set text). What was compiled is
    // kept until the timing is over, so neither engine's time includes freeing it.
    let statements = LARGE_STATEMENTS as f64;
    let mut kept_ours = Vec::new();
    let ours_time = median_time(5, || kept_ours.push(compile_ours(&large.documents)));
    drop(kept_ours);
    let mut kept_cedar = Vec::new();
    let peer_time = median_time(5, || kept_cedar.push(compile_cedar(&large.cedar_text)));
    drop(kept_cedar);
    summary(
        "authz_policy_compile_us_per_statement_lower_is_better",
        ours_time.as_secs_f64() * 1e6 / statements,
        peer_time.as_secs_f64() * 1e6 / statements,
        "us",
    );

    // Compiled size: the heap each compiled set keeps (bytes asked of the allocator, without
    // its own overhead). Both engines have compiled these policies above, so one-time global
    // state is already set up and not counted. Cedar's set also keeps each policy's text.
    let (ours_set, ours_bytes) = retained(|| compile_ours(&large.documents));
    let (peer_set, peer_bytes) = retained(|| compile_cedar(&large.cedar_text));
    let ours_statements: usize = ours_set.identity.iter().map(|p| p.statement_count()).sum();
    assert_eq!(ours_statements, LARGE_STATEMENTS);
    assert_eq!(peer_set.num_of_policies(), LARGE_STATEMENTS);
    summary(
        "authz_compiled_bytes_per_statement_lower_is_better",
        ours_bytes as f64 / statements,
        peer_bytes as f64 / statements,
        "bytes",
    );
    drop((ours_set, peer_set, large));
    c.final_summary();
}
