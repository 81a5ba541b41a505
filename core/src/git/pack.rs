//! Packs at rest: each pack exactly as git wrote it, sealed in one envelope under the
//! repository's data key, beside a sealed index of its objects (docs/FORMAT.md §6).
//!
//! Reads decrypt only the segments they touch; a small cache of decrypted segments serves the
//! many small, mostly sequential reads of pack generation and object decoding.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use gix_hash::ObjectId;

use crate::crypto::{EncryptionContext, EnvelopeHeader, EnvelopeOpener, RangeSource};
use crate::error::{Error, ErrorKind, Result};
use crate::store::BlobStore;

/// Decrypted segments kept per pack (64 KiB each).
const CACHED_SEGMENTS: usize = 32;
/// Reads longer than this many segments bypass the cache (large blobs are read once).
const DIRECT_READ_SEGMENTS: u64 = 4;

const INDEX_MAGIC: &[u8; 4] = b"CKPX";
const INDEX_VERSION: u8 = 1;
/// A pack entry in the index: object id and offset.
const INDEX_ENTRY: usize = 20 + 8;
const INDEX_HEADER: usize = 4 + 1 + 8 + 4;

/// The encryption context of a repository's pack (`role` = `pack`) or pack index (`index`):
/// a sealed file only opens at its own place.
pub(crate) fn context(repository_id: &str, number: u32, role: &str) -> EncryptionContext {
    EncryptionContext::new()
        .with("codekeep:repository", repository_id)
        .with("codekeep:pack", &number.to_string())
        .with("codekeep:role", role)
}

/// Blob keys of a repository's pack and its index.
pub(crate) fn blob_keys(repository_id: &str, number: u32) -> (String, String) {
    (
        format!("git/{repository_id}/pack-{number:010}.pack"),
        format!("git/{repository_id}/pack-{number:010}.idx"),
    )
}

/// A blob read by range, as an envelope source.
struct BlobSource {
    blobs: Arc<dyn BlobStore>,
    key: String,
    len: u64,
}

impl RangeSource for BlobSource {
    fn len(&self) -> Result<u64> {
        Ok(self.len)
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.blobs.read_range(&self.key, offset, len)
    }
}

/// One stored pack, open for reading.
pub(crate) struct SealedPack {
    /// The pack's number in its repository (gix's `pack_id`).
    pub number: u32,
    source: BlobSource,
    opener: EnvelopeOpener,
    /// Plaintext length: the pack as git wrote it, trailer included.
    pub len: u64,
    segment: u64,
    cache: Mutex<SegmentCache>,
}

impl std::fmt::Debug for SealedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedPack")
            .field("number", &self.number)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct SegmentCache {
    order: VecDeque<(u64, Arc<Vec<u8>>)>,
}

impl SegmentCache {
    fn get(&mut self, index: u64) -> Option<Arc<Vec<u8>>> {
        let at = self.order.iter().position(|(i, _)| *i == index)?;
        let hit = self.order.remove(at)?;
        let data = Arc::clone(&hit.1);
        self.order.push_front(hit);
        Some(data)
    }

    fn insert(&mut self, index: u64, data: Arc<Vec<u8>>) {
        if self.order.len() >= CACHED_SEGMENTS {
            self.order.pop_back();
        }
        self.order.push_front((index, data));
    }
}

impl SealedPack {
    /// Opens the sealed pack `number` of a repository with its data key.
    pub(crate) fn open(
        blobs: &Arc<dyn BlobStore>,
        repository_id: &str,
        number: u32,
        data_key: &[u8],
    ) -> Result<Self> {
        let (key, _) = blob_keys(repository_id, number);
        let source = BlobSource {
            len: blobs.size(&key)?,
            blobs: Arc::clone(blobs),
            key,
        };
        let header = EnvelopeHeader::read_at(&source)?;
        let opener =
            EnvelopeOpener::new(&header, data_key, &context(repository_id, number, "pack"))?;
        let len = opener.plaintext_len(source.len)?;
        Ok(SealedPack {
            number,
            segment: u64::from(header.segment_size()),
            source,
            opener,
            len,
            cache: Mutex::new(SegmentCache::default()),
        })
    }

