//! Compaction: a repository's packs merged into one, by copying stored entries (gix-pack reuses
//! entries and deltas; nothing is re-deltified). Unreachable objects are dropped only once the
//! pack that brought them is older than the grace period; younger ones (with everything they
//! reach) move into "cruft" packs, one per day of origin, each as old as the youngest pack of
//! its day, so an object is kept at most a day longer than its own age says, never less.
//!
//! Concurrency: compaction commits only if no ref and no pack changed since it looked (else
//! `Conflict`: run it again), so it never drops an object a ref moved to meanwhile. The merged
//! packs are retired, not deleted (a clone in flight may still read them); their blobs go at a
//! later compaction, once retired for `retired_blob_delay`. A push whose snapshot included a
//! pack retired since is refused ("push again").

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gix_hash::ObjectId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::git::{
    GIT_COMPACT, PackRecord, Spool, StagedPack, data_key, load_refs, pack_records, packs_prefix,
    stage_pack,
};
use super::repositories;
use crate::api::Caller;
use crate::error::{Error, ErrorKind, Result};
use crate::git::Snapshot;
use crate::git::odb::Odb;
use crate::git::walk::{self, Depth, Wanted};
use crate::keep::KeepInner;
use crate::store::{Key, Txn};

/// Cruft objects are grouped by the day their source pack was made: an object's age is then
/// that of the youngest pack of its day, stretched by less than a day, once.
const DAY_MS: i64 = 86_400_000;

/// A pack merged away: its record, kept until its blobs are deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Retired {
    pack: PackRecord,
    retired: i64,
}

fn retired_prefix(repository_id: &str) -> Key {
    Key::new("git").push(repository_id).push("retired")
}

fn retired_list(txn: &mut Txn<'_>, repository_id: &str) -> Result<Vec<Retired>> {
    txn.scan_prefix(&retired_prefix(repository_id), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v)
                .map_err(|_| Error::storage("a retired pack record does not parse"))
        })
        .collect()
}

struct Opened {
    record: repositories::RepositoryRecord,
    data_key: zeroize::Zeroizing<Vec<u8>>,
    key_ref: Vec<u8>,
    refs: Vec<(String, ObjectId)>,
    packs: Vec<PackRecord>,
    retired: Vec<Retired>,
}

/// How [`crate::Keep::compact_repository`] treats what it removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// Unreachable objects are dropped once the pack that brought them is this old (git's
    /// `gc.pruneExpire` default: two weeks).
    pub grace: Duration,
    /// Blobs of packs a compaction merged away are deleted by a later compaction once they
    /// have been retired this long, so reads in flight can finish (default: one hour).
    pub retired_blob_delay: Duration,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            grace: Duration::from_secs(14 * 86_400),
            retired_blob_delay: Duration::from_secs(3_600),
        }
    }
}

impl CompactOptions {
    /// Reads `{"GraceSeconds": n, "RetiredBlobDelaySeconds": n}` (each optional, defaults as
    /// [`CompactOptions::default`]), the form the C and Python bindings pass.
    ///
    /// # Errors
    /// `InvalidArgument` for an unknown member or a value that is not a whole number.
    pub fn from_json(options: &Value) -> Result<CompactOptions> {
        let invalid = |why: String| Error::new(ErrorKind::InvalidArgument, why);
        let object = options
            .as_object()
            .ok_or_else(|| invalid("compaction options must be a JSON object".to_owned()))?;
        let mut out = CompactOptions::default();
        for (name, value) in object {
            let seconds = value
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| invalid(format!("{name} must be a whole number of seconds")))?;
            match name.as_str() {
                "GraceSeconds" => out.grace = seconds,
                "RetiredBlobDelaySeconds" => out.retired_blob_delay = seconds,
                _ => return Err(invalid(format!("unknown compaction option {name:?}"))),
            }
        }
        Ok(out)
    }
}

