//! IAM in Rust: a user in a group with a policy, git credentials and an access key, an allowed
//! and a denied call with the explanation, and a role assumed across accounts with MFA. The
//! TOTP codes come from a few lines of RFC 6238 below, standing in for the user's authenticator
//! app. Run by `make test`.
#![expect(clippy::print_stdout, reason = "a demo prints what it does")]
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing yields Null for a missing member, it does not panic"
)]

use std::time::{SystemTime, UNIX_EPOCH};

use codekeep::policy::Context;
use codekeep::{Caller, Keep};
use serde_json::{Value, json};

fn policy(actions: &[&str], resource: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resource}]})
    .to_string()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = Keep::memory()?;
    let dev = text(&keep.create_account("development")?["Id"]);
    let prod = text(&keep.create_account("production")?["Id"]);
    let iam = keep.client("iam", Caller::account_root(dev.parse()?))?;

    // A user in a group whose policy lets its members read IAM and use KMS.
    iam.call("CreateGroup", json!({"GroupName": "developers"}))?;
    iam.call(
        "PutGroupPolicy",
        json!({"GroupName": "developers", "PolicyName": "work",
            "PolicyDocument": policy(&["iam:Get*", "iam:List*", "kms:*"], "*")}),
    )?;
    iam.call("CreateUser", json!({"UserName": "alice"}))?;
    iam.call(
        "AddUserToGroup",
        json!({"GroupName": "developers", "UserName": "alice"}),
    )?;
    println!("created alice in group developers");

    // Git HTTPS credentials and an access key: their secrets are shown once.
    let git = iam.call(
        "CreateServiceSpecificCredential",
        json!({"UserName": "alice", "ServiceName": "codecommit.amazonaws.com"}),
    )?;
    let git = &git["ServiceSpecificCredential"];
    println!("git credentials: user {}", text(&git["ServiceUserName"]));
    keep.authenticate_git_https(
        &text(&git["ServiceUserName"]),
        &text(&git["ServicePassword"]),
    )?;
    let key = iam.call("CreateAccessKey", json!({"UserName": "alice"}))?["AccessKey"].clone();
    let alice = Caller::access_key(&text(&key["AccessKeyId"]), &text(&key["SecretAccessKey"]));
    println!("access key {}", text(&key["AccessKeyId"]));

    // An allowed call, a denied one, and the explanation.
    let alice_iam = keep.client("iam", alice.clone())?;
    let users = alice_iam.call("ListUsers", json!({}))?;
    println!(
        "allowed: ListUsers -> {} user(s)",
        users["Users"].as_array().map_or(0, Vec::len)
    );
    match alice_iam.call("CreateUser", json!({"UserName": "mallory"})) {
        Err(denied) => println!("denied: {denied}"),
        Ok(_) => return Err("alice must not be able to create users".into()),
    }
    let mallory = format!("arn:aws:iam::{dev}:user/mallory");
    let why = keep.authorize(&alice, "iam:CreateUser", &mallory, &Context::new())?;
    println!("explained: {} ({})", why.decision, why.explanation.deciding);
    let list = keep.authorize(&alice, "iam:ListUsers", "*", &Context::new())?;
    println!(
        "explained: {} by {}",
        list.decision, list.explanation.deciding
    );

    // Production trusts development, with MFA, for a deploy role.
    let prod_iam = keep.client("iam", Caller::account_root(prod.parse()?))?;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{dev}:root")}, "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]});
    let role = prod_iam.call(
        "CreateRole",
        json!({"RoleName": "deploy", "AssumeRolePolicyDocument": trust.to_string()}),
    )?;
    let role_arn = text(&role["Role"]["Arn"]);
    prod_iam.call(
        "PutRolePolicy",
        json!({"RoleName": "deploy", "PolicyName": "kms", "PolicyDocument": policy(&["kms:*"], "*")}),
    )?;
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "assume-deploy",
            "PolicyDocument": policy(&["sts:AssumeRole"], &role_arn)}),
    )?;

    // alice's virtual MFA device, enabled with two consecutive codes from her app.
    let device = iam.call(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "alice-phone"}),
    )?["VirtualMFADevice"]
        .clone();
    let serial = text(&device["SerialNumber"]);
    let seed = app::seed_from(&text(&device["Base32StringSeed"]));
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    iam.call(
        "EnableMFADevice",
        json!({"UserName": "alice", "SerialNumber": serial,
            "AuthenticationCode1": app::code(&seed, now - 30), "AuthenticationCode2": app::code(&seed, now)}),
    )?;

    let sts = keep.client("sts", alice)?;
    let session = sts.call(
        "AssumeRole",
        json!({"RoleArn": role_arn, "RoleSessionName": "release-42",
            "SerialNumber": serial, "TokenCode": app::code(&seed, now + 30)}),
    )?;
    println!("assumed {}", text(&session["AssumedRoleUser"]["Arn"]));
    let creds = &session["Credentials"];
    let as_role = Caller::session(
        &text(&creds["AccessKeyId"]),
        &text(&creds["SecretAccessKey"]),
        &text(&creds["SessionToken"]),
    );
    let key = keep.client("kms", as_role)?.call(
        "CreateKey",
        json!({"Description": "created by the deploy role"}),
    )?;
    println!(
        "created KMS key {} in production as the role",
        text(&key["KeyMetadata"]["KeyId"])
    );
    Ok(())
}

/// The authenticator app: RFC 6238 TOTP (HMAC-SHA1, 30-second steps, six digits).
mod app {
    use base64::Engine as _;

    /// The seed from IAM's `Base32StringSeed` (base64 of the base32 text).
    pub fn seed_from(blob: &str) -> Vec<u8> {
        let text = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .unwrap_or_default();
        let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
        for c in text {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'2'..=b'7' => c - b'2' + 26,
                _ => continue,
            };
            buffer = (buffer << 5) | u32::from(value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.extend(u8::try_from((buffer >> bits) & 0xff).ok());
            }
        }
        out
    }

    pub fn code(seed: &[u8], unix_seconds: i64) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
        let step = u64::try_from(unix_seconds / 30).unwrap_or_default();
        let mac = ring::hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac.last().copied().unwrap_or_default() & 0x0f);
        let word = mac
            .get(offset..offset + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes);
        format!("{:06}", (word & 0x7fff_ffff) % 1_000_000)
    }
}
