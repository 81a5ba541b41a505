//! STS across accounts, MFA with virtual devices, and temporary credentials.

use base64::Engine as _;
use codekeep::clock::ManualClock;
use codekeep::{Caller, Client, Keep};
use serde_json::{Value, json};

use crate::{code, keep_with_clock};

/// RFC 6238 TOTP, written here independently of the library (HMAC-SHA1, 30 s, 6 digits).
fn totp(seed: &[u8], unix_seconds: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let mac = ring::hmac::sign(&key, &(unix_seconds / 30).to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

struct World {
    clock: ManualClock,
    keep: Keep,
    owner: String,
    other: String,
    owner_iam: Client,
    other_iam: Client,
}

fn world() -> World {
    let (clock, keep) = keep_with_clock();
    let (owner, owner_iam) = crate::account_client(&keep, "iam");
    let (other, other_iam) = crate::account_client(&keep, "iam");
    World {
        clock,
        keep,
        owner,
        other,
        owner_iam,
        other_iam,
    }
}

fn now_seconds(clock: &ManualClock) -> i64 {
    use codekeep::clock::Clock as _;
    clock.now_millis() / 1000
}

/// Creates and enables a virtual MFA device for `user`; returns (serial, seed).
fn enable_mfa(w: &World, iam: &Client, user: &str) -> (String, Vec<u8>) {
    let device = iam
        .call(
            "CreateVirtualMFADevice",
            json!({"VirtualMFADeviceName": user}),
        )
        .unwrap();
    let serial = device["VirtualMFADevice"]["SerialNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let base32 = base64::engine::general_purpose::STANDARD
        .decode(
            device["VirtualMFADevice"]["Base32StringSeed"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let seed = base32_decode(std::str::from_utf8(&base32).unwrap());
    let t = now_seconds(&w.clock);
    assert_eq!(
        code(iam.call(
            "EnableMFADevice",
            json!({"UserName": user, "SerialNumber": serial,
            "AuthenticationCode1": totp(&seed, t), "AuthenticationCode2": totp(&seed, t)})
        )),
        "InvalidAuthenticationCode",
        "two equal codes are not two consecutive codes"
    );
    iam.call(
        "EnableMFADevice",
        json!({"UserName": user, "SerialNumber": serial,
        "AuthenticationCode1": totp(&seed, t - 30), "AuthenticationCode2": totp(&seed, t)}),
    )
    .unwrap();
    (serial, seed)
}

fn session_client(keep: &Keep, service: &str, creds: &Value) -> Client {
    keep.client(
        service,
        Caller::session(
            creds["AccessKeyId"].as_str().unwrap(),
            creds["SecretAccessKey"].as_str().unwrap(),
            creds["SessionToken"].as_str().unwrap(),
        ),
    )
    .unwrap()
}

#[test]
fn assume_a_role_across_accounts_with_mfa() {
    let w = world();
    let role_arn = format!("arn:aws:iam::{}:role/deploy", w.owner);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", w.other)}, "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}, "StringEquals": {"sts:ExternalId": "shared-secret-id"}}}]});
    w.owner_iam
        .call("CreateRole", json!({"RoleName": "deploy", "AssumeRolePolicyDocument": trust.to_string(), "MaxSessionDuration": 7200}))
        .unwrap();
    w.owner_iam
        .call(
            "AttachRolePolicy",
            json!({"RoleName": "deploy", "PolicyArn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}),
        )
        .unwrap();
    w.other_iam
        .call("CreateUser", json!({"UserName": "dev"}))
        .unwrap();
    let (serial, seed) = enable_mfa(&w, &w.other_iam, "dev");
    let dev_sts = w
        .keep
        .client("sts", Caller::iam_user(w.other.parse().unwrap(), "dev"))
        .unwrap();
    let assume = |extra: Value| {
        let mut input = json!({"RoleArn": role_arn, "RoleSessionName": "ship-it", "ExternalId": "shared-secret-id"});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        dev_sts.call("AssumeRole", input)
    };
    w.clock.advance(30_000);
    let t = now_seconds(&w.clock);
    // The caller's own account must allow it too.
    assert_eq!(
        code(assume(
            json!({"SerialNumber": serial, "TokenCode": totp(&seed, t)})
        )),
        "AccessDeniedException"
    );
    let allow_assume = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]});
    w.other_iam
        .call("PutUserPolicy", json!({"UserName": "dev", "PolicyName": "assume", "PolicyDocument": allow_assume.to_string()}))
        .unwrap();
    // The trust policy wants MFA and the external id.
    let denied = assume(json!({})).unwrap_err();
    assert!(
        denied.message().contains("sts:AssumeRole on resource"),
        "{denied}"
    );
    assert_eq!(
        code(assume(
            json!({"SerialNumber": serial, "TokenCode": "000000"})
        )),
        "AccessDenied"
    );
    assert_eq!(
        code(assume(
            json!({"SerialNumber": serial, "TokenCode": totp(&seed, t), "ExternalId": "wrong-id"})
        )),
        "AccessDeniedException"
    );
    let out = assume(
        json!({"SerialNumber": serial, "TokenCode": totp(&seed, t), "DurationSeconds": 7200}),
    )
    .unwrap();
    // The code is used up.
    assert_eq!(
        code(assume(
            json!({"SerialNumber": serial, "TokenCode": totp(&seed, t)})
        )),
        "AccessDenied"
    );
    let creds = &out["Credentials"];
    assert!(creds["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    let session_arn = format!("arn:aws:sts::{}:assumed-role/deploy/ship-it", w.owner);
    assert_eq!(out["AssumedRoleUser"]["Arn"], session_arn);

    let who = session_client(&w.keep, "sts", creds)
        .call("GetCallerIdentity", json!({}))
        .unwrap();
    assert_eq!(who["Arn"], session_arn);
    assert_eq!(who["Account"], w.owner.as_str());
    let iam_session = session_client(&w.keep, "iam", creds);
    iam_session.call("ListRoles", json!({})).unwrap();
    assert_eq!(
        code(iam_session.call("CreateUser", json!({"UserName": "x"}))),
        "AccessDeniedException"
    );
    let last = &w.keep.audit().recent(1).unwrap()[0];
    assert_eq!(last["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        last["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"],
        "true"
    );

    // Tampered tokens and wrong secrets fail; expired tokens say so.
    let mut bad = creds.clone();
    let token = creds["SessionToken"].as_str().unwrap();
    let flipped = if token.ends_with('A') { "B" } else { "A" };
    bad["SessionToken"] = json!(format!("{}{flipped}", &token[..token.len() - 1]));
    assert_eq!(
        code(session_client(&w.keep, "iam", &bad).call("ListRoles", json!({}))),
        "InvalidClientTokenId"
    );
    let mut wrong = creds.clone();
    wrong["SecretAccessKey"] = json!("not-the-secret");
    assert_eq!(
        code(session_client(&w.keep, "iam", &wrong).call("ListRoles", json!({}))),
        "SignatureDoesNotMatch"
    );
    w.clock.advance(7200 * 1000);
    assert_eq!(
        code(iam_session.call("ListRoles", json!({}))),
        "ExpiredToken"
    );
}

#[test]
fn session_policies_tags_chaining_and_durations() {
    let w = world();
    let trust_same_account = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", w.owner)}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    for role in ["first", "second"] {
        w.owner_iam
            .call("CreateRole", json!({"RoleName": role, "AssumeRolePolicyDocument": trust_same_account.to_string(), "MaxSessionDuration": 43200}))
            .unwrap();
        w.owner_iam
            .call("AttachRolePolicy", json!({"RoleName": role, "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}))
            .unwrap();
    }
    w.owner_iam
        .call("CreateUser", json!({"UserName": "ops"}))
        .unwrap();
    w.owner_iam
        .call(
            "AttachUserPolicy",
            json!({"UserName": "ops", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .unwrap();
    let ops_sts = w
        .keep
        .client("sts", Caller::iam_user(w.owner.parse().unwrap(), "ops"))
        .unwrap();
    let first_arn = format!("arn:aws:iam::{}:role/first", w.owner);
    assert_eq!(
        code(ops_sts.call(
            "AssumeRole",
            json!({"RoleArn": first_arn, "RoleSessionName": "s", "DurationSeconds": 600})
        )),
        "ValidationError"
    );
    // A session policy narrows the role to listing users, and tags follow the session.
    let session_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:ListUsers", "sts:AssumeRole", "sts:TagSession"], "Resource": "*"}]});
    let out = ops_sts
        .call("AssumeRole", json!({"RoleArn": first_arn, "RoleSessionName": "narrow", "Policy": session_policy.to_string(),
            "Tags": [{"Key": "project", "Value": "apollo"}], "TransitiveTagKeys": ["project"], "DurationSeconds": 43200}))
        .unwrap();
    let iam_first = session_client(&w.keep, "iam", &out["Credentials"]);
    iam_first.call("ListUsers", json!({})).unwrap();
    let denied = iam_first.call("ListRoles", json!({})).unwrap_err();
    assert!(
        denied
            .message()
            .contains("because no session policy allows the iam:ListRoles action"),
        "{denied}"
    );

    // Role chaining: at most an hour, and transitive tags carry over.
    let sts_first = session_client(&w.keep, "sts", &out["Credentials"]);
    let second_arn = format!("arn:aws:iam::{}:role/second", w.owner);
    assert_eq!(
        code(sts_first.call(
            "AssumeRole",
            json!({"RoleArn": second_arn, "RoleSessionName": "chain", "DurationSeconds": 7200})
        )),
        "ValidationError"
    );
    let tag_gate = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalTag/project": "apollo"}}}]});
    w.owner_iam
        .call("PutRolePolicy", json!({"RoleName": "second", "PolicyName": "tag-gate", "PolicyDocument": tag_gate.to_string()}))
        .unwrap();
    let chained = sts_first
        .call(
            "AssumeRole",
            json!({"RoleArn": second_arn, "RoleSessionName": "chain"}),
        )
        .unwrap();
    session_client(&w.keep, "iam", &chained["Credentials"])
        .call("ListUsers", json!({}))
        .unwrap();
    // Without the transitive tag, the deny applies.
    let direct = ops_sts
        .call(
            "AssumeRole",
            json!({"RoleArn": second_arn, "RoleSessionName": "direct"}),
        )
        .unwrap();
    assert_eq!(
        code(session_client(&w.keep, "iam", &direct["Credentials"]).call("ListUsers", json!({}))),
        "AccessDeniedException"
    );
    // The root user cannot assume roles.
    let root_sts = w
        .keep
        .client("sts", Caller::account_root(w.owner.parse().unwrap()))
        .unwrap();
    assert_eq!(
        code(root_sts.call(
            "AssumeRole",
            json!({"RoleArn": first_arn, "RoleSessionName": "root-session"})
        )),
        "AccessDenied"
    );
    let _ = &w.other;
}

#[test]
fn get_session_token_with_mfa_satisfies_mfa_protected_policies() {
    let w = world();
    w.owner_iam
        .call("CreateUser", json!({"UserName": "admin"}))
        .unwrap();
    let mfa_required = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Sid": "DenyWithoutMfa", "Effect": "Deny", "NotAction": ["sts:GetSessionToken", "iam:ListMFADevices"], "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}]});
    w.owner_iam
        .call("PutUserPolicy", json!({"UserName": "admin", "PolicyName": "mfa", "PolicyDocument": mfa_required.to_string()}))
        .unwrap();
    let (serial, seed) = enable_mfa(&w, &w.owner_iam, "admin");
    let key = w
        .owner_iam
        .call("CreateAccessKey", json!({"UserName": "admin"}))
        .unwrap()["AccessKey"]
        .clone();
    let long_term = |service: &str| {
        w.keep
            .client(
                service,
                Caller::access_key(
                    key["AccessKeyId"].as_str().unwrap(),
                    key["SecretAccessKey"].as_str().unwrap(),
                ),
            )
            .unwrap()
    };
    // With long-term keys the MFA key is absent: BoolIfExists denies.
    let err = long_term("iam").call("ListUsers", json!({})).unwrap_err();
    assert!(
        err.message()
            .ends_with("with an explicit deny in an identity-based policy"),
        "{err}"
    );
    // A session without MFA has the key set to false.
    let plain = long_term("sts").call("GetSessionToken", json!({})).unwrap();
    assert_eq!(
        code(session_client(&w.keep, "iam", &plain["Credentials"]).call("ListUsers", json!({}))),
        "AccessDeniedException"
    );
    w.clock.advance(30_000);
    let t = now_seconds(&w.clock);
    let out = long_term("sts")
        .call(
            "GetSessionToken",
            json!({"SerialNumber": serial, "TokenCode": totp(&seed, t), "DurationSeconds": 900}),
        )
        .unwrap();
    let iam = session_client(&w.keep, "iam", &out["Credentials"]);
    iam.call("ListUsers", json!({})).unwrap();
    // Sessions cannot make sessions.
    assert_eq!(
        code(
            session_client(&w.keep, "sts", &out["Credentials"]).call("GetSessionToken", json!({}))
        ),
        "AccessDenied"
    );
    w.clock.advance(901 * 1000);
    assert_eq!(code(iam.call("ListUsers", json!({}))), "ExpiredToken");
}

#[test]
fn mfa_seeds_are_sealed_under_the_aws_managed_iam_key() {
    let w = world();
    w.owner_iam
        .call("CreateUser", json!({"UserName": "ops"}))
        .unwrap();
    enable_mfa(&w, &w.owner_iam, "ops");
    let kms = w
        .keep
        .client("kms", Caller::account_root(w.owner.parse().unwrap()))
        .unwrap();
    let aliases = kms.call("ListAliases", json!({})).unwrap();
    let alias = aliases["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["AliasName"] == "alias/aws/iam")
        .expect("the AWS managed key for IAM exists")
        .clone();
    let key = alias["TargetKeyId"].as_str().unwrap();
    let meta = kms.call("DescribeKey", json!({"KeyId": key})).unwrap();
    assert_eq!(meta["KeyMetadata"]["KeyManager"], "AWS");
    // Customers may read it but neither use it directly nor change it.
    assert_eq!(
        code(kms.call("Encrypt", json!({"KeyId": key, "Plaintext": "aGk="}))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(kms.call("DisableKey", json!({"KeyId": key}))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(kms.call("ScheduleKeyDeletion", json!({"KeyId": key}))),
        "AccessDeniedException"
    );
    let _ = &w.other_iam;
}

#[test]
fn sessions_end_with_their_principal_and_their_session_policies() {
    let w = world();
    w.owner_iam
        .call("CreateUser", json!({"UserName": "ops"}))
        .unwrap();
    w.owner_iam
        .call(
            "AttachUserPolicy",
            json!({"UserName": "ops", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .unwrap();
    let key = w
        .owner_iam
        .call("CreateAccessKey", json!({"UserName": "ops"}))
        .unwrap()["AccessKey"]
        .clone();
    let ops = Caller::access_key(
        key["AccessKeyId"].as_str().unwrap(),
        key["SecretAccessKey"].as_str().unwrap(),
    );
    let ops_sts = w.keep.client("sts", ops.clone()).unwrap();
    // GetSessionToken credentials without MFA may not call IAM, nor STS beyond AssumeRole.
    let plain = ops_sts.call("GetSessionToken", json!({})).unwrap();
    let err = session_client(&w.keep, "iam", &plain["Credentials"])
        .call("ListUsers", json!({}))
        .unwrap_err();
    assert!(err.message().contains("GetSessionToken"), "{err}");
    // A user created again under the same name is someone else: old sessions end.
    let keys = w
        .owner_iam
        .call("ListAccessKeys", json!({"UserName": "ops"}))
        .unwrap();
    for k in keys["AccessKeyMetadata"].as_array().unwrap() {
        w.owner_iam
            .call(
                "DeleteAccessKey",
                json!({"UserName": "ops", "AccessKeyId": k["AccessKeyId"]}),
            )
            .unwrap();
    }
    w.owner_iam
        .call(
            "DetachUserPolicy",
            json!({"UserName": "ops", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .unwrap();
    w.owner_iam
        .call("DeleteUser", json!({"UserName": "ops"}))
        .unwrap();
    w.owner_iam
        .call("CreateUser", json!({"UserName": "ops"}))
        .unwrap();
    assert_eq!(
        code(
            session_client(&w.keep, "sts", &plain["Credentials"])
                .call("GetCallerIdentity", json!({}))
        ),
        "InvalidClientTokenId"
    );

    // A role session whose managed session policy is deleted ends, rather than losing its limit.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", w.owner)}, "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]});
    w.owner_iam
        .call(
            "CreateRole",
            json!({"RoleName": "r", "AssumeRolePolicyDocument": trust.to_string()}),
        )
        .unwrap();
    w.owner_iam
        .call(
            "AttachRolePolicy",
            json!({"RoleName": "r", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .unwrap();
    w.owner_iam
        .call(
            "AttachUserPolicy",
            json!({"UserName": "ops", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )
        .unwrap();
    let narrow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:ListUsers", "sts:*"], "Resource": "*"}]});
    w.owner_iam
        .call(
            "CreatePolicy",
            json!({"PolicyName": "narrow", "PolicyDocument": narrow.to_string()}),
        )
        .unwrap();
    let narrow_arn = format!("arn:aws:iam::{}:policy/narrow", w.owner);
    let ops_sts = w
        .keep
        .client("sts", Caller::iam_user(w.owner.parse().unwrap(), "ops"))
        .unwrap();
    let role_arn = format!("arn:aws:iam::{}:role/r", w.owner);
    let out = ops_sts
        .call("AssumeRole", json!({"RoleArn": role_arn, "RoleSessionName": "s1", "PolicyArns": [{"arn": narrow_arn}],
            "Tags": [{"Key": "team", "Value": "a"}], "TransitiveTagKeys": ["team"], "SourceIdentity": "alice"}))
        .unwrap();
    let iam_s1 = session_client(&w.keep, "iam", &out["Credentials"]);
    iam_s1.call("ListUsers", json!({})).unwrap();
    assert_eq!(
        code(iam_s1.call("ListRoles", json!({}))),
        "AccessDeniedException"
    );
    // GetUser without a name is for users only.
    assert_eq!(code(iam_s1.call("GetUser", json!({}))), "ValidationError");
    // A chained session may not reset an inherited transitive tag, nor the source identity.
    let sts_s1 = session_client(&w.keep, "sts", &out["Credentials"]);
    assert_eq!(
        code(sts_s1.call("AssumeRole", json!({"RoleArn": role_arn, "RoleSessionName": "s2", "Tags": [{"Key": "team", "Value": "b"}]}))),
        "ValidationError"
    );
    assert_eq!(
        code(sts_s1.call(
            "AssumeRole",
            json!({"RoleArn": role_arn, "RoleSessionName": "s2", "SourceIdentity": "mallory"})
        )),
        "ValidationError"
    );
    w.owner_iam
        .call("DeletePolicy", json!({"PolicyArn": narrow_arn}))
        .unwrap();
    assert_eq!(
        code(iam_s1.call("ListUsers", json!({}))),
        "InvalidClientTokenId"
    );
}

#[test]
fn mfa_guessing_is_throttled_and_devices_follow_renames() {
    let w = world();
    w.owner_iam
        .call("CreateUser", json!({"UserName": "ops"}))
        .unwrap();
    let (serial, seed) = enable_mfa(&w, &w.owner_iam, "ops");
    let sts = w
        .keep
        .client("sts", Caller::iam_user(w.owner.parse().unwrap(), "ops"))
        .unwrap();
    for guess in 0..10 {
        let code_text = format!("{:06}", 111_111 + guess);
        if code_text == totp(&seed, now_seconds(&w.clock) + 30) {
            continue;
        }
        assert_eq!(
            code(sts.call(
                "GetSessionToken",
                json!({"SerialNumber": serial, "TokenCode": code_text})
            )),
            "AccessDenied"
        );
    }
    // Even the right code is refused until the window passes.
    let right = totp(&seed, now_seconds(&w.clock) + 30);
    assert_eq!(
        code(sts.call(
            "GetSessionToken",
            json!({"SerialNumber": serial, "TokenCode": right})
        )),
        "AccessDenied"
    );
    w.clock.advance(11 * 60 * 1000);
    let right = totp(&seed, now_seconds(&w.clock));
    sts.call(
        "GetSessionToken",
        json!({"SerialNumber": serial, "TokenCode": right}),
    )
    .unwrap();

    // Renaming the user keeps the device the user's.
    w.owner_iam
        .call(
            "UpdateUser",
            json!({"UserName": "ops", "NewUserName": "ops2"}),
        )
        .unwrap();
    let listed = w
        .owner_iam
        .call("ListMFADevices", json!({"UserName": "ops2"}))
        .unwrap();
    assert_eq!(listed["MFADevices"][0]["SerialNumber"], serial.as_str());
    w.owner_iam
        .call(
            "DeactivateMFADevice",
            json!({"UserName": "ops2", "SerialNumber": serial}),
        )
        .unwrap();
    w.owner_iam
        .call("DeleteVirtualMFADevice", json!({"SerialNumber": serial}))
        .unwrap();
    w.owner_iam
        .call("DeleteUser", json!({"UserName": "ops2"}))
        .unwrap();
}
