//! Taking in a pack (a push, or a compaction's output): streamed to the spool with thin-pack
//! bases completed from the store, then every object decoded exactly once, on all cores, to
//! hash it, parse it strictly and collect the links it names. Connectivity is checked once all
//! ids are known. This is git's own split (index-pack, then the connectivity check) folded
//! into one delta-tree traversal: the second full decode is what it saves.
//!
//! Packs that still hold a `REF_DELTA` to a base inside the same pack (clients that do not
//! use offset deltas) cannot be laid out as a delta tree before their bases are hashed; they
//! take the slower path: gix indexes the spooled pack, then a second traversal checks it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use gix_error::ErrorExt as _;
use gix_hash::ObjectId;
use gix_object::Kind;
use gix_pack::data::input;

use super::Snapshot;
use super::receive::{CommitLinks, ReceivedPack, bad_pack, with_causes};
use crate::error::{Error, Result};

/// Reads a pack from `input` into the spool directory and checks it (see the module docs).
/// `Ok(None)` for an empty pack.
pub(crate) fn index_pack(
    snap: &Snapshot,
    input: &mut dyn Read,
    spool: &Path,
) -> Result<Option<ReceivedPack>> {
    let spooled = spool_pack(snap, input, spool)?;
    if spooled.offsets.is_empty() {
        std::fs::remove_file(&spooled.path)?;
        return Ok(None);
    }
    let checked = if spooled.in_pack_ref_deltas {
        two_pass::check(snap, &spooled, spool)?
    } else {
        traverse(snap, &spooled)?
    };
    let Checked {
        mut entries,
        commits,
        required,
    } = checked;
    entries.sort_unstable_by_key(|(id, _)| *id);
    entries.dedup_by_key(|(id, _)| *id);
    for (target, (kind, referrer)) in &required {
        if entries.binary_search_by_key(target, |(id, _)| *id).is_err() {
            return Err(bad_pack(&format!(
                "{kind} {referrer} names {target}, which is neither in the pack nor in the repository"
            )));
        }
    }
    Ok(Some(ReceivedPack {
        pack_path: spooled.path,
        entries,
        pack_len: spooled.len,
        commits,
    }))
}

/// A pack written to the spool, with where each entry starts.
struct Spooled {
    path: PathBuf,
    len: u64,
    /// Entry offsets, ascending.
    offsets: Vec<u64>,
    /// True when an entry is still a `REF_DELTA` (its base is in the pack, or nowhere).
    in_pack_ref_deltas: bool,
}

/// What checking a spooled pack found.
struct Checked {
    /// `(id, offset)` of every object.
    entries: Vec<(ObjectId, u64)>,
    commits: HashMap<ObjectId, CommitLinks>,
    /// Objects named by the pack but not in the repository: each must be in the pack. The
    /// value is the first object found naming it (for the error).
    required: HashMap<ObjectId, (Kind, ObjectId)>,
}

/// Streams the pack into a new spool file. gix verifies the stream (each entry inflates to
/// its stated size, the trailer matches) and turns `REF_DELTA`s against stored objects into
/// offset deltas against a copy of the base placed in front of them (thin-pack completion).
fn spool_pack(snap: &Snapshot, input: &mut dyn Read, spool: &Path) -> Result<Spooled> {
    let (path, file) = new_spool_file(spool)?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let stream = input::BytesToEntriesIter::new_from_header(
        BufReader::with_capacity(256 * 1024, input),
        input::Mode::Verify,
        input::EntryDataMode::Keep,
        gix_hash::Kind::Sha1,
    )
    .map_err(|e| bad_pack(&with_causes(&e)))?;
    // The object count the client's header declares (nothing is read yet).
    let declared = stream.size_hint().0;
    let entries = input::LookupRefDeltaObjectsIter::new(
        stream,
        snap.odb.clone(),
        gix_zlib::Compression::default(),
    );
    let mut offsets = Vec::new();
    let mut in_pack_ref_deltas = false;
    // The file is the input byte for byte unless a thin-pack base was inserted (gix then
    // shifts the offsets it reports, so only the count tells) or an entry moved (the client
    // encoded a header longer than needed); then its header and trailer are redone.
    let mut moved = false;
    let mut position = 0u64;
    let mut trailer = None;
    for entry in entries {
        let entry = entry.map_err(|e| bad_pack(&with_causes(&e)))?;
        if position == 0 {
            out.write_all(&[0u8; gix_pack::data::header::SIZE])?;
            position = gix_pack::data::header::SIZE as u64;
        }
        moved |= entry.pack_offset != position;
        in_pack_ref_deltas |=
            matches!(entry.header, gix_pack::data::entry::Header::RefDelta { .. });
        offsets.push(position);
        position += entry
            .header
            .write_to(entry.decompressed_size, &mut out)
            .map_err(|e| bad_pack(&format!("a pack entry header does not encode: {e}")))?
            as u64;
        let compressed = entry
            .compressed
            .as_deref()
            .ok_or_else(|| Error::internal("gix did not keep an entry's compressed bytes"))?;
        out.write_all(compressed)?;
        position += compressed.len() as u64;
        trailer = entry.trailer.or(trailer);
    }
    let count = u32::try_from(offsets.len())
        .map_err(|_| bad_pack("a pack cannot hold more than 2^32 objects"))?;
    let header = gix_pack::data::header::encode(gix_pack::data::Version::V2, count);
    // The header goes in at the start (over the placeholder, or into an empty file).
    let mut file = out.into_inner().map_err(|e| Error::from(e.into_error()))?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header)?;
    moved |= offsets.len() != declared;
    let end = position.max(header.len() as u64);
    let digest = match trailer {
        Some(digest) if !moved => {
            // Debug builds (every test) prove the shortcut right on every pack they take in.
            if cfg!(debug_assertions) && rehash(&mut file, end)? != digest {
                return Err(Error::internal(
                    "the spooled pack differs from the pack that was sent",
                ));
            }
            digest
        }
        _ => rehash(&mut file, end)?,
    };
    file.seek(SeekFrom::Start(end))?;
    file.write_all(digest.as_slice())?;
    file.sync_data()?;
    let len = file.stream_position()?;
    Ok(Spooled {
        path,
        len,
        offsets,
        in_pack_ref_deltas,
    })
}

