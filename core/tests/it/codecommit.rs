//! CodeCommit repositories: CodeCommit's shapes, validation and errors, encryption keys, tags
//! and IAM policies on repositories.

use codekeep::Caller;
use serde_json::{Value, json};

use crate::{code, create_key, keep_with_account};

fn names(list: &Value) -> Vec<String> {
    list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repositoryName"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn repositories_have_codecommits_shapes_and_errors() {
    let (keep, account, cc) = keep_with_account("codecommit");
    let created = cc
        .call("CreateRepository", json!({"repositoryName": "web-app", "repositoryDescription": "the site", "tags": {"team": "red"}}))
        .unwrap()["repositoryMetadata"]
        .clone();
    assert_eq!(
        created["Arn"],
        format!("arn:aws:codecommit:us-east-1:{account}:web-app")
    );
    assert_eq!(created["accountId"], account.as_str());
    assert_eq!(created["repositoryDescription"], "the site");
    assert!(
        created["cloneUrlHttp"]
            .as_str()
            .unwrap()
            .ends_with("/v1/repos/web-app")
    );
    assert!(
        created["cloneUrlSsh"]
            .as_str()
            .unwrap()
            .starts_with("ssh://")
    );
    assert!(
        created.get("defaultBranch").is_none(),
        "no branch before the first push"
    );
    // With no key given, the account's AWS managed key for CodeCommit.
    let kms = keep
        .client("kms", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let managed = kms
        .call("DescribeKey", json!({"KeyId": "alias/aws/codecommit"}))
        .unwrap();
    assert_eq!(created["kmsKeyId"], managed["KeyMetadata"]["Arn"]);
    assert_eq!(managed["KeyMetadata"]["KeyManager"], "AWS");

    for bad in ["", "a b", "repo.git", "x/y", &"n".repeat(101)] {
        assert_eq!(
            code(cc.call("CreateRepository", json!({"repositoryName": bad}))),
            "InvalidRepositoryNameException",
            "{bad:?}"
        );
    }
    assert_eq!(
        code(cc.call("CreateRepository", json!({}))),
        "RepositoryNameRequiredException"
    );
    assert_eq!(
        code(cc.call("CreateRepository", json!({"repositoryName": "web-app"}))),
        "RepositoryNameExistsException"
    );
    assert_eq!(
        code(cc.call(
            "CreateRepository",
            json!({"repositoryName": "d", "repositoryDescription": "x".repeat(1001)})
        )),
        "InvalidRepositoryDescriptionException"
    );
    assert_eq!(
        code(cc.call("GetRepository", json!({"repositoryName": "nope"}))),
        "RepositoryDoesNotExistException"
    );

    // Customer keys: must exist and be enabled.
    let key = create_key(&kms);
    let own = cc
        .call(
            "CreateRepository",
            json!({"repositoryName": "api", "kmsKeyId": key}),
        )
        .unwrap();
    assert!(
        own["repositoryMetadata"]["kmsKeyId"]
            .as_str()
            .unwrap()
            .ends_with(&key)
    );
    assert_eq!(
        code(cc.call(
            "CreateRepository",
            json!({"repositoryName": "x", "kmsKeyId": "alias/missing"})
        )),
        "EncryptionKeyNotFoundException"
    );
    kms.call("DisableKey", json!({"KeyId": key})).unwrap();
    assert_eq!(
        code(cc.call(
            "CreateRepository",
            json!({"repositoryName": "x", "kmsKeyId": key})
        )),
        "EncryptionKeyDisabledException"
    );
    // Re-keying unwraps the repository's data key with its current key: not while disabled.
    assert_eq!(
        code(cc.call(
            "UpdateRepositoryEncryptionKey",
            json!({"repositoryName": "api", "kmsKeyId": "alias/aws/codecommit"}),
        )),
        "EncryptionKeyDisabledException"
    );
    kms.call("EnableKey", json!({"KeyId": key})).unwrap();
    let rekeyed = cc
        .call(
            "UpdateRepositoryEncryptionKey",
            json!({"repositoryName": "api", "kmsKeyId": "alias/aws/codecommit"}),
        )
        .unwrap();
    assert_eq!(rekeyed["kmsKeyId"], managed["KeyMetadata"]["Arn"]);
    assert!(
        rekeyed["originalKmsKeyId"]
            .as_str()
            .unwrap()
            .ends_with(&key)
    );

    // Listing, sorting, batches.
    cc.call("CreateRepository", json!({"repositoryName": "zeta"}))
        .unwrap();
    let listed = cc.call("ListRepositories", json!({})).unwrap();
    assert_eq!(names(&listed), ["api", "web-app", "zeta"]);
    let by_date = cc
        .call(
            "ListRepositories",
            json!({"sortBy": "lastModifiedDate", "order": "descending"}),
        )
        .unwrap();
    assert_eq!(names(&by_date)[0], "zeta");
    assert_eq!(
        code(cc.call("ListRepositories", json!({"sortBy": "size"}))),
        "InvalidSortByException"
    );
    assert_eq!(
        code(cc.call("ListRepositories", json!({"order": "up"}))),
        "InvalidOrderException"
    );
    let batch = cc
        .call(
            "BatchGetRepositories",
            json!({"repositoryNames": ["api", "ghost"]}),
        )
        .unwrap();
    assert_eq!(batch["repositories"][0]["repositoryName"], "api");
    assert_eq!(batch["repositoriesNotFound"], json!(["ghost"]));

    // Rename, describe, tag, delete.
    cc.call(
        "UpdateRepositoryName",
        json!({"oldName": "zeta", "newName": "omega"}),
    )
    .unwrap();
    assert_eq!(
        code(cc.call(
            "UpdateRepositoryName",
            json!({"oldName": "omega", "newName": "api"})
        )),
        "RepositoryNameExistsException"
    );
    cc.call(
        "UpdateRepositoryDescription",
        json!({"repositoryName": "omega", "repositoryDescription": "renamed"}),
    )
    .unwrap();
    let omega = cc
        .call("GetRepository", json!({"repositoryName": "omega"}))
        .unwrap();
    assert_eq!(
        omega["repositoryMetadata"]["repositoryDescription"],
        "renamed"
    );
    let arn = omega["repositoryMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    cc.call(
        "TagResource",
        json!({"resourceArn": arn, "tags": {"env": "prod", "team": "blue"}}),
    )
    .unwrap();
    cc.call(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["team"]}),
    )
    .unwrap();
    assert_eq!(
        cc.call("ListTagsForResource", json!({"resourceArn": arn}))
            .unwrap()["tags"],
        json!({"env": "prod"})
    );
    assert_eq!(
        code(cc.call(
            "ListTagsForResource",
            json!({"resourceArn": "arn:aws:s3:::b"})
        )),
        "InvalidResourceArnException"
    );
    let deleted = cc
        .call("DeleteRepository", json!({"repositoryName": "omega"}))
        .unwrap();
    assert_eq!(
        deleted["repositoryId"],
        omega["repositoryMetadata"]["repositoryId"]
    );
    // Deleting what does not exist succeeds without an id, as in CodeCommit.
    assert_eq!(
        cc.call("DeleteRepository", json!({"repositoryName": "omega"}))
            .unwrap(),
        json!({})
    );
}

