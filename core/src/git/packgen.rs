//! Streaming a pack of chosen objects: gix-pack copies stored entries (deltas included) out of
//! the sealed packs where it can and re-deflates the rest; nothing is held whole in memory.

use std::io::Write;

use gix_hash::ObjectId;
use gix_pack::data::output;

use super::odb::Odb;
use super::pack::corrupt;
use crate::error::{Error, Result};

/// Objects handed to a worker at a time.
const CHUNK: usize = 64;

/// Writes a pack holding exactly `objects` (each present in `odb`) to `out`. `reuse_deltas`
/// is false when the client did not ask for `ofs-delta`: every object then goes out whole.
/// `on_chunk` runs between chunks (progress and keepalives).
pub(crate) fn write_pack(
    odb: &Odb,
    objects: &[ObjectId],
    reuse_deltas: bool,
    out: &mut dyn Write,
    on_chunk: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<()> {
    // gix writes the object count first and cannot drop an object later: check them all now.
    if let Some(missing) = objects.iter().find(|id| !odb.has(id)) {
        return Err(corrupt(&format!(
            "object {missing} is missing from the repository"
        )));
    }
    let count = u32::try_from(objects.len())
        .map_err(|_| Error::invalid("a pack cannot hold more than 2^32 objects"))?;
    let counts: Vec<output::Count> = objects
        .iter()
        .map(|id| output::Count {
            id: *id,
            entry_pack_location: output::count::PackLocation::NotLookedUp,
        })
        .collect();
    let db = DeltaChoice {
        odb: odb.clone(),
        reuse_deltas,
    };
    let entries = output::entry::iter_from_counts(
        counts,
        db,
        Box::new(gix_utils::progress::Discard),
        output::entry::iter_from_counts::Options {
            thread_limit: Some(1),
            chunk_size: CHUNK,
            ..Default::default()
        },
    )
    .map_err(|e| gix_error(&e))?;
    let in_order = gix_parallel::InOrderIter::from(entries);
    let mut writer = output::bytes::FromEntriesIter::new(
        in_order,
        out,
        count,
        gix_pack::data::Version::V2,
        gix_hash::Kind::Sha1,
    );
    let mut written = 0usize;
    for step in writer.by_ref() {
        step.map_err(|e| gix_error(&e))?;
        written += 1;
        on_chunk(written)?;
    }
    Ok(())
}

/// The object database as gix-pack sees it: without delta reuse when the client cannot take
/// offset deltas (every entry is then re-deflated whole).
#[derive(Clone)]
struct DeltaChoice {
    odb: Odb,
    reuse_deltas: bool,
}

impl gix_pack::Find for DeltaChoice {
    fn contains(&self, id: &gix_hash::oid) -> bool {
        gix_pack::Find::contains(&self.odb, id)
    }

    fn try_find_cached<'a>(
        &self,
        id: &gix_hash::oid,
        buffer: &'a mut Vec<u8>,
        pack_cache: &mut dyn gix_pack::cache::DecodeEntry,
    ) -> gix_error::Result<
        Option<(
            gix_object::Data<'a>,
            Option<gix_pack::data::entry::Location>,
        )>,
    > {
        let found = self.odb.try_find_cached(id, buffer, pack_cache)?;
        Ok(found.map(|(data, loc)| (data, loc.filter(|_| self.reuse_deltas))))
    }

    fn location_by_oid(
        &self,
        id: &gix_hash::oid,
        buf: &mut Vec<u8>,
    ) -> gix_error::Result<Option<gix_pack::data::entry::Location>> {
        if self.reuse_deltas {
            self.odb.location_by_oid(id, buf)
        } else {
            Ok(None)
        }
    }

    fn pack_offsets_and_oid(
        &self,
        pack_id: u32,
    ) -> gix_error::Result<Option<Vec<(u64, ObjectId)>>> {
        self.odb.pack_offsets_and_oid(pack_id)
    }

    fn entry_by_location(
        &self,
        location: &gix_pack::data::entry::Location,
    ) -> Option<gix_pack::find::Entry> {
        self.odb.entry_by_location(location)
    }
}

fn gix_error(e: &gix_error::Error) -> Error {
    if let Some(ours) = e.downcast_any_ref::<Error>() {
        return Error::new(ours.kind(), ours.message().to_owned());
    }
    Error::new(
        crate::error::ErrorKind::Io,
        format!("writing the pack failed: {e}"),
    )
}
