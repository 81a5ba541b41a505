use codekeep::{Caller, ErrorKind, Keep};
use serde_json::json;

#[test]
fn unknown_services_operations_and_bad_input_are_typed_errors() {
    let keep = Keep::memory().unwrap();
    let account: codekeep::arn::AccountId = keep.create_account("a").unwrap()["Id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        keep.client("nope", Caller::account_root(account.clone()))
            .unwrap_err()
            .code(),
        "UnknownServiceError"
    );
    let kms = keep.client("kms", Caller::account_root(account)).unwrap();
    assert_eq!(
        kms.call("Nope", json!({})).unwrap_err().code(),
        "InvalidAction"
    );
    let err = kms.call("CreateKey", json!([1, 2])).unwrap_err();
    assert_eq!(err.code(), "SerializationException");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(kms.operation_names().contains(&"GenerateDataKey"));
    assert_eq!(
        kms.blob_members("GenerateDataKey"),
        &["CiphertextBlob", "Plaintext"]
    );
}

#[test]
fn accounts_are_administered_by_the_keep_only() {
    let keep = Keep::memory().unwrap();
    let a = keep.create_account("first").unwrap();
    let id = a["Id"].as_str().unwrap();
    assert_eq!(id.len(), 12);
    assert_eq!(a["Name"], "first");
    for i in 0..25 {
        keep.create_account(&format!("acct {i}")).unwrap();
    }
    assert_eq!(keep.list_accounts().unwrap().len(), 26);
    assert_eq!(
        keep.describe_account(&id.parse().unwrap()).unwrap()["Name"],
        "first"
    );
    assert_eq!(
        keep.describe_account(&"999999999999".parse().unwrap())
            .unwrap_err()
            .code(),
        "AccountNotFoundException"
    );
    assert_eq!(
        keep.create_account("").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let org = keep
        .client("organizations", Caller::account_root(id.parse().unwrap()))
        .unwrap();
    assert_eq!(
        org.call("CreateAccount", json!({"AccountName": "x"}))
            .unwrap_err()
            .code(),
        "AccessDeniedException"
    );
}

#[test]
fn caller_json_is_parsed_strictly() {
    assert!(Caller::from_json(&json!({"AccountId": "123456789012"})).is_ok());
    assert!(Caller::from_json(&json!({"Admin": true, "SourceIp": "10.0.0.1"})).is_ok());
    for bad in [
        json!({}),
        json!({"AccountId": "12"}),
        json!({"AccountId": "123456789012", "Extra": 1}),
        json!({"Admin": true, "SourceIp": "x"}),
        json!("s"),
    ] {
        assert_eq!(
            Caller::from_json(&bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
}

#[test]
fn a_keep_reopens_with_its_data_and_refuses_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let key_id = {
        let keep = Keep::open(dir.path()).unwrap();
        let account = keep.create_account("persist").unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let kms = keep
            .client("kms", Caller::account_root(account.parse().unwrap()))
            .unwrap();
        let id = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        (account, id)
    };
    let keep = Keep::open(dir.path()).unwrap();
    let kms = keep
        .client("kms", Caller::account_root(key_id.0.parse().unwrap()))
        .unwrap();
    assert_eq!(
        kms.call("DescribeKey", json!({"KeyId": key_id.1})).unwrap()["KeyMetadata"]["KeyState"],
        "Enabled"
    );
    assert!(keep.verify_audit_log().unwrap().valid);

    let pdir = tempfile::tempdir().unwrap();
    Keep::open_with_passphrase(pdir.path(), b"correct horse").unwrap();
    assert_eq!(
        Keep::open_with_passphrase(pdir.path(), b"wrong horse")
            .unwrap_err()
            .kind(),
        ErrorKind::AccessDenied
    );
    Keep::open_with_passphrase(pdir.path(), b"correct horse").unwrap();
}