#[test]
fn repository_policies_and_tags_decide_access() {
    let (keep, account, cc) = keep_with_account("codecommit");
    cc.call(
        "CreateRepository",
        json!({"repositoryName": "public-site", "tags": {"visibility": "open"}}),
    )
    .unwrap();
    cc.call(
        "CreateRepository",
        json!({"repositoryName": "secret-sauce"}),
    )
    .unwrap();
    let iam = keep
        .client("iam", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    iam.call("CreateUser", json!({"UserName": "dev"})).unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:Get*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/visibility": "open"}}},
        {"Effect": "Allow", "Action": "codecommit:List*", "Resource": "*"},
        {"Effect": "Allow", "Action": "codecommit:CreateRepository", "Resource": "arn:aws:codecommit:*:*:dev-*"}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "dev", "PolicyName": "cc", "PolicyDocument": policy.to_string()}),
    )
    .unwrap();
    iam.call(
        "AttachUserPolicy",
        json!({"UserName": "dev", "PolicyArn": "arn:aws:iam::aws:policy/AWSCodeCommitReadOnly"}),
    )
    .unwrap();
    iam.call(
        "DetachUserPolicy",
        json!({"UserName": "dev", "PolicyArn": "arn:aws:iam::aws:policy/AWSCodeCommitReadOnly"}),
    )
    .unwrap();
    let dev = keep
        .client(
            "codecommit",
            Caller::iam_user(account.parse().unwrap(), "dev"),
        )
        .unwrap();
    dev.call("GetRepository", json!({"repositoryName": "public-site"}))
        .unwrap();
    let denied = dev
        .call("GetRepository", json!({"repositoryName": "secret-sauce"}))
        .unwrap_err();
    assert_eq!(denied.code(), "AccessDeniedException");
    assert!(denied.message().contains(&format!(
        "arn:aws:codecommit:us-east-1:{account}:secret-sauce"
    )));
    dev.call("ListRepositories", json!({})).unwrap();
    dev.call("CreateRepository", json!({"repositoryName": "dev-sandbox"}))
        .unwrap();
    assert_eq!(
        code(dev.call("CreateRepository", json!({"repositoryName": "prod-app"}))),
        "AccessDeniedException"
    );
}

