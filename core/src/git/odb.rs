//! A repository's object database: the objects of all its sealed packs behind one
//! object id → (pack, offset) map, so a lookup is one hash probe. It implements gix's lookup
//! traits, so gix's walks, thin-pack completion and pack generation run on it directly.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

use gix_hash::{ObjectId, oid};
use gix_object::Kind;
use gix_pack::data::entry::{Header, Location};

use super::delta;
use super::pack::{PackIndex, SealedPack, corrupt};
use crate::error::{Error, Result};

/// The largest object codekeep decodes (and so the most memory one object can take).
pub(crate) const MAX_OBJECT_BYTES: usize = 1 << 31;
/// Bytes of decoded delta bases kept for reuse.
const BASE_CACHE_BYTES: usize = 64 << 20;
/// Longest delta chain followed (git's default maximum depth is 50; this only stops loops).
const MAX_CHAIN: usize = 10_000;
/// Room for the longest pack entry header: type and size, then an offset or a base id.
const MAX_ENTRY_HEADER: u64 = 32;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Position in `Objects::packs`.
    pack: u32,
    offset: u64,
    entry_size: u64,
}

/// Everything known about a repository's stored objects; immutable once loaded.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    packs: Vec<SealedPack>,
    /// Pack number → position in `packs`.
    positions: HashMap<u32, u32>,
    slots: gix_hashtable::HashMap<ObjectId, Slot>,
    /// Per pack position: `(offset, id)` sorted by offset.
    by_offset: Vec<Vec<(u64, ObjectId)>>,
}

impl Objects {
    /// Adds a pack and its index. An object in several packs is served from the first one.
    pub(crate) fn add_pack(&mut self, pack: SealedPack, index: &PackIndex) -> Result<()> {
        if index.pack_len != pack.len {
            return Err(corrupt("a pack index does not describe its pack"));
        }
        let position = u32::try_from(self.packs.len())
            .map_err(|_| Error::invalid("too many packs in one repository"))?;
        let mut offsets: Vec<(u64, ObjectId)> =
            index.entries.iter().map(|(id, off)| (*off, *id)).collect();
        offsets.sort_unstable_by_key(|e| e.0);
        // Entries end where the next begins; the last one where the 20-byte trailer begins.
        let trailer = pack
            .len
            .checked_sub(20)
            .ok_or_else(|| corrupt("a pack is shorter than its trailer"))?;
        for (i, (offset, id)) in offsets.iter().enumerate() {
            let end = offsets.get(i + 1).map_or(trailer, |next| next.0);
            let entry_size = end
                .checked_sub(*offset)
                .filter(|n| *n > 0)
                .ok_or_else(|| corrupt("pack index offsets overlap"))?;
            self.slots.entry(*id).or_insert(Slot {
                pack: position,
                offset: *offset,
                entry_size,
            });
        }
        self.positions.insert(pack.number, position);
        self.packs.push(pack);
        self.by_offset.push(offsets);
        Ok(())
    }

    /// Numbers of the packs loaded.
    pub(crate) fn pack_numbers(&self) -> Vec<u32> {
        self.packs.iter().map(|p| p.number).collect()
    }

    /// The ids of every object pack `number` holds.
    pub(crate) fn ids_in_pack(&self, number: u32) -> Vec<ObjectId> {
        self.positions
            .get(&number)
            .and_then(|p| self.by_offset.get(*p as usize))
            .map(|list| list.iter().map(|(_, id)| *id).collect())
            .unwrap_or_default()
    }

    fn pack(&self, position: u32) -> Result<&SealedPack> {
        self.packs
            .get(position as usize)
            .ok_or_else(|| Error::internal("a slot names a pack that is not loaded"))
    }

    fn entry_size_at(&self, position: u32, offset: u64) -> Result<u64> {
        let list = self
            .by_offset
            .get(position as usize)
            .ok_or_else(|| Error::internal("a slot names a pack that is not loaded"))?;
        let at = list
            .binary_search_by_key(&offset, |e| e.0)
            .map_err(|_| corrupt("a delta names a base at an offset that holds no object"))?;
        let id = list
            .get(at)
            .map_or_else(|| ObjectId::null(gix_hash::Kind::Sha1), |e| e.1);
        self.slots
            .get(&id)
            .filter(|s| s.pack == position && s.offset == offset)
            .map(|s| s.entry_size)
            .map_or_else(
                || {
                    // The id is served from another pack; compute this entry's size here.
                    let pack = self.pack(position)?;
                    let end = list
                        .get(at + 1)
                        .map_or(pack.len.saturating_sub(20), |next| next.0);
                    Ok(end - offset)
                },
                Ok,
            )
    }
}

/// A decoded object: its kind and content.
type Decoded = (Kind, Arc<Vec<u8>>);

