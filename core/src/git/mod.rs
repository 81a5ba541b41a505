//! The git engine: sealed pack storage, the object database over it, and the server side of
//! git's protocols (upload-pack v2 and v0, receive-pack). It knows nothing of IAM or
//! CodeCommit: `codecommit::git` hands it a [`Snapshot`] of an authorized repository and a
//! [`receive::PushSink`] that moves refs.

pub(crate) mod delta;
pub(crate) mod ingest;
pub(crate) mod odb;
pub(crate) mod pack;
pub(crate) mod packgen;
pub(crate) mod pktline;
pub(crate) mod receive;
pub(crate) mod tree_walk;
pub(crate) mod upload;
pub(crate) mod walk;

use gix_hash::ObjectId;

use odb::Odb;

/// The `agent=` this server announces.
pub(crate) fn agent() -> String {
    format!("codekeep/{}", env!("CARGO_PKG_VERSION"))
}

/// A repository as one request sees it: refs read in one transaction, and its objects.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub odb: Odb,
    /// Full ref names and values, sorted by name.
    pub refs: Vec<(String, ObjectId)>,
    /// The ref HEAD points at (`refs/heads/<default branch>`), which may not exist yet.
    pub head: String,
}

impl Snapshot {
    /// The value of the ref HEAD points at, when it exists.
    pub(crate) fn head_target(&self) -> Option<ObjectId> {
        self.value(&self.head)
    }

    /// The value of the ref `name`.
    pub(crate) fn value(&self, name: &str) -> Option<ObjectId> {
        self.refs
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .and_then(|i| self.refs.get(i))
            .map(|(_, id)| *id)
    }

    /// Resolves a ref as git's rev-parse would for `deepen-not`: a full name, or a short one
    /// under `refs/`, `refs/tags/`, `refs/heads/`.
    pub(crate) fn resolve(&self, name: &str) -> Option<ObjectId> {
        ["", "refs/", "refs/tags/", "refs/heads/"]
            .iter()
            .find_map(|prefix| self.value(&format!("{prefix}{name}")))
    }

    /// Annotated tags under `refs/tags/` with the object each finally points at.
    pub(crate) fn annotated_tags(&self) -> crate::Result<Vec<(ObjectId, ObjectId)>> {
        let mut out = Vec::new();
        for (name, id) in &self.refs {
            if !name.starts_with("refs/tags/") {
                continue;
            }
            let (target, _, chain) = walk::peel(&self.odb, id)?;
            if !chain.is_empty() {
                out.push((*id, target));
            }
        }
        Ok(out)
    }
}
