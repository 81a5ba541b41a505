//! The policy simulator, service control policies, and `Keep::authorize` explanations.

use codekeep::Caller;
use codekeep::policy::{Context, EvalDecision};
use serde_json::{Value, json};

use crate::{code, keep_with_account};

fn decisions(out: &Value) -> Vec<String> {
    out["EvaluationResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["EvalDecision"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn simulate_custom_policy_matches_aws_shapes() {
    let (_keep, _account, iam) = keep_with_account("iam");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
        {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket/secret/*"}]});
    let out = iam
        .call("SimulateCustomPolicy", json!({
            "PolicyInputList": [policy.to_string()],
            "ActionNames": ["s3:GetObject", "s3:PutObject"],
            "ResourceArns": ["arn:aws:s3:::bucket/a", "arn:aws:s3:::bucket/secret/b"],
            "ContextEntries": [{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["203.0.113.9"], "ContextKeyType": "ip"}],
        }))
        .unwrap();
    assert_eq!(
        decisions(&out),
        ["allowed", "explicitDeny", "implicitDeny", "explicitDeny"]
    );
    let first = &out["EvaluationResults"][0];
    assert_eq!(first["EvalActionName"], "s3:GetObject");
    assert_eq!(
        first["MatchedStatements"][0]["SourcePolicyId"],
        "PolicyInputList.1"
    );
    // Without the context key the condition cannot hold, and the simulator says what is missing.
    let out = iam
        .call("SimulateCustomPolicy", json!({"PolicyInputList": [policy.to_string()], "ActionNames": ["s3:GetObject"], "ResourceArns": ["arn:aws:s3:::bucket/a"]}))
        .unwrap();
    assert_eq!(decisions(&out), ["implicitDeny"]);
    assert_eq!(
        out["EvaluationResults"][0]["MissingContextValues"],
        json!(["aws:SourceIp"])
    );
    assert_eq!(
        code(iam.call(
            "SimulateCustomPolicy",
            json!({"PolicyInputList": ["{}"], "ActionNames": ["s3:GetObject"]})
        )),
        "MalformedPolicyDocument"
    );
}

#[test]
fn simulate_principal_policy_uses_the_principals_policies_and_boundary() {
    let (_keep, account, iam) = keep_with_account("iam");
    iam.call("CreateUser", json!({"UserName": "alice"}))
        .unwrap();
    iam.call("CreateGroup", json!({"GroupName": "devs"}))
        .unwrap();
    iam.call(
        "AddUserToGroup",
        json!({"GroupName": "devs", "UserName": "alice"}),
    )
    .unwrap();
    iam.call("AttachGroupPolicy", json!({"GroupName": "devs", "PolicyArn": "arn:aws:iam::aws:policy/AWSCodeCommitFullAccess"})).unwrap();
    let source = format!("arn:aws:iam::{account}:user/alice");
    let repo = format!("arn:aws:codecommit:us-east-1:{account}:repo");
    let boundary = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "codecommit:GitPull", "Resource": "*"}]});
    let out = iam
        .call(
            "SimulatePrincipalPolicy",
            json!({
                "PolicySourceArn": source,
                "ActionNames": ["codecommit:GitPull", "codecommit:GitPush"],
                "ResourceArns": [repo],
                "PermissionsBoundaryPolicyInputList": [boundary.to_string()],
            }),
        )
        .unwrap();
    assert_eq!(decisions(&out), ["allowed", "implicitDeny"]);
    assert_eq!(
        out["EvaluationResults"][1]["PermissionsBoundaryDecisionDetail"]["AllowedByPermissionsBoundary"],
        false
    );
    assert_eq!(
        out["EvaluationResults"][0]["MatchedStatements"][0]["SourcePolicyId"],
        "arn:aws:iam::aws:policy/AWSCodeCommitFullAccess"
    );
}

#[test]
fn service_control_policies_cap_every_principal_of_an_account() {
    let (keep, account, kms) = keep_with_account("kms");
    let orgs = keep.client("organizations", Caller::keep_admin()).unwrap();
    let deny_deletion = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"], "Resource": "*"}]});
    let created = orgs
        .call("CreatePolicy", json!({"Name": "no-key-deletion", "Description": "", "Type": "SERVICE_CONTROL_POLICY", "Content": deny_deletion.to_string()}))
        .unwrap();
    let id = created["Policy"]["PolicySummary"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("p-"));
    let key = crate::create_key(&kms);
    orgs.call("AttachPolicy", json!({"PolicyId": id, "TargetId": account}))
        .unwrap();
    assert_eq!(
        orgs.call(
            "ListPoliciesForTarget",
            json!({"TargetId": account, "Filter": "SERVICE_CONTROL_POLICY"})
        )
        .unwrap()["Policies"][0]["Id"],
        id.as_str()
    );
    // Even the account's root user is bound.
    let err = kms.call("DisableKey", json!({"KeyId": key})).unwrap_err();
    assert!(
        err.message()
            .ends_with("with an explicit deny in a service control policy"),
        "{err}"
    );
    kms.call("DescribeKey", json!({"KeyId": key})).unwrap();
    // An account's root cannot touch its own SCPs.
    let root_orgs = keep
        .client(
            "organizations",
            Caller::account_root(account.parse().unwrap()),
        )
        .unwrap();
    assert_eq!(
        code(root_orgs.call("DetachPolicy", json!({"PolicyId": id, "TargetId": account}))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(orgs.call("DeletePolicy", json!({"PolicyId": id}))),
        "PolicyInUseException"
    );
    // An SCP that allows nothing for a service leaves it implicitly denied.
    let only_iam = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]});
    orgs.call(
        "UpdatePolicy",
        json!({"PolicyId": id, "Content": only_iam.to_string()}),
    )
    .unwrap();
    let err = kms.call("DescribeKey", json!({"KeyId": key})).unwrap_err();
    assert!(
        err.message()
            .contains("because no service control policy allows the kms:DescribeKey action"),
        "{err}"
    );
    orgs.call("DetachPolicy", json!({"PolicyId": id, "TargetId": account}))
        .unwrap();
    kms.call("DisableKey", json!({"KeyId": key})).unwrap();
    orgs.call("DeletePolicy", json!({"PolicyId": id})).unwrap();
    assert_eq!(
        code(orgs.call("CreatePolicy", json!({"Name": "bad", "Type": "SERVICE_CONTROL_POLICY", "Content": r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#}))),
        "MalformedPolicyDocumentException"
    );
}

#[test]
fn authorize_explains_allowed_and_denied_requests() {
    let (keep, account, iam) = keep_with_account("iam");
    iam.call("CreateUser", json!({"UserName": "alice"}))
        .unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Pull", "Effect": "Allow", "Action": "codecommit:GitPull", "Resource": "*"},
        {"Sid": "ProtectMain", "Effect": "Deny", "Action": "codecommit:GitPush", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]}, "Null": {"codecommit:References": "false"}}},
        {"Sid": "Push", "Effect": "Allow", "Action": "codecommit:GitPush", "Resource": "*"}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "git", "PolicyDocument": policy.to_string()}),
    )
    .unwrap();
    let alice = Caller::iam_user(account.parse().unwrap(), "alice");
    let repo = format!("arn:aws:codecommit:us-east-1:{account}:repo");
    let pull = keep
        .authorize(&alice, "codecommit:GitPull", &repo, &Context::new())
        .unwrap();
    assert!(pull.is_allowed());
    assert!(
        pull.explanation.deciding.contains("Sid Pull"),
        "{}",
        pull.explanation.deciding
    );
    // The repository-level push check has no reference: allowed.
    assert!(
        keep.authorize(&alice, "codecommit:GitPush", &repo, &Context::new())
            .unwrap()
            .is_allowed()
    );
    let mut main = Context::new();
    main.insert("codecommit:References", "refs/heads/main");
    let denied = keep
        .authorize(&alice, "codecommit:GitPush", &repo, &main)
        .unwrap();
    assert_eq!(denied.decision, EvalDecision::ExplicitDeny);
    assert!(denied.explanation.deciding.contains("ProtectMain"));
    assert_eq!(
        denied.message.as_deref().unwrap(),
        format!(
            "User: arn:aws:iam::{account}:user/alice is not authorized to perform: codecommit:GitPush on resource: {repo} with an explicit deny in an identity-based policy"
        )
    );
    let json = denied.to_json();
    assert_eq!(json["EvalDecision"], "explicitDeny");
    assert_eq!(json["MatchedStatements"].as_array().unwrap().len(), 2);
    let mut feature = Context::new();
    feature.insert("codecommit:References", "refs/heads/feature");
    assert!(
        keep.authorize(&alice, "codecommit:GitPush", &repo, &feature)
            .unwrap()
            .is_allowed()
    );
}
