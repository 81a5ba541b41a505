//! Branches through the API: CreateBranch, GetBranch, ListBranches, DeleteBranch and
//! UpdateDefaultBranch, with CodeCommit's shapes and error codes. A branch is the ref
//! `refs/heads/<name>` that git pushes move too: the same metadata, the same compare-and-set,
//! the same `CodeCommit Repository State Change` events, and the same `codecommit:References`
//! condition key (AWS's "deny changes to main" policy lists CreateBranch and DeleteBranch).

use gix_hash::ObjectId;
use gix_object::Kind;
use serde_json::{Value, json};

use super::repositories::{self, RepositoryRecord};
use super::{error, required};
use crate::api::{OpCtx, optional_str};
use crate::error::{ErrorKind, Result};
use crate::git::receive::{RefUpdate, check_ref_name};

/// Branch names per ListBranches page.
const PAGE: usize = 100;

fn full_name(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// Validates a branch name as git does for `refs/heads/<name>`, and as CodeCommit: at most 256
/// characters, and not exactly 40 hexadecimal digits (it would read as a commit id).
pub(super) fn check_branch_name(branch: &str) -> Result<()> {
    let looks_like_id = branch.len() == 40 && branch.bytes().all(|b| b.is_ascii_hexdigit());
    if branch.is_empty()
        || branch.len() > 256
        || looks_like_id
        || check_ref_name(&full_name(branch)).is_err()
    {
        return Err(error(
            ErrorKind::InvalidArgument,
            "InvalidBranchNameException",
            format!("The specified branch name is not valid: {branch}"),
        ));
    }
    Ok(())
}

/// Authorizes `ctx`'s operation on the repository for the ref `branch` (the
/// `codecommit:References` key), returning the repository.
fn authorize_branch(
    ctx: &mut OpCtx<'_, '_>,
    repository: &str,
    branch: &str,
) -> Result<RepositoryRecord> {
    ctx.context_mut()
        .insert("codecommit:References", &full_name(branch));
    let record = repositories::authorize_repository(ctx, repository);
    ctx.context_mut().remove("codecommit:References");
    record
}

fn branch_does_not_exist(branch: &str) -> crate::error::Error {
    error(
        ErrorKind::NotFound,
        "BranchDoesNotExistException",
        format!("The specified branch does not exist: {branch}"),
    )
}

/// Parses a full commit id (40 hex digits).
pub(crate) fn parse_commit_id(text: &str) -> Result<ObjectId> {
    if text.len() != 40 {
        return Err(invalid_commit_id(text));
    }
    ObjectId::from_hex(text.as_bytes()).map_err(|_| invalid_commit_id(text))
}

fn invalid_commit_id(text: &str) -> crate::error::Error {
    error(
        ErrorKind::InvalidArgument,
        "InvalidCommitIdException",
        format!("The specified commit ID is not valid: {text}"),
    )
}

fn touch(ctx: &mut OpCtx<'_, '_>, record: &RepositoryRecord) -> Result<()> {
    let mut updated = record.clone();
    updated.modified = ctx.now();
    ctx.txn.put_json(
        &repositories::repo_key(&record.account, &record.name),
        &updated,
    )
}

pub(crate) fn create_branch(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let repository = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let branch = required(input, "branchName", "BranchNameRequiredException")?;
    let commit = required(input, "commitId", "CommitIdRequiredException")?;
    check_branch_name(branch)?;
    let commit = parse_commit_id(commit)?;
    let record = authorize_branch(ctx, repository, branch)?;
    let name = full_name(branch);
    if super::git::current_ref(ctx.txn, &record.id, &name)?.is_some() {
        return Err(error(
            ErrorKind::AlreadyExists,
            "BranchNameExistsException",
            format!("The specified branch name already exists: {branch}"),
        ));
    }
    let existing = super::git::load_refs(ctx.txn, &record.id)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let max_refs = super::limits::load(ctx.txn, &record.account)?.max_refs_per_repository;
    if let Some(reason) = super::git::new_ref_refusal(&name, &existing, max_refs) {
        return Err(if super::git::name_clash(&name, &existing).is_some() {
            error(
                ErrorKind::InvalidArgument,
                "InvalidBranchNameException",
                format!("The branch name {branch} conflicts with an existing reference: {reason}"),
            )
        } else {
            super::limits::exceeded("RepositoryLimitExceededException", reason)
        });
    }
    let snapshot = super::git::read_snapshot(ctx, &record)?;
    if !matches!(snapshot.odb.header(&commit)?, Some((Kind::Commit, _))) {
        return Err(error(
            ErrorKind::NotFound,
            "CommitDoesNotExistException",
            format!("The specified commit does not exist: {commit}"),
        ));
    }
    let update = RefUpdate {
        name,
        old: ObjectId::null(gix_hash::Kind::Sha1),
        new: commit,
        forced: false,
    };
    let arn = record.arn(ctx.req.region.as_str());
    super::git::write_ref(ctx, &record, &arn, &update)?;
    super::triggers::fire(ctx, &record, &arn, &[&update])?;
    let mut record = record;
    if record.default_branch.is_none() {
        record.default_branch = Some(branch.to_owned());
    }
    touch(ctx, &record)?;
    Ok(json!({}))
}

pub(crate) fn get_branch(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let repository = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let branch = required(input, "branchName", "BranchNameRequiredException")?;
    check_branch_name(branch)?;
    // GetBranch is not among the actions AWS evaluates `codecommit:References` for.
    let record = repositories::authorize_repository(ctx, repository)?;
    let commit = super::git::current_ref(ctx.txn, &record.id, &full_name(branch))?
        .ok_or_else(|| branch_does_not_exist(branch))?;
    Ok(json!({"branch": {"branchName": branch, "commitId": commit.to_string()}}))
}

pub(crate) fn list_branches(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let repository = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let record = repositories::authorize_repository(ctx, repository)?;
    let start = match optional_str(input, "nextToken")? {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            error(
                ErrorKind::InvalidArgument,
                "InvalidContinuationTokenException",
                "The specified continuation token is not valid.",
            )
        })?,
    };
    let branches: Vec<String> = super::git::load_refs(ctx.txn, &record.id)?
        .into_iter()
        .filter_map(|(name, _)| name.strip_prefix("refs/heads/").map(str::to_owned))
        .collect();
    if start > branches.len() {
        return Err(error(
            ErrorKind::InvalidArgument,
            "InvalidContinuationTokenException",
            "The specified continuation token is not valid.",
        ));
    }
    let page: Vec<&String> = branches.iter().skip(start).take(PAGE).collect();
    let mut out = json!({"branches": page});
    let next = start + page.len();
    if next < branches.len() {
        crate::api::set_member(&mut out, "nextToken", json!(next.to_string()));
    }
    Ok(out)
}

