//! CodeCommit's branch and content operations on repositories the real `git` pushed to:
//! branches made and removed through the API appear to git (and the other way round), files,
//! folders, blobs and commits read back with CodeCommit's shapes and errors.

use base64::Engine as _;
use codekeep::Caller;
use serde_json::{Value, json};

use crate::code;
use crate::git_support::{Fixture, allow_all, commit_file};

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[test]
fn branches_through_the_api_and_through_git_are_the_same_refs() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let url = f.url("web");
    let first = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    f.git_ok(&local, &["push", &url, "main"]);
    f.git_ok(&local, &["checkout", "-q", "-b", "feature"]);
    commit_file(&f, &local, "f.txt", "f\n", "feature");
    f.git_ok(&local, &["push", &url, "feature"]);
    let feature = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    let cc = f.keep.client("codecommit", f.root()).unwrap();
    let repo = json!({"repositoryName": "web"});

    let got = cc
        .call(
            "GetBranch",
            json!({"repositoryName": "web", "branchName": "feature"}),
        )
        .unwrap();
    assert_eq!(
        got["branch"],
        json!({"branchName": "feature", "commitId": feature})
    );
    assert_eq!(
        cc.call("ListBranches", repo.clone()).unwrap()["branches"],
        json!(["feature", "main"])
    );
    assert_eq!(
        code(cc.call(
            "GetBranch",
            json!({"repositoryName": "web", "branchName": "nope"})
        )),
        "BranchDoesNotExistException"
    );

    // CreateBranch: git sees it.
    cc.call(
        "CreateBranch",
        json!({"repositoryName": "web", "branchName": "release", "commitId": first}),
    )
    .unwrap();
    let remote = f.git_ok(&local, &["ls-remote", &url]);
    assert!(
        remote.contains(&format!("{first}\trefs/heads/release")),
        "{remote}"
    );
    for (input, expected) in [
        (
            json!({"branchName": "release", "commitId": first}),
            "BranchNameExistsException",
        ),
        (
            json!({"branchName": "x", "commitId": "0".repeat(40)}),
            "CommitDoesNotExistException",
        ),
        (
            json!({"branchName": "x", "commitId": "abc"}),
            "InvalidCommitIdException",
        ),
        (
            json!({"branchName": "a..b", "commitId": first}),
            "InvalidBranchNameException",
        ),
        (json!({"commitId": first}), "BranchNameRequiredException"),
        (json!({"branchName": "x"}), "CommitIdRequiredException"),
    ] {
        let mut input = input;
        input["repositoryName"] = json!("web");
        assert_eq!(
            code(cc.call("CreateBranch", input.clone())),
            expected,
            "{input}"
        );
    }

    // UpdateDefaultBranch moves HEAD for git too.
    cc.call(
        "UpdateDefaultBranch",
        json!({"repositoryName": "web", "defaultBranchName": "feature"}),
    )
    .unwrap();
    assert_eq!(
        cc.call("GetRepository", repo.clone()).unwrap()["repositoryMetadata"]["defaultBranch"],
        "feature"
    );
    f.git_ok(&f.work, &["clone", "-q", &url, "head"]);
    assert_eq!(
        f.git_ok(&f.work.join("head"), &["branch", "--show-current"])
            .trim(),
        "feature"
    );
    assert_eq!(
        code(cc.call(
            "UpdateDefaultBranch",
            json!({"repositoryName": "web", "defaultBranchName": "nope"})
        )),
        "BranchDoesNotExistException"
    );

    // DeleteBranch: not the default one; git no longer sees a deleted one.
    assert_eq!(
        code(cc.call(
            "DeleteBranch",
            json!({"repositoryName": "web", "branchName": "feature"})
        )),
        "DefaultBranchCannotBeDeletedException"
    );
    let deleted = cc
        .call(
            "DeleteBranch",
            json!({"repositoryName": "web", "branchName": "release"}),
        )
        .unwrap();
    assert_eq!(
        deleted["deletedBranch"],
        json!({"branchName": "release", "commitId": first})
    );
    assert!(
        !f.git_ok(&local, &["ls-remote", &url])
            .contains("refs/heads/release")
    );
    let again = cc
        .call(
            "DeleteBranch",
            json!({"repositoryName": "web", "branchName": "release"}),
        )
        .unwrap();
    assert_eq!(again, json!({}));
}

