//! Git requests against CodeCommit repositories: who may do what (`codecommit:GitPull`,
//! `codecommit:GitPush`, per ref with `codecommit:References`), the repository's data key,
//! refs and packs in metadata, audit records and `CodeCommit Repository State Change` events.
//! The protocol itself is `crate::git`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gix_hash::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::repositories::{self, RepositoryRecord};
use crate::api::{Caller, OpCtx, Operation};
use crate::crypto::EncryptionContext;
use crate::error::{Error, ErrorKind, Result};
use crate::git::odb::{Objects, Odb};
use crate::git::pack::{self, PackIndex, SealedPack};
use crate::git::pktline::PacketReader;
use crate::git::receive::{self, PushSink, ReceivedPack, RefUpdate};
use crate::git::{Snapshot, upload};
use crate::keep::KeepInner;
use crate::store::{Key, Txn};

/// Which git program a request talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitService {
    /// `git-upload-pack`: clone, fetch, ls-remote (needs `codecommit:GitPull`).
    UploadPack,
    /// `git-receive-pack`: push (needs `codecommit:GitPush`).
    ReceivePack,
}

impl GitService {
    /// Parses `git-upload-pack` / `git-receive-pack`.
    pub fn from_name(name: &str) -> Option<GitService> {
        match name {
            "git-upload-pack" => Some(GitService::UploadPack),
            "git-receive-pack" => Some(GitService::ReceivePack),
            _ => None,
        }
    }

    /// The program name, `git-upload-pack` or `git-receive-pack`.
    pub fn name(self) -> &'static str {
        match self {
            GitService::UploadPack => "git-upload-pack",
            GitService::ReceivePack => "git-receive-pack",
        }
    }
}

/// One git request to a repository, as a front end (HTTP, SSH) received it.
#[derive(Debug, Clone)]
pub struct GitRequest {
    /// Who is asking (authenticated by the front end).
    pub caller: Caller,
    /// The repository name (from `/v1/repos/<name>`).
    pub repository: String,
    /// The program asked for.
    pub service: GitService,
    /// True when the client asked for protocol version 2 (`Git-Protocol: version=2`,
    /// `GIT_PROTOCOL=version=2`). Pushes always use v0.
    pub protocol_v2: bool,
    /// `HTTP` or `SSH`, for the audit record.
    pub transport: &'static str,
}

impl GitRequest {
    fn v2(&self) -> bool {
        self.protocol_v2 && self.service == GitService::UploadPack
    }
}

/// Serves the first half of a stateless exchange (smart HTTP `info/refs`): the capability
/// advertisement (v2) or the ref advertisement (v0), without the `# service=` preamble.
pub(crate) fn advertise(
    keep: &Arc<KeepInner>,
    req: &GitRequest,
    out: &mut dyn Write,
) -> Result<()> {
    let access = Access::open(keep, req)?;
    match (req.service, req.v2()) {
        (GitService::UploadPack, true) => upload::advertise_v2(out),
        (GitService::UploadPack, false) => upload::advertise_v0(&access.snapshot, out),
        (GitService::ReceivePack, _) => receive::advertise(&access.snapshot, out),
    }
}