    /// `len` plaintext bytes at `offset`.
    pub(crate) fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| corrupt("a read runs past the end of a pack"))?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let first = offset / self.segment;
        let last = (end - 1) / self.segment;
        if last - first >= DIRECT_READ_SEGMENTS {
            return self.opener.read_range(&self.source, offset, len);
        }
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        for index in first..=last {
            let segment = self.segment_plaintext(index)?;
            let seg_start = index * self.segment;
            let from = usize::try_from(offset.saturating_sub(seg_start)).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(seg_start + self.segment) - seg_start)
                .unwrap_or(usize::MAX);
            out.extend_from_slice(
                segment
                    .get(from..to)
                    .ok_or_else(|| corrupt("a pack segment is shorter than expected"))?,
            );
        }
        Ok(out)
    }

    fn segment_plaintext(&self, index: u64) -> Result<Arc<Vec<u8>>> {
        if let Some(hit) = self.cache.lock().map_err(|_| poisoned())?.get(index) {
            return Ok(hit);
        }
        let start = index * self.segment;
        let len = self.segment.min(self.len - start);
        let data = Arc::new(self.opener.read_range(&self.source, start, len)?);
        self.cache
            .lock()
            .map_err(|_| poisoned())?
            .insert(index, Arc::clone(&data));
        Ok(data)
    }
}

/// The objects of one pack: `(id, offset)` sorted by id, and the pack's plaintext length.
#[derive(Debug, Default)]
pub(crate) struct PackIndex {
    pub pack_len: u64,
    pub entries: Vec<(ObjectId, u64)>,
}

impl PackIndex {
    /// The index's plaintext (docs/FORMAT.md §6.2).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let count = u32::try_from(self.entries.len())
            .map_err(|_| Error::invalid("a pack holds more than 2^32 objects"))?;
        let mut out = Vec::with_capacity(INDEX_HEADER + self.entries.len() * INDEX_ENTRY);
        out.extend_from_slice(INDEX_MAGIC);
        out.push(INDEX_VERSION);
        out.extend_from_slice(&self.pack_len.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for (id, offset) in &self.entries {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        Ok(out)
    }

    /// Parses an index's plaintext, checking its shape (sorted, unique ids; offsets inside the
    /// pack).
    pub(crate) fn decode(data: &[u8]) -> Result<Self> {
        let header = data
            .get(..INDEX_HEADER)
            .ok_or_else(|| corrupt("a pack index is truncated"))?;
        if header.get(..4) != Some(INDEX_MAGIC.as_slice()) || header.get(4) != Some(&INDEX_VERSION)
        {
            return Err(corrupt("a pack index has an unknown format"));
        }
        let pack_len = u64::from_be_bytes(array(header.get(5..13))?);
        let count = u32::from_be_bytes(array(header.get(13..17))?) as usize;
        let body = data.get(INDEX_HEADER..).unwrap_or_default();
        if body.len() != count.saturating_mul(INDEX_ENTRY) {
            return Err(corrupt("a pack index has the wrong length"));
        }
        let mut entries = Vec::with_capacity(count);
        for chunk in body.chunks_exact(INDEX_ENTRY) {
            let (id, offset) = chunk.split_at(20);
            let id = ObjectId::try_from(id).map_err(|_| corrupt("a pack index id is malformed"))?;
            let offset = u64::from_be_bytes(array(Some(offset))?);
            if offset < 12 || offset >= pack_len {
                return Err(corrupt("a pack index offset lies outside its pack"));
            }
            if entries.last().is_some_and(|(prev, _)| *prev >= id) {
                return Err(corrupt("a pack index is not sorted"));
            }
            entries.push((id, offset));
        }
        Ok(PackIndex { pack_len, entries })
    }
}

/// Seals `plaintext` under the repository's data key into the blob `key`.
pub(crate) fn seal_blob(
    blobs: &dyn BlobStore,
    key: &str,
    data_key: &[u8],
    key_ref: &[u8],
    context: &EncryptionContext,
    src: &mut dyn std::io::Read,
) -> Result<u64> {
    let writer = blobs.writer(key)?;
    let mut sealer = crate::crypto::SealWriter::new(writer, data_key, key_ref, context)?;
    std::io::copy(src, &mut sealer)?;
    let mut writer = sealer.finish()?;
    writer.flush()?;
    writer.finish()
}

fn array<const N: usize>(bytes: Option<&[u8]>) -> Result<[u8; N]> {
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("a pack index is truncated"))
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::IntegrityFailure,
        format!("corrupt repository data: {what}"),
    )
}

fn poisoned() -> Error {
    Error::internal("a pack cache lock was poisoned")
}