/// The SHA-1 of the first `len` bytes of `file` (a pack's trailer).
fn rehash(file: &mut File, len: u64) -> Result<ObjectId> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = gix_hash::hasher(gix_hash::Kind::Sha1);
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(len));
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let n = chunk.len();
        reader.consume(n);
    }
    hasher
        .try_finalize()
        .map_err(|e| bad_pack(&format!("hashing the pack failed: {e}")))
}

/// A new, uniquely named pack file in the spool directory (which a push or a compaction
/// owns alone and removes when it ends).
fn new_spool_file(spool: &Path) -> Result<(PathBuf, File)> {
    for n in 0u32.. {
        let path = spool.join(format!("received-{n}.pack"));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal("no free spool file name"))
}

/// The fast path: one delta-tree traversal hashes, parses and collects links of every object.
fn traverse(snap: &Snapshot, spooled: &Spooled) -> Result<Checked> {
    let interrupt = AtomicBool::new(false);
    let tree = gix_pack::cache::delta::Tree::from_offsets_in_pack(
        &spooled.path,
        spooled.offsets.iter().copied(),
        &|offset: &u64| *offset,
        // Every REF_DELTA was completed or sends the pack down the two-pass path.
        &|_| Ok(None),
        &mut gix_utils::progress::Discard,
        &interrupt,
        gix_hash::Kind::Sha1,
    )
    .map_err(|e| bad_pack(&with_causes(&e)))?;
    let pack = gix_pack::data::File::at(&spooled.path, gix_hash::Kind::Sha1)
        .map_err(|e| bad_pack(&with_causes(&e)))?;
    let links = Links::new(snap);
    let inspect = |offset: &mut u64,
                   _: &dyn gix_utils::progress::Progress,
                   context: gix_pack::cache::delta::traverse::Context<'_>|
     -> gix_error::Result {
        let kind = context
            .entry
            .header
            .as_kind()
            .ok_or_else(|| gix_error::message("a resolved entry has no object kind"))?;
        let id = gix_object::compute_hash(gix_hash::Kind::Sha1, kind, context.decompressed)?;
        links.collect(id, *offset, kind, context.decompressed)
    };
    let traversed = tree.traverse(
        |range, pack: &gix_pack::data::File| pack.entry_slice(range),
        &pack,
        spooled.len - gix_hash::Kind::Sha1.len_in_bytes() as u64,
        inspect,
        gix_pack::cache::delta::traverse::Options {
            object_progress: Box::new(gix_utils::progress::Discard),
            size_progress: &mut gix_utils::progress::Discard,
            thread_limit: None,
            should_interrupt: &interrupt,
            object_hash: gix_hash::Kind::Sha1,
            alloc_limit_bytes: Some(super::odb::MAX_OBJECT_BYTES),
        },
    );
    links.finish(traversed.map(|_| ()))
}

/// What the traversal's workers share: ids found so far, commits, links to check, and the
/// first failure.
struct Links<'s> {
    snap: &'s Snapshot,
    state: Mutex<Checked>,
    failure: Mutex<Option<Error>>,
}

impl<'s> Links<'s> {
    fn new(snap: &'s Snapshot) -> Self {
        Links {
            snap,
            state: Mutex::new(Checked {
                entries: Vec::new(),
                commits: HashMap::new(),
                required: HashMap::new(),
            }),
            failure: Mutex::new(None),
        }
    }

