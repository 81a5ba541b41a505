//! Repositories: create, describe, list, rename, describe, re-key, delete, tag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{error, required};
use crate::api::{OpCtx, member, optional_str};
use crate::clock::epoch_seconds;
use crate::error::{ErrorKind, Result};
use crate::keep::KeepInner;
use crate::store::{Key, Txn};

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;
const MAX_TAGS: usize = 50;
const MAX_BATCH: usize = 25;
const PAGE: usize = 1000;

/// A stored repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RepositoryRecord {
    pub id: String,
    pub name: String,
    pub account: String,
    pub description: Option<String>,
    pub default_branch: Option<String>,
    pub created: i64,
    pub modified: i64,
    /// The ARN of the KMS key the repository's data is encrypted under.
    pub kms_key_arn: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The repository's data key, wrapped by `kms_key_arn` (a KMS ciphertext blob, base64):
    /// every pack and index of the repository is sealed under it.
    #[serde(default)]
    pub data_key: Option<String>,
}

impl RepositoryRecord {
    pub(crate) fn arn(&self, region: &str) -> String {
        repository_arn(region, &self.account, &self.name)
    }

    fn metadata(&self, keep: &KeepInner, region: &str) -> Value {
        let urls = keep
            .clone_urls
            .read()
            .map(|u| u.clone())
            .unwrap_or_default();
        let http = urls
            .http
            .unwrap_or_else(|| format!("https://git-codecommit.{region}.amazonaws.com"));
        let ssh = urls
            .ssh
            .unwrap_or_else(|| format!("ssh://git-codecommit.{region}.amazonaws.com"));
        let mut m = json!({
            "accountId": self.account,
            "repositoryId": self.id,
            "repositoryName": self.name,
            "lastModifiedDate": epoch_seconds(self.modified),
            "creationDate": epoch_seconds(self.created),
            "cloneUrlHttp": format!("{http}/v1/repos/{}", self.name),
            "cloneUrlSsh": format!("{ssh}/v1/repos/{}", self.name),
            "Arn": self.arn(region),
            "kmsKeyId": self.kms_key_arn,
        });
        if let Some(d) = &self.description {
            crate::api::set_member(&mut m, "repositoryDescription", json!(d));
        }
        if let Some(b) = &self.default_branch {
            crate::api::set_member(&mut m, "defaultBranch", json!(b));
        }
        m
    }
}

pub(crate) fn repository_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:codecommit:{region}:{account}:{name}")
}

pub(crate) fn repo_key(account: &str, name: &str) -> Key {
    Key::new("codecommit").push(account).push("repo").push(name)
}

fn repos_prefix(account: &str) -> Key {
    Key::new("codecommit").push(account).push("repo")
}

pub(crate) fn does_not_exist(name: &str) -> crate::Error {
    error(
        ErrorKind::NotFound,
        "RepositoryDoesNotExistException",
        format!("{name} does not exist"),
    )
}

/// CodeCommit's rule: 1 to 100 letters, digits, `.`, `_` and `-`, not ending in `.git`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.to_ascii_lowercase().ends_with(".git")
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(error(
            ErrorKind::InvalidArgument,
            "InvalidRepositoryNameException",
            "The repository name is not valid. Repository names can be any valid combination of letters, numbers, periods, underscores, and dashes between 1 and 100 characters in length. Names are case sensitive. Names cannot end in .git",
        ))
    }
}

fn description(input: &Value) -> Result<Option<String>> {
    match optional_str(input, "repositoryDescription")? {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(error(
            ErrorKind::InvalidArgument,
            "InvalidRepositoryDescriptionException",
            "The description is not valid: it can have at most 1,000 characters.",
        )),
        d => Ok(d.map(str::to_owned)),
    }
}

/// Reads CodeCommit's `tags` map.
fn tags(input: &Value) -> Result<BTreeMap<String, String>> {
    let invalid = |why: &str| {
        error(
            ErrorKind::InvalidArgument,
            "InvalidTagsMapException",
            format!("The map of tags is not valid: {why}"),
        )
    };
    let Some(map) = member(input, "tags") else {
        return Ok(BTreeMap::new());
    };
    let map = map
        .as_object()
        .ok_or_else(|| invalid("it must be an object"))?;
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let v = v
            .as_str()
            .ok_or_else(|| invalid("values must be strings"))?;
        if k.starts_with("aws:") {
            return Err(system_tag(k));
        }
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid(&format!("the key `{k}` is not allowed")));
        }
        if v.chars().count() > 256 {
            return Err(invalid(&format!(
                "the value of `{k}` is longer than 256 characters"
            )));
        }
        out.insert(k.clone(), v.to_owned());
    }
    if out.len() > MAX_TAGS {
        return Err(error(
            ErrorKind::LimitExceeded,
            "TooManyTagsException",
            "The maximum number of tags for a CodeCommit resource is 50.",
        ));
    }
    Ok(out)
}

