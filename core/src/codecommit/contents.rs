//! Reading a repository through the API: GetCommit, BatchGetCommits, GetBlob, GetFile and
//! GetFolder, with CodeCommit's shapes, limits and error codes. Objects come from the same
//! sealed packs git serves, decrypted with the repository's data key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gix_hash::ObjectId;
use gix_object::Kind;
use serde_json::{Value, json};

use super::branches::parse_commit_id;
use super::repositories::{self, RepositoryRecord};
use super::{error, required};
use crate::api::{OpCtx, optional_str};
use crate::error::{Error, ErrorKind, Result};
use crate::git::Snapshot;

/// CodeCommit's limit on file content returned by the API (GetBlob, GetFile): 6 MB.
const MAX_FILE_BYTES: u64 = 6 * 1024 * 1024;
/// BatchGetCommits takes at most this many ids.
const MAX_BATCH_COMMITS: usize = 100;

fn open(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<(RepositoryRecord, Snapshot)> {
    let repository = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let record = repositories::authorize_repository(ctx, repository)?;
    let snapshot = super::git::read_snapshot(ctx, &record)?;
    Ok((record, snapshot))
}

/// A commit in CodeCommit's shape (`date` is git's raw "<seconds> <offset>").
fn commit_json(snapshot: &Snapshot, id: &ObjectId) -> Result<Option<Value>> {
    let Some((Kind::Commit, data)) = snapshot.odb.find(id)? else {
        return Ok(None);
    };
    let commit = gix_object::CommitRef::from_bytes(&data, gix_hash::Kind::Sha1)
        .map_err(|e| Error::storage(format!("commit {id} does not parse: {e}")))?;
    let person = |raw: &gix_object::bstr::BStr| {
        // "Name <email> seconds offset"; CodeCommit's `date` is git's raw "seconds offset".
        let text = raw.to_string();
        let (name, rest) = text.split_once('<').unwrap_or((text.as_str(), ""));
        let (email, when) = rest.split_once('>').unwrap_or((rest, ""));
        json!({"name": name.trim(), "email": email.trim(), "date": when.trim()})
    };
    Ok(Some(json!({
        "commitId": id.to_string(),
        "treeId": commit.tree().to_string(),
        "parents": commit.parents().map(|p| p.to_string()).collect::<Vec<_>>(),
        "message": commit.message.to_string(),
        "author": person(commit.author),
        "committer": person(commit.committer),
        "additionalData": "",
    })))
}

pub(crate) fn get_commit(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required(input, "commitId", "CommitIdRequiredException")?;
    let id = parse_commit_id(id)?;
    let (_, snapshot) = open(ctx, input)?;
    let commit = commit_json(&snapshot, &id)?.ok_or_else(|| {
        error(
            ErrorKind::NotFound,
            "CommitIdDoesNotExistException",
            format!("The specified commit ID does not exist: {id}"),
        )
    })?;
    Ok(json!({"commit": commit}))
}

pub(crate) fn batch_get_commits(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let ids = match crate::api::member(input, "commitIds") {
        Some(Value::Array(ids)) if !ids.is_empty() => ids.clone(),
        _ => {
            return Err(error(
                ErrorKind::InvalidArgument,
                "CommitIdsListRequiredException",
                "A list of commit IDs is required.",
            ));
        }
    };
    if ids.len() > MAX_BATCH_COMMITS {
        return Err(error(
            ErrorKind::LimitExceeded,
            "CommitIdsLimitExceededException",
            format!("The maximum number of commit IDs is {MAX_BATCH_COMMITS}."),
        ));
    }
    let (_, snapshot) = open(ctx, input)?;
    let mut commits = Vec::new();
    let mut errors = Vec::new();
    for id in &ids {
        let text = id.as_str().unwrap_or_default();
        let found = match parse_commit_id(text) {
            Ok(oid) => commit_json(&snapshot, &oid)?.ok_or("CommitIdDoesNotExistException"),
            Err(_) => Err("InvalidCommitIdException"),
        };
        match found {
            Ok(commit) => commits.push(commit),
            Err(code) => errors.push(json!({
                "commitId": text,
                "errorCode": code,
                "errorMessage": format!("{text}: {}", if code == "InvalidCommitIdException" {
                    "not a valid commit ID"
                } else {
                    "no such commit in the repository"
                }),
            })),
        }
    }
    Ok(json!({"commits": commits, "errors": errors}))
}

fn too_large(size: u64) -> Error {
    error(
        ErrorKind::LimitExceeded,
        "FileTooLargeException",
        format!(
            "The file is {size} bytes; the API returns files of at most {MAX_FILE_BYTES} bytes (use git for larger files)."
        ),
    )
}

pub(crate) fn get_blob(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let blob = required(input, "blobId", "BlobIdRequiredException")?;
    let id = (blob.len() == 40)
        .then(|| ObjectId::from_hex(blob.as_bytes()).ok())
        .flatten()
        .ok_or_else(|| {
            error(
                ErrorKind::InvalidArgument,
                "InvalidBlobIdException",
                format!("The specified blob ID is not valid: {blob}"),
            )
        })?;
    let (_, snapshot) = open(ctx, input)?;
    let missing = || {
        error(
            ErrorKind::NotFound,
            "BlobIdDoesNotExistException",
            format!("The specified blob does not exist: {blob}"),
        )
    };
    match snapshot.odb.header(&id)? {
        Some((Kind::Blob, size)) if size > MAX_FILE_BYTES => Err(too_large(size)),
        Some((Kind::Blob, _)) => {
            let (_, data) = snapshot.odb.get(&id)?;
            Ok(json!({"content": B64.encode(data.as_slice())}))
        }
        _ => Err(missing()),
    }
}

/// The commit a `commitSpecifier` names: a full commit id, a branch, a tag or a full ref
/// (tags peeled); the default branch when absent.
fn resolve_commit(
    snapshot: &Snapshot,
    record: &RepositoryRecord,
    specifier: Option<&str>,
) -> Result<ObjectId> {
    let not_found = |what: &str| {
        error(
            ErrorKind::NotFound,
            "CommitDoesNotExistException",
            format!("The specified commit does not exist: {what}"),
        )
    };
    let candidate = match specifier {
        None | Some("HEAD") => record
            .default_branch
            .as_deref()
            .and_then(|b| snapshot.value(&format!("refs/heads/{b}")))
            .ok_or_else(|| not_found("the default branch (the repository is empty)"))?,
        Some(spec) => {
            let as_id = (spec.len() == 40)
                .then(|| ObjectId::from_hex(spec.as_bytes()).ok())
                .flatten()
                .filter(|id| snapshot.odb.has(id));
            match as_id {
                Some(id) => id,
                None => ["refs/heads/", "refs/tags/", ""]
                    .iter()
                    .find_map(|p| snapshot.value(&format!("{p}{spec}")))
                    .ok_or_else(|| not_found(spec))?,
            }
        }
    };
    let (target, kind, _) = crate::git::walk::peel(&snapshot.odb, &candidate)?;
    if kind != Kind::Commit {
        return Err(error(
            ErrorKind::InvalidArgument,
            "InvalidCommitException",
            format!("{candidate} is a {kind}, not a commit"),
        ));
    }
    Ok(target)
}

/// `/a/b/`, `a/b` → `a/b`; the root is the empty path.
fn normalize(path: &str) -> Result<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.split('/').any(|c| c == "." || c == "..") || trimmed.contains("//") {
        return Err(error(
            ErrorKind::InvalidArgument,
            "InvalidPathException",
            format!("The specified path is not valid: {path}"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// One entry of a tree.
struct Entry {
    name: String,
    mode: gix_object::tree::EntryMode,
    id: ObjectId,
}

fn tree_entries(snapshot: &Snapshot, tree: &ObjectId) -> Result<Vec<Entry>> {
    let (kind, data) = snapshot.odb.get(tree)?;
    if kind != Kind::Tree {
        return Err(Error::storage(format!("{tree} is a {kind}, not a tree")));
    }
    gix_object::TreeRefIter::from_bytes(&data, gix_hash::Kind::Sha1)
        .map(|e| {
            let e = e.map_err(|e| Error::storage(format!("tree {tree} does not parse: {e}")))?;
            Ok(Entry {
                name: e.filename.to_string(),
                mode: e.mode,
                id: e.oid.to_owned(),
            })
        })
        .collect()
}

/// Follows `path` from the commit's tree: the entry found, or `None`. The root is a tree.
fn lookup(snapshot: &Snapshot, commit: &ObjectId, path: &str) -> Result<Option<Entry>> {
    let mut current = Entry {
        name: String::new(),
        mode: gix_object::tree::EntryKind::Tree.into(),
        id: crate::git::walk::commit(&snapshot.odb, commit)?.tree,
    };
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if !current.mode.is_tree() {
            return Ok(None);
        }
        match tree_entries(snapshot, &current.id)?
            .into_iter()
            .find(|e| e.name == component)
        {
            Some(entry) => current = entry,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

fn file_mode(mode: gix_object::tree::EntryMode) -> &'static str {
    if mode.is_link() {
        "SYMLINK"
    } else if mode.is_executable() {
        "EXECUTABLE"
    } else {
        "NORMAL"
    }
}

fn path_required(input: &Value, member: &str) -> Result<String> {
    normalize(required(input, member, "PathRequiredException")?)
}

pub(crate) fn get_file(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let path = path_required(input, "filePath")?;
    let specifier = optional_str(input, "commitSpecifier")?;
    let (record, snapshot) = open(ctx, input)?;
    let commit = resolve_commit(&snapshot, &record, specifier)?;
    let entry = lookup(&snapshot, &commit, &path)?
        .filter(|e| e.mode.is_blob_or_symlink() && !path.is_empty())
        .ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                "FileDoesNotExistException",
                format!("The specified file does not exist: {path}"),
            )
        })?;
    let size = snapshot.odb.header(&entry.id)?.map_or(0, |(_, size)| size);
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let (_, data) = snapshot.odb.get(&entry.id)?;
    Ok(json!({
        "commitId": commit.to_string(),
        "blobId": entry.id.to_string(),
        "filePath": path,
        "fileMode": file_mode(entry.mode),
        "fileSize": size,
        "fileContent": B64.encode(data.as_slice()),
    }))
}

pub(crate) fn get_folder(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let path = path_required(input, "folderPath")?;
    let specifier = optional_str(input, "commitSpecifier")?;
    let (record, snapshot) = open(ctx, input)?;
    let commit = resolve_commit(&snapshot, &record, specifier)?;
    let folder = lookup(&snapshot, &commit, &path)?
        .filter(|e| e.mode.is_tree())
        .ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                "FolderDoesNotExistException",
                format!("The specified folder does not exist: {path}"),
            )
        })?;
    let (mut folders, mut files, mut links, mut modules) = (vec![], vec![], vec![], vec![]);
    for e in tree_entries(&snapshot, &folder.id)? {
        let absolute = if path.is_empty() {
            e.name.clone()
        } else {
            format!("{path}/{}", e.name)
        };
        let id = e.id.to_string();
        if e.mode.is_tree() {
            folders.push(json!({"treeId": id, "absolutePath": absolute, "relativePath": e.name}));
        } else if e.mode.is_commit() {
            modules.push(json!({"commitId": id, "absolutePath": absolute, "relativePath": e.name}));
        } else {
            let entry = json!({"blobId": id, "absolutePath": absolute, "relativePath": e.name,
                               "fileMode": file_mode(e.mode)});
            if e.mode.is_link() {
                links.push(entry);
            } else {
                files.push(entry);
            }
        }
    }
    Ok(json!({
        "commitId": commit.to_string(),
        "folderPath": path,
        "treeId": folder.id.to_string(),
        "subFolders": folders,
        "files": files,
        "symbolicLinks": links,
        "subModules": modules,
    }))
}