    /// Records object `id` at `offset` with its links; a malformed object fails the pack.
    fn collect(&self, id: ObjectId, offset: u64, kind: Kind, data: &[u8]) -> gix_error::Result {
        match parse_links(id, kind, data) {
            Ok((named, commit)) => {
                let named: Vec<ObjectId> = named
                    .into_iter()
                    .filter(|target| !self.snap.odb.has(target))
                    .collect();
                let mut state = self
                    .state
                    .lock()
                    .map_err(|_| gix_error::message("the link table lock was poisoned"))?;
                state.entries.push((id, offset));
                for target in named {
                    state.required.entry(target).or_insert((kind, id));
                }
                if let Some(links) = commit {
                    state.commits.insert(id, links);
                }
                Ok(())
            }
            Err(e) => {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert(e);
                }
                Err(gix_error::message("a pushed object failed its checks").raise())
            }
        }
    }

    fn finish(self, traversed: gix_error::Result<()>) -> Result<Checked> {
        if let Some(e) = self.failure.into_inner().ok().flatten() {
            return Err(e);
        }
        traversed.map_err(|e| bad_pack(&with_causes(&e)))?;
        self.state
            .into_inner()
            .map_err(|_| Error::internal("the link table lock was poisoned"))
    }
}

/// Parses an object strictly; returns every object it names (gitlinks excepted: they point
/// into other repositories) and, for a commit, what fast-forward classification needs.
fn parse_links(
    id: ObjectId,
    kind: Kind,
    data: &[u8],
) -> Result<(Vec<ObjectId>, Option<CommitLinks>)> {
    let sha1 = gix_hash::Kind::Sha1;
    match kind {
        Kind::Commit => {
            let c = gix_object::CommitRef::from_bytes(data, sha1)
                .map_err(|e| bad_pack(&format!("commit {id} is malformed: {e}")))?;
            let parents: Vec<ObjectId> = c.parents().collect();
            let mut named = parents.clone();
            named.push(c.tree());
            let time = c.time().map_or(0, |t| t.seconds);
            Ok((named, Some(CommitLinks { time, parents })))
        }
        Kind::Tree => {
            let mut named = Vec::new();
            for entry in gix_object::TreeRefIter::from_bytes(data, sha1) {
                let entry = entry.map_err(|e| bad_pack(&format!("tree {id} is malformed: {e}")))?;
                if !entry.mode.is_commit() {
                    named.push(entry.oid.to_owned());
                }
            }
            Ok((named, None))
        }
        Kind::Tag => {
            let t = gix_object::TagRef::from_bytes(data, sha1)
                .map_err(|e| bad_pack(&format!("tag {id} is malformed: {e}")))?;
            Ok((vec![t.target()], None))
        }
        Kind::Blob => Ok((Vec::new(), None)),
    }
}

/// The slower path for packs with in-pack `REF_DELTA`s: gix indexes the spooled pack (ids
/// first), then a second traversal parses every object.
mod two_pass {
    use super::{Checked, Links, Snapshot, Spooled, bad_pack, with_causes};
    use crate::error::Result;
    use std::io::BufReader;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    pub(super) fn check(snap: &Snapshot, spooled: &Spooled, spool: &Path) -> Result<Checked> {
        let interrupt = AtomicBool::new(false);
        let mut reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&spooled.path)?);
        let outcome = gix_pack::Bundle::write_to_directory(
            &mut reader,
            Some(spool),
            &mut gix_utils::progress::Discard,
            &interrupt,
            None::<gix_object::find::Never>,
            gix_hash::Kind::Sha1,
            gix_pack::bundle::write::Options {
                thread_limit: None,
                iteration_mode: gix_pack::data::input::Mode::Verify,
                index_version: gix_pack::index::Version::V2,
                alloc_limit_bytes: Some(crate::git::odb::MAX_OBJECT_BYTES),
                compression: gix_zlib::Compression::default(),
            },
        )
        .map_err(|e| bad_pack(&with_causes(&e)))?;
        let (Some(index_path), Some(pack_path)) = (outcome.index_path, outcome.data_path) else {
            return Err(bad_pack("the spooled pack indexed as empty"));
        };
        let bundle = gix_pack::Bundle::at(&index_path, gix_hash::Kind::Sha1)
            .map_err(|e| bad_pack(&e.to_string()))?;
        let links = Links::new(snap);
        let traversed = bundle.index.traverse(
            &bundle.pack,
            &mut gix_utils::progress::Discard,
            &interrupt,
            |kind, data, entry, _| links.collect(entry.oid, entry.pack_offset, kind, data),
            gix_pack::index::traverse::Options {
                traversal: gix_pack::index::traverse::Algorithm::DeltaTreeLookup,
                thread_limit: None,
                // gix has just hashed every object and verified the pack's checksum.
                check:
                    gix_pack::index::traverse::SafetyCheck::SkipFileAndObjectChecksumVerification,
                alloc_limit_bytes: Some(crate::git::odb::MAX_OBJECT_BYTES),
                make_pack_lookup_cache: || gix_pack::cache::Never,
            },
        );
        drop(bundle);
        // gix kept its own copy of the pack; the spooled one (same bytes) is what is sealed.
        std::fs::remove_file(&pack_path)?;
        std::fs::remove_file(&index_path)?;
        let _ = std::fs::remove_file(pack_path.with_extension("keep"));
        links.finish(traversed.map(|_| ()))
    }
}