/// Serves one stateless request (a smart HTTP POST body) and writes the response.
pub(crate) fn serve_stateless(
    keep: &Arc<KeepInner>,
    req: &GitRequest,
    body: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<()> {
    let access = Access::open(keep, req)?;
    let mut input = PacketReader::new(access.limit(req, body));
    match (req.service, req.v2()) {
        (GitService::UploadPack, true) => upload::serve_v2(&access.snapshot, &mut input, out, true),
        (GitService::UploadPack, false) => {
            upload::serve_v0(&access.snapshot, &mut input, out, true)
        }
        (GitService::ReceivePack, _) => push(keep, req, &access, &mut input, out),
    }
}

/// Serves a whole stateful session (SSH): advertisement, then the exchange, on one stream.
pub(crate) fn serve_session(
    keep: &Arc<KeepInner>,
    req: &GitRequest,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<()> {
    let access = Access::open(keep, req)?;
    let mut input = PacketReader::new(access.limit(req, input));
    match (req.service, req.v2()) {
        (GitService::UploadPack, true) => {
            upload::advertise_v2(out)?;
            out.flush()?;
            upload::serve_v2(&access.snapshot, &mut input, out, false)
        }
        (GitService::UploadPack, false) => {
            upload::advertise_v0(&access.snapshot, out)?;
            out.flush()?;
            upload::serve_v0(&access.snapshot, &mut input, out, false)
        }
        (GitService::ReceivePack, _) => {
            receive::advertise(&access.snapshot, out)?;
            out.flush()?;
            push(keep, req, &access, &mut input, out)
        }
    }
}

// ---- access: authorization, data key, snapshot ----

macro_rules! git_action {
    ($name:literal, $ro:expr) => {
        Operation {
            resources: &["arn:aws:codecommit:*:*:*", "arn:aws:kms:*:*:key/*"],
            ..cc_op!($name, not_an_api_operation, read_only = $ro)
        }
    };
}

/// `codecommit:GitPull`: IAM actions of git requests, not API operations (clients cannot call
/// them; they exist to be authorized and audited).
static GIT_PULL: Operation = git_action!("GitPull", true);
/// `codecommit:GitPush`.
static GIT_PUSH: Operation = git_action!("GitPush", false);
/// Compaction, which the host runs as the account's root (`Keep::compact_repository`).
pub(crate) static GIT_COMPACT: Operation = git_action!("CompactRepository", false);

fn not_an_api_operation(_: &mut OpCtx<'_, '_>, _: &Value) -> Result<Value> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "git actions are performed by git requests, not API calls",
    ))
}

/// An authorized git request's view of its repository.
struct Access {
    record: RepositoryRecord,
    /// The account's limit on the bytes of one push.
    max_push_bytes: Option<u64>,
    data_key: Zeroizing<Vec<u8>>,
    /// The wrapped data key, stored in the header of every sealed file.
    key_ref: Vec<u8>,
    snapshot: Snapshot,
}

struct Opened {
    record: RepositoryRecord,
    max_push_bytes: Option<u64>,
    data_key: Zeroizing<Vec<u8>>,
    key_ref: Vec<u8>,
    refs: Vec<(String, ObjectId)>,
    packs: Vec<u32>,
}

impl Access {
    fn open(keep: &Arc<KeepInner>, req: &GitRequest) -> Result<Access> {
        let op = match req.service {
            GitService::UploadPack => &GIT_PULL,
            GitService::ReceivePack => &GIT_PUSH,
        };
        let input = json!({"repositoryName": req.repository, "protocol": req.transport});
        let (_, opened) = crate::api::run(keep, op, &req.caller, &input, |ctx| {
            let record = repositories::authorize_repository(ctx, &req.repository)?;
            let (data_key, key_ref) = data_key(ctx, &record)?;
            let refs = load_refs(ctx.txn, &record.id)?;
            let packs = pack_numbers(ctx.txn, &record.id)?;
            let max_push_bytes = super::limits::load(ctx.txn, &record.account)?.max_push_bytes;
            ctx.audit_resources.push((
                "AWS::CodeCommit::Repository".to_owned(),
                record.arn(ctx.req.region.as_str()),
            ));
            Ok((
                Value::Null,
                Opened {
                    record,
                    max_push_bytes,
                    data_key,
                    key_ref,
                    refs,
                    packs,
                },
            ))
        })?;
        let objects =
            keep.git_objects
                .load(keep, &opened.record.id, &opened.packs, &opened.data_key)?;
        let head = head_ref(&opened.record);
        Ok(Access {
            snapshot: Snapshot {
                odb: Odb::new(objects),
                refs: opened.refs,
                head,
            },
            record: opened.record,
            max_push_bytes: opened.max_push_bytes,
            data_key: opened.data_key,
            key_ref: opened.key_ref,
        })
    }
}