fn system_tag(key: &str) -> crate::Error {
    error(
        ErrorKind::InvalidArgument,
        "InvalidSystemTagUsageException",
        format!("The tag key `{key}` is reserved: keys beginning with aws: are for AWS."),
    )
}

/// Translates KMS's refusal of a key into CodeCommit's encryption-key errors.
fn key_error(e: crate::Error) -> crate::Error {
    let (code, message) = match e.code() {
        "NotFoundException" => (
            "EncryptionKeyNotFoundException",
            "No encryption key was found.",
        ),
        "DisabledException" => (
            "EncryptionKeyDisabledException",
            "The encryption key is disabled.",
        ),
        "KMSInvalidStateException" => (
            "EncryptionKeyUnavailableException",
            "The encryption key is not available.",
        ),
        "AccessDeniedException" => (
            "EncryptionKeyAccessDeniedException",
            "An encryption integrity check failed: the key cannot be used.",
        ),
        "InvalidArnException" | "ValidationException" => (
            "EncryptionKeyInvalidIdException",
            "The Key Management Service encryption key is not valid.",
        ),
        _ => return e,
    };
    error(e.kind(), code, message)
}

/// The key a repository is to use: the given one, or the AWS managed `alias/aws/codecommit`.
fn resolve_key(ctx: &mut OpCtx<'_, '_>, key_ref: Option<&str>) -> Result<String> {
    match key_ref {
        Some(k) => crate::crypto::usable_key_arn(ctx, "codecommit", k).map_err(key_error),
        None => crate::crypto::managed_key_arn(ctx, "codecommit"),
    }
}

pub(crate) fn load(
    txn: &mut Txn<'_>,
    account: &str,
    name: &str,
) -> Result<Option<RepositoryRecord>> {
    txn.get_json(&repo_key(account, name))
}

/// Authorizes the operation on repository `name` (with its tags as `aws:ResourceTag/*`) and
/// returns it.
pub(crate) fn authorize_repository(
    ctx: &mut OpCtx<'_, '_>,
    name: &str,
) -> Result<RepositoryRecord> {
    check_name(name)?;
    let account = ctx.account()?.to_string();
    let region = ctx.req.region.as_str().to_owned();
    let record = load(ctx.txn, &account, name)?;
    if let Some(r) = &record {
        for (k, v) in &r.tags {
            ctx.context_mut().insert(&format!("aws:ResourceTag/{k}"), v);
        }
    }
    ctx.authorize(&[repository_arn(&region, &account, name)])?;
    record.ok_or_else(|| does_not_exist(name))
}

fn save(ctx: &mut OpCtx<'_, '_>, record: &RepositoryRecord) -> Result<()> {
    ctx.txn
        .put_json(&repo_key(&record.account, &record.name), record)?;
    let arn = record.arn(ctx.req.region.as_str());
    ctx.audit_resources
        .push(("AWS::CodeCommit::Repository".to_owned(), arn));
    Ok(())
}

fn request_tags(ctx: &mut OpCtx<'_, '_>, tags: &BTreeMap<String, String>) {
    for (k, v) in tags {
        ctx.context_mut().insert(&format!("aws:RequestTag/{k}"), v);
    }
    if !tags.is_empty() {
        ctx.context_mut().insert_multi("aws:TagKeys", tags.keys());
    }
}

pub(crate) fn create_repository(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    check_name(name)?;
    let description = description(input)?;
    let tags = tags(input)?;
    let key_ref = optional_str(input, "kmsKeyId")?;
    let account = ctx.account()?.to_string();
    let region = ctx.req.region.as_str().to_owned();
    request_tags(ctx, &tags);
    ctx.authorize(&[repository_arn(&region, &account, name)])?;
    if load(ctx.txn, &account, name)?.is_some() {
        return Err(error(
            ErrorKind::AlreadyExists,
            "RepositoryNameExistsException",
            format!("Repository named {name} already exists"),
        ));
    }
    if let Some(max) = super::limits::load(ctx.txn, &account)?.max_repositories {
        let count = ctx
            .txn
            .scan_prefix(&repos_prefix(&account), None, usize::MAX)?
            .len() as u64;
        if count >= max {
            return Err(super::limits::exceeded(
                "RepositoryLimitExceededException",
                format!(
                    "A repository resource limit was exceeded: this account may have at most {max} repositories."
                ),
            ));
        }
    }
    let kms_key_arn = resolve_key(ctx, key_ref)?;
    let now = ctx.now();
    let id = crate::id::uuid_v4();
    let data_key = Some(super::git::new_data_key(ctx, &id, &kms_key_arn)?);
    let record = RepositoryRecord {
        id,
        data_key,
        name: name.to_owned(),
        account,
        description,
        default_branch: None,
        created: now,
        modified: now,
        kms_key_arn,
        tags,
    };
    save(ctx, &record)?;
    Ok(json!({"repositoryMetadata": record.metadata(ctx.keep, &region)}))
}

