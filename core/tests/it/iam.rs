//! IAM identities, their credentials, and enforcement of their policies on every service.

use codekeep::{Caller, Client, Keep};
use serde_json::{Value, json};

use crate::{account_client, code, create_key, keep_with_account};

fn user_client(keep: &Keep, account: &str, user: &str, service: &str) -> Client {
    keep.client(service, Caller::iam_user(account.parse().unwrap(), user))
        .unwrap()
}

fn allow(actions: &[&str], resource: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resource}
    ]})
    .to_string()
}

#[test]
fn users_groups_and_their_errors_follow_iam() {
    let (_keep, account, iam) = keep_with_account("iam");
    let user = iam
        .call("CreateUser", json!({"UserName": "alice", "Path": "/eng/", "Tags": [{"Key": "team", "Value": "red"}]}))
        .unwrap();
    assert_eq!(
        user["User"]["Arn"],
        format!("arn:aws:iam::{account}:user/eng/alice")
    );
    assert!(user["User"]["UserId"].as_str().unwrap().starts_with("AIDA"));
    assert_eq!(user["User"]["UserId"].as_str().unwrap().len(), 21);
    // Names are unique without regard to case.
    assert_eq!(
        code(iam.call("CreateUser", json!({"UserName": "ALICE"}))),
        "EntityAlreadyExists"
    );
    assert_eq!(
        code(iam.call("CreateUser", json!({"UserName": "bad name"}))),
        "ValidationError"
    );
    assert_eq!(
        code(iam.call("GetUser", json!({"UserName": "nobody"}))),
        "NoSuchEntity"
    );
    assert_eq!(
        iam.call("GetUser", json!({"UserName": "Alice"})).unwrap()["User"]["Tags"][0]["Value"],
        "red"
    );
    for name in ["bob", "carol", "dave"] {
        iam.call("CreateUser", json!({"UserName": name})).unwrap();
    }
    let page = iam.call("ListUsers", json!({"MaxItems": 2})).unwrap();
    assert_eq!(page["Users"].as_array().unwrap().len(), 2);
    assert_eq!(page["IsTruncated"], true);
    let rest = iam
        .call("ListUsers", json!({"Marker": page["Marker"]}))
        .unwrap();
    assert_eq!(rest["Users"].as_array().unwrap().len(), 2);
    let eng = iam
        .call("ListUsers", json!({"PathPrefix": "/eng/"}))
        .unwrap();
    assert_eq!(eng["Users"].as_array().unwrap().len(), 1);

    iam.call("CreateGroup", json!({"GroupName": "devs"}))
        .unwrap();
    iam.call(
        "AddUserToGroup",
        json!({"GroupName": "devs", "UserName": "alice"}),
    )
    .unwrap();
    let group = iam.call("GetGroup", json!({"GroupName": "devs"})).unwrap();
    assert_eq!(group["Users"][0]["UserName"], "alice");
    assert_eq!(
        iam.call("ListGroupsForUser", json!({"UserName": "alice"}))
            .unwrap()["Groups"][0]["GroupName"],
        "devs"
    );
    assert_eq!(
        code(iam.call("DeleteGroup", json!({"GroupName": "devs"}))),
        "DeleteConflict"
    );
    assert_eq!(
        code(iam.call("DeleteUser", json!({"UserName": "alice"}))),
        "DeleteConflict"
    );
    iam.call(
        "RemoveUserFromGroup",
        json!({"GroupName": "devs", "UserName": "alice"}),
    )
    .unwrap();
    iam.call("DeleteGroup", json!({"GroupName": "devs"}))
        .unwrap();

    // Renaming carries the user's inline policies along.
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument": allow(&["s3:*"], "*")}),
    )
    .unwrap();
    iam.call(
        "UpdateUser",
        json!({"UserName": "alice", "NewUserName": "alicia"}),
    )
    .unwrap();
    assert_eq!(
        iam.call("ListUserPolicies", json!({"UserName": "alicia"}))
            .unwrap()["PolicyNames"],
        json!(["p"])
    );
    assert_eq!(
        iam.call("GetUser", json!({"UserName": "alicia"})).unwrap()["User"]["Arn"],
        format!("arn:aws:iam::{account}:user/eng/alicia")
    );
    iam.call(
        "DeleteUserPolicy",
        json!({"UserName": "alicia", "PolicyName": "p"}),
    )
    .unwrap();
    iam.call("DeleteUser", json!({"UserName": "alicia"}))
        .unwrap();
    assert_eq!(
        code(iam.call("GetUser", json!({"UserName": "alicia"}))),
        "NoSuchEntity"
    );
}