impl crate::Keep {
    /// Compacts the repository `repository` of account `account`, acting as the account's
    /// root (and audited as `codecommit:CompactRepository`): merges its packs into one pack of
    /// the reachable objects, plus cruft packs of the unreachable objects whose pack is younger
    /// than the grace period (with everything they reach); drops older unreachable objects.
    /// Returns `{"PacksBefore", "PacksAfter", "ReachableObjects", "CruftObjects",
    /// "DroppedObjects", "RetiredPacksDeleted"}`.
    ///
    /// # Errors
    /// `NotFound` (`RepositoryDoesNotExistException`); `Conflict` when a push, a branch
    /// operation or another compaction changed the repository meanwhile (run it again); the
    /// key's and the storage's errors.
    pub fn compact_repository(
        &self,
        account: &str,
        repository: &str,
        options: CompactOptions,
    ) -> Result<Value> {
        compact(self.inner(), account, repository, options)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn compact(
    keep: &Arc<KeepInner>,
    account: &str,
    repository: &str,
    options: CompactOptions,
) -> Result<Value> {
    let caller = Caller::account_root(account.parse()?);
    let input = json!({"repositoryName": repository});
    let opened = open(keep, &caller, &input, repository)?;
    let now = keep.clock.now_millis();
    let deleted = purge_retired(keep, &opened, now - millis(options.retired_blob_delay))?;
    let mut report = json!({
        "PacksBefore": opened.packs.len(),
        "PacksAfter": opened.packs.len(),
        "RetiredPacksDeleted": deleted,
    });
    if opened.packs.is_empty() {
        return Ok(report);
    }
    let numbers: Vec<u32> = opened.packs.iter().map(|p| p.number).collect();
    let objects = keep
        .git_objects
        .load(keep, &opened.record.id, &numbers, &opened.data_key)?;
    let snapshot = Snapshot {
        odb: Odb::new(objects),
        refs: opened.refs.clone(),
        head: String::new(),
    };
    let tips: Vec<ObjectId> = opened.refs.iter().map(|(_, id)| *id).collect();
    let reachable = closure(&snapshot.odb, &tips)?;
    let reachable_set: HashSet<ObjectId> = reachable.iter().copied().collect();
    let cutoff = now - millis(options.grace);
    let (cruft, dropped) = cruft_buckets(&snapshot.odb, &opened.packs, &reachable_set, cutoff)?;
    let cruft_objects: usize = cruft.iter().map(|(_, ids)| ids.len()).sum();
    if opened.packs.len() == 1 && cruft_objects == 0 && dropped == 0 {
        // One pack holding only what is reachable: already compact.
        return Ok(report);
    }

    let spool = Spool::create(&keep.spool_dir)?;
    let mut lists = vec![(reachable.clone(), now)];
    lists.extend(cruft.into_iter().map(|(created, ids)| (ids, created)));
    let mut staged = write_packs(keep, &opened, &snapshot, &spool, &lists)?;
    let new_records: Vec<PackRecord> = staged.iter().map(|s| s.record.clone()).collect();
    crate::api::run(keep, &GIT_COMPACT, &caller, &input, |ctx| {
        let record = repositories::authorize_repository(ctx, repository)?;
        // What was computed holds only if nothing moved: a ref moved by a push or a branch
        // operation may name an object this compaction counted as unreachable.
        let current: Vec<u32> = pack_records(ctx.txn, &record.id)?
            .iter()
            .map(|p| p.number)
            .collect();
        if record.id != opened.record.id
            || current != numbers
            || load_refs(ctx.txn, &record.id)? != opened.refs
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the repository changed during compaction; run it again",
            ));
        }
        for pack in &new_records {
            ctx.txn.put_json(
                &packs_prefix(&record.id).push_u64(u64::from(pack.number)),
                pack,
            )?;
        }
        for pack in &opened.packs {
            let number = u64::from(pack.number);
            ctx.txn.delete(&packs_prefix(&record.id).push_u64(number))?;
            ctx.txn.put_json(
                &retired_prefix(&record.id).push_u64(number),
                &Retired {
                    pack: pack.clone(),
                    retired: ctx.now(),
                },
            )?;
        }
        Ok((Value::Null, ()))
    })?;
    for s in &mut staged {
        s.committed = true;
    }
    crate::api::set_member(&mut report, "PacksAfter", json!(new_records.len()));
    crate::api::set_member(&mut report, "ReachableObjects", json!(reachable.len()));
    crate::api::set_member(&mut report, "CruftObjects", json!(cruft_objects));
    crate::api::set_member(&mut report, "DroppedObjects", json!(dropped));
    Ok(report)
}

/// Authorizes the compaction and reads what it works from, in one transaction.
fn open(keep: &Arc<KeepInner>, caller: &Caller, input: &Value, repository: &str) -> Result<Opened> {
    let (_, opened) = crate::api::run(keep, &GIT_COMPACT, caller, input, |ctx| {
        let record = repositories::authorize_repository(ctx, repository)?;
        let (data_key, key_ref) = data_key(ctx, &record)?;
        let refs = load_refs(ctx.txn, &record.id)?;
        let packs = pack_records(ctx.txn, &record.id)?;
        let retired = retired_list(ctx.txn, &record.id)?;
        Ok((
            Value::Null,
            Opened {
                record,
                data_key,
                key_ref,
                refs,
                packs,
                retired,
            },
        ))
    })?;
    Ok(opened)
}