/// A cache of decoded objects that served as delta bases, bounded by bytes.
#[derive(Debug, Default)]
struct BaseCache {
    bytes: usize,
    order: VecDeque<(u32, u64)>,
    items: HashMap<(u32, u64), Decoded>,
}

impl BaseCache {
    fn get(&self, key: (u32, u64)) -> Option<Decoded> {
        self.items.get(&key).map(|(k, d)| (*k, Arc::clone(d)))
    }

    fn insert(&mut self, key: (u32, u64), kind: Kind, data: Arc<Vec<u8>>) {
        if data.len() > BASE_CACHE_BYTES / 4 || self.items.contains_key(&key) {
            return;
        }
        self.bytes += data.len();
        self.items.insert(key, (kind, data));
        self.order.push_back(key);
        while self.bytes > BASE_CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, d)) = self.items.remove(&old) {
                self.bytes -= d.len();
            }
        }
    }
}

/// A handle on a repository's objects, cheap to clone and shareable between threads.
#[derive(Debug, Clone)]
pub(crate) struct Odb {
    objects: Arc<Objects>,
    bases: Arc<Mutex<BaseCache>>,
}

impl Odb {
    pub(crate) fn new(objects: Arc<Objects>) -> Self {
        Odb {
            objects,
            bases: Arc::new(Mutex::new(BaseCache::default())),
        }
    }

    /// Numbers of the packs this view reads.
    pub(crate) fn pack_numbers(&self) -> Vec<u32> {
        self.objects.pack_numbers()
    }

    /// The ids of every object pack `number` holds.
    pub(crate) fn ids_in_pack(&self, number: u32) -> Vec<ObjectId> {
        self.objects.ids_in_pack(number)
    }

    /// True when the object is stored.
    pub(crate) fn has(&self, id: &oid) -> bool {
        self.objects.slots.contains_key(id)
    }

    /// The object's kind and content, or `None` when it is not stored.
    pub(crate) fn find(&self, id: &oid) -> Result<Option<(Kind, Arc<Vec<u8>>)>> {
        let Some(slot) = self.objects.slots.get(id).copied() else {
            return Ok(None);
        };
        let (kind, data) = self.decode(slot)?;
        Ok(Some((kind, data)))
    }

    /// The object's kind and content, as an error when it is missing.
    pub(crate) fn get(&self, id: &oid) -> Result<(Kind, Arc<Vec<u8>>)> {
        self.find(id)?
            .ok_or_else(|| corrupt(&format!("object {id} is missing from the repository")))
    }

    /// The kind and size of an object without applying deltas beyond what its size needs.
    pub(crate) fn header(&self, id: &oid) -> Result<Option<(Kind, u64)>> {
        match self.find(id)? {
            Some((kind, data)) => Ok(Some((kind, data.len() as u64))),
            None => Ok(None),
        }
    }

    /// Decodes the entry in `slot`, following its delta chain back to a base object.
    fn decode(&self, slot: Slot) -> Result<(Kind, Arc<Vec<u8>>)> {
        let mut chain: Vec<(u32, u64, Vec<u8>)> = Vec::new();
        let mut at = slot;
        let (kind, mut data) = loop {
            if chain.len() > MAX_CHAIN {
                return Err(corrupt("a delta chain is too long (or loops)"));
            }
            if let Some(hit) = self.cached_base(at.pack, at.offset)? {
                break hit;
            }
            let pack = self.objects.pack(at.pack)?;
            let head = pack.read(at.offset, MAX_ENTRY_HEADER.min(at.entry_size))?;
            let entry = gix_pack::data::Entry::from_bytes(&head, at.offset, gix_hash::Kind::Sha1)
                .map_err(|e| corrupt(&format!("a pack entry header is malformed: {e}")))?;
            let header_len = entry.data_offset - at.offset;
            let compressed = pack.read(entry.data_offset, at.entry_size - header_len)?;
            let body = inflate(&compressed, entry.decompressed_size)?;
            match entry.header {
                Header::Commit => break (Kind::Commit, Arc::new(body)),
                Header::Tree => break (Kind::Tree, Arc::new(body)),
                Header::Blob => break (Kind::Blob, Arc::new(body)),
                Header::Tag => break (Kind::Tag, Arc::new(body)),
                Header::OfsDelta { base_distance } => {
                    chain.push((at.pack, at.offset, body));
                    let base = at
                        .offset
                        .checked_sub(base_distance)
                        .filter(|b| *b >= 12)
                        .ok_or_else(|| corrupt("an ofs-delta points before its pack"))?;
                    at = Slot {
                        pack: at.pack,
                        offset: base,
                        entry_size: self.objects.entry_size_at(at.pack, base)?,
                    };
                }
                Header::RefDelta { base_id } => {
                    chain.push((at.pack, at.offset, body));
                    at = *self
                        .objects
                        .slots
                        .get(&base_id)
                        .ok_or_else(|| corrupt(&format!("delta base {base_id} is missing")))?;
                }
            }
        };
        // Apply the deltas from the base outwards; keep what served as a base.
        while let Some((pack, offset, delta_bytes)) = chain.pop() {
            // Siblings in a pack often share a base: keep every base a delta was applied to.
            self.bases
                .lock()
                .map_err(|_| Error::internal("the base cache lock was poisoned"))?
                .insert((at.pack, at.offset), kind, Arc::clone(&data));
            data = Arc::new(delta::apply(&data, &delta_bytes, MAX_OBJECT_BYTES)?);
            at = Slot {
                pack,
                offset,
                entry_size: 0,
            };
        }
        Ok((kind, data))
    }

