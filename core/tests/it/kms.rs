use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use crate::{account_client, code, create_key, keep_with_account, keep_with_clock};

const DAY: i64 = 86_400_000;

#[test]
fn create_describe_list_and_aliases() {
    let (_keep, account, kms) = keep_with_account("kms");
    let key = kms
        .call(
            "CreateKey",
            json!({"Description": "app", "Tags": [{"TagKey": "team", "TagValue": "a"}]}),
        )
        .unwrap();
    let meta = &key["KeyMetadata"];
    let id = meta["KeyId"].as_str().unwrap();
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["AWSAccountId"], account.as_str());
    assert_eq!(
        meta["Arn"],
        format!("arn:aws:kms:us-east-1:{account}:key/{id}")
    );
    assert_eq!(meta["KeySpec"], "SYMMETRIC_DEFAULT");

    kms.call(
        "CreateAlias",
        json!({"AliasName": "alias/app", "TargetKeyId": id}),
    )
    .unwrap();
    assert_eq!(
        code(kms.call(
            "CreateAlias",
            json!({"AliasName": "alias/app", "TargetKeyId": id})
        )),
        "AlreadyExistsException"
    );
    assert_eq!(
        code(kms.call(
            "CreateAlias",
            json!({"AliasName": "alias/aws/x", "TargetKeyId": id})
        )),
        "InvalidAliasNameException"
    );
    assert_eq!(
        code(kms.call(
            "CreateAlias",
            json!({"AliasName": "nope", "TargetKeyId": id})
        )),
        "InvalidAliasNameException"
    );
    let by_alias = kms
        .call("DescribeKey", json!({"KeyId": "alias/app"}))
        .unwrap();
    assert_eq!(by_alias["KeyMetadata"]["KeyId"], id);
    let alias_arn = format!("arn:aws:kms:us-east-1:{account}:alias/app");
    assert_eq!(
        kms.call("DescribeKey", json!({"KeyId": alias_arn}))
            .unwrap()["KeyMetadata"]["KeyId"],
        id
    );
    let aliases = kms.call("ListAliases", json!({"KeyId": id})).unwrap();
    assert_eq!(aliases["Aliases"][0]["AliasName"], "alias/app");

    for _ in 0..4 {
        kms.call("CreateKey", json!({})).unwrap();
    }
    let page1 = kms.call("ListKeys", json!({"Limit": 3})).unwrap();
    assert_eq!(page1["Keys"].as_array().unwrap().len(), 3);
    assert_eq!(page1["Truncated"], true);
    let page2 = kms
        .call(
            "ListKeys",
            json!({"Limit": 3, "Marker": page1["NextMarker"]}),
        )
        .unwrap();
    assert_eq!(page2["Keys"].as_array().unwrap().len(), 2);
    assert_eq!(page2["Truncated"], false);

    kms.call("DeleteAlias", json!({"AliasName": "alias/app"}))
        .unwrap();
    assert_eq!(
        code(kms.call("DescribeKey", json!({"KeyId": "alias/app"}))),
        "NotFoundException"
    );
    assert_eq!(
        code(kms.call(
            "DescribeKey",
            json!({"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"})
        )),
        "NotFoundException"
    );
    assert_eq!(
        code(kms.call("DescribeKey", json!({}))),
        "ValidationException"
    );
    let tags = kms.call("ListResourceTags", json!({"KeyId": id})).unwrap();
    assert_eq!(tags["Tags"], json!([{"TagKey": "team", "TagValue": "a"}]));
    kms.call(
        "TagResource",
        json!({"KeyId": id, "Tags": [{"TagKey": "env", "TagValue": "prod"}]}),
    )
    .unwrap();
    kms.call("UntagResource", json!({"KeyId": id, "TagKeys": ["team"]}))
        .unwrap();
    let tags = kms.call("ListResourceTags", json!({"KeyId": id})).unwrap();
    assert_eq!(tags["Tags"], json!([{"TagKey": "env", "TagValue": "prod"}]));
    assert_eq!(
        code(kms.call(
            "TagResource",
            json!({"KeyId": id, "Tags": [{"TagKey": "aws:x", "TagValue": "1"}]})
        )),
        "TagException"
    );
}

