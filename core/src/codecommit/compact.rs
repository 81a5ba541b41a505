//! Compaction: a repository's packs merged into one, by copying stored entries (gix-pack reuses
//! entries and deltas; nothing is re-deltified). Unreachable objects are dropped only once the
//! pack that brought them is older than the grace period; younger ones move into a "cruft"
//! pack that keeps the age of the youngest pack they came from, so no object loses time.
//!
//! Concurrency: the merged packs are retired, not deleted, in the transaction that records the
//! new ones (a clone in flight may still read them); their blobs go at a later compaction, once
//! retired for `min(grace, 1 hour)`. A push whose snapshot included a pack that has been retired
//! since is refused ("push again"), so a push never links to objects that were just dropped.

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

/// How long a retired pack's blobs outlive it at most (reads in flight may still use them).
const RETIRE_DELAY: Duration = Duration::from_secs(3600);

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

impl crate::Keep {
    /// Compacts the repository `repository` of account `account`, acting as the account's
    /// root (and audited as `codecommit:CompactRepository`): merges its packs into one pack of
    /// the reachable objects, plus a cruft pack of unreachable objects whose pack is younger
    /// than `grace` (git's default is two weeks); drops older unreachable objects. Returns
    /// `{"PacksBefore", "PacksAfter", "ReachableObjects", "CruftObjects", "DroppedObjects",
    /// "RetiredPacksDeleted"}`.
    ///
    /// # Errors
    /// `NotFound` (`RepositoryDoesNotExistException`); `Conflict` when another compaction ran
    /// meanwhile; the key's and the storage's errors.
    pub fn compact_repository(
        &self,
        account: &str,
        repository: &str,
        grace: Duration,
    ) -> Result<Value> {
        compact(self.inner(), account, repository, grace)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn compact(
    keep: &Arc<KeepInner>,
    account: &str,
    repository: &str,
    grace: Duration,
) -> Result<Value> {
    let caller = Caller::account_root(account.parse()?);
    let input = json!({"repositoryName": repository});
    let opened = open(keep, &caller, &input, repository)?;
    let now = keep.clock.now_millis();
    let deleted = purge_retired(keep, &opened, now - millis(grace.min(RETIRE_DELAY)))?;
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
    let reachable = walk::select(
        &snapshot.odb,
        &Wanted {
            wants: &tips,
            common: &[],
            client_shallow: &[],
            depth: Depth::default(),
            filter: None,
            tags: Vec::new(),
        },
    )?
    .objects;
    let cutoff = now - millis(grace);
    let (cruft, cruft_created, dropped) =
        unreachable(&snapshot.odb, &opened.packs, &reachable, cutoff);
    if opened.packs.len() == 1 && cruft.is_empty() && dropped == 0 {
        // One pack holding only what is reachable: already compact.
        return Ok(report);
    }

    let spool = Spool::create(&keep.spool_dir)?;
    let mut staged = write_packs(
        keep,
        &opened,
        &snapshot,
        &spool,
        [(&reachable, now), (&cruft, cruft_created)],
    )?;
    let new_records: Vec<PackRecord> = staged.iter().map(|s| s.record.clone()).collect();
    crate::api::run(keep, &GIT_COMPACT, &caller, &input, |ctx| {
        let record = repositories::authorize_repository(ctx, repository)?;
        let current: HashSet<u32> = pack_records(ctx.txn, &record.id)?
            .iter()
            .map(|p| p.number)
            .collect();
        if record.id != opened.record.id || !numbers.iter().all(|n| current.contains(n)) {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the repository changed shape during compaction (another compaction?)",
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
    crate::api::set_member(&mut report, "CruftObjects", json!(cruft.len()));
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
    lists: [(&Vec<ObjectId>, i64); 2],
) -> Result<Vec<StagedPack<'k>>> {
    let mut staged = Vec::new();
    for (objects, created) in lists {
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
        let received = crate::git::receive::index_pack(snapshot, &mut reader, &spool.0)?
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

/// The unreachable objects to keep (from packs created at or after `cutoff`), the age the
/// cruft pack takes (its youngest source), and how many are dropped.
fn unreachable(
    odb: &Odb,
    packs: &[PackRecord],
    reachable: &[ObjectId],
    cutoff: i64,
) -> (Vec<ObjectId>, i64, usize) {
    let reachable: HashSet<&ObjectId> = reachable.iter().collect();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let (mut cruft, mut created, mut dropped) = (Vec::new(), i64::MIN, 0);
    // Youngest first: an object in several packs takes the youngest age.
    let mut by_age: Vec<&PackRecord> = packs.iter().collect();
    by_age.sort_by_key(|p| std::cmp::Reverse(p.created));
    for pack in by_age {
        for id in odb.ids_in_pack(pack.number) {
            if reachable.contains(&id) || !seen.insert(id) {
                continue;
            }
            if pack.created >= cutoff {
                cruft.push(id);
                created = created.max(pack.created);
            } else {
                dropped += 1;
            }
        }
    }
    (cruft, created, dropped)
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