/// Writes each non-empty object list as a pack (stored entries copied), indexes it in the
/// spool and seals it as the repository's next pack, created at the given time.
fn write_packs<'k>(
    keep: &'k KeepInner,
    opened: &Opened,
    snapshot: &Snapshot,
    spool: &Spool,
    lists: &[(Vec<ObjectId>, i64)],
) -> Result<Vec<StagedPack<'k>>> {
    let mut staged = Vec::new();
    for (objects, created) in lists {
        let created = *created;
        if objects.is_empty() {
            continue;
        }
        let path = spool.0.join(format!("compact-{}.pack", staged.len()));
        {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            crate::git::packgen::write_pack(&snapshot.odb, objects, true, &mut file, &mut |_| {
                Ok(())
            })?;
            std::io::Write::flush(&mut file)?;
        }
        let mut reader = std::fs::File::open(&path)?;
        let received = crate::git::ingest::index_pack(snapshot, &mut reader, &spool.0)?
            .ok_or_else(|| Error::internal("a compacted pack came out empty"))?;
        staged.push(stage_pack(
            keep,
            &opened.record.id,
            &opened.data_key,
            &opened.key_ref,
            &received,
            created,
        )?);
    }
    Ok(staged)
}

/// Objects to write as one pack, and the time the pack says it was made.
type Bucket = (i64, Vec<ObjectId>);

/// Every object reachable from `tips` (commits, trees, blobs, tags).
fn closure(odb: &Odb, tips: &[ObjectId]) -> Result<Vec<ObjectId>> {
    Ok(walk::select(
        odb,
        &Wanted {
            wants: tips,
            common: &[],
            client_shallow: &[],
            depth: Depth::default(),
            filter: None,
            tags: Vec::new(),
        },
    )?
    .objects)
}

/// The unreachable objects to keep, by age: those of packs created at or after `cutoff`,
/// grouped by day (youngest day first, each group taking the youngest age in it), each with
/// everything it reaches that nothing younger or reachable already holds, so a cruft object
/// never names a dropped one. Also returns how many objects are dropped.
fn cruft_buckets(
    odb: &Odb,
    packs: &[PackRecord],
    reachable: &HashSet<ObjectId>,
    cutoff: i64,
) -> Result<(Vec<Bucket>, usize)> {
    let mut by_age: Vec<&PackRecord> = packs.iter().collect();
    by_age.sort_by_key(|p| std::cmp::Reverse(p.created));
    let mut buckets: Vec<(i64, i64, Vec<ObjectId>)> = Vec::new();
    let mut unreachable: HashSet<ObjectId> = HashSet::new();
    for pack in by_age {
        for id in odb.ids_in_pack(pack.number) {
            if reachable.contains(&id) || !unreachable.insert(id) || pack.created < cutoff {
                continue;
            }
            let day = pack.created.div_euclid(DAY_MS);
            match buckets.iter_mut().find(|(d, _, _)| *d == day) {
                Some((_, _, ids)) => ids.push(id),
                None => buckets.push((day, pack.created, vec![id])),
            }
        }
    }
    let mut kept: HashSet<ObjectId> = HashSet::new();
    let mut out = Vec::new();
    for (_, created, seeds) in buckets {
        let ids: Vec<ObjectId> = closure(odb, &seeds)?
            .into_iter()
            .filter(|id| !reachable.contains(id) && kept.insert(*id))
            .collect();
        if !ids.is_empty() {
            out.push((created, ids));
        }
    }
    let dropped = unreachable.iter().filter(|id| !kept.contains(*id)).count();
    Ok((out, dropped))
}

/// Deletes the blobs and records of packs retired before `before`; returns how many.
fn purge_retired(keep: &KeepInner, opened: &Opened, before: i64) -> Result<usize> {
    let due: Vec<&Retired> = opened
        .retired
        .iter()
        .filter(|r| r.retired <= before)
        .collect();
    for r in &due {
        let (pack, index) = crate::git::pack::blob_keys(&opened.record.id, r.pack.number);
        for key in [pack, index] {
            match keep.blobs.delete(&key) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    keep.meta.txn(|t| {
        for r in &due {
            t.delete(&retired_prefix(&opened.record.id).push_u64(u64::from(r.pack.number)))?;
        }
        Ok(())
    })?;
    Ok(due.len())
}
