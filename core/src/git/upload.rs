//! upload-pack: what clone, fetch and ls-remote talk to. Protocol v2 (gitprotocol-v2:
//! `ls-refs`, `fetch`) and the v0/v1 exchange (gitprotocol-pack: ref advertisement,
//! want/have negotiation with `multi_ack_detailed`), over a stateful stream (SSH) or stateless
//! request/response pairs (smart HTTP).

use std::collections::HashSet;
use std::io::{BufWriter, Read, Write};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use gix_hash::ObjectId;
use gix_object::Kind;

use super::pktline::{self, Packet, PacketReader, Sideband, SidebandMode, protocol};
use super::walk::{self, Depth, Filter, Wanted};
use super::{Snapshot, agent};
use crate::error::{Error, Result};

/// git's `uploadpack.keepAlive` default: an empty band-1 packet after this long in silence.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Capabilities of the v0 upload-pack advertisement: exactly what is implemented here.
const V0_CAPABILITIES: &[&str] = &[
    "multi_ack_detailed",
    "side-band-64k",
    "side-band",
    "ofs-delta",
    "shallow",
    "deepen-since",
    "deepen-not",
    "deepen-relative",
    "no-progress",
    "include-tag",
    "allow-tip-sha1-in-want",
    "allow-reachable-sha1-in-want",
    "filter",
    "object-format=sha1",
];

/// Writes the v2 capability advertisement (the answer to `info/refs` or an SSH connection
/// with `version=2`).
pub(crate) fn advertise_v2(out: &mut dyn Write) -> Result<()> {
    pktline::text(out, "version 2")?;
    pktline::text(out, &format!("agent={}", agent()))?;
    pktline::text(out, "ls-refs=unborn")?;
    pktline::text(out, "fetch=shallow wait-for-done filter ref-in-want")?;
    pktline::text(out, "server-option")?;
    pktline::text(out, "object-format=sha1")?;
    pktline::flush(out)
}

/// Serves v2 commands from `input` until the stream ends (stateful) or after one command
/// (`stateless`, one HTTP POST).
pub(crate) fn serve_v2<R: Read>(
    snap: &Snapshot,
    input: &mut PacketReader<R>,
    out: &mut dyn Write,
    stateless: bool,
) -> Result<()> {
    loop {
        let Some(command) = read_command(input)? else {
            return Ok(());
        };
        match command.name.as_str() {
            "ls-refs" => ls_refs(snap, &command.args, out)?,
            "fetch" => fetch_v2(snap, &command.args, out)?,
            other => {
                pktline::error_line(out, &format!("unknown command '{other}'"))?;
                return Err(protocol(&format!("unknown command '{other}'")));
            }
        }
        out.flush()?;
        if stateless {
            return Ok(());
        }
    }
}

struct Command {
    name: String,
    args: Vec<String>,
}

/// Reads `command=<name>`, capability lines, a delimiter, arguments, a flush.
fn read_command<R: Read>(input: &mut PacketReader<R>) -> Result<Option<Command>> {
    let mut name = None;
    loop {
        let Some(packet) = input.read()? else {
            return Ok(None);
        };
        match packet {
            Packet::Flush if name.is_none() => return Ok(None),
            Packet::Flush => {
                return Ok(name.map(|name| Command {
                    name,
                    args: Vec::new(),
                }));
            }
            Packet::Delimiter => break,
            Packet::ResponseEnd => return Err(protocol("unexpected response-end packet")),
            Packet::Data(_) => {
                let line = packet
                    .text()
                    .ok_or_else(|| protocol("a capability line is not text"))?;
                if let Some(n) = line.strip_prefix("command=") {
                    name = Some(n.to_owned());
                } else if let Some(format) = line.strip_prefix("object-format=")
                    && format != "sha1"
                {
                    return Err(protocol(&format!(
                        "object-format {format} is not supported"
                    )));
                }
                // agent= and server-option= are accepted and need no answer.
            }
        }
    }
    let name = name.ok_or_else(|| protocol("a request without command="))?;
    let mut args = Vec::new();
    loop {
        match input.require()? {
            Packet::Flush => break,
            p @ Packet::Data(_) => args.push(
                p.text()
                    .ok_or_else(|| protocol("an argument is not text"))?
                    .to_owned(),
            ),
            _ => return Err(protocol("unexpected packet in command arguments")),
        }
    }
    Ok(Some(Command { name, args }))
}

