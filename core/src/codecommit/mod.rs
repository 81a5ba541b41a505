//! The CodeCommit service: repositories (this file) with CodeCommit's operation names, shapes,
//! validation and error codes. Each repository names the KMS key its data is encrypted under:
//! the caller's key, or the account's AWS managed key `alias/aws/codecommit`.
//!
//! Git requests (`git`) authorize `codecommit:GitPull` / `codecommit:GitPush`, read and move
//! refs, and store packs sealed under the repository's data key.

/// A CodeCommit operation (or git action) with CodeCommit's service names; defined before
/// the modules so `git` uses it too.
macro_rules! cc_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        Operation {
            service: "codecommit",
            iam_prefix: "codecommit",
            event_source: "codecommit.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: &[],
            // The KMS key a repository is encrypted under is checked too.
            resources: &["arn:aws:codecommit:*:*:*", "arn:aws:kms:*:*:key/*", "*"],
            handler: $handler,
        }
    };
}

mod branches;
pub(crate) mod compact;
mod contents;
pub(crate) mod git;
mod limits;
mod repositories;
mod triggers;

use serde_json::Value;

use crate::api::Operation;
use crate::error::{Error, ErrorKind};

/// The bases of RepositoryMetadata's clone URLs (`http://127.0.0.1:8080`, `ssh://host:2222`),
/// set by a running server; CodeCommit's own host names otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CloneUrls {
    pub http: Option<String>,
    pub ssh: Option<String>,
}

/// An operation that returns file content: base64 blobs, never written to the audit log.
macro_rules! cc_content_op {
    ($name:literal, $handler:expr, $blob:literal) => {
        Operation {
            blob_members: &[$blob],
            secret_members: &[$blob],
            ..cc_op!($name, $handler, read_only = true)
        }
    };
}

/// Every CodeCommit operation.
pub(crate) static CODECOMMIT_OPERATIONS: &[Operation] = &[
    cc_op!(
        "CreateRepository",
        repositories::create_repository,
        read_only = false
    ),
    cc_op!(
        "GetRepository",
        repositories::get_repository,
        read_only = true
    ),
    cc_op!(
        "BatchGetRepositories",
        repositories::batch_get_repositories,
        read_only = true
    ),
    cc_op!(
        "ListRepositories",
        repositories::list_repositories,
        read_only = true
    ),
    cc_op!(
        "UpdateRepositoryName",
        repositories::update_repository_name,
        read_only = false
    ),
    cc_op!(
        "UpdateRepositoryDescription",
        repositories::update_repository_description,
        read_only = false
    ),
    cc_op!(
        "UpdateRepositoryEncryptionKey",
        repositories::update_repository_encryption_key,
        read_only = false
    ),
    cc_op!(
        "DeleteRepository",
        repositories::delete_repository,
        read_only = false
    ),
    cc_op!("TagResource", repositories::tag_resource, read_only = false),
    cc_op!(
        "UntagResource",
        repositories::untag_resource,
        read_only = false
    ),
    cc_op!(
        "ListTagsForResource",
        repositories::list_tags_for_resource,
        read_only = true
    ),
    cc_op!("CreateBranch", branches::create_branch, read_only = false),
    cc_op!("GetBranch", branches::get_branch, read_only = true),
    cc_op!("ListBranches", branches::list_branches, read_only = true),
    cc_op!("DeleteBranch", branches::delete_branch, read_only = false),
    cc_op!(
        "UpdateDefaultBranch",
        branches::update_default_branch,
        read_only = false
    ),
    cc_op!("GetCommit", contents::get_commit, read_only = true),
    cc_op!(
        "BatchGetCommits",
        contents::batch_get_commits,
        read_only = true
    ),
    cc_content_op!("GetBlob", contents::get_blob, "content"),
    cc_content_op!("GetFile", contents::get_file, "fileContent"),
    cc_op!("GetFolder", contents::get_folder, read_only = true),
    cc_op!("PutRepositoryTriggers", triggers::put, read_only = false),
    cc_op!("GetRepositoryTriggers", triggers::get, read_only = true),
    cc_op!("TestRepositoryTriggers", triggers::test, read_only = false),
];

/// A CodeCommit error: CodeCommit's codes all end in `Exception`.
fn error(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Error {
    Error::aws(kind, code, message)
}

/// Reads a required string member, with CodeCommit's `...RequiredException` when absent.
fn required<'v>(input: &'v Value, member: &str, code: &'static str) -> crate::Result<&'v str> {
    match crate::api::member(input, member) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(error(
            ErrorKind::InvalidArgument,
            "InvalidParameterException",
            format!("{member} must be a string"),
        )),
        None => Err(error(
            ErrorKind::InvalidArgument,
            code,
            format!("{member} is required."),
        )),
    }
}