/// The repository's refs and objects, for API operations that read commits, trees and blobs
/// (authorized by the caller; the data key is unwrapped through KMS as for git requests).
pub(crate) fn read_snapshot(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
) -> Result<Snapshot> {
    let (data_key, _) = data_key(ctx, record)?;
    let refs = load_refs(ctx.txn, &record.id)?;
    let packs = pack_numbers(ctx.txn, &record.id)?;
    let objects = ctx
        .keep
        .git_objects
        .load(ctx.keep, &record.id, &packs, &data_key)?;
    Ok(Snapshot {
        odb: Odb::new(objects),
        refs,
        head: head_ref(record),
    })
}

/// The ref HEAD names: the default branch (`main` until there is one).
fn head_ref(record: &RepositoryRecord) -> String {
    format!(
        "refs/heads/{}",
        record.default_branch.as_deref().unwrap_or("main")
    )
}

impl Access {
    /// The request's input, cut off with an error past the account's push size limit.
    fn limit<R: Read>(&self, req: &GitRequest, input: R) -> LimitedReader<R> {
        LimitedReader {
            inner: input,
            limit: self
                .max_push_bytes
                .filter(|_| req.service == GitService::ReceivePack),
            read: 0,
        }
    }
}

/// A reader that fails once more than `limit` bytes arrived (the push is refused, not
/// truncated: a cut pack would fail its checksum anyway, this says why).
struct LimitedReader<R> {
    inner: R,
    limit: Option<u64>,
    read: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        match self.limit {
            Some(limit) if self.read > limit => Err(std::io::Error::other(format!(
                "the push is larger than this account's limit of {limit} bytes"
            ))),
            _ => Ok(n),
        }
    }
}

fn data_key_context(repository_id: &str) -> EncryptionContext {
    EncryptionContext::new().with("aws:codecommit:id", repository_id)
}

/// A fresh data key for a new repository, wrapped by its KMS key (base64 of the KMS blob).
pub(crate) fn new_data_key(
    ctx: &mut OpCtx<'_, '_>,
    repository_id: &str,
    key_arn: &str,
) -> Result<String> {
    let mut key = Zeroizing::new([0u8; 32]);
    crate::id::fill_secret(&mut key[..])?;
    let blob =
        crate::crypto::wrap_for_service(ctx, key_arn, &data_key_context(repository_id), &key[..])?;
    Ok(B64.encode(blob))
}

/// The data key wrapped again by `new_key_arn` (UpdateRepositoryEncryptionKey).
pub(crate) fn rewrap_data_key(
    ctx: &mut OpCtx<'_, '_>,
    repository_id: &str,
    wrapped: &str,
    new_key_arn: &str,
) -> Result<String> {
    let blob = B64
        .decode(wrapped)
        .map_err(|_| Error::storage("a repository's data key is not base64"))?;
    let context = data_key_context(repository_id);
    let key = crate::crypto::unwrap_for_service(ctx, "codecommit", &blob, &context)?;
    let blob = crate::crypto::wrap_for_service(ctx, new_key_arn, &context, &key)?;
    Ok(B64.encode(blob))
}

/// Unwraps the repository's data key (creating one for a repository made before data keys).
pub(crate) fn data_key(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let wrapped = if let Some(w) = &record.data_key {
        w.clone()
    } else {
        let w = new_data_key(ctx, &record.id, &record.kms_key_arn)?;
        let mut with_key = record.clone();
        with_key.data_key = Some(w.clone());
        ctx.txn.put_json(
            &repositories::repo_key(&record.account, &record.name),
            &with_key,
        )?;
        w
    };
    let blob = B64
        .decode(wrapped)
        .map_err(|_| Error::storage("a repository's data key is not base64"))?;
    let key =
        crate::crypto::unwrap_for_service(ctx, "codecommit", &blob, &data_key_context(&record.id))?;
    Ok((key, blob))
}