#[test]
fn encrypt_decrypt_binds_the_encryption_context() {
    let (_keep, _account, kms) = keep_with_account("kms");
    let id = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pt = B64.encode(b"top secret");
    let ct = kms
        .call(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": pt, "EncryptionContext": {"repo": "a"}}),
        )
        .unwrap();
    let blob = ct["CiphertextBlob"].as_str().unwrap();
    assert!(
        !B64.decode(blob)
            .unwrap()
            .windows(10)
            .any(|w| w == b"top secret")
    );
    let out = kms
        .call(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": {"repo": "a"}}),
        )
        .unwrap();
    assert_eq!(out["Plaintext"], pt);
    assert!(out["KeyId"].as_str().unwrap().ends_with(&id));
    for bad in [
        json!({"repo": "b"}),
        json!({"Repo": "a"}),
        json!({}),
        json!({"repo": "a", "x": "y"}),
    ] {
        assert_eq!(
            code(kms.call(
                "Decrypt",
                json!({"CiphertextBlob": blob, "EncryptionContext": bad})
            )),
            "InvalidCiphertextException"
        );
    }
    let mut raw = B64.decode(blob).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    assert_eq!(
        code(kms.call(
            "Decrypt",
            json!({"CiphertextBlob": B64.encode(&raw), "EncryptionContext": {"repo": "a"}})
        )),
        "InvalidCiphertextException"
    );
    assert_eq!(
        code(kms.call("Decrypt", json!({"CiphertextBlob": "AAAA"}))),
        "InvalidCiphertextException"
    );
    let other = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        code(kms.call(
            "Decrypt",
            json!({"CiphertextBlob": blob, "KeyId": other, "EncryptionContext": {"repo": "a"}})
        )),
        "IncorrectKeyException"
    );
    let re = kms.call("ReEncrypt", json!({"CiphertextBlob": blob, "SourceEncryptionContext": {"repo": "a"}, "DestinationKeyId": other, "DestinationEncryptionContext": {"repo": "c"}})).unwrap();
    let back = kms
        .call(
            "Decrypt",
            json!({"CiphertextBlob": re["CiphertextBlob"], "EncryptionContext": {"repo": "c"}}),
        )
        .unwrap();
    assert_eq!(back["Plaintext"], pt);
    assert_eq!(
        code(kms.call("Encrypt", json!({"KeyId": id, "Plaintext": ""}))),
        "ValidationException"
    );
}

#[test]
fn generate_data_key_shapes() {
    let (_keep, _account, kms) = keep_with_account("kms");
    let id = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let dk = kms
        .call(
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256"}),
        )
        .unwrap();
    assert_eq!(
        B64.decode(dk["Plaintext"].as_str().unwrap()).unwrap().len(),
        32
    );
    let dec = kms
        .call("Decrypt", json!({"CiphertextBlob": dk["CiphertextBlob"]}))
        .unwrap();
    assert_eq!(dec["Plaintext"], dk["Plaintext"]);
    let dk = kms
        .call("GenerateDataKey", json!({"KeyId": id, "NumberOfBytes": 7}))
        .unwrap();
    assert_eq!(
        B64.decode(dk["Plaintext"].as_str().unwrap()).unwrap().len(),
        7
    );
    let wo = kms
        .call(
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": id, "KeySpec": "AES_128"}),
        )
        .unwrap();
    assert!(wo.get("Plaintext").is_none());
    assert_eq!(
        B64.decode(
            kms.call("Decrypt", json!({"CiphertextBlob": wo["CiphertextBlob"]}))
                .unwrap()["Plaintext"]
                .as_str()
                .unwrap()
        )
        .unwrap()
        .len(),
        16
    );
    assert_eq!(
        code(kms.call("GenerateDataKey", json!({"KeyId": id}))),
        "ValidationException"
    );
    assert_eq!(
        code(kms.call(
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256", "NumberOfBytes": 32})
        )),
        "ValidationException"
    );
    assert_eq!(
        code(kms.call(
            "GenerateDataKey",
            json!({"KeyId": id, "NumberOfBytes": 1025})
        )),
        "ValidationException"
    );
}

#[test]
fn rotation_keeps_old_versions_decrypting() {
    let (clock, keep) = keep_with_clock();
    let (_account, kms) = account_client(&keep, "kms");
    let id = create_key(&kms);
    let old = kms
        .call(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": B64.encode(b"v1")}),
        )
        .unwrap();
    kms.call("RotateKeyOnDemand", json!({"KeyId": id})).unwrap();
    let new = kms
        .call(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": B64.encode(b"v2")}),
        )
        .unwrap();
    assert_ne!(old["CiphertextBlob"], new["CiphertextBlob"]);
    for (ct, pt) in [(&old, "v1"), (&new, "v2")] {
        let out = kms
            .call("Decrypt", json!({"CiphertextBlob": ct["CiphertextBlob"]}))
            .unwrap();
        assert_eq!(out["Plaintext"], B64.encode(pt));
    }
    let rotations = kms.call("ListKeyRotations", json!({"KeyId": id})).unwrap();
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 1);
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");

    assert_eq!(
        code(kms.call(
            "EnableKeyRotation",
            json!({"KeyId": id, "RotationPeriodInDays": 30})
        )),
        "ValidationException"
    );
    kms.call(
        "EnableKeyRotation",
        json!({"KeyId": id, "RotationPeriodInDays": 90}),
    )
    .unwrap();
    let status = kms
        .call("GetKeyRotationStatus", json!({"KeyId": id}))
        .unwrap();
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 90);
    clock.advance(91 * DAY);
    kms.call("DescribeKey", json!({"KeyId": id})).unwrap();
    let rotations = kms.call("ListKeyRotations", json!({"KeyId": id})).unwrap();
    assert_eq!(rotations["Rotations"][1]["RotationType"], "AUTOMATIC");
    let out = kms
        .call("Decrypt", json!({"CiphertextBlob": old["CiphertextBlob"]}))
        .unwrap();
    assert_eq!(out["Plaintext"], B64.encode("v1"));
}

