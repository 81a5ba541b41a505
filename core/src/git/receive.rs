//! receive-pack: what `git push` talks to (gitprotocol-pack, always v0). Commands are read,
//! the pack is taken in by [`super::ingest`] (spooled, thin bases completed from the store,
//! every object hashed, parsed and its links checked), and only then are refs moved, all at
//! once through the repository's [`PushSink`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use gix_hash::ObjectId;
use gix_object::Kind;

use super::pktline::{self, Packet, PacketReader, Sideband, SidebandMode, protocol};
use super::{Snapshot, agent};
use crate::error::{Error, ErrorKind, Result};

/// Capabilities of the receive-pack advertisement: exactly what is implemented here.
const CAPABILITIES: &[&str] = &[
    "report-status",
    "report-status-v2",
    "delete-refs",
    "side-band-64k",
    "quiet",
    "atomic",
    "ofs-delta",
    "push-options",
    "object-format=sha1",
];

/// One ref a push asks to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefUpdate {
    pub name: String,
    /// The value the client believes the ref has (zero: the ref must not exist).
    pub old: ObjectId,
    /// The new value (zero: delete the ref).
    pub new: ObjectId,
    /// An update whose old value is not an ancestor of its new one (git's non-fast-forward,
    /// which a client sends only with `--force`); classified once the pack is in.
    pub forced: bool,
}

impl RefUpdate {
    pub(crate) fn is_delete(&self) -> bool {
        self.new.is_null()
    }

    pub(crate) fn is_create(&self) -> bool {
        self.old.is_null()
    }
}

/// A pack that arrived with a push, indexed and checked, still in the spool.
#[derive(Debug)]
pub(crate) struct ReceivedPack {
    pub pack_path: std::path::PathBuf,
    /// `(id, offset)` of every object, sorted by id.
    pub entries: Vec<(ObjectId, u64)>,
    pub pack_len: u64,
    /// The pack's commits: committer time and parents (for fast-forward classification).
    pub commits: HashMap<ObjectId, CommitLinks>,
}

/// What fast-forward classification needs of a commit.
#[derive(Debug, Clone)]
pub(crate) struct CommitLinks {
    pub time: i64,
    pub parents: Vec<ObjectId>,
}

/// Where a push lands: the repository's side of receive-pack.
pub(crate) trait PushSink {
    /// Stores the pack (when there is one) and applies the updates: each either succeeds or
    /// gets a reason; with `atomic`, all succeed or none does. Nothing is visible before this
    /// returns.
    fn apply(
        &mut self,
        pack: Option<ReceivedPack>,
        updates: &[RefUpdate],
        atomic: bool,
        push_options: &[String],
    ) -> Result<Vec<Option<String>>>;
}

/// Writes the receive-pack advertisement.
pub(crate) fn advertise(snap: &Snapshot, out: &mut dyn Write) -> Result<()> {
    let mut caps: Vec<String> = CAPABILITIES.iter().map(|c| (*c).to_owned()).collect();
    caps.push(format!("agent={}", agent()));
    super::upload::write_advertisement(out, &snap.refs, &caps.join(" "))
}

#[derive(Debug, Default)]
#[expect(clippy::struct_excessive_bools, reason = "capabilities are flags")]
struct Requested {
    report_status: bool,
    report_status_v2: bool,
    sideband: bool,
    quiet: bool,
    atomic: bool,
    push_options: bool,
}