// ---- refs and packs in metadata ----

fn refs_prefix(repository_id: &str) -> Key {
    Key::new("git").push(repository_id).push("ref")
}

fn ref_key(repository_id: &str, name: &str) -> Key {
    refs_prefix(repository_id).push(name)
}

pub(crate) fn packs_prefix(repository_id: &str) -> Key {
    Key::new("git").push(repository_id).push("pack")
}

fn pack_counter_key(repository_id: &str) -> Key {
    Key::new("git").push(repository_id).push("next-pack")
}

/// What metadata says about a stored pack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PackRecord {
    pub number: u32,
    pub objects: u64,
    /// Plaintext bytes.
    pub bytes: u64,
    /// When the pack was stored (a cruft pack: the youngest of its sources), in milliseconds.
    pub created: i64,
}

/// Every ref of the repository, sorted by name.
pub(crate) fn load_refs(txn: &mut Txn<'_>, repository_id: &str) -> Result<Vec<(String, ObjectId)>> {
    let rows = txn.scan_prefix(&refs_prefix(repository_id), None, usize::MAX)?;
    let mut refs = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        let name = key
            .last()
            .ok_or_else(|| Error::storage("a ref key has no name"))?;
        let id = ObjectId::from_hex(&value)
            .map_err(|_| Error::storage("a stored ref is not an object id"))?;
        refs.push((name, id));
    }
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(refs)
}

fn pack_numbers(txn: &mut Txn<'_>, repository_id: &str) -> Result<Vec<u32>> {
    Ok(pack_records(txn, repository_id)?
        .iter()
        .map(|r| r.number)
        .collect())
}

/// The records of the repository's packs, by number.
pub(crate) fn pack_records(txn: &mut Txn<'_>, repository_id: &str) -> Result<Vec<PackRecord>> {
    let rows = txn.scan_prefix(&packs_prefix(repository_id), None, usize::MAX)?;
    rows.into_iter()
        .map(|(_, v)| {
            serde_json::from_slice::<PackRecord>(&v)
                .map_err(|_| Error::storage("a pack record does not parse"))
        })
        .collect()
}

/// Loaded object indexes, by repository id, reused while the repository's pack list is the
/// same.
#[derive(Default)]
pub(crate) struct ObjectsCache {
    loaded: Mutex<HashMap<String, Arc<Objects>>>,
}

impl std::fmt::Debug for ObjectsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectsCache").finish_non_exhaustive()
    }
}

impl ObjectsCache {
    pub(crate) fn load(
        &self,
        keep: &KeepInner,
        repository_id: &str,
        packs: &[u32],
        data_key: &[u8],
    ) -> Result<Arc<Objects>> {
        let poisoned = || Error::internal("the git object cache lock was poisoned");
        if let Some(hit) = self
            .loaded
            .lock()
            .map_err(|_| poisoned())?
            .get(repository_id)
            && hit.pack_numbers() == packs
        {
            return Ok(Arc::clone(hit));
        }
        let mut objects = Objects::default();
        for number in packs {
            let pack = SealedPack::open(&keep.blobs, repository_id, *number, data_key)?;
            let (_, index_key) = pack::blob_keys(repository_id, *number);
            let sealed = keep.blobs.get(&index_key)?;
            let plain = crate::crypto::open_bytes(
                data_key,
                &pack::context(repository_id, *number, "index"),
                &sealed,
            )?;
            objects.add_pack(pack, &PackIndex::decode(&plain)?)?;
        }
        let objects = Arc::new(objects);
        self.loaded
            .lock()
            .map_err(|_| poisoned())?
            .insert(repository_id.to_owned(), Arc::clone(&objects));
        Ok(objects)
    }
}