pub(crate) fn delete_branch(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let repository = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let branch = required(input, "branchName", "BranchNameRequiredException")?;
    check_branch_name(branch)?;
    let record = authorize_branch(ctx, repository, branch)?;
    if record.default_branch.as_deref() == Some(branch) {
        return Err(error(
            ErrorKind::InvalidState,
            "DefaultBranchCannotBeDeletedException",
            format!("The default branch cannot be deleted: {branch}"),
        ));
    }
    let name = full_name(branch);
    // As CodeCommit: deleting a branch that does not exist deletes nothing and says so by
    // returning no deletedBranch.
    let Some(old) = super::git::current_ref(ctx.txn, &record.id, &name)? else {
        return Ok(json!({}));
    };
    let update = RefUpdate {
        name,
        old,
        new: ObjectId::null(gix_hash::Kind::Sha1),
        forced: false,
    };
    let arn = record.arn(ctx.req.region.as_str());
    super::git::write_ref(ctx, &record, &arn, &update)?;
    super::triggers::fire(ctx, &record, &arn, &[&update])?;
    touch(ctx, &record)?;
    Ok(json!({"deletedBranch": {"branchName": branch, "commitId": old.to_string()}}))
}

pub(crate) fn update_default_branch(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let repository = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let branch = required(input, "defaultBranchName", "BranchNameRequiredException")?;
    check_branch_name(branch)?;
    let mut record = repositories::authorize_repository(ctx, repository)?;
    if super::git::current_ref(ctx.txn, &record.id, &full_name(branch))?.is_none() {
        return Err(branch_does_not_exist(branch));
    }
    record.default_branch = Some(branch.to_owned());
    touch(ctx, &record)?;
    Ok(json!({}))
}