pub(crate) fn get_repository(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let record = authorize_repository(ctx, name)?;
    Ok(json!({"repositoryMetadata": record.metadata(ctx.keep, ctx.req.region.as_str())}))
}

pub(crate) fn batch_get_repositories(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let names: Vec<String> = match member(input, "repositoryNames") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            error(
                ErrorKind::InvalidArgument,
                "InvalidParameterException",
                "repositoryNames must be a list of strings",
            )
        })?,
        None => {
            return Err(error(
                ErrorKind::InvalidArgument,
                "RepositoryNamesRequiredException",
                "At least one repository name is required.",
            ));
        }
    };
    if names.len() > MAX_BATCH {
        return Err(error(
            ErrorKind::InvalidArgument,
            "MaximumRepositoryNamesExceededException",
            "The maximum number of allowed repository names was exceeded. Currently, this number is 25.",
        ));
    }
    for name in &names {
        check_name(name)?;
    }
    let account = ctx.account()?.to_string();
    let region = ctx.req.region.as_str().to_owned();
    let arns: Vec<String> = names
        .iter()
        .map(|n| repository_arn(&region, &account, n))
        .collect();
    ctx.authorize(&arns)?;
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for name in &names {
        match load(ctx.txn, &account, name)? {
            Some(r) => found.push(r.metadata(ctx.keep, &region)),
            None => missing.push(json!(name)),
        }
    }
    Ok(json!({"repositories": found, "repositoriesNotFound": missing, "errors": []}))
}

pub(crate) fn list_repositories(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let sort_by = optional_str(input, "sortBy")?.unwrap_or("repositoryName");
    if !["repositoryName", "lastModifiedDate"].contains(&sort_by) {
        return Err(error(
            ErrorKind::InvalidArgument,
            "InvalidSortByException",
            "The specified sort by value is not valid.",
        ));
    }
    let descending = match optional_str(input, "order")? {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(_) => {
            return Err(error(
                ErrorKind::InvalidArgument,
                "InvalidOrderException",
                "The specified sort order is not valid.",
            ));
        }
    };
    let start = match optional_str(input, "nextToken")? {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| u32::try_from(*n).is_ok())
            .ok_or_else(|| {
                error(
                    ErrorKind::InvalidArgument,
                    "InvalidContinuationTokenException",
                    "The specified continuation token is not valid.",
                )
            })?,
    };
    ctx.authorize(&["*".to_owned()])?;
    let account = ctx.account()?.to_string();
    let mut all: Vec<RepositoryRecord> = ctx
        .txn
        .scan_prefix(&repos_prefix(&account), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v))
        .collect::<std::result::Result<_, _>>()?;
    if sort_by == "lastModifiedDate" {
        all.sort_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.name.cmp(&b.name))
        });
    } else {
        all.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if descending {
        all.reverse();
    }
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|r| json!({"repositoryName": r.name, "repositoryId": r.id}))
        .collect();
    let mut out = json!({"repositories": page});
    let next = start.saturating_add(PAGE);
    if next < all.len() {
        crate::api::set_member(&mut out, "nextToken", json!(next.to_string()));
    }
    Ok(out)
}

pub(crate) fn update_repository_name(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let old = required(input, "oldName", "RepositoryNameRequiredException")?;
    let new = required(input, "newName", "RepositoryNameRequiredException")?;
    check_name(new)?;
    let mut record = authorize_repository(ctx, old)?;
    let account = record.account.clone();
    // The repository as it will be named must be allowed too, before anything about that name
    // is revealed.
    let new_arn = repository_arn(ctx.req.region.as_str(), &account, new);
    ctx.authorize(std::slice::from_ref(&new_arn))?;
    if old != new && load(ctx.txn, &account, new)?.is_some() {
        return Err(error(
            ErrorKind::AlreadyExists,
            "RepositoryNameExistsException",
            format!("Repository named {new} already exists"),
        ));
    }
    ctx.txn.delete(&repo_key(&account, old))?;
    new.clone_into(&mut record.name);
    record.modified = ctx.now();
    save(ctx, &record)?;
    Ok(json!({}))
}