#[test]
fn branch_operations_honour_the_references_condition_key() {
    let f = Fixture::new(&json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["codecommit:DeleteBranch", "codecommit:CreateBranch"], "Resource": "*",
         "Condition": {"StringEquals": {"codecommit:References": "refs/heads/protected"}}}
    ]}));
    let local = f.local_repo("origin");
    let url = f.url("web");
    f.git_ok(
        &local,
        &["push", &url, "main", "main:protected", "main:other"],
    );
    let head = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    let dev = f
        .keep
        .client(
            "codecommit",
            Caller::iam_user(f.account.parse().unwrap(), "dev"),
        )
        .unwrap();
    assert_eq!(
        code(dev.call(
            "DeleteBranch",
            json!({"repositoryName": "web", "branchName": "protected"})
        )),
        "AccessDeniedException"
    );
    dev.call(
        "DeleteBranch",
        json!({"repositoryName": "web", "branchName": "other"}),
    )
    .unwrap();
    dev.call(
        "CreateBranch",
        json!({"repositoryName": "web", "branchName": "other", "commitId": head}),
    )
    .unwrap();
}

#[test]
fn files_folders_blobs_and_commits_read_back_in_codecommit_shapes() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let first = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::create_dir_all(local.join("src")).unwrap();
    std::fs::write(local.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(local.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("README.md", local.join("link")).unwrap();
    let big: Vec<u8> = (0..7 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(local.join("big.bin"), &big).unwrap();
    f.git_ok(&local, &["add", "."]);
    f.git_ok(&local, &["update-index", "--chmod=+x", "run.sh"]);
    f.git_ok(&local, &["commit", "-q", "-m", "layout\n\nwith a body"]);
    f.git_ok(&local, &["tag", "v1", &first]);
    f.git_ok(&local, &["push", &f.url("web"), "main", "v1"]);
    let second = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    let cc = f.keep.client("codecommit", f.root()).unwrap();
    let call = |op: &str, mut input: Value| {
        input["repositoryName"] = json!("web");
        cc.call(op, input)
    };

    let file = call("GetFile", json!({"filePath": "/src/main.rs"})).unwrap();
    assert_eq!(file["commitId"], second);
    assert_eq!(file["filePath"], "src/main.rs");
    assert_eq!(file["fileMode"], "NORMAL");
    assert_eq!(file["fileSize"], 13);
    assert_eq!(b64(&file["fileContent"]), b"fn main() {}\n");
    assert_eq!(
        file["blobId"].as_str().unwrap(),
        f.git_ok(&local, &["rev-parse", "HEAD:src/main.rs"]).trim()
    );
    assert_eq!(
        call("GetFile", json!({"filePath": "run.sh"})).unwrap()["fileMode"],
        "EXECUTABLE"
    );
    assert_eq!(
        call("GetFile", json!({"filePath": "link"})).unwrap()["fileMode"],
        "SYMLINK"
    );
    // Older versions by commit id, tag and branch.
    for specifier in [first.as_str(), "v1", "refs/tags/v1"] {
        let old = call(
            "GetFile",
            json!({"filePath": "README.md", "commitSpecifier": specifier}),
        )
        .unwrap();
        assert_eq!(old["commitId"], first, "{specifier}");
    }
    assert_eq!(
        code(call(
            "GetFile",
            json!({"filePath": "src/main.rs", "commitSpecifier": first})
        )),
        "FileDoesNotExistException"
    );
    for (input, expected) in [
        (json!({"filePath": "src"}), "FileDoesNotExistException"),
        (json!({"filePath": "nope.txt"}), "FileDoesNotExistException"),
        (json!({"filePath": "../etc/passwd"}), "InvalidPathException"),
        (json!({}), "PathRequiredException"),
        (json!({"filePath": "big.bin"}), "FileTooLargeException"),
        (
            json!({"filePath": "README.md", "commitSpecifier": "nope"}),
            "CommitDoesNotExistException",
        ),
    ] {
        assert_eq!(code(call("GetFile", input.clone())), expected, "{input}");
    }

    let root = call("GetFolder", json!({"folderPath": "/"})).unwrap();
    assert_eq!(root["folderPath"], "");
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["relativePath"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&root["subFolders"]), ["src"]);
    assert_eq!(names(&root["files"]), ["README.md", "big.bin", "run.sh"]);
    assert_eq!(names(&root["symbolicLinks"]), ["link"]);
    let src = call("GetFolder", json!({"folderPath": "src"})).unwrap();
    assert_eq!(src["files"][0]["absolutePath"], "src/main.rs");
    assert_eq!(src["treeId"], root["subFolders"][0]["treeId"]);
    assert_eq!(
        code(call("GetFolder", json!({"folderPath": "nope"}))),
        "FolderDoesNotExistException"
    );
    assert_eq!(
        code(call("GetFolder", json!({"folderPath": "README.md"}))),
        "FolderDoesNotExistException"
    );

    let blob = call("GetBlob", json!({"blobId": file["blobId"]})).unwrap();
    assert_eq!(b64(&blob["content"]), b"fn main() {}\n");
    let big_id = f
        .git_ok(&local, &["rev-parse", "HEAD:big.bin"])
        .trim()
        .to_owned();
    assert_eq!(
        code(call("GetBlob", json!({"blobId": big_id}))),
        "FileTooLargeException"
    );
    assert_eq!(
        code(call("GetBlob", json!({"blobId": second}))),
        "BlobIdDoesNotExistException"
    );
    assert_eq!(
        code(call("GetBlob", json!({"blobId": "xyz"}))),
        "InvalidBlobIdException"
    );

    let commit = call("GetCommit", json!({"commitId": second})).unwrap()["commit"].clone();
    assert_eq!(commit["parents"], json!([first]));
    assert_eq!(commit["message"], "layout\n\nwith a body\n");
    assert_eq!(commit["author"]["name"], "Dev");
    assert_eq!(commit["author"]["email"], "dev@example.com");
    assert!(commit["committer"]["date"].as_str().unwrap().contains(' '));
    assert_eq!(commit["treeId"], root["treeId"]);
    assert_eq!(
        code(call("GetCommit", json!({"commitId": "1".repeat(40)}))),
        "CommitIdDoesNotExistException"
    );
    let batch = call(
        "BatchGetCommits",
        json!({"commitIds": [first, "1".repeat(40), "bad"]}),
    )
    .unwrap();
    assert_eq!(batch["commits"].as_array().unwrap().len(), 1);
    let codes: Vec<&str> = batch["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["CommitIdDoesNotExistException", "InvalidCommitIdException"]
    );
    let too_many: Vec<String> = (0..101).map(|_| first.clone()).collect();
    assert_eq!(
        code(call("BatchGetCommits", json!({"commitIds": too_many}))),
        "CommitIdsLimitExceededException"
    );
    assert_eq!(
        code(call("BatchGetCommits", json!({"commitIds": []}))),
        "CommitIdsListRequiredException"
    );

    // File content never reaches the audit log.
    let mut exported = Vec::new();
    f.keep.audit().export_jsonl(&mut exported).unwrap();
    let text = String::from_utf8(exported).unwrap();
    assert!(text.contains("\"GetFile\""));
    assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode("fn main() {}\n")));
}