fn ls_refs(snap: &Snapshot, args: &[String], out: &mut dyn Write) -> Result<()> {
    let mut peel = false;
    let mut symrefs = false;
    let mut unborn = false;
    let mut prefixes: Vec<&str> = Vec::new();
    for arg in args {
        match arg.as_str() {
            "peel" => peel = true,
            "symrefs" => symrefs = true,
            "unborn" => unborn = true,
            other => match other.strip_prefix("ref-prefix ") {
                Some(p) => prefixes.push(p),
                None => return Err(protocol(&format!("unknown ls-refs argument '{other}'"))),
            },
        }
    }
    let wanted = |name: &str| prefixes.is_empty() || prefixes.iter().any(|p| name.starts_with(p));
    if wanted("HEAD") {
        match snap.head_target() {
            Some(id) => {
                let mut line = format!("{id} HEAD");
                if symrefs {
                    line.push_str(" symref-target:");
                    line.push_str(&snap.head);
                }
                pktline::text(out, &line)?;
            }
            None if unborn => {
                pktline::text(out, &format!("unborn HEAD symref-target:{}", snap.head))?;
            }
            None => {}
        }
    }
    for (name, id) in &snap.refs {
        if !wanted(name) {
            continue;
        }
        let mut line = format!("{id} {name}");
        if peel {
            let (target, _, tags) = walk::peel(&snap.odb, id)?;
            if !tags.is_empty() {
                line.push_str(" peeled:");
                line.push_str(&target.to_string());
            }
        }
        pktline::text(out, &line)?;
    }
    pktline::flush(out)
}

/// A fetch request, as either protocol version states it.
#[derive(Debug, Default)]
#[expect(clippy::struct_excessive_bools, reason = "request flags")]
struct FetchRequest {
    wants: Vec<ObjectId>,
    want_refs: Vec<(String, ObjectId)>,
    haves: Vec<ObjectId>,
    done: bool,
    no_progress: bool,
    include_tag: bool,
    ofs_delta: bool,
    wait_for_done: bool,
    shallow: Vec<ObjectId>,
    depth: Depth,
    filter: Option<Filter>,
    sideband: Option<SidebandMode>,
}