    fn cached_base(&self, pack: u32, offset: u64) -> Result<Option<Decoded>> {
        Ok(self
            .bases
            .lock()
            .map_err(|_| Error::internal("the base cache lock was poisoned"))?
            .get((pack, offset)))
    }

    fn location(&self, id: &oid) -> Option<Location> {
        let slot = self.objects.slots.get(id)?;
        let pack = self.objects.packs.get(slot.pack as usize)?;
        Some(Location {
            pack_id: pack.number,
            entry_size: usize::try_from(slot.entry_size).ok()?,
            pack_offset: slot.offset,
        })
    }
}

/// Inflates one zlib stream that must produce exactly `size` bytes.
pub(crate) fn inflate(compressed: &[u8], size: u64) -> Result<Vec<u8>> {
    let size = usize::try_from(size)
        .ok()
        .filter(|n| *n <= MAX_OBJECT_BYTES)
        .ok_or_else(|| Error::invalid("an object is larger than codekeep decodes"))?;
    let mut out = Vec::with_capacity(size);
    let mut decoder = flate2::read::ZlibDecoder::new(compressed);
    decoder
        .by_ref()
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(&format!("a pack entry does not inflate: {e}")))?;
    if out.len() != size {
        return Err(corrupt("a pack entry inflates to the wrong size"));
    }
    Ok(out)
}

fn gix_err(e: Error) -> gix_error::Error {
    gix_error::Error::from_error(e)
}

impl gix_object::Find for Odb {
    fn try_find<'a>(
        &self,
        id: &oid,
        buffer: &'a mut Vec<u8>,
    ) -> gix_error::Result<Option<gix_object::Data<'a>>> {
        match self.find(id).map_err(gix_err)? {
            Some((kind, data)) => {
                buffer.clear();
                buffer.extend_from_slice(&data);
                Ok(Some(gix_object::Data {
                    kind,
                    object_hash: gix_hash::Kind::Sha1,
                    data: buffer.as_slice(),
                }))
            }
            None => Ok(None),
        }
    }
}

impl gix_object::Exists for Odb {
    fn exists(&self, id: &oid) -> bool {
        self.has(id)
    }
}

impl gix_object::FindHeader for Odb {
    fn try_header(&self, id: &oid) -> gix_error::Result<Option<gix_object::Header>> {
        Ok(self
            .header(id)
            .map_err(gix_err)?
            .map(|(kind, size)| gix_object::Header { kind, size }))
    }
}

impl gix_pack::Find for Odb {
    fn contains(&self, id: &oid) -> bool {
        self.has(id)
    }

    fn try_find_cached<'a>(
        &self,
        id: &oid,
        buffer: &'a mut Vec<u8>,
        _pack_cache: &mut dyn gix_pack::cache::DecodeEntry,
    ) -> gix_error::Result<Option<(gix_object::Data<'a>, Option<Location>)>> {
        let location = self.location(id);
        match self.find(id).map_err(gix_err)? {
            Some((kind, data)) => {
                buffer.clear();
                buffer.extend_from_slice(&data);
                Ok(Some((
                    gix_object::Data {
                        kind,
                        object_hash: gix_hash::Kind::Sha1,
                        data: buffer.as_slice(),
                    },
                    location,
                )))
            }
            None => Ok(None),
        }
    }

    fn location_by_oid(&self, id: &oid, _buf: &mut Vec<u8>) -> gix_error::Result<Option<Location>> {
        Ok(self.location(id))
    }

    fn pack_offsets_and_oid(
        &self,
        pack_id: u32,
    ) -> gix_error::Result<Option<Vec<(u64, ObjectId)>>> {
        Ok(self
            .objects
            .positions
            .get(&pack_id)
            .and_then(|p| self.objects.by_offset.get(*p as usize))
            .cloned())
    }

    fn entry_by_location(&self, location: &Location) -> Option<gix_pack::find::Entry> {
        let position = *self.objects.positions.get(&location.pack_id)?;
        let pack = self.objects.packs.get(position as usize)?;
        let data = pack
            .read(location.pack_offset, location.entry_size as u64)
            .ok()?;
        Some(gix_pack::find::Entry {
            data,
            version: gix_pack::data::Version::V2,
        })
    }
}