// ---- push ----

/// A per-push (or per-compaction) spool directory, removed when the work ends however it
/// ends.
pub(crate) struct Spool(pub(crate) PathBuf);

impl Spool {
    pub(crate) fn create(root: &Path) -> Result<Spool> {
        std::fs::create_dir_all(root)?;
        let dir = root.join(crate::id::uuid_v4());
        std::fs::create_dir(&dir)?;
        Ok(Spool(dir))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Best effort: a leftover directory only holds this push's plaintext until the next
        // start removes it (see docs/FORMAT.md).
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn push<R: Read>(
    keep: &Arc<KeepInner>,
    req: &GitRequest,
    access: &Access,
    input: &mut PacketReader<R>,
    out: &mut dyn Write,
) -> Result<()> {
    let spool = Spool::create(&keep.spool_dir)?;
    let mut sink = Sink { keep, req, access };
    receive::serve(&access.snapshot, input, out, &spool.0, &mut sink)?;
    Ok(())
}

struct Sink<'a> {
    keep: &'a Arc<KeepInner>,
    req: &'a GitRequest,
    access: &'a Access,
}

/// A pack written to blobs but not yet in metadata; removed unless the push commits.
pub(crate) struct StagedPack<'a> {
    keep: &'a KeepInner,
    keys: (String, String),
    pub(crate) record: PackRecord,
    pub(crate) committed: bool,
}

impl Drop for StagedPack<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.keep.blobs.delete(&self.keys.0);
            let _ = self.keep.blobs.delete(&self.keys.1);
        }
    }
}

/// Seals a received (or compacted) pack and its index under the repository's data key as the
/// next pack number. Nothing refers to it until its record is written.
pub(crate) fn stage_pack<'k>(
    keep: &'k KeepInner,
    repository_id: &str,
    data_key: &[u8],
    key_ref: &[u8],
    received: &ReceivedPack,
    created: i64,
) -> Result<StagedPack<'k>> {
    let number = keep.meta.txn(|txn| {
        let n = txn
            .get_json::<u32>(&pack_counter_key(repository_id))?
            .unwrap_or(0)
            + 1;
        txn.put_json(&pack_counter_key(repository_id), &n)?;
        Ok(n)
    })?;
    let keys = pack::blob_keys(repository_id, number);
    let staged = StagedPack {
        keep,
        keys: keys.clone(),
        record: PackRecord {
            number,
            objects: received.entries.len() as u64,
            bytes: received.pack_len,
            created,
        },
        committed: false,
    };
    let mut file = std::fs::File::open(&received.pack_path)?;
    pack::seal_blob(
        keep.blobs.as_ref(),
        &keys.0,
        data_key,
        key_ref,
        &pack::context(repository_id, number, "pack"),
        &mut file,
    )?;
    let index = PackIndex {
        pack_len: received.pack_len,
        entries: received.entries.clone(),
    }
    .encode()?;
    pack::seal_blob(
        keep.blobs.as_ref(),
        &keys.1,
        data_key,
        key_ref,
        &pack::context(repository_id, number, "index"),
        &mut index.as_slice(),
    )?;
    Ok(staged)
}