impl FetchRequest {
    /// Applies one request line shared by v0 and v2; false when the line is not one of them.
    fn apply_common(&mut self, snap: &Snapshot, line: &str) -> Result<bool> {
        if let Some(rest) = line.strip_prefix("shallow ") {
            self.shallow.push(oid(rest)?);
        } else if let Some(n) = line.strip_prefix("deepen ") {
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| protocol(&format!("invalid deepen '{n}'")))?;
            if n == 0 {
                return Err(protocol("deepen 0 is not a depth"));
            }
            self.depth.commits = Some(n);
        } else if line == "deepen-relative" {
            self.depth.relative = true;
        } else if let Some(t) = line.strip_prefix("deepen-since ") {
            self.depth.since = Some(
                t.trim()
                    .parse()
                    .map_err(|_| protocol(&format!("invalid deepen-since '{t}'")))?,
            );
        } else if let Some(r) = line.strip_prefix("deepen-not ") {
            let id = snap
                .resolve(r)
                .ok_or_else(|| protocol(&format!("git upload-pack: ambiguous deepen-not: {r}")))?;
            self.depth.not.push(id);
        } else if let Some(spec) = line.strip_prefix("filter ") {
            self.filter = Some(
                Filter::parse(spec)
                    .ok_or_else(|| protocol(&format!("filter '{spec}' is not supported")))?,
            );
        } else if line == "include-tag" {
            self.include_tag = true;
        } else if line == "no-progress" {
            self.no_progress = true;
        } else if line == "ofs-delta" {
            self.ofs_delta = true;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

fn oid(hex: &str) -> Result<ObjectId> {
    ObjectId::from_hex(hex.trim().as_bytes())
        .map_err(|_| protocol(&format!("'{hex}' is not an object id")))
}

fn fetch_v2(snap: &Snapshot, args: &[String], out: &mut dyn Write) -> Result<()> {
    let mut req = FetchRequest {
        sideband: Some(SidebandMode::Large),
        ..FetchRequest::default()
    };
    for arg in args {
        let line = arg.as_str();
        if let Some(w) = line.strip_prefix("want ") {
            req.wants.push(oid(w)?);
        } else if let Some(name) = line.strip_prefix("want-ref ") {
            let id = if name == "HEAD" {
                snap.head_target()
            } else {
                snap.value(name)
            }
            .ok_or_else(|| protocol(&format!("unknown ref {name}")))?;
            req.want_refs.push((name.to_owned(), id));
            req.wants.push(id);
        } else if let Some(h) = line.strip_prefix("have ") {
            req.haves.push(oid(h)?);
        } else if line == "done" {
            req.done = true;
        } else if line == "wait-for-done" {
            req.wait_for_done = true;
        } else if line == "thin-pack" {
            // Permission to send a thin pack; a full one is always acceptable.
        } else if !req.apply_common(snap, line)? {
            return Err(protocol(&format!("unexpected fetch argument '{line}'")));
        }
    }
    if let Err(e) = check_wants(snap, &req.wants) {
        pktline::error_line(out, e.message())?;
        return Err(e);
    }
    let common: Vec<ObjectId> = req
        .haves
        .iter()
        .copied()
        .filter(|h| snap.odb.has(h))
        .collect();
    if !req.done {
        pktline::text(out, "acknowledgments")?;
        if common.is_empty() {
            pktline::text(out, "NAK")?;
        }
        for c in &common {
            pktline::text(out, &format!("ACK {c}"))?;
        }
        let ready = !common.is_empty() && !req.wait_for_done;
        if !ready {
            return pktline::flush(out);
        }
        pktline::text(out, "ready")?;
        pktline::delim(out)?;
    }
    // The commits first: shallow-info needs their boundary and comes before the pack. The
    // trees (the long part) are walked after the `packfile` line, with keepalives.
    let wanted = wanted(snap, &req, &common)?;
    let commits = walk::select_commits(&snap.odb, &wanted)?;
    if req.depth.is_set() {
        pktline::text(out, "shallow-info")?;
        for s in commits.shallow() {
            pktline::text(out, &format!("shallow {s}"))?;
        }
        for s in commits.unshallow() {
            pktline::text(out, &format!("unshallow {s}"))?;
        }
        pktline::delim(out)?;
    }
    if !req.want_refs.is_empty() {
        pktline::text(out, "wanted-refs")?;
        for (name, id) in &req.want_refs {
            pktline::text(out, &format!("{id} {name}"))?;
        }
        pktline::delim(out)?;
    }
    pktline::text(out, "packfile")?;
    let selection = with_keepalives(out, KEEPALIVE, || commits.finish(&snap.odb, &wanted))??;
    send_pack(snap, &req, &selection.objects, out)?;
    pktline::flush(out)
}

/// Runs `work` (the object walk) while writing git's keepalive, an empty band-1 packet, every
/// `interval`: nothing else can be sent until the pack starts, and clients and proxies give up
/// on a silent connection.
fn with_keepalives<R: Send>(
    out: &mut dyn Write,
    interval: Duration,
    work: impl FnOnce() -> R + Send,
) -> Result<R> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = scope.spawn(move || {
            let _ = tx.send(work());
        });
        loop {
            match rx.recv_timeout(interval) {
                Ok(result) => return Ok(result),
                Err(RecvTimeoutError::Timeout) => {
                    out.write_all(b"0005\x01")?;
                    out.flush()?;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = worker.join();
                    return Err(Error::internal("the object walk stopped without an answer"));
                }
            }
        }
    })
}

fn select(snap: &Snapshot, req: &FetchRequest, common: &[ObjectId]) -> Result<walk::Selection> {
    walk::select(&snap.odb, &wanted(snap, req, common)?)
}

/// What the walk needs of a fetch request.
fn wanted<'r>(
    snap: &Snapshot,
    req: &'r FetchRequest,
    common: &'r [ObjectId],
) -> Result<Wanted<'r>> {
    let tags = if req.include_tag {
        snap.annotated_tags()?
    } else {
        Vec::new()
    };
    Ok(Wanted {
        wants: &req.wants,
        common,
        client_shallow: &req.shallow,
        depth: req.depth.clone(),
        filter: req.filter,
        tags,
    })
}

fn send_pack(
    snap: &Snapshot,
    req: &FetchRequest,
    objects: &[ObjectId],
    out: &mut dyn Write,
) -> Result<()> {
    let mode = req.sideband.unwrap_or(SidebandMode::None);
    let mut band = Sideband::new(out, mode, !req.no_progress);
    band.progress(&format!("Enumerating objects: {}, done.\n", objects.len()))?;
    let total = objects.len();
    let result = {
        let mut buffered = BufWriter::with_capacity(65515, &mut band);
        let result = super::packgen::write_pack(
            &snap.odb,
            objects,
            req.ofs_delta,
            &mut buffered,
            &mut |_| Ok(()),
        );
        buffered.flush().map_err(crate::Error::from).and(result)
    };
    if let Err(e) = result {
        band.fatal(&format!("error: {}\n", e.message()))?;
        return Err(e);
    }
    band.progress(&format!("Total {total} (reused from encrypted packs)\n"))?;
    Ok(())
}

