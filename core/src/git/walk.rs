//! Which objects a fetch sends: commits reachable from the wants and not from what the client
//! has, cut at the requested depth, then their trees and blobs (minus what the client's
//! boundary commits already hold, minus what the filter leaves out), and tags that point into
//! the result (include-tag).

use std::collections::VecDeque;

use gix_hashtable::{HashMap, HashSet};

use gix_hash::ObjectId;
use gix_object::Kind;

use super::odb::Odb;
use super::pack::corrupt;
use crate::error::Result;

const SHA1: gix_hash::Kind = gix_hash::Kind::Sha1;

/// A parsed commit: what a walk needs.
#[derive(Debug, Clone)]
pub(crate) struct CommitInfo {
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    /// Committer time, seconds since the epoch.
    pub time: i64,
}

/// Reads a commit.
pub(crate) fn commit(odb: &Odb, id: &ObjectId) -> Result<CommitInfo> {
    let (kind, data) = odb.get(id)?;
    if kind != Kind::Commit {
        return Err(corrupt(&format!("{id} is a {kind}, not a commit")));
    }
    let c = gix_object::CommitRef::from_bytes(&data, SHA1)
        .map_err(|e| corrupt(&format!("commit {id} does not parse: {e}")))?;
    Ok(CommitInfo {
        tree: c.tree(),
        parents: c.parents().collect(),
        time: c.time().map_or(0, |t| t.seconds),
    })
}

/// Follows annotated tags to the object they finally name; returns that object and its kind,
/// and the tag objects passed on the way.
pub(crate) fn peel(odb: &Odb, id: &ObjectId) -> Result<(ObjectId, Kind, Vec<ObjectId>)> {
    let mut current = *id;
    let mut tags = Vec::new();
    for _ in 0..64 {
        let (kind, data) = odb.get(&current)?;
        if kind != Kind::Tag {
            return Ok((current, kind, tags));
        }
        let tag = gix_object::TagRef::from_bytes(&data, SHA1)
            .map_err(|e| corrupt(&format!("tag {current} does not parse: {e}")))?;
        tags.push(current);
        current = tag.target();
    }
    Err(corrupt("a chain of tags is too long"))
}

/// How much history a fetch asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Depth {
    /// `deepen <n>`: at most n commits deep from each want.
    pub commits: Option<u32>,
    /// `deepen-relative`: the depth counts from the client's current shallow boundary.
    pub relative: bool,
    /// `deepen-since <time>`: only commits at or after this time.
    pub since: Option<i64>,
    /// `deepen-not <ref>`: stop at commits reachable from these.
    pub not: Vec<ObjectId>,
}

impl Depth {
    pub(crate) fn is_set(&self) -> bool {
        self.commits.is_some() || self.since.is_some() || !self.not.is_empty()
    }
}

/// `filter <spec>` for partial clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// `blob:none`.
    NoBlobs,
    /// `blob:limit=<n>`: blobs of at most n bytes.
    BlobLimit(u64),
}

impl Filter {
    /// Parses a filter spec; `None` for one codekeep does not implement.
    pub(crate) fn parse(spec: &str) -> Option<Filter> {
        if spec == "blob:none" {
            return Some(Filter::NoBlobs);
        }
        let limit = spec.strip_prefix("blob:limit=")?;
        let (digits, unit) = match limit.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (limit.get(..i)?, Some(c)),
            _ => (limit, None),
        };
        let n: u64 = digits.parse().ok()?;
        let scale = match unit.map(|c| c.to_ascii_lowercase()) {
            None => 1,
            Some('k') => 1 << 10,
            Some('m') => 1 << 20,
            Some('g') => 1 << 30,
            Some(_) => return None,
        };
        Some(Filter::BlobLimit(n.checked_mul(scale)?))
    }
}

/// The request a selection answers.
#[derive(Debug, Default)]
pub(crate) struct Wanted<'a> {
    pub wants: &'a [ObjectId],
    /// Haves the repository holds (the client's common commits).
    pub common: &'a [ObjectId],
    /// Commits the client says are its shallow boundary.
    pub client_shallow: &'a [ObjectId],
    pub depth: Depth,
    pub filter: Option<Filter>,
    /// Annotated tags (id, peeled target) of the repository, for include-tag.
    pub tags: Vec<(ObjectId, ObjectId)>,
}

/// What a fetch sends.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Every object to put in the pack, each once.
    pub objects: Vec<ObjectId>,
    /// Commits the client must record as shallow (their parents are not sent).
    pub shallow: Vec<ObjectId>,
    /// Client shallow commits whose parents are now sent.
    pub unshallow: Vec<ObjectId>,
}

/// A walk whose commits are chosen (so the shallow boundary is known) and whose trees are not
/// walked yet; [`Commits::finish`] walks them, the expensive half.
#[derive(Debug)]
pub(crate) struct Commits {
    selection: Selection,
    trees: Vec<ObjectId>,
    edges: Vec<ObjectId>,
    sent: HashSet<ObjectId>,
}

impl Commits {
    /// Commits the client must record as shallow.
    pub(crate) fn shallow(&self) -> &[ObjectId] {
        &self.selection.shallow
    }