#[test]
fn repository_keys_must_be_the_callers_to_use() {
    let keep = codekeep::Keep::memory().unwrap();
    let (account, cc) = crate::account_client(&keep, "codecommit");
    let (other, other_kms) = crate::account_client(&keep, "kms");
    // The managed key may be named before it exists.
    let fresh = cc
        .call(
            "CreateRepository",
            json!({"repositoryName": "a", "kmsKeyId": "alias/aws/codecommit"}),
        )
        .unwrap();
    assert!(
        fresh["repositoryMetadata"]["kmsKeyId"]
            .as_str()
            .unwrap()
            .contains(&account)
    );
    // Another account's key, and another service's managed key, are refused.
    let foreign = create_key(&other_kms);
    let foreign_arn = format!("arn:aws:kms:us-east-1:{other}:key/{foreign}");
    assert_eq!(
        code(cc.call(
            "CreateRepository",
            json!({"repositoryName": "b", "kmsKeyId": foreign_arn})
        )),
        "EncryptionKeyNotFoundException"
    );
    let iam = keep
        .client("iam", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    iam.call("CreateUser", json!({"UserName": "u"})).unwrap();
    iam.call(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "d"}),
    )
    .unwrap();
    assert_eq!(
        code(cc.call(
            "CreateRepository",
            json!({"repositoryName": "b", "kmsKeyId": "alias/aws/iam"})
        )),
        "EncryptionKeyAccessDeniedException"
    );
    // A user needs to be allowed to use its key through CodeCommit.
    let kms = keep
        .client("kms", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let key = create_key(&kms);
    let only_cc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "u", "PolicyName": "cc", "PolicyDocument": only_cc.to_string()}),
    )
    .unwrap();
    let user_cc = keep
        .client(
            "codecommit",
            Caller::iam_user(account.parse().unwrap(), "u"),
        )
        .unwrap();
    assert_eq!(
        code(user_cc.call(
            "CreateRepository",
            json!({"repositoryName": "c", "kmsKeyId": key})
        )),
        "EncryptionKeyAccessDeniedException"
    );
    let via_cc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "codecommit.us-east-1.amazonaws.com"}}}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "u", "PolicyName": "kms", "PolicyDocument": via_cc.to_string()}),
    )
    .unwrap();
    user_cc
        .call(
            "CreateRepository",
            json!({"repositoryName": "c", "kmsKeyId": key}),
        )
        .unwrap();
    // The new name of a renamed repository must be allowed too.
    let narrow = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "codecommit:*", "Resource": "arn:aws:codecommit:*:*:c*"}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "u", "PolicyName": "cc", "PolicyDocument": narrow.to_string()}),
    )
    .unwrap();
    assert_eq!(
        code(user_cc.call(
            "UpdateRepositoryName",
            json!({"oldName": "c", "newName": "z"})
        )),
        "AccessDeniedException"
    );
    user_cc
        .call(
            "UpdateRepositoryName",
            json!({"oldName": "c", "newName": "c2"}),
        )
        .unwrap();
    // Bad continuation tokens and system tags.
    assert_eq!(
        code(cc.call(
            "ListRepositories",
            json!({"nextToken": "18446744073709551615"})
        )),
        "InvalidContinuationTokenException"
    );
    assert_eq!(
        code(cc.call(
            "CreateRepository",
            json!({"repositoryName": "t", "tags": {"aws:x": "y"}})
        )),
        "InvalidSystemTagUsageException"
    );
}