#[test]
fn managed_policies_have_versions_and_attachments() {
    let (_keep, account, iam) = keep_with_account("iam");
    let created = iam
        .call(
            "CreatePolicy",
            json!({"PolicyName": "kms-use", "PolicyDocument": allow(&["kms:Encrypt"], "*")}),
        )
        .unwrap();
    let arn = created["Policy"]["Arn"].as_str().unwrap().to_owned();
    assert_eq!(arn, format!("arn:aws:iam::{account}:policy/kms-use"));
    assert_eq!(created["Policy"]["DefaultVersionId"], "v1");
    assert_eq!(
        code(iam.call("CreatePolicy", json!({"PolicyName": "bad", "PolicyDocument": r#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#}))),
        "MalformedPolicyDocument"
    );
    // Managed policies need the 2012-10-17 grammar; inline ones may use the old one.
    let old = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let err = iam
        .call(
            "CreatePolicy",
            json!({"PolicyName": "old", "PolicyDocument": old}),
        )
        .unwrap_err();
    assert_eq!(
        err.message(),
        "Policy document must be version 2012-10-17 or greater."
    );
    iam.call("CreateRole", json!({"RoleName": "holder", "AssumeRolePolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}]}).to_string()})).unwrap();
    iam.call(
        "PutRolePolicy",
        json!({"RoleName": "holder", "PolicyName": "old", "PolicyDocument": old}),
    )
    .unwrap();
    iam.call(
        "DeleteRolePolicy",
        json!({"RoleName": "holder", "PolicyName": "old"}),
    )
    .unwrap();
    iam.call("DeleteRole", json!({"RoleName": "holder"}))
        .unwrap();
    for i in 2..=5 {
        let v = iam
            .call("CreatePolicyVersion", json!({"PolicyArn": arn, "PolicyDocument": allow(&["kms:Decrypt"], "*"), "SetAsDefault": i == 3}))
            .unwrap();
        assert_eq!(v["PolicyVersion"]["VersionId"], format!("v{i}"));
    }
    assert_eq!(
        code(iam.call(
            "CreatePolicyVersion",
            json!({"PolicyArn": arn, "PolicyDocument": allow(&["kms:Decrypt"], "*")})
        )),
        "LimitExceeded"
    );
    assert_eq!(
        iam.call("GetPolicy", json!({"PolicyArn": arn})).unwrap()["Policy"]["DefaultVersionId"],
        "v3"
    );
    assert_eq!(
        code(iam.call(
            "DeletePolicyVersion",
            json!({"PolicyArn": arn, "VersionId": "v3"})
        )),
        "DeleteConflict"
    );
    let versions = iam
        .call("ListPolicyVersions", json!({"PolicyArn": arn}))
        .unwrap();
    assert_eq!(versions["Versions"][0]["VersionId"], "v5", "newest first");
    let doc = iam
        .call(
            "GetPolicyVersion",
            json!({"PolicyArn": arn, "VersionId": "v1"}),
        )
        .unwrap();
    assert_eq!(
        doc["PolicyVersion"]["Document"]["Statement"][0]["Action"][0],
        "kms:Encrypt"
    );

    iam.call("CreateRole", json!({"RoleName": "deployer", "AssumeRolePolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}]}).to_string()})).unwrap();
    iam.call(
        "AttachRolePolicy",
        json!({"RoleName": "deployer", "PolicyArn": arn}),
    )
    .unwrap();
    iam.call(
        "AttachRolePolicy",
        json!({"RoleName": "deployer", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyNothing"}),
    )
    .unwrap_err();
    iam.call(
        "AttachRolePolicy",
        json!({"RoleName": "deployer", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    )
    .unwrap();
    let attached = iam
        .call("ListAttachedRolePolicies", json!({"RoleName": "deployer"}))
        .unwrap();
    assert_eq!(attached["AttachedPolicies"].as_array().unwrap().len(), 2);
    assert_eq!(
        iam.call("GetPolicy", json!({"PolicyArn": arn})).unwrap()["Policy"]["AttachmentCount"],
        1
    );
    assert_eq!(
        code(iam.call("DeletePolicy", json!({"PolicyArn": arn}))),
        "DeleteConflict"
    );
    assert_eq!(
        code(iam.call("DeleteRole", json!({"RoleName": "deployer"}))),
        "DeleteConflict"
    );
    iam.call(
        "DetachRolePolicy",
        json!({"RoleName": "deployer", "PolicyArn": arn}),
    )
    .unwrap();
    iam.call(
        "DetachRolePolicy",
        json!({"RoleName": "deployer", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    )
    .unwrap();
    for v in ["v1", "v2", "v4", "v5"] {
        iam.call(
            "DeletePolicyVersion",
            json!({"PolicyArn": arn, "VersionId": v}),
        )
        .unwrap();
    }
    iam.call("DeletePolicy", json!({"PolicyArn": arn})).unwrap();
    iam.call("DeleteRole", json!({"RoleName": "deployer"}))
        .unwrap();

    // A trust policy must be a trust policy.
    assert_eq!(
        code(iam.call(
            "CreateRole",
            json!({"RoleName": "r", "AssumeRolePolicyDocument": allow(&["sts:AssumeRole"], "*")})
        )),
        "MalformedPolicyDocument"
    );
}

#[test]
fn a_users_calls_are_decided_by_its_policies_and_explained_when_denied() {
    let (keep, account, iam) = keep_with_account("iam");
    iam.call("CreateUser", json!({"UserName": "alice"}))
        .unwrap();
    let kms = user_client(&keep, &account, "alice", "kms");
    let denied = kms.call("CreateKey", json!({})).unwrap_err();
    assert_eq!(denied.code(), "AccessDeniedException");
    assert_eq!(
        denied.message(),
        format!(
            "User: arn:aws:iam::{account}:user/alice is not authorized to perform: kms:CreateKey because no identity-based policy allows the kms:CreateKey action"
        )
    );
    let last = &keep.audit().recent(1).unwrap()[0];
    assert_eq!(last["errorCode"], "AccessDeniedException");
    assert_eq!(last["userIdentity"]["type"], "IAMUser");
    assert_eq!(last["userIdentity"]["userName"], "alice");

    // Through a group: allowed at once (the policy set is not cached across a change).
    iam.call("CreateGroup", json!({"GroupName": "crypto"}))
        .unwrap();
    iam.call(
        "AddUserToGroup",
        json!({"GroupName": "crypto", "UserName": "alice"}),
    )
    .unwrap();
    iam.call("PutGroupPolicy", json!({"GroupName": "crypto", "PolicyName": "kms", "PolicyDocument": allow(&["kms:*"], "*")})).unwrap();
    let key = create_key(&kms);
    kms.call("Encrypt", json!({"KeyId": key, "Plaintext": "aGk="}))
        .unwrap();

    // An explicit deny with a condition on the encryption context.
    let deny = json!({"Version": "2012-10-17", "Statement": [{"Sid": "NoProd", "Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:stage": "prod"}}}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "deny-prod", "PolicyDocument": deny.to_string()}),
    )
    .unwrap();
    let err = kms
        .call(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": "aGk=", "EncryptionContext": {"stage": "prod"}}),
        )
        .unwrap_err();
    assert!(
        err.message()
            .ends_with("with an explicit deny in an identity-based policy"),
        "{err}"
    );
    kms.call(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": "aGk=", "EncryptionContext": {"stage": "dev"}}),
    )
    .unwrap();

    // A permissions boundary caps what the identity policies grant.
    iam.call("CreatePolicy", json!({"PolicyName": "describe-only", "PolicyDocument": allow(&["kms:Describe*", "kms:List*"], "*")})).unwrap();
    let boundary = format!("arn:aws:iam::{account}:policy/describe-only");
    iam.call(
        "PutUserPermissionsBoundary",
        json!({"UserName": "alice", "PermissionsBoundary": boundary}),
    )
    .unwrap();
    kms.call("DescribeKey", json!({"KeyId": key})).unwrap();
    let err = kms.call("DisableKey", json!({"KeyId": key})).unwrap_err();
    assert!(
        err.message()
            .contains("because no permissions boundary allows the kms:DisableKey action"),
        "{err}"
    );
    iam.call(
        "DeleteUserPermissionsBoundary",
        json!({"UserName": "alice"}),
    )
    .unwrap();
    kms.call("DisableKey", json!({"KeyId": key})).unwrap();

    // A deleted user can do nothing.
    let iam_as_alice = user_client(&keep, &account, "alice", "iam");
    assert_eq!(
        code(iam_as_alice.call("ListUsers", json!({}))),
        "AccessDeniedException"
    );
    iam.call(
        "RemoveUserFromGroup",
        json!({"GroupName": "crypto", "UserName": "alice"}),
    )
    .unwrap();
    iam.call(
        "DeleteUserPolicy",
        json!({"UserName": "alice", "PolicyName": "deny-prod"}),
    )
    .unwrap();
    iam.call("DeleteUser", json!({"UserName": "alice"}))
        .unwrap();
    assert_eq!(
        code(kms.call("ListKeys", json!({}))),
        "InvalidClientTokenId"
    );
}

#[test]
fn policy_variables_let_users_manage_their_own_credentials() {
    let (keep, account, iam) = keep_with_account("iam");
    let self_service = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["iam:CreateAccessKey", "iam:ListAccessKeys", "iam:GetUser"],
        "Resource": "arn:aws:iam::*:user/${aws:username}"}]});
    iam.call(
        "CreatePolicy",
        json!({"PolicyName": "self", "PolicyDocument": self_service.to_string()}),
    )
    .unwrap();
    for name in ["alice", "bob"] {
        iam.call("CreateUser", json!({"UserName": name})).unwrap();
        iam.call(
            "AttachUserPolicy",
            json!({"UserName": name, "PolicyArn": format!("arn:aws:iam::{account}:policy/self")}),
        )
        .unwrap();
    }
    let alice = user_client(&keep, &account, "alice", "iam");
    assert_eq!(
        alice.call("GetUser", json!({})).unwrap()["User"]["UserName"],
        "alice"
    );
    alice.call("CreateAccessKey", json!({})).unwrap();
    assert_eq!(
        code(alice.call("CreateAccessKey", json!({"UserName": "bob"}))),
        "AccessDeniedException"
    );
}

#[test]
fn access_keys_authenticate_until_deactivated_or_deleted() {
    let (keep, account, iam) = keep_with_account("iam");
    iam.call("CreateUser", json!({"UserName": "ci"})).unwrap();
    iam.call(
        "AttachUserPolicy",
        json!({"UserName": "ci", "PolicyArn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}),
    )
    .unwrap();
    let key = iam
        .call("CreateAccessKey", json!({"UserName": "ci"}))
        .unwrap()["AccessKey"]
        .clone();
    let id = key["AccessKeyId"].as_str().unwrap();
    let secret = key["SecretAccessKey"].as_str().unwrap();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    iam.call("CreateAccessKey", json!({"UserName": "ci"}))
        .unwrap();
    assert_eq!(
        code(iam.call("CreateAccessKey", json!({"UserName": "ci"}))),
        "LimitExceeded"
    );
    // The secret is never listed again, nor audited.
    let listed = iam
        .call("ListAccessKeys", json!({"UserName": "ci"}))
        .unwrap();
    assert!(!listed.to_string().contains(secret));
    let mut log = Vec::new();
    keep.audit().export_jsonl(&mut log).unwrap();
    assert!(
        !String::from_utf8(log).unwrap().contains(secret),
        "a secret reached the audit log"
    );

    let as_ci = keep.client("iam", Caller::access_key(id, secret)).unwrap();
    let me = as_ci.call("GetUser", json!({})).unwrap();
    assert_eq!(me["User"]["Arn"], format!("arn:aws:iam::{account}:user/ci"));
    assert_eq!(
        code(as_ci.call("CreateUser", json!({"UserName": "x"}))),
        "AccessDeniedException"
    );
    let last = &keep.audit().recent(1).unwrap()[0];
    assert_eq!(last["userIdentity"]["accessKeyId"], id);
    let used = iam
        .call("GetAccessKeyLastUsed", json!({"AccessKeyId": id}))
        .unwrap();
    assert_eq!(used["UserName"], "ci");
    assert_eq!(used["AccessKeyLastUsed"]["ServiceName"], "iam");
    assert_eq!(used["AccessKeyLastUsed"]["Region"], "us-east-1");
    assert!(used["AccessKeyLastUsed"]["LastUsedDate"].is_number());

    let wrong = keep.client("iam", Caller::access_key(id, "wrong")).unwrap();
    assert_eq!(
        code(wrong.call("GetUser", json!({}))),
        "SignatureDoesNotMatch"
    );
    iam.call(
        "UpdateAccessKey",
        json!({"UserName": "ci", "AccessKeyId": id, "Status": "Inactive"}),
    )
    .unwrap();
    assert_eq!(
        code(as_ci.call("GetUser", json!({}))),
        "InvalidClientTokenId"
    );
    iam.call(
        "UpdateAccessKey",
        json!({"UserName": "ci", "AccessKeyId": id, "Status": "Active"}),
    )
    .unwrap();
    as_ci.call("GetUser", json!({})).unwrap();
    iam.call(
        "DeleteAccessKey",
        json!({"UserName": "ci", "AccessKeyId": id}),
    )
    .unwrap();
    assert_eq!(
        code(as_ci.call("GetUser", json!({}))),
        "InvalidClientTokenId"
    );
}

#[test]
fn kms_key_policies_decide_with_iam_policies() {
    let (keep, account, kms_root) = keep_with_account("kms");
    let (_, iam) = (
        0,
        keep.client("iam", Caller::account_root(account.parse().unwrap()))
            .unwrap(),
    );
    iam.call("CreateUser", json!({"UserName": "app"})).unwrap();
    iam.call("PutUserPolicy", json!({"UserName": "app", "PolicyName": "kms", "PolicyDocument": allow(&["kms:Encrypt", "kms:DescribeKey"], "*")})).unwrap();
    let key = create_key(&kms_root);
    let app = user_client(&keep, &account, "app", "kms");
    // The default key policy lets the account's IAM policies decide.
    app.call("Encrypt", json!({"KeyId": key, "Plaintext": "aGk="}))
        .unwrap();
    // A key policy without the account statement shuts IAM policies out.
    let app_arn = format!("arn:aws:iam::{account}:user/app");
    let only_app_describe = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:PutKeyPolicy", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": app_arn}, "Action": "kms:GetKeyPolicy", "Resource": "*"}]});
    kms_root
        .call(
            "PutKeyPolicy",
            json!({"KeyId": key, "Policy": only_app_describe.to_string()}),
        )
        .unwrap();
    let err = app
        .call("Encrypt", json!({"KeyId": key, "Plaintext": "aGk="}))
        .unwrap_err();
    assert!(
        err.message()
            .contains("because no resource-based policy allows the kms:Encrypt action"),
        "{err}"
    );
    // A key policy naming the user grants by itself, without any IAM policy.
    app.call("GetKeyPolicy", json!({"KeyId": key})).unwrap();
}

#[test]
fn another_accounts_key_needs_both_accounts_to_allow() {
    let keep = Keep::memory().unwrap();
    let (owner, kms_owner) = account_client(&keep, "kms");
    let (other, iam_other) = account_client(&keep, "iam");
    let key_arn = kms_owner.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    iam_other
        .call("CreateUser", json!({"UserName": "app"}))
        .unwrap();
    iam_other.call("PutUserPolicy", json!({"UserName": "app", "PolicyName": "kms", "PolicyDocument": allow(&["kms:Encrypt"], &key_arn)})).unwrap();
    let app = user_client(&keep, &other, "app", "kms");
    let err = app
        .call("Encrypt", json!({"KeyId": key_arn, "Plaintext": "aGk="}))
        .unwrap_err();
    assert!(
        err.message().contains("no resource-based policy allows"),
        "{err}"
    );
    let shared = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{owner}:root")}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{other}:root")}, "Action": "kms:Encrypt", "Resource": "*"}]});
    kms_owner
        .call(
            "PutKeyPolicy",
            json!({"KeyId": key_arn, "Policy": shared.to_string()}),
        )
        .unwrap();
    app.call("Encrypt", json!({"KeyId": key_arn, "Plaintext": "aGk="}))
        .unwrap();
    // The other account's own policies must still allow.
    iam_other
        .call(
            "DeleteUserPolicy",
            json!({"UserName": "app", "PolicyName": "kms"}),
        )
        .unwrap();
    assert_eq!(
        code(app.call("Encrypt", json!({"KeyId": key_arn, "Plaintext": "aGk="}))),
        "AccessDeniedException"
    );
}

#[test]
fn every_operation_declares_an_action_and_resource_types() {
    let catalog = codekeep::api::catalog();
    assert!(catalog.len() > 90, "{} operations", catalog.len());
    for op in &catalog {
        let (prefix, name) = op.action.split_once(':').unwrap();
        assert!(!prefix.is_empty() && name == op.name, "{op:?}");
        assert!(
            !op.resources.is_empty(),
            "{} has no resource types",
            op.action
        );
        for r in op.resources {
            assert!(*r == "*" || r.starts_with("arn:aws:"), "{}: {r}", op.action);
        }
    }
    let value: Value =
        serde_json::to_value(catalog.iter().map(|o| &o.action).collect::<Vec<_>>()).unwrap();
    assert!(value.as_array().unwrap().contains(&json!("iam:CreateUser")));
}

#[test]
fn tags_reach_conditions_as_resource_and_request_tags() {
    let (keep, account, iam) = keep_with_account("iam");
    let kms_root = keep
        .client("kms", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let tagged = |env: &str| {
        kms_root
            .call(
                "CreateKey",
                json!({"Tags": [{"TagKey": "env", "TagValue": env}]}),
            )
            .unwrap()["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (dev, prod) = (tagged("dev"), tagged("prod"));
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "dev"}}},
        {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/team": "red"}, "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}}]});
    iam.call("CreateUser", json!({"UserName": "app"})).unwrap();
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "app", "PolicyName": "tags", "PolicyDocument": policy.to_string()}),
    )
    .unwrap();
    let app = user_client(&keep, &account, "app", "kms");
    app.call("Encrypt", json!({"KeyId": dev, "Plaintext": "aGk="}))
        .unwrap();
    assert_eq!(
        code(app.call("Encrypt", json!({"KeyId": prod, "Plaintext": "aGk="}))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(app.call("CreateKey", json!({}))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(app.call("CreateKey", json!({"Tags": [{"TagKey": "team", "TagValue": "red"}, {"TagKey": "env", "TagValue": "x"}]}))),
        "AccessDeniedException"
    );
    app.call(
        "CreateKey",
        json!({"Tags": [{"TagKey": "team", "TagValue": "red"}]}),
    )
    .unwrap();
}

#[test]
fn review_fixes_hold() {
    let (keep, account, iam) = keep_with_account("iam");
    // An AWS managed policy ARN is exactly its ARN: a path cannot smuggle another name in.
    iam.call("CreateUser", json!({"UserName": "dev", "Path": "/dev/"}))
        .unwrap();
    assert_eq!(
        code(iam.call("AttachUserPolicy", json!({"UserName": "dev", "PolicyArn": "arn:aws:iam::aws:policy/AWSCodeCommitX/AdministratorAccess"}))),
        "NoSuchEntity"
    );
    // UpdateUser needs permission on the user as it will be.
    let rename_dev = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:UpdateUser", "Resource": "arn:aws:iam::*:user/dev/*"}]});
    iam.call("CreateUser", json!({"UserName": "lead"})).unwrap();
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "lead", "PolicyName": "p", "PolicyDocument": rename_dev.to_string()}),
    )
    .unwrap();
    let lead = user_client(&keep, &account, "lead", "iam");
    let err = lead
        .call(
            "UpdateUser",
            json!({"UserName": "dev", "NewPath": "/admin/"}),
        )
        .unwrap_err();
    assert!(
        err.message()
            .contains(&format!("arn:aws:iam::{account}:user/admin/dev")),
        "{err}"
    );
    lead.call(
        "UpdateUser",
        json!({"UserName": "dev", "NewUserName": "dev2"}),
    )
    .unwrap();
    // Boundary usage is counted from creation to deletion.
    iam.call(
        "CreatePolicy",
        json!({"PolicyName": "cap", "PolicyDocument": allow(&["s3:*"], "*")}),
    )
    .unwrap();
    let cap = format!("arn:aws:iam::{account}:policy/cap");
    iam.call(
        "CreateUser",
        json!({"UserName": "capped", "PermissionsBoundary": cap}),
    )
    .unwrap();
    assert_eq!(
        iam.call("GetPolicy", json!({"PolicyArn": cap})).unwrap()["Policy"]["PermissionsBoundaryUsageCount"],
        1
    );
    assert_eq!(
        code(iam.call("DeletePolicy", json!({"PolicyArn": cap}))),
        "DeleteConflict"
    );
    iam.call("DeleteUser", json!({"UserName": "capped"}))
        .unwrap();
    iam.call("DeletePolicy", json!({"PolicyArn": cap})).unwrap();
    // Only the keep's accounts have root users: not the organization's id, not a made-up one.
    for id in ["000000000000", "123456789012"] {
        let orgs = keep
            .client("organizations", Caller::account_root(id.parse().unwrap()))
            .unwrap();
        assert_eq!(
            code(orgs.call("CreateAccount", json!({"AccountName": "x"}))),
            "InvalidClientTokenId"
        );
    }
}
