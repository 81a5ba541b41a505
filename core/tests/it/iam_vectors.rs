//! The IAM conformance suite: every case in `core/tests/vectors/iam/*.json` (format in the
//! README there), written from the AWS IAM User Guide, run through the policy engine.

use std::path::Path;
use std::sync::Arc;

use codekeep::policy::{
    Context, EvalDecision, Policy, PolicyKind, PolicySet, PrincipalInfo, PrincipalKind, Request,
    evaluate, explain,
};
use serde_json::Value;

fn vector_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/iam");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn document_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse(kind: PolicyKind, name: &str, v: &Value) -> Arc<Policy> {
    Arc::new(
        Policy::parse(kind, name, &document_text(v))
            .unwrap_or_else(|e| panic!("{name}: policy does not parse: {e}")),
    )
}

fn policies(case: &Value, member: &str, kind: PolicyKind, name: &str) -> Vec<Arc<Policy>> {
    case.get(member)
        .and_then(Value::as_array)
        .map(|docs| {
            docs.iter()
                .enumerate()
                .map(|(i, d)| parse(kind, &format!("{name}/{member}[{i}]"), d))
                .collect()
        })
        .unwrap_or_default()
}

fn principal(case: &Value) -> PrincipalInfo {
    let p = &case["principal"];
    let arn = p["arn"].as_str().unwrap();
    let mut info = PrincipalInfo::from_arn(arn).unwrap_or_else(|| panic!("bad principal {arn}"));
    if let Some(role_arn) = p.get("role_arn").and_then(Value::as_str) {
        info = PrincipalInfo::role_session(arn, role_arn, &info.account);
    }
    info
}

fn context(case: &Value, principal: &PrincipalInfo) -> Context {
    let mut ctx = Context::new();
    let principal_arn = match &principal.kind {
        PrincipalKind::RoleSession { role_arn } => role_arn.clone(),
        _ => principal.arn.clone(),
    };
    ctx.insert("aws:PrincipalArn", &principal_arn);
    ctx.insert("aws:PrincipalAccount", &principal.account);
    if principal.kind == PrincipalKind::User {
        let name = principal.arn.rsplit('/').next().unwrap();
        ctx.insert("aws:username", name);
    }
    if let Some(map) = case.get("context").and_then(Value::as_object) {
        for (key, value) in map {
            match value {
                Value::String(s) => ctx.insert(key, s),
                Value::Array(items) => {
                    ctx.insert_multi(key, items.iter().map(|v| v.as_str().unwrap()));
                }
                other => panic!("context value of {key} must be a string or list: {other}"),
            }
        }
    }
    ctx
}

fn kind_of(name: &str) -> PolicyKind {
    match name {
        "identity" => PolicyKind::Identity,
        "resource" => PolicyKind::Resource,
        "trust" => PolicyKind::Trust,
        "scp" => PolicyKind::ServiceControl,
        other => panic!("unknown policy kind {other}"),
    }
}

fn run_validation(name: &str, case: &Value) -> Result<(), String> {
    let kind = kind_of(case["kind"].as_str().unwrap());
    let result = Policy::parse(kind, name, &document_text(&case["policy"]));
    match (case.get("expect_error").and_then(Value::as_str), result) {
        (Some(_), Ok(_)) => Err("accepted a document IAM rejects".to_owned()),
        (Some(want), Err(e)) => {
            if e.code() != "MalformedPolicyDocument" {
                return Err(format!(
                    "error code {} instead of MalformedPolicyDocument",
                    e.code()
                ));
            }
            if !e.to_string().to_lowercase().contains(&want.to_lowercase()) {
                return Err(format!("message `{e}` does not contain `{want}`"));
            }
            Ok(())
        }
        (None, Ok(_)) => Ok(()),
        (None, Err(e)) => Err(format!("rejected a document IAM accepts: {e}")),
    }
}

fn run_evaluation(name: &str, case: &Value) -> Result<(), String> {
    let principal = principal(case);
    let ctx = context(case, &principal);
    let set = PolicySet {
        identity: policies(case, "identity", PolicyKind::Identity, name),
        boundary: case
            .get("boundary")
            .filter(|v| !v.is_null())
            .map(|d| parse(PolicyKind::Identity, &format!("{name}/boundary"), d)),
        session: policies(case, "session", PolicyKind::Identity, name),
        service_control: policies(case, "scps", PolicyKind::ServiceControl, name),
    };
    let required = case["resource_policy_required"].as_bool().unwrap_or(false);
    // A document without `Resource` is a role trust policy; `resource_policy_kind` may say so.
    let resource_policy = case
        .get("resource_policy")
        .filter(|v| !v.is_null())
        .map(|d| {
            let name = format!("{name}/resource_policy");
            let kind = match case.get("resource_policy_kind").and_then(Value::as_str) {
                Some(kind) => kind_of(kind),
                None if Policy::parse(PolicyKind::Resource, &name, &document_text(d)).is_err() => {
                    PolicyKind::Trust
                }
                None => PolicyKind::Resource,
            };
            parse(kind, &name, d)
        });
    let request = Request {
        principal: &principal,
        action: case["action"].as_str().unwrap(),
        resource: case["resource"].as_str().unwrap_or("*"),
        resource_account: case.get("resource_account").and_then(Value::as_str),
        context: &ctx,
        resource_policy: resource_policy.as_deref(),
        resource_policy_required: required,
    };
    let want = case["expect"].as_str().unwrap();
    let got = evaluate(&set, &request);
    let explained = explain(&set, &request);
    if got.decision != explained.decision {
        return Err("evaluate and explain disagree".to_owned());
    }
    if got.decision.as_str() == want {
        Ok(())
    } else {
        Err(format!(
            "expected {want}, got {} ({}; {:?})",
            got.decision,
            got.describe(),
            got.reason
        ))
    }
}

#[test]
fn conformance_vectors() {
    let mut failures = Vec::new();
    let mut names = std::collections::HashSet::new();
    let (mut evaluations, mut validations) = (0, 0);
    for file in vector_files() {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in doc["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            assert!(names.insert(name.to_owned()), "duplicate case name {name}");
            let result = if case.get("kind").is_some() {
                validations += 1;
                run_validation(name, case)
            } else {
                evaluations += 1;
                run_evaluation(name, case)
            };
            if let Err(why) = result {
                failures.push(format!(
                    "{}: {name}: {why}",
                    file.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        evaluations + validations,
        failures.join("\n")
    );
    assert!(
        evaluations + validations >= 150,
        "the suite needs at least 150 cases"
    );
    let _ = EvalDecision::Allowed;
}