    /// Client shallow commits whose parents are now sent.
    pub(crate) fn unshallow(&self) -> &[ObjectId] {
        &self.selection.unshallow
    }

    /// Adds the trees, blobs and tags: the whole selection.
    pub(crate) fn finish(mut self, odb: &Odb, req: &Wanted<'_>) -> Result<Selection> {
        add_trees_and_tags(
            odb,
            req,
            &self.trees,
            &self.edges,
            &mut self.sent,
            &mut self.selection.objects,
        )?;
        Ok(self.selection)
    }
}

/// Computes the objects to send.
pub(crate) fn select(odb: &Odb, req: &Wanted<'_>) -> Result<Selection> {
    select_commits(odb, req)?.finish(odb, req)
}

/// Chooses the commits to send (and the shallow boundary); see [`Commits`].
pub(crate) fn select_commits(odb: &Odb, req: &Wanted<'_>) -> Result<Commits> {
    // git's upload-pack ignores shallow lines naming objects it does not have, and refuses
    // ones naming anything but a commit.
    for shallow in req.client_shallow {
        if let Some((kind, _)) = odb.header(shallow)?
            && kind != Kind::Commit
        {
            return Err(super::pktline::protocol(&format!(
                "invalid shallow object {shallow}"
            )));
        }
    }
    let client_shallow: HashSet<ObjectId> = req.client_shallow.iter().copied().collect();
    let not_reachable = ancestors(odb, &req.depth.not, &HashSet::default())?;
    // What the client has: everything reachable from its common commits, but not past its own
    // shallow boundary (it lacks the parents there).
    let have = ancestors(odb, req.common, &client_shallow)?;

    let mut sent: HashSet<ObjectId> = HashSet::default();
    let mut out = Selection::default();
    let mut edges: Vec<ObjectId> = Vec::new();
    // Breadth-first from the wants, with each commit's distance from the nearest start.
    let mut queue: VecDeque<(ObjectId, u32)> = VecDeque::new();
    let mut depth_of: HashMap<ObjectId, u32> = HashMap::default();
    // Root trees to walk: wanted trees, then those of the commits sent.
    let mut trees: Vec<ObjectId> = Vec::new();
    let mut roots = start_points(odb, req, &mut sent, &mut out.objects, &mut trees)?;
    // deepen-relative (git's `deepen()`): the new boundary lies N commits below the client's
    // shallow commits, whatever it has above them, so it is known before any "have" (v0 sends
    // it first). The client's shallow commits are walked again from there.
    let boundary = if req.depth.relative && req.depth.commits.is_some() {
        // Only shallow commits the wants reach count (git: reachable from our refs); any
        // other id a client names must not open a way into history it cannot see.
        let above = ancestors(odb, &roots, &client_shallow)?;
        let reachable: Vec<ObjectId> = req
            .client_shallow
            .iter()
            .filter(|s| above.contains(*s))
            .copied()
            .collect();
        roots.extend(&reachable);
        Some(relative_boundary(
            odb,
            &reachable,
            req.depth.commits.unwrap_or(0),
        )?)
    } else {
        None
    };
    for root in roots {
        if have.contains(&root) && !req.depth.is_set() {
            continue;
        }
        if let gix_hashtable::hash_map::Entry::Vacant(e) = depth_of.entry(root) {
            e.insert(1);
            queue.push_back((root, 1));
        }
    }
    let limit = req.depth.commits;
    while let Some((id, depth)) = queue.pop_front() {
        if !sent.insert(id) {
            continue;
        }
        let info = commit(odb, &id)?;
        if have.contains(&id) {
            edges.push(id);
        } else {
            trees.push(info.tree);
            out.objects.push(id);
        }
        let mut cut = match &boundary {
            Some(boundary) => boundary.contains(&id),
            None => limit.is_some_and(|l| depth >= l),
        };
        if !cut {
            for parent in &info.parents {
                let too_old = match req.depth.since {
                    Some(since) => commit(odb, parent)?.time < since,
                    None => false,
                };
                if not_reachable.contains(parent) || too_old {
                    cut = true;
                    continue;
                }
                if have.contains(parent) && !req.depth.is_set() {
                    edges.push(*parent);
                    continue;
                }
                if !odb.has(parent) {
                    // A repository never holds a commit without its parents; a missing one
                    // would make a broken pack.
                    return Err(corrupt(&format!("parent {parent} of {id} is missing")));
                }
                if let gix_hashtable::hash_map::Entry::Vacant(e) = depth_of.entry(*parent) {
                    e.insert(depth + 1);
                    queue.push_back((*parent, depth + 1));
                }
            }
        }
        if req.depth.is_set() {
            if cut && !info.parents.is_empty() {
                if !client_shallow.contains(&id) {
                    out.shallow.push(id);
                }
            } else if client_shallow.contains(&id) {
                out.unshallow.push(id);
            }
        }
    }
    Ok(Commits {
        selection: out,
        trees,
        edges,
        sent,
    })
}