/// Wants must name objects reachable from the repository's refs (git's
/// `allow-reachable-sha1-in-want`): ref tips, their peeled targets, or anything under them.
fn check_wants(snap: &Snapshot, wants: &[ObjectId]) -> Result<()> {
    let mut tips: HashSet<ObjectId> = HashSet::new();
    for (_, id) in &snap.refs {
        tips.insert(*id);
    }
    let mut pending: Vec<ObjectId> = Vec::new();
    for want in wants {
        if !snap.odb.has(want) {
            return Err(protocol(&format!("upload-pack: not our ref {want}")));
        }
        if !tips.contains(want) {
            pending.push(*want);
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let heads: Vec<ObjectId> = tips.iter().copied().collect();
    let commits = walk::ancestors(&snap.odb, &heads, &gix_hashtable::HashSet::default())?;
    pending.retain(|w| !commits.contains(w));
    for (_, id) in &snap.refs {
        let (_, _, chain) = walk::peel(&snap.odb, id)?;
        pending.retain(|w| !chain.contains(w));
    }
    if pending.is_empty() {
        return Ok(());
    }
    // Trees and blobs (a partial clone fetching what it left out): walk the trees of every
    // reachable commit until all are found.
    let mut seen: HashSet<ObjectId> = HashSet::new();
    for c in &commits {
        let tree = walk::commit(&snap.odb, c)?.tree;
        let mut stack = vec![tree];
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            pending.retain(|w| *w != t);
            let (kind, data) = snap.odb.get(&t)?;
            if kind != Kind::Tree {
                continue;
            }
            for entry in gix_object::TreeRefIter::from_bytes(&data, gix_hash::Kind::Sha1) {
                let entry =
                    entry.map_err(|e| protocol(&format!("tree {t} does not parse: {e}")))?;
                let child = entry.oid.to_owned();
                if entry.mode.is_tree() {
                    stack.push(child);
                } else {
                    pending.retain(|w| *w != child);
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
        }
    }
    match pending.first() {
        Some(w) => Err(protocol(&format!("upload-pack: not our ref {w}"))),
        None => Ok(()),
    }
}

/// Writes the v0 ref advertisement of upload-pack.
pub(crate) fn advertise_v0(snap: &Snapshot, out: &mut dyn Write) -> Result<()> {
    let mut caps: Vec<String> = V0_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect();
    if snap.head_target().is_some() {
        caps.push(format!("symref=HEAD:{}", snap.head));
    }
    caps.push(format!("agent={}", agent()));
    let caps = caps.join(" ");
    let mut lines: Vec<(String, ObjectId)> = Vec::new();
    if let Some(id) = snap.head_target() {
        lines.push(("HEAD".to_owned(), id));
    }
    for (name, id) in &snap.refs {
        lines.push((name.clone(), *id));
        let (target, _, tags) = walk::peel(&snap.odb, id)?;
        if !tags.is_empty() {
            lines.push((format!("{name}^{{}}"), target));
        }
    }
    write_advertisement(out, &lines, &caps)
}

/// The v0 advertisement shape shared by upload-pack and receive-pack: capabilities after a NUL
/// on the first line, or on a `capabilities^{}` line when there are no refs.
pub(crate) fn write_advertisement(
    out: &mut dyn Write,
    lines: &[(String, ObjectId)],
    caps: &str,
) -> Result<()> {
    let mut first = true;
    for (name, id) in lines {
        if first {
            pktline::data(out, format!("{id} {name}\0{caps}\n").as_bytes())?;
            first = false;
        } else {
            pktline::text(out, &format!("{id} {name}"))?;
        }
    }
    if first {
        let zero = ObjectId::null(gix_hash::Kind::Sha1);
        pktline::data(
            out,
            format!("{zero} capabilities^{{}}\0{caps}\n").as_bytes(),
        )?;
    }
    pktline::flush(out)
}

/// Serves a v0 upload-pack exchange after the advertisement: wants, shallow lines, the have
/// negotiation and the pack. Stateless (HTTP), one request's worth; stateful (SSH), to the end.
#[expect(clippy::too_many_lines, reason = "one exchange, read top to bottom")]
pub(crate) fn serve_v0<R: Read>(
    snap: &Snapshot,
    input: &mut PacketReader<R>,
    out: &mut dyn Write,
    stateless: bool,
) -> Result<()> {
    let mut req = FetchRequest::default();
    let mut multi_ack_detailed = false;
    let mut first = true;
    // Wants, capabilities (on the first want), shallow and deepen lines, up to a flush.
    loop {
        let packet = match input.read()? {
            None if first => return Ok(()),
            None => return Err(protocol("the request ended before its flush")),
            Some(p) => p,
        };
        let line = match packet {
            Packet::Flush => break,
            p @ Packet::Data(_) => p
                .text()
                .ok_or_else(|| protocol("a request line is not text"))?
                .to_owned(),
            _ => return Err(protocol("unexpected packet in the want list")),
        };
        if let Some(rest) = line.strip_prefix("want ") {
            let (hex, caps) = rest.split_once(' ').unwrap_or((rest, ""));
            req.wants.push(oid(hex)?);
            if first {
                for cap in caps.split(' ').filter(|c| !c.is_empty()) {
                    match cap {
                        "multi_ack_detailed" => multi_ack_detailed = true,
                        "side-band-64k" => req.sideband = Some(SidebandMode::Large),
                        "side-band" if req.sideband.is_none() => {
                            req.sideband = Some(SidebandMode::Small);
                        }
                        "ofs-delta" => req.ofs_delta = true,
                        "no-progress" => req.no_progress = true,
                        "include-tag" => req.include_tag = true,
                        "deepen-relative" => req.depth.relative = true,
                        _ => {}
                    }
                }
            }
            first = false;
        } else if !req.apply_common(snap, &line)? {
            return Err(protocol(&format!("unexpected line '{line}'")));
        }
    }
    if req.wants.is_empty() {
        // Nothing wanted: the client is up to date and hangs up.
        return Ok(());
    }
    if let Err(e) = check_wants(snap, &req.wants) {
        pktline::error_line(out, e.message())?;
        return Err(e);
    }
    if req.depth.is_set() {
        let shallow = select(snap, &req, &[])?;
        for s in &shallow.shallow {
            pktline::text(out, &format!("shallow {s}"))?;
        }
        for s in &shallow.unshallow {
            pktline::text(out, &format!("unshallow {s}"))?;
        }
        pktline::flush(out)?;
        out.flush()?;
    }
    // Negotiation.
    let mut common: Vec<ObjectId> = Vec::new();
    loop {
        let packet = match input.read()? {
            // A stateless request that only carried wants (and shallow lines).
            None if stateless => return Ok(()),
            None => return Err(protocol("the client hung up during negotiation")),
            Some(p) => p,
        };
        match packet {
            Packet::Flush => {
                if multi_ack_detailed || common.is_empty() {
                    pktline::text(out, "NAK")?;
                }
                out.flush()?;
                if stateless {
                    return Ok(());
                }
            }
            p @ Packet::Data(_) => {
                let line = p
                    .text()
                    .ok_or_else(|| protocol("a have line is not text"))?;
                if line == "done" {
                    break;
                }
                let have = line
                    .strip_prefix("have ")
                    .ok_or_else(|| protocol(&format!("expected have or done, got '{line}'")))?;
                let id = oid(have)?;
                if snap.odb.has(&id) {
                    if multi_ack_detailed {
                        pktline::text(out, &format!("ACK {id} common"))?;
                    } else if common.is_empty() {
                        pktline::text(out, &format!("ACK {id}"))?;
                    }
                    common.push(id);
                }
            }
            _ => return Err(protocol("unexpected packet during negotiation")),
        }
    }
    match common.last() {
        Some(last) if multi_ack_detailed => pktline::text(out, &format!("ACK {last}"))?,
        Some(_) => {}
        None => pktline::text(out, "NAK")?,
    }
    let selection = if req.sideband.is_some() {
        with_keepalives(out, KEEPALIVE, || select(snap, &req, &common))??
    } else {
        select(snap, &req, &common)?
    };
    send_pack(snap, &req, &selection.objects, out)?;
    if req.sideband.is_some() {
        pktline::flush(out)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_walk_is_accompanied_by_keepalives() {
        let mut out = Vec::new();
        let answer = with_keepalives(&mut out, Duration::from_millis(5), || {
            std::thread::sleep(Duration::from_millis(200));
            42
        })
        .unwrap();
        assert_eq!(answer, 42);
        assert!(out.starts_with(b"0005\x01"), "{out:?}");
        assert!(out.chunks(5).all(|c| c == b"0005\x01"));
        let mut quick = Vec::new();
        assert_eq!(with_keepalives(&mut quick, KEEPALIVE, || 7).unwrap(), 7);
        assert!(quick.is_empty(), "no keepalive before the first interval");
    }
}
