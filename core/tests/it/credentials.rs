//! Git HTTPS credentials and SSH keys: issued, limited, authenticated, revoked.

use base64::Engine as _;
use serde_json::json;

use crate::{code, keep_with_account};

const ED25519_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

fn ed25519_key(byte: u8) -> String {
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[byte; 32][..]] {
        blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

fn blob_of(line: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(line.split_whitespace().nth(1).unwrap())
        .unwrap()
}

#[test]
fn git_https_credentials_are_generated_shown_once_and_checked() {
    let (keep, account, iam) = keep_with_account("iam");
    iam.call("CreateUser", json!({"UserName": "alice"}))
        .unwrap();
    assert_eq!(
        code(iam.call(
            "CreateServiceSpecificCredential",
            json!({"UserName": "alice", "ServiceName": "s3.amazonaws.com"})
        )),
        "NotSupportedService"
    );
    let created = iam
        .call(
            "CreateServiceSpecificCredential",
            json!({"UserName": "alice", "ServiceName": "codecommit.amazonaws.com"}),
        )
        .unwrap()["ServiceSpecificCredential"]
        .clone();
    let user = created["ServiceUserName"].as_str().unwrap();
    let password = created["ServicePassword"].as_str().unwrap();
    let id = created["ServiceSpecificCredentialId"].as_str().unwrap();
    assert_eq!(user, format!("alice-at-{account}"));
    let second = iam
        .call(
            "CreateServiceSpecificCredential",
            json!({"UserName": "alice", "ServiceName": "codecommit.amazonaws.com"}),
        )
        .unwrap();
    assert_ne!(second["ServiceSpecificCredential"]["ServiceUserName"], user);
    assert_eq!(
        code(iam.call(
            "CreateServiceSpecificCredential",
            json!({"UserName": "alice", "ServiceName": "codecommit.amazonaws.com"})
        )),
        "LimitExceeded"
    );
    let listed = iam
        .call(
            "ListServiceSpecificCredentials",
            json!({"UserName": "alice"}),
        )
        .unwrap();
    assert_eq!(
        listed["ServiceSpecificCredentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        !listed.to_string().contains(password),
        "the password is shown once only"
    );
    let mut log = Vec::new();
    keep.audit().export_jsonl(&mut log).unwrap();
    assert!(!String::from_utf8(log).unwrap().contains(password));

    let caller = keep.authenticate_git_https(user, password).unwrap();
    let me = keep
        .client("iam", caller)
        .unwrap()
        .call("GetUser", json!({}))
        .unwrap_err();
    assert_eq!(
        me.code(),
        "AccessDeniedException",
        "alice has no policy yet: {me}"
    );
    assert_eq!(
        keep.authenticate_git_https(user, "wrong")
            .unwrap_err()
            .code(),
        "InvalidClientTokenId"
    );
    assert_eq!(
        keep.authenticate_git_https("nobody-at-1", password)
            .unwrap_err()
            .code(),
        "InvalidClientTokenId"
    );

    iam.call(
        "UpdateServiceSpecificCredential",
        json!({"UserName": "alice", "ServiceSpecificCredentialId": id, "Status": "Inactive"}),
    )
    .unwrap();
    assert!(keep.authenticate_git_https(user, password).is_err());
    iam.call(
        "UpdateServiceSpecificCredential",
        json!({"UserName": "alice", "ServiceSpecificCredentialId": id, "Status": "Active"}),
    )
    .unwrap();
    let reset = iam
        .call(
            "ResetServiceSpecificCredential",
            json!({"UserName": "alice", "ServiceSpecificCredentialId": id}),
        )
        .unwrap();
    let new_password = reset["ServiceSpecificCredential"]["ServicePassword"]
        .as_str()
        .unwrap();
    assert!(
        keep.authenticate_git_https(user, password).is_err(),
        "the old password is gone"
    );
    keep.authenticate_git_https(user, new_password).unwrap();
    iam.call(
        "DeleteServiceSpecificCredential",
        json!({"UserName": "alice", "ServiceSpecificCredentialId": id}),
    )
    .unwrap();
    assert!(keep.authenticate_git_https(user, new_password).is_err());
}

#[test]
fn ssh_keys_have_aws_ids_and_fingerprints_and_authenticate_by_key_id() {
    let (keep, account, iam) = keep_with_account("iam");
    iam.call("CreateUser", json!({"UserName": "alice"}))
        .unwrap();
    let uploaded = iam
        .call(
            "UploadSSHPublicKey",
            json!({"UserName": "alice", "SSHPublicKeyBody": ED25519_A}),
        )
        .unwrap()["SSHPublicKey"]
        .clone();
    let id = uploaded["SSHPublicKeyId"].as_str().unwrap();
    assert!(id.starts_with("APKA") && id.len() == 21, "{id}");
    let fingerprint = uploaded["Fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.split(':').count(), 16);
    assert_eq!(
        code(iam.call(
            "UploadSSHPublicKey",
            json!({"UserName": "alice", "SSHPublicKeyBody": ED25519_A})
        )),
        "DuplicateSSHPublicKey"
    );
    assert_eq!(
        code(iam.call("UploadSSHPublicKey", json!({"UserName": "alice", "SSHPublicKeyBody": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"}))),
        "InvalidPublicKey"
    );
    for b in 1..=4 {
        iam.call(
            "UploadSSHPublicKey",
            json!({"UserName": "alice", "SSHPublicKeyBody": ed25519_key(b)}),
        )
        .unwrap();
    }
    assert_eq!(
        code(iam.call(
            "UploadSSHPublicKey",
            json!({"UserName": "alice", "SSHPublicKeyBody": ed25519_key(9)})
        )),
        "LimitExceeded"
    );
    let pem = iam
        .call(
            "GetSSHPublicKey",
            json!({"UserName": "alice", "SSHPublicKeyId": id, "Encoding": "PEM"}),
        )
        .unwrap();
    assert!(
        pem["SSHPublicKey"]["SSHPublicKeyBody"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let listed = iam
        .call("ListSSHPublicKeys", json!({"UserName": "alice"}))
        .unwrap();
    assert_eq!(listed["SSHPublicKeys"].as_array().unwrap().len(), 5);

    let caller = keep.authenticate_ssh(id, &blob_of(ED25519_A)).unwrap();
    let err = keep
        .client("iam", caller)
        .unwrap()
        .call("ListUsers", json!({}))
        .unwrap_err();
    assert!(
        err.message()
            .contains(&format!("arn:aws:iam::{account}:user/alice")),
        "{err}"
    );
    assert_eq!(
        keep.authenticate_ssh(id, &blob_of(&ed25519_key(1)))
            .unwrap_err()
            .code(),
        "InvalidClientTokenId"
    );
    iam.call(
        "UpdateSSHPublicKey",
        json!({"UserName": "alice", "SSHPublicKeyId": id, "Status": "Inactive"}),
    )
    .unwrap();
    assert!(keep.authenticate_ssh(id, &blob_of(ED25519_A)).is_err());
    iam.call(
        "DeleteSSHPublicKey",
        json!({"UserName": "alice", "SSHPublicKeyId": id}),
    )
    .unwrap();
    assert_eq!(
        code(iam.call(
            "GetSSHPublicKey",
            json!({"UserName": "alice", "SSHPublicKeyId": id, "Encoding": "SSH"})
        )),
        "NoSuchEntity"
    );
}