impl PushSink for Sink<'_> {
    fn apply(
        &mut self,
        pack: Option<ReceivedPack>,
        updates: &[RefUpdate],
        atomic: bool,
        push_options: &[String],
    ) -> Result<Vec<Option<String>>> {
        let mut staged = match &pack {
            Some(p) => Some(stage_pack(
                self.keep,
                &self.access.record.id,
                &self.access.data_key,
                &self.access.key_ref,
                p,
                self.keep.clock.now_millis(),
            )?),
            None => None,
        };
        let repo = &self.access.record;
        let input = json!({
            "repositoryName": repo.name,
            "protocol": self.req.transport,
            "atomic": atomic,
            "pushOptions": push_options,
            "references": updates.iter().map(|u| json!({
                "reference": u.name,
                "oldCommitId": u.old.to_string(),
                "commitId": u.new.to_string(),
                "forced": u.forced,
            })).collect::<Vec<_>>(),
        });
        let pack_record = staged.as_ref().map(|s| s.record.clone());
        let snapshot_packs = self.access.snapshot.odb.pack_numbers();
        let (_, results) =
            crate::api::run(self.keep, &GIT_PUSH, &self.req.caller, &input, |ctx| {
                let record = repositories::authorize_repository(ctx, &repo.name)?;
                if record.id != repo.id {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "the repository was replaced during the push",
                    ));
                }
                // The push was checked against these packs: if a compaction retired one
                // meanwhile, an object it linked to may be gone.
                let current = pack_numbers(ctx.txn, &record.id)?;
                if !snapshot_packs.iter().all(|n| current.contains(n)) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "the repository was compacted during the push; push again",
                    ));
                }
                let results = apply_updates(ctx, &record, updates, atomic, pack_record.as_ref())?;
                let summary = updates
                .iter()
                .zip(&results)
                .map(|(u, r)| json!({"reference": u.name, "result": r.as_deref().unwrap_or("ok")}))
                .collect::<Vec<_>>();
                Ok((json!({"references": summary}), results))
            })?;
        if let Some(s) = staged.as_mut()
            && results.iter().any(Option::is_none)
        {
            s.committed = true;
        }
        Ok(results)
    }
}

/// Authorizes and applies ref updates in the push's transaction: per ref, git's name rules,
/// `codecommit:GitPush` with `codecommit:References`, and compare-and-set against the value
/// the client saw. Writes the pack record, the refs and their events together.
fn apply_updates(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
    updates: &[RefUpdate],
    atomic: bool,
    pack: Option<&PackRecord>,
) -> Result<Vec<Option<String>>> {
    let arn = record.arn(ctx.req.region.as_str());
    let limits = super::limits::load(ctx.txn, &record.account)?;
    if let Some(max) = limits.max_ref_updates_per_push
        && updates.len() as u64 > max
    {
        let reason = format!(
            "too many ref updates in one push: {} (this account's limit is {max})",
            updates.len()
        );
        return Ok(vec![Some(reason); updates.len()]);
    }
    let mut seen = std::collections::HashSet::new();
    let mut results: Vec<Option<String>> = Vec::with_capacity(updates.len());
    for u in updates {
        results.push(check_update(ctx, record, &arn, u, &mut seen)?);
    }
    ctx.context_mut().remove("codecommit:References");
    ctx.context_mut().remove(FORCE_PUSH_KEY);
    // The ref names there will be (only accepted deletes free a name), for the account's ref
    // limit and git's rule that `a` and `a/b` cannot both exist.
    let mut names: std::collections::BTreeSet<String> = load_refs(ctx.txn, &record.id)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for (u, result) in updates.iter().zip(&results) {
        if result.is_none() && u.is_delete() {
            names.remove(&u.name);
        }
    }
    for (u, result) in updates.iter().zip(results.iter_mut()) {
        if result.is_none() && u.is_create() {
            *result = new_ref_refusal(&u.name, &names, limits.max_refs_per_repository);
            if result.is_none() {
                names.insert(u.name.clone());
            }
        }
    }
    if atomic && results.iter().any(Option::is_some) {
        return Ok(results
            .into_iter()
            .map(|r| Some(r.unwrap_or_else(|| "atomic push failed".to_owned())))
            .collect());
    }
    if results.iter().all(Option::is_some) {
        return Ok(results);
    }
    if let Some(p) = pack {
        ctx.txn
            .put_json(&packs_prefix(&record.id).push_u64(u64::from(p.number)), p)?;
    }
    let mut new_record = record.clone();
    for (u, result) in updates.iter().zip(&results) {
        if result.is_some() {
            continue;
        }
        write_ref(ctx, record, &arn, u)?;
        // CodeCommit makes the first branch pushed the default branch.
        if new_record.default_branch.is_none()
            && !u.is_delete()
            && let Some(branch) = u.name.strip_prefix("refs/heads/")
        {
            new_record.default_branch = Some(branch.to_owned());
        }
    }
    let applied: Vec<&RefUpdate> = updates
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_none())
        .map(|(u, _)| u)
        .collect();
    super::triggers::fire(ctx, record, &arn, &applied)?;
    new_record.modified = ctx.now();
    ctx.txn.put_json(
        &repositories::repo_key(&record.account, &record.name),
        &new_record,
    )?;
    ctx.audit_resources
        .push(("AWS::CodeCommit::Repository".to_owned(), arn));
    Ok(results)
}