/// Serves one push: reads commands (and push options and the pack) from `input`, applies them
/// through `sink`, reports to `out`. Returns the updates and their outcomes for the audit
/// record; an error only when the exchange itself broke.
#[expect(clippy::too_many_lines, reason = "one exchange, read top to bottom")]
pub(crate) fn serve<R: Read>(
    snap: &Snapshot,
    input: &mut PacketReader<R>,
    out: &mut dyn Write,
    spool: &Path,
    sink: &mut dyn PushSink,
) -> Result<Vec<(RefUpdate, Option<String>)>> {
    let mut updates: Vec<RefUpdate> = Vec::new();
    let mut caps = Requested::default();
    loop {
        let packet = match input.read()? {
            None if updates.is_empty() => return Ok(Vec::new()),
            None => return Err(protocol("the push ended before its command list did")),
            Some(p) => p,
        };
        let bytes = match packet {
            Packet::Flush => break,
            Packet::Data(d) => d.strip_suffix(b"\n").unwrap_or(d),
            _ => return Err(protocol("unexpected packet in the command list")),
        };
        let (command, cap_text) = match bytes.iter().position(|b| *b == 0) {
            Some(nul) if updates.is_empty() => (
                bytes.get(..nul).unwrap_or_default(),
                bytes.get(nul + 1..).unwrap_or_default(),
            ),
            Some(_) => return Err(protocol("capabilities after the first command")),
            None => (bytes, &b""[..]),
        };
        for cap in std::str::from_utf8(cap_text)
            .map_err(|_| protocol("capabilities are not text"))?
            .split(' ')
        {
            match cap {
                "report-status" => caps.report_status = true,
                "report-status-v2" => caps.report_status_v2 = true,
                "side-band-64k" => caps.sideband = true,
                "quiet" => caps.quiet = true,
                "atomic" => caps.atomic = true,
                "push-options" => caps.push_options = true,
                _ => {}
            }
        }
        let command =
            std::str::from_utf8(command).map_err(|_| protocol("a command is not text"))?;
        if command.starts_with("shallow ") {
            return Err(protocol(
                "pushing from a shallow repository is not supported",
            ));
        }
        updates.push(parse_command(command)?);
    }
    if updates.is_empty() {
        // A flush alone (git's `0000` probe before a large push over HTTP): nothing to do,
        // and nothing to report.
        return Ok(Vec::new());
    }
    let mut push_options = Vec::new();
    if caps.push_options {
        loop {
            match input.require()? {
                Packet::Flush => break,
                p @ Packet::Data(_) => push_options.push(
                    p.text()
                        .ok_or_else(|| protocol("a push option is not text"))?
                        .to_owned(),
                ),
                _ => return Err(protocol("unexpected packet in the push options")),
            }
        }
    }
    let needs_pack = updates.iter().any(|u| !u.is_delete());
    let mode = if caps.sideband {
        SidebandMode::Large
    } else {
        SidebandMode::None
    };
    let results = if needs_pack {
        match super::ingest::index_pack(snap, input.inner_mut(), spool) {
            Ok(received) => {
                let outcome = classify(snap, received.as_ref(), &mut updates).and_then(|()| {
                    let refused = check_tips(snap, received.as_ref(), &updates)?;
                    apply_unrefused(
                        sink,
                        received,
                        &updates,
                        refused,
                        caps.atomic,
                        &push_options,
                    )
                });
                match outcome {
                    Ok(results) => Ok(results),
                    Err(e) => Err(("ok".to_owned(), e)),
                }
            }
            Err(e) => Err((e.message().to_owned(), e)),
        }
    } else {
        classify(snap, None, &mut updates)
            .and_then(|()| sink.apply(None, &updates, caps.atomic, &push_options))
            .map_err(|e| ("ok".to_owned(), e))
    };
    let (unpack, results) = match results {
        Ok(results) => ("ok".to_owned(), results),
        Err((unpack, e)) => {
            let reason = if unpack == "ok" {
                e.message().to_owned()
            } else {
                "unpacker error".to_owned()
            };
            (unpack, vec![Some(reason); updates.len()])
        }
    };
    if caps.report_status || caps.report_status_v2 {
        let mut report: Vec<u8> = Vec::new();
        pktline::text(&mut report, &format!("unpack {}", one_line(&unpack)))?;
        for (update, result) in updates.iter().zip(&results) {
            match result {
                None => pktline::text(&mut report, &format!("ok {}", update.name))?,
                Some(reason) => pktline::text(
                    &mut report,
                    &format!("ng {} {}", update.name, one_line(reason)),
                )?,
            }
        }
        pktline::flush(&mut report)?;
        let mut band = Sideband::new(out, mode, !caps.quiet);
        band.write_all(&report)?;
        if caps.sideband {
            pktline::flush(band.inner())?;
        }
    }
    out.flush()?;
    Ok(updates.into_iter().zip(results).collect())
}

/// Hands the sink the updates nothing refused yet; merges the two verdicts. With `atomic`,
/// one refusal refuses them all.
fn apply_unrefused(
    sink: &mut dyn PushSink,
    pack: Option<ReceivedPack>,
    updates: &[RefUpdate],
    refused: Vec<Option<String>>,
    atomic: bool,
    push_options: &[String],
) -> Result<Vec<Option<String>>> {
    if refused.iter().all(Option::is_none) {
        return sink.apply(pack, updates, atomic, push_options);
    }
    if atomic {
        return Ok(refused
            .into_iter()
            .map(|r| Some(r.unwrap_or_else(|| "atomic push failed".to_owned())))
            .collect());
    }
    let rest: Vec<RefUpdate> = updates
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(u, _)| u.clone())
        .collect();
    let mut verdicts = if rest.is_empty() {
        Vec::new()
    } else {
        sink.apply(pack, &rest, atomic, push_options)?
    }
    .into_iter();
    Ok(refused
        .into_iter()
        .map(|r| r.or_else(|| verdicts.next().flatten()))
        .collect())
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn parse_command(line: &str) -> Result<RefUpdate> {
    let mut parts = line.splitn(3, ' ');
    let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(protocol(&format!("malformed command '{line}'")));
    };
    let old = ObjectId::from_hex(old.as_bytes())
        .map_err(|_| protocol(&format!("malformed old id in '{line}'")))?;
    let new = ObjectId::from_hex(new.as_bytes())
        .map_err(|_| protocol(&format!("malformed new id in '{line}'")))?;
    Ok(RefUpdate {
        forced: false,
        name: name.to_owned(),
        old,
        new,
    })
}

/// Checks a ref name by git's rules (git-check-ref-format) and codekeep's: only `refs/...`.
pub(crate) fn check_ref_name(name: &str) -> std::result::Result<(), String> {
    if !name.starts_with("refs/") {
        return Err("funny refname".to_owned());
    }
    gix_validate::reference::name(name.as_bytes().into())
        .map(|_| ())
        .map_err(|e| format!("funny refname: {e}"))
}