/// The commits `n` below the client's shallow commits that have parents: the boundary a
/// relative deepening moves to.
fn relative_boundary(odb: &Odb, shallow: &[ObjectId], n: u32) -> Result<HashSet<ObjectId>> {
    let mut boundary = HashSet::default();
    let mut seen: HashSet<ObjectId> = HashSet::default();
    let mut queue: VecDeque<(ObjectId, u32)> = shallow
        .iter()
        .filter(|s| odb.has(s))
        .map(|s| (*s, 0))
        .collect();
    while let Some((id, depth)) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let parents = commit(odb, &id)?.parents;
        if depth >= n {
            if !parents.is_empty() {
                boundary.insert(id);
            }
            continue;
        }
        queue.extend(parents.into_iter().map(|p| (p, depth + 1)));
    }
    Ok(boundary)
}

/// The commits a walk starts from: wants peeled through annotated tags (the tags are sent).
/// Wanted trees and blobs are added directly.
fn start_points(
    odb: &Odb,
    req: &Wanted<'_>,
    sent: &mut HashSet<ObjectId>,
    objects: &mut Vec<ObjectId>,
    trees: &mut Vec<ObjectId>,
) -> Result<Vec<ObjectId>> {
    let mut roots = Vec::new();
    for want in req.wants {
        let (target, kind, tags) = peel(odb, want)?;
        for t in tags {
            if sent.insert(t) {
                objects.push(t);
            }
        }
        match kind {
            Kind::Commit => roots.push(target),
            Kind::Tree => trees.push(target),
            Kind::Blob => {
                if sent.insert(target) {
                    objects.push(target);
                }
            }
            Kind::Tag => {}
        }
    }
    Ok(roots)
}

/// Adds the trees and blobs under `trees` (minus what the client has through `edges` and its
/// common commits, minus what the filter leaves out) and, for include-tag, annotated tags
/// pointing into what is sent.
fn add_trees_and_tags(
    odb: &Odb,
    req: &Wanted<'_>,
    trees: &[ObjectId],
    edges: &[ObjectId],
    sent: &mut HashSet<ObjectId>,
    objects: &mut Vec<ObjectId>,
) -> Result<()> {
    let mut known: HashSet<ObjectId> = HashSet::default();
    for edge in edges.iter().chain(req.common) {
        if let Ok(info) = commit(odb, edge) {
            collect_tree(odb, &info.tree, &mut known)?;
        }
    }
    let already = &*sent;
    let skip = |id: &ObjectId| known.contains(id) || already.contains(id);
    let under = super::tree_walk::objects_under(odb, trees, req.filter, &skip)?;
    sent.extend(under.iter().copied());
    objects.extend(under);
    for (tag, target) in &req.tags {
        if sent.contains(target) && !sent.contains(tag) && !known.contains(tag) {
            let (_, _, chain) = peel(odb, tag)?;
            for t in chain {
                if sent.insert(t) {
                    objects.push(t);
                }
            }
        }
    }
    Ok(())
}

/// Every commit reachable from `starts` (inclusive), not walking past `stop`.
pub(crate) fn ancestors(
    odb: &Odb,
    starts: &[ObjectId],
    stop: &HashSet<ObjectId>,
) -> Result<HashSet<ObjectId>> {
    let mut seen = HashSet::default();
    let mut queue: Vec<ObjectId> = Vec::new();
    for s in starts {
        let (target, kind, _) = peel(odb, s)?;
        if kind == Kind::Commit && seen.insert(target) {
            queue.push(target);
        }
    }
    while let Some(id) = queue.pop() {
        if stop.contains(&id) {
            continue;
        }
        for parent in commit(odb, &id)?.parents {
            if odb.has(&parent) && seen.insert(parent) {
                queue.push(parent);
            }
        }
    }
    Ok(seen)
}

/// Every tree and blob id under `tree` (for objects the client already has).
fn collect_tree(odb: &Odb, tree: &ObjectId, into: &mut HashSet<ObjectId>) -> Result<()> {
    let mut stack = vec![*tree];
    while let Some(id) = stack.pop() {
        if !into.insert(id) {
            continue;
        }
        let (_, data) = odb.get(&id)?;
        for entry in gix_object::TreeRefIter::from_bytes(&data, SHA1) {
            let entry = entry.map_err(|e| corrupt(&format!("tree {id} does not parse: {e}")))?;
            if entry.mode.is_tree() {
                stack.push(entry.oid.to_owned());
            } else if !entry.mode.is_commit() {
                into.insert(entry.oid.to_owned());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_specs() {
        assert_eq!(Filter::parse("blob:none"), Some(Filter::NoBlobs));
        assert_eq!(Filter::parse("blob:limit=10"), Some(Filter::BlobLimit(10)));
        assert_eq!(
            Filter::parse("blob:limit=2k"),
            Some(Filter::BlobLimit(2048))
        );
        assert_eq!(
            Filter::parse("blob:limit=1m"),
            Some(Filter::BlobLimit(1 << 20))
        );
        assert_eq!(Filter::parse("tree:0"), None);
        assert_eq!(Filter::parse("blob:limit=x"), None);
        assert_eq!(Filter::parse("blob:limit=1q"), None);
    }
}