/// The condition key that tells a forced (non-fast-forward) ref update.
pub const FORCE_PUSH_KEY: &str = "codekeep:ForcePush";

/// `None` when the update may proceed, or git's reason for refusing it.
fn check_update(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
    arn: &str,
    u: &RefUpdate,
    seen: &mut std::collections::HashSet<String>,
) -> Result<Option<String>> {
    if let Err(reason) = receive::check_ref_name(&u.name) {
        return Ok(Some(reason));
    }
    if !seen.insert(u.name.clone()) {
        return Ok(Some("duplicate ref update".to_owned()));
    }
    if u.is_delete() && u.is_create() {
        return Ok(Some("nothing to do".to_owned()));
    }
    ctx.context_mut().insert("codecommit:References", &u.name);
    // codekeep's own key (AWS has none for this): present only on updates of an existing ref,
    // "true" when the update is not a fast-forward, so a policy can deny `--force`.
    if u.is_create() || u.is_delete() {
        ctx.context_mut().remove(FORCE_PUSH_KEY);
    } else {
        ctx.context_mut()
            .insert(FORCE_PUSH_KEY, if u.forced { "true" } else { "false" });
    }
    match ctx.authorize(&[arn.to_owned()]) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AccessDenied => {
            return Ok(Some(format!("denied: {}", e.message())));
        }
        Err(e) => return Err(e),
    }
    let current = current_ref(ctx.txn, &record.id, &u.name)?;
    let expected = if u.is_create() { None } else { Some(u.old) };
    if current != expected {
        return Ok(Some(match current {
            Some(_) if u.is_create() => "already exists".to_owned(),
            None if u.is_delete() => "no such ref".to_owned(),
            _ => "stale info".to_owned(),
        }));
    }
    Ok(None)
}

/// Why a new ref `name` may not join `names` (the refs there will be): the account's ref limit,
/// or git's `a` / `a/b` rule; `None` when it may.
pub(crate) fn new_ref_refusal(
    name: &str,
    names: &std::collections::BTreeSet<String>,
    max_refs: Option<u64>,
) -> Option<String> {
    if let Some(max) = max_refs
        && names.len() as u64 >= max
    {
        return Some(format!(
            "the repository has reached this account's limit of {max} refs"
        ));
    }
    name_clash(name, names).map(|clash| format!("cannot lock ref '{name}': '{clash}' exists"))
}

/// An existing ref that `name` cannot live beside: one under `name/`, or one `name` is
/// under (git stores refs as files, so `refs/heads/a` and `refs/heads/a/b` exclude each other).
/// Logarithmic in the number of refs: a push of thousands of new refs stays linear.
pub(crate) fn name_clash(
    name: &str,
    existing: &std::collections::BTreeSet<String>,
) -> Option<String> {
    let under = format!("{name}/");
    if let Some(child) = existing
        .range(under.clone()..)
        .next()
        .filter(|other| other.starts_with(&under))
    {
        return Some(child.clone());
    }
    name.match_indices('/')
        .map(|(at, _)| name.get(..at).unwrap_or_default())
        .find(|parent| existing.contains(*parent))
        .map(str::to_owned)
}