pub(crate) fn update_repository_description(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let description = description(input)?;
    let mut record = authorize_repository(ctx, name)?;
    record.description = description;
    record.modified = ctx.now();
    save(ctx, &record)?;
    Ok(json!({}))
}

pub(crate) fn update_repository_encryption_key(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    let key_ref = required(input, "kmsKeyId", "EncryptionKeyRequiredException")?;
    let mut record = authorize_repository(ctx, name)?;
    let new_key = resolve_key(ctx, Some(key_ref))?;
    // The packs stay as they are: only the data key is wrapped again, by the new key. That
    // needs the current key too, so a disabled current key refuses (EncryptionKeyDisabled).
    record.data_key = match &record.data_key {
        Some(wrapped) => Some(
            super::git::rewrap_data_key(ctx, &record.id, wrapped, &new_key).map_err(key_error)?,
        ),
        None => None,
    };
    let original = std::mem::replace(&mut record.kms_key_arn, new_key);
    record.modified = ctx.now();
    save(ctx, &record)?;
    Ok(json!({
        "repositoryId": record.id,
        "kmsKeyId": record.kms_key_arn,
        "originalKmsKeyId": original,
    }))
}

pub(crate) fn delete_repository(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required(input, "repositoryName", "RepositoryNameRequiredException")?;
    // As CodeCommit: deleting a repository that does not exist succeeds and names no id.
    let record = match authorize_repository(ctx, name) {
        Ok(r) => r,
        Err(e) if e.code() == "RepositoryDoesNotExistException" => return Ok(json!({})),
        Err(e) => return Err(e),
    };
    ctx.txn.delete(&repo_key(&record.account, &record.name))?;
    ctx.audit_resources.push((
        "AWS::CodeCommit::Repository".to_owned(),
        record.arn(ctx.req.region.as_str()),
    ));
    Ok(json!({"repositoryId": record.id}))
}

/// The repository a `resourceArn` names, authorized.
fn tagged_resource(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<RepositoryRecord> {
    let arn = required(input, "resourceArn", "ResourceArnRequiredException")?;
    let account = ctx.account()?.to_string();
    let invalid = || {
        error(
            ErrorKind::InvalidArgument,
            "InvalidResourceArnException",
            format!("The value for the resource ARN is not valid: {arn}"),
        )
    };
    let parsed: crate::arn::Arn = arn.parse().map_err(|_| invalid())?;
    if parsed.service() != "codecommit" || parsed.region() != ctx.req.region.as_str() {
        return Err(invalid());
    }
    if parsed.account() != account {
        ctx.authorize(&[arn.to_owned()])?;
        return Err(does_not_exist(parsed.resource()));
    }
    authorize_repository(ctx, parsed.resource())
}

pub(crate) fn tag_resource(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let new_tags = tags(input)?;
    if member(input, "tags").is_none() {
        return Err(error(
            ErrorKind::InvalidArgument,
            "TagsMapRequiredException",
            "A map of tags is required.",
        ));
    }
    request_tags(ctx, &new_tags);
    let mut record = tagged_resource(ctx, input)?;
    record.tags.extend(new_tags);
    if record.tags.len() > MAX_TAGS {
        return Err(error(
            ErrorKind::LimitExceeded,
            "TooManyTagsException",
            "The maximum number of tags for a CodeCommit resource is 50.",
        ));
    }
    save(ctx, &record)?;
    Ok(json!({}))
}

pub(crate) fn untag_resource(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let keys: Vec<String> = match member(input, "tagKeys") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            error(
                ErrorKind::InvalidArgument,
                "InvalidTagKeysListException",
                "The list of tag keys is not valid.",
            )
        })?,
        None => {
            return Err(error(
                ErrorKind::InvalidArgument,
                "TagKeysListRequiredException",
                "A list of tag keys is required.",
            ));
        }
    };
    if let Some(k) = keys.iter().find(|k| k.starts_with("aws:")) {
        return Err(system_tag(k));
    }
    ctx.context_mut().insert_multi("aws:TagKeys", &keys);
    let mut record = tagged_resource(ctx, input)?;
    record.tags.retain(|k, _| !keys.contains(k));
    save(ctx, &record)?;
    Ok(json!({}))
}

pub(crate) fn list_tags_for_resource(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = tagged_resource(ctx, input)?;
    Ok(json!({"tags": record.tags}))
}
