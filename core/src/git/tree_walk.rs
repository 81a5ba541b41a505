//! The tree half of a fetch's walk: every tree and blob under a set of root trees, minus what
//! the client already has and what the filter leaves out. The client waits for the object
//! count before a byte of the pack can go out, so the trees are decoded on every core, the
//! workers taking root trees in chunks and sharing one set of ids already taken. Only one
//! walk at a time spreads out: when others run, the cores are busy anyway, and a walk stays
//! on its caller's thread (fresh threads per walk under load also left memory stranded in
//! the allocator's per-thread arenas).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Walks under way in this process.
static WALKS: AtomicUsize = AtomicUsize::new(0);

/// Counts a walk while it runs.
struct Running;

impl Running {
    /// Starts counting; true when no other walk was running.
    fn start() -> (Running, bool) {
        let before = WALKS.fetch_add(1, Ordering::AcqRel);
        (Running, before == 0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        WALKS.fetch_sub(1, Ordering::AcqRel);
    }
}

use gix_hash::ObjectId;
use gix_object::Kind;

use super::odb::Odb;
use super::pack::corrupt;
use super::walk::Filter;
use crate::error::{Error, Result};

/// Root trees a worker takes at a time: neighbouring commits share most of their trees, so a
/// chunk keeps one worker on one stretch of history.
const CHUNK: usize = 32;
/// Upper bound on walkers, whatever the machine has.
const MAX_WORKERS: usize = 4;
/// Shards of the shared set. An id's last byte picks the shard: the hash tables inside hash
/// an id by its first eight bytes, so sharding by one of those would leave each table with
/// clustered hashes.
const SHARDS: usize = 64;

/// Object ids taken by some walker.
struct Taken {
    shards: Vec<Mutex<gix_hashtable::HashSet>>,
}

impl Taken {
    fn new() -> Self {
        Taken {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// True when `id` was not taken before (and now is).
    fn take(&self, id: ObjectId) -> Result<bool> {
        let last = id.as_slice().last().copied().unwrap_or_default();
        let shard = self
            .shards
            .get(usize::from(last) % SHARDS)
            .ok_or_else(|| Error::internal("a shard index is out of range"))?;
        Ok(shard
            .lock()
            .map_err(|_| Error::internal("a tree walker panicked"))?
            .insert(id))
    }
}

/// Every tree under `roots` (roots included) and every blob they name that passes `filter`,
/// each once, skipping ids for which `skip` holds (and everything below a skipped tree).
/// The order is unspecified.
pub(crate) fn objects_under(
    odb: &Odb,
    roots: &[ObjectId],
    filter: Option<Filter>,
    skip: &(dyn Fn(&ObjectId) -> bool + Sync),
) -> Result<Vec<ObjectId>> {
    let (_running, alone) = Running::start();
    let cores = if alone {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        1
    };
    let workers = cores
        .min(MAX_WORKERS)
        .min(roots.len().div_ceil(CHUNK))
        .max(1);
    let walk = Walk {
        odb,
        roots,
        filter,
        skip,
        next: AtomicUsize::new(0),
        taken: Taken::new(),
        failed: AtomicBool::new(false),
    };
    if workers == 1 {
        return walk.work();
    }
    let results: Vec<Result<Vec<ObjectId>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(|| walk.work())).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("a tree walker panicked")))
            })
            .collect()
    });
    let mut objects = Vec::new();
    for result in results {
        objects.extend(result?);
    }
    Ok(objects)
}

/// What the walkers share.
struct Walk<'a> {
    odb: &'a Odb,
    roots: &'a [ObjectId],
    filter: Option<Filter>,
    skip: &'a (dyn Fn(&ObjectId) -> bool + Sync),
    /// The next root to hand out.
    next: AtomicUsize,
    taken: Taken,
    /// Set by the first walker that fails, so the others stop early.
    failed: AtomicBool,
}

impl Walk<'_> {
    /// One walker: takes chunks of roots until none are left; returns what it took.
    fn work(&self) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        let result = self.take_chunks(&mut out);
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result.map(|()| out)
    }

    fn take_chunks(&self, out: &mut Vec<ObjectId>) -> Result<()> {
        let mut stack = Vec::new();
        while !self.failed.load(Ordering::Relaxed) {
            let start = self.next.fetch_add(CHUNK, Ordering::Relaxed);
            let Some(chunk) = self.roots.get(start..(start + CHUNK).min(self.roots.len())) else {
                break;
            };
            if chunk.is_empty() {
                break;
            }
            for root in chunk {
                stack.push(*root);
                while let Some(id) = stack.pop() {
                    if (self.skip)(&id) || !self.taken.take(id)? {
                        continue;
                    }
                    out.push(id);
                    self.children(&id, &mut stack, out)?;
                }
            }
        }
        Ok(())
    }

    /// Reads tree `id`: subtrees go on `stack`, new blobs that pass the filter into `out`.
    fn children(
        &self,
        id: &ObjectId,
        stack: &mut Vec<ObjectId>,
        out: &mut Vec<ObjectId>,
    ) -> Result<()> {
        let (kind, data) = self.odb.get(id)?;
        if kind != Kind::Tree {
            return Err(corrupt(&format!("{id} is a {kind}, not a tree")));
        }
        for entry in gix_object::TreeRefIter::from_bytes(&data, gix_hash::Kind::Sha1) {
            let entry = entry.map_err(|e| corrupt(&format!("tree {id} does not parse: {e}")))?;
            let child = entry.oid.to_owned();
            if entry.mode.is_tree() {
                stack.push(child);
            } else if entry.mode.is_commit() || (self.skip)(&child) {
                // Submodule commits live in another repository.
            } else if self.taken.take(child)? && self.blob_passes(&child)? {
                out.push(child);
            }
        }
        Ok(())
    }

    fn blob_passes(&self, id: &ObjectId) -> Result<bool> {
        match self.filter {
            None => Ok(true),
            Some(Filter::NoBlobs) => Ok(false),
            Some(Filter::BlobLimit(limit)) => {
                Ok(self.odb.header(id)?.is_some_and(|(_, size)| size <= limit))
            }
        }
    }
}