/// The value of ref `name` in metadata.
pub(crate) fn current_ref(
    txn: &mut Txn<'_>,
    repository_id: &str,
    name: &str,
) -> Result<Option<ObjectId>> {
    txn.get(&ref_key(repository_id, name))?
        .map(|v| {
            ObjectId::from_hex(&v).map_err(|_| Error::storage("a stored ref is not an object id"))
        })
        .transpose()
}

/// Moves (creates, deletes) one ref the caller checked, and appends its state-change event in
/// the same transaction.
pub(crate) fn write_ref(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
    arn: &str,
    u: &RefUpdate,
) -> Result<()> {
    let key = ref_key(&record.id, &u.name);
    if u.is_delete() {
        ctx.txn.delete(&key)?;
    } else {
        ctx.txn.put(&key, u.new.to_string().as_bytes())?;
    }
    append_event(ctx, record, arn, u)
}

fn append_event(
    ctx: &mut OpCtx<'_, '_>,
    record: &RepositoryRecord,
    arn: &str,
    u: &RefUpdate,
) -> Result<()> {
    let (reference_type, short) = match u.name.strip_prefix("refs/heads/") {
        Some(b) => ("branch", b),
        None => match u.name.strip_prefix("refs/tags/") {
            Some(t) => ("tag", t),
            None => ("reference", u.name.as_str()),
        },
    };
    let event = if u.is_create() {
        "referenceCreated"
    } else if u.is_delete() {
        "referenceDeleted"
    } else {
        "referenceUpdated"
    };
    let mut detail = json!({
        "callerUserArn": ctx.req.principal.arn(),
        "event": event,
        "referenceFullName": u.name,
        "referenceName": short,
        "referenceType": reference_type,
        "repositoryId": record.id,
        "repositoryName": record.name,
    });
    if !u.is_delete() {
        crate::api::set_member(&mut detail, "commitId", json!(u.new.to_string()));
    }
    if !u.is_create() {
        crate::api::set_member(&mut detail, "oldCommitId", json!(u.old.to_string()));
    }
    ctx.txn.append_event(
        ctx.req.time_millis,
        "aws.codecommit",
        "CodeCommit Repository State Change",
        &record.account,
        vec![arn.to_owned()],
        detail,
    )?;
    Ok(())
}

impl crate::Keep {
    /// Answers a smart HTTP `info/refs` request: the v2 capability advertisement, or the v0
    /// ref advertisement (without the `# service=` preamble, which only HTTP adds).
    ///
    /// # Errors
    /// `AccessDenied` when the caller may not pull (or push); `NotFound`
    /// (`RepositoryDoesNotExistException`); `Io` when `out` fails.
    pub fn git_advertise(&self, req: &GitRequest, out: &mut dyn Write) -> Result<()> {
        advertise(self.inner(), req, out)
    }

    /// Serves one stateless request (a smart HTTP POST body) into `out`.
    ///
    /// # Errors
    /// As [`crate::Keep::git_advertise`]; `InvalidArgument` (`GitProtocolError`) for a request git's
    /// protocol does not allow (the client has also been told, in the response).
    pub fn git_serve_stateless(
        &self,
        req: &GitRequest,
        body: &mut dyn Read,
        out: &mut dyn Write,
    ) -> Result<()> {
        serve_stateless(self.inner(), req, body, out)
    }

    /// Serves a whole stateful session (`git-upload-pack` / `git-receive-pack` over SSH or
    /// any other byte stream): advertisement, negotiation, pack.
    ///
    /// # Errors
    /// As [`crate::Keep::git_serve_stateless`].
    pub fn git_serve_session(
        &self,
        req: &GitRequest,
        input: &mut dyn Read,
        out: &mut dyn Write,
    ) -> Result<()> {
        serve_session(self.inner(), req, input, out)
    }
}