#[test]
fn key_states_refuse_as_aws_does_and_deletion_is_final() {
    let (clock, keep) = keep_with_clock();
    let (_account, kms) = account_client(&keep, "kms");
    let id = create_key(&kms);
    let ct = kms
        .call(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": B64.encode(b"x")}),
        )
        .unwrap();

    kms.call("DisableKey", json!({"KeyId": id})).unwrap();
    assert_eq!(
        kms.call("DescribeKey", json!({"KeyId": id})).unwrap()["KeyMetadata"]["KeyState"],
        "Disabled"
    );
    for (op, input) in [
        (
            "Encrypt",
            json!({"KeyId": id, "Plaintext": B64.encode(b"x")}),
        ),
        ("Decrypt", json!({"CiphertextBlob": ct["CiphertextBlob"]})),
        (
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256"}),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            json!({"KeyId": id, "KeySpec": "AES_256"}),
        ),
    ] {
        let err = kms.call(op, input).unwrap_err();
        assert_eq!(err.code(), "DisabledException", "{op}");
        assert_eq!(err.kind(), codekeep::ErrorKind::Disabled);
    }
    kms.call("EnableKey", json!({"KeyId": id})).unwrap();
    kms.call("Decrypt", json!({"CiphertextBlob": ct["CiphertextBlob"]}))
        .unwrap();

    assert_eq!(
        code(kms.call(
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 6})
        )),
        "ValidationException"
    );
    let sched = kms
        .call(
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .unwrap();
    assert_eq!(sched["KeyState"], "PendingDeletion");
    assert_eq!(sched["PendingWindowInDays"], 7);
    assert_eq!(
        code(kms.call("Decrypt", json!({"CiphertextBlob": ct["CiphertextBlob"]}))),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(kms.call("EnableKey", json!({"KeyId": id}))),
        "KMSInvalidStateException"
    );
    kms.call("CancelKeyDeletion", json!({"KeyId": id})).unwrap();
    assert_eq!(
        kms.call("DescribeKey", json!({"KeyId": id})).unwrap()["KeyMetadata"]["KeyState"],
        "Disabled"
    );
    assert_eq!(
        code(kms.call("CancelKeyDeletion", json!({"KeyId": id}))),
        "KMSInvalidStateException"
    );
    kms.call("EnableKey", json!({"KeyId": id})).unwrap();

    let default_window = kms
        .call("ScheduleKeyDeletion", json!({"KeyId": id}))
        .unwrap();
    assert_eq!(default_window["PendingWindowInDays"], 30);
    clock.advance(29 * DAY);
    assert_eq!(
        kms.call("DescribeKey", json!({"KeyId": id})).unwrap()["KeyMetadata"]["KeyState"],
        "PendingDeletion"
    );
    clock.advance(2 * DAY);
    assert_eq!(
        code(kms.call("DescribeKey", json!({"KeyId": id}))),
        "NotFoundException"
    );
    assert_eq!(
        code(kms.call("Decrypt", json!({"CiphertextBlob": ct["CiphertextBlob"]}))),
        "InvalidCiphertextException"
    );
    let listed = kms.call("ListKeys", json!({})).unwrap();
    assert!(listed["Keys"].as_array().unwrap().is_empty());
}

#[test]
fn key_policy_round_trips_and_is_validated() {
    let (_keep, account, kms) = keep_with_account("kms");
    let id = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy = kms.call("GetKeyPolicy", json!({"KeyId": id})).unwrap();
    let doc: serde_json::Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        format!("arn:aws:iam::{account}:root")
    );
    // A policy that would lock the caller out is refused unless the caller insists.
    let lockout = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
    let refused = kms
        .call("PutKeyPolicy", json!({"KeyId": id, "Policy": lockout}))
        .unwrap_err();
    assert_eq!(refused.code(), "MalformedPolicyDocumentException");
    assert!(
        refused
            .message()
            .contains("will not allow you to update the key policy")
    );
    let new = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}},{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
    );
    kms.call("PutKeyPolicy", json!({"KeyId": id, "Policy": new}))
        .unwrap();
    assert_eq!(
        kms.call(
            "GetKeyPolicy",
            json!({"KeyId": id, "PolicyName": "default"})
        )
        .unwrap()["Policy"],
        new
    );
    assert_eq!(
        code(kms.call("PutKeyPolicy", json!({"KeyId": id, "Policy": "{not json"}))),
        "MalformedPolicyDocumentException"
    );
}

#[test]
fn accounts_cannot_use_each_others_keys() {
    let (keep, _account, kms) = keep_with_account("kms");
    let arn = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let (other, kms2) = crate::account_client(&keep, "kms");
    let err = kms2.call("DescribeKey", json!({"KeyId": arn})).unwrap_err();
    assert_eq!(err.code(), "AccessDeniedException");
    assert!(
        err.message()
            .contains(&format!("arn:aws:iam::{other}:root")),
        "{}",
        err.message()
    );
    assert_eq!(
        code(kms2.call(
            "Encrypt",
            json!({"KeyId": arn, "Plaintext": B64.encode(b"x")})
        )),
        "AccessDeniedException"
    );
}