/// Every new ref value must exist after the push, and a branch must name a commit: git's
/// reason for each update that breaks this (`None` for the others).
fn check_tips(
    snap: &Snapshot,
    pack: Option<&ReceivedPack>,
    updates: &[RefUpdate],
) -> Result<Vec<Option<String>>> {
    let in_pack = |id: &ObjectId| {
        pack.is_some_and(|p| p.entries.binary_search_by(|(e, _)| e.cmp(id)).is_ok())
    };
    let mut reasons = Vec::with_capacity(updates.len());
    for u in updates {
        if u.is_delete() {
            reasons.push(None);
            continue;
        }
        let kind = if in_pack(&u.new) {
            let commit = pack.is_some_and(|p| p.commits.contains_key(&u.new));
            Some(if commit { Kind::Commit } else { Kind::Blob })
        } else {
            snap.odb.header(&u.new)?.map(|(kind, _)| kind)
        };
        reasons.push(match kind {
            None => Some("bad pack: the pushed value is missing".to_owned()),
            Some(kind) if kind != Kind::Commit && u.name.starts_with("refs/heads/") => Some(
                format!("trying to write non-commit object {} to branch", u.new),
            ),
            Some(_) => None,
        });
    }
    Ok(reasons)
}

/// Marks the updates that are not fast-forwards: the old value is not an ancestor of the new
/// one (git's `in_merge_bases`; a non-commit on either side is never a fast-forward).
fn classify(snap: &Snapshot, pack: Option<&ReceivedPack>, updates: &mut [RefUpdate]) -> Result<()> {
    let mut history = History {
        snap,
        pack,
        known: HashMap::new(),
    };
    for u in updates.iter_mut() {
        u.forced = !u.is_create() && !u.is_delete() && !history.is_ancestor(&u.old, &u.new)?;
    }
    Ok(())
}

/// Commit links read during one push's classification, from the pack or the repository.
struct History<'a> {
    snap: &'a Snapshot,
    pack: Option<&'a ReceivedPack>,
    known: HashMap<ObjectId, Option<CommitLinks>>,
}

impl History<'_> {
    /// The commit's links; `None` for anything that is not a commit.
    fn links(&mut self, id: &ObjectId) -> Result<Option<CommitLinks>> {
        if let Some(known) = self.known.get(id) {
            return Ok(known.clone());
        }
        let links = match self.pack.and_then(|p| p.commits.get(id)) {
            Some(links) => Some(links.clone()),
            None => match self.snap.odb.find(id)? {
                Some((Kind::Commit, data)) => {
                    let c = gix_object::CommitRef::from_bytes(&data, gix_hash::Kind::Sha1)
                        .map_err(|e| {
                            super::pack::corrupt(&format!("commit {id} does not parse: {e}"))
                        })?;
                    Some(CommitLinks {
                        time: c.time().map_or(0, |t| t.seconds),
                        parents: c.parents().collect(),
                    })
                }
                _ => None,
            },
        };
        self.known.insert(*id, links.clone());
        Ok(links)
    }

    /// Whether `old` is an ancestor of (or is) `new`: git's `paint_down_to_common`. Commits
    /// are painted from both sides, newest first; the walk ends when `old` is painted from
    /// `new`, or when every commit still queued is below a common ancestor, so it reads the
    /// history since the merge base, not all of it.
    fn is_ancestor(&mut self, old: &ObjectId, new: &ObjectId) -> Result<bool> {
        const FROM_OLD: u8 = 1;
        const FROM_NEW: u8 = 2;
        const STALE: u8 = 4;
        if old == new {
            return Ok(true);
        }
        let (Some(old_links), Some(new_links)) = (self.links(old)?, self.links(new)?) else {
            return Ok(false);
        };
        let mut flags: HashMap<ObjectId, u8> = HashMap::from([(*old, FROM_OLD), (*new, FROM_NEW)]);
        let mut queue =
            std::collections::BinaryHeap::from([(old_links.time, *old), (new_links.time, *new)]);
        while queue
            .iter()
            .any(|(_, id)| flags.get(id).is_some_and(|f| f & STALE == 0))
        {
            let Some((_, id)) = queue.pop() else { break };
            let mut paint = flags.get(&id).copied().unwrap_or(0);
            if paint & (FROM_OLD | FROM_NEW) == FROM_OLD | FROM_NEW {
                if id == *old {
                    return Ok(true);
                }
                paint |= STALE;
            }
            let Some(links) = self.links(&id)? else {
                continue;
            };
            for parent in links.parents {
                let before = flags.get(&parent).copied().unwrap_or(0);
                if before & paint == paint {
                    continue;
                }
                flags.insert(parent, before | paint);
                if let Some(parent_links) = self.links(&parent)? {
                    queue.push((parent_links.time, parent));
                }
            }
        }
        Ok(false)
    }
}

/// An error and its causes on one line (gix's messages name the step; the cause says why,
/// e.g. the client went away or the push passed a limit).
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

pub(crate) fn bad_pack(what: &str) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "GitPackError", what.to_owned())
}
