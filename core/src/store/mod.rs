//! Storage: a transactional ordered key-value store for metadata, and an immutable blob store.
//!
//! Everything mutable (refs, key states, audit heads, outbox) lives in [`Meta`]; large immutable
//! bytes (packs, sealed files, artifacts) live in a [`BlobStore`]. An operation's state change,
//! its outbox events and its audit record are written in one [`Meta::txn`], so either all of
//! them happen or none.

mod key;
mod local;
mod memory;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "s3")]
mod s3;
mod sqlite;

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

pub use key::Key;
pub use local::LocalBlobStore;
pub use memory::MemoryBlobStore;
pub use outbox::{OutboxEvent, OutboxSignal};
#[cfg(feature = "postgres")]
pub use postgres::PostgresMeta;
#[cfg(feature = "s3")]
pub use s3::{S3BlobStore, S3Config};
pub use sqlite::SqliteMeta;

/// How many times a transaction is retried after a conflict before the conflict is returned.
const MAX_TXN_ATTEMPTS: u32 = 64;

/// One metadata backend: SQLite, PostgreSQL, or anything else that can run serializable
/// transactions over ordered byte keys.
pub trait MetaBackend: Send + Sync + fmt::Debug {
    /// Starts a transaction. `write` tells the backend whether the transaction may write, so it
    /// can take the right locks up front.
    ///
    /// # Errors
    /// `Conflict` when the backend is busy and the caller should retry; `Storage` otherwise.
    fn begin(&self, write: bool) -> Result<Box<dyn TxnBackend + '_>>;
}

/// The operations of one open transaction. Dropping it without `commit` rolls it back.
pub trait TxnBackend {
    /// The value stored under `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key`; true if it existed.
    fn delete(&mut self, key: &[u8]) -> Result<bool>;
    /// Up to `limit` pairs with `start <= key < end`, ascending (or descending when `reverse`).
    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Makes the transaction durable.
    ///
    /// # Errors
    /// `Conflict` if a concurrent transaction won; nothing was written then.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Seals records that hold customer content (event payloads, messages) before they reach the
/// metadata store, bound to their key. The keep installs one (a key wrapped by its key
/// provider, `crypto::RecordKey`); a bare `Meta` stores those records as plain JSON.
pub(crate) trait RecordSealer: Send + Sync + fmt::Debug {
    /// `plain` sealed for `key`.
    fn seal(&self, key: &[u8], plain: &[u8]) -> Result<Vec<u8>>;
    /// The plaintext of a record `seal` made for `key`.
    fn open(&self, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>>;
}

/// The first byte of a sealed record (JSON records start with `{`, `[` or a digit).
pub(crate) const SEALED_RECORD: u8 = 0x01;

/// The metadata store: serializable transactions with automatic retry on conflict.
#[derive(Clone)]
pub struct Meta {
    backend: Arc<dyn MetaBackend>,
    /// Rung after a commit that appended outbox events or wrote deliveries.
    signal: Arc<outbox::OutboxSignal>,
    /// Seals customer content; shared by every clone, set once by the keep.
    sealer: Arc<std::sync::OnceLock<Arc<dyn RecordSealer>>>,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("backend", &self.backend)
            .field("signal", &self.signal)
            .field("sealed", &self.sealer.get().is_some())
            .finish()
    }
}

impl Meta {
    /// Wraps a backend.
    pub fn new(backend: impl MetaBackend + 'static) -> Self {
        Meta {
            backend: Arc::new(backend),
            signal: Arc::default(),
            sealer: Arc::default(),
        }
    }

    /// Installs the sealer for customer-content records (once; later calls change nothing).
    #[cfg_attr(
        not(feature = "crypto"),
        expect(dead_code, reason = "records are sealed with crypto on")
    )]
    pub(crate) fn set_sealer(&self, sealer: Arc<dyn RecordSealer>) {
        let _ = self.sealer.set(sealer);
    }

    /// Runs `f` in a read-write transaction and commits it.
    ///
    /// On a conflict (a concurrent transaction won, or the database was busy) the whole closure
    /// runs again, so it must not have side effects outside the transaction. Any other error
    /// rolls the transaction back and is returned.
    ///
    /// # Errors
    /// Whatever `f` returns, or `Conflict` after repeated conflicts, or `Storage`.
    pub fn txn<R>(&self, mut f: impl FnMut(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        self.run(true, &mut f)
    }

    /// Runs `f` in a read-only transaction: a consistent snapshot, never blocking writers longer
    /// than the backend requires. Writes inside it fail.
    ///
    /// # Errors
    /// Whatever `f` returns, or `Storage`.
    pub fn read<R>(&self, mut f: impl FnMut(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        self.run(false, &mut f)
    }

    fn run<R>(&self, write: bool, f: &mut dyn FnMut(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = self.backend.begin(write).and_then(|inner| {
                let mut txn = Txn {
                    inner,
                    write,
                    wakes_dispatcher: false,
                    sealer: self.sealer.get().map(Arc::as_ref),
                };
                let value = f(&mut txn)?;
                txn.inner.commit()?;
                if txn.wakes_dispatcher {
                    self.signal.notify();
                }
                Ok(value)
            });
            match outcome {
                Err(e) if e.kind() == ErrorKind::Conflict && attempt < MAX_TXN_ATTEMPTS => {
                    backoff(attempt);
                }
                other => return other,
            }
        }
    }
}

/// Sleeps a little longer after each conflict, with jitter, so contending writers spread out.
fn backoff(attempt: u32) {
    let jitter = u64::from(crate::id::random_bytes::<1>()[0]);
    let base = 1u64 << attempt.min(6);
    std::thread::sleep(std::time::Duration::from_micros(base * 100 + jitter * 4));
}

/// An open transaction, handed to the closure of [`Meta::txn`].
pub struct Txn<'a> {
    inner: Box<dyn TxnBackend + 'a>,
    write: bool,
    /// Set when the transaction appended outbox events or wrote deliveries: the events
    /// dispatcher is woken when it commits.
    wakes_dispatcher: bool,
    sealer: Option<&'a dyn RecordSealer>,
}

impl fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Txn")
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl Txn<'_> {
    /// The raw value under `key`.
    pub fn get(&mut self, key: &Key) -> Result<Option<Vec<u8>>> {
        self.inner.get(key.as_bytes())
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, key: &Key, value: &[u8]) -> Result<()> {
        self.check_write()?;
        self.inner.put(key.as_bytes(), value)
    }

    /// Removes `key`; true if it existed.
    pub fn delete(&mut self, key: &Key) -> Result<bool> {
        self.check_write()?;
        self.inner.delete(key.as_bytes())
    }

    /// Compare-and-set: when the current value equals `expected` (`None` = absent), stores `new`
    /// (`None` = delete) and returns true; otherwise changes nothing and returns false.
    pub fn compare_and_set(
        &mut self,
        key: &Key,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        self.check_write()?;
        let current = self.inner.get(key.as_bytes())?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        match new {
            Some(v) => self.inner.put(key.as_bytes(), v)?,
            None => {
                self.inner.delete(key.as_bytes())?;
            }
        }
        Ok(true)
    }

    /// Up to `limit` pairs whose keys start with `prefix`, in key order, starting after `after`
    /// when given (for paging).
    pub fn scan_prefix(
        &mut self,
        prefix: &Key,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<(Key, Vec<u8>)>> {
        let end = prefix.prefix_end();
        let start = match after {
            Some(a) => a.successor(),
            None => prefix.as_bytes().to_vec(),
        };
        let rows = self.inner.scan(&start, &end, limit, false)?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (Key::from_raw(k), v))
            .collect())
    }

    /// Like [`Txn::scan_prefix`] but newest-first: descending key order, before `before`.
    pub fn scan_prefix_rev(
        &mut self,
        prefix: &Key,
        before: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<(Key, Vec<u8>)>> {
        let end = match before {
            Some(b) => b.as_bytes().to_vec(),
            None => prefix.prefix_end(),
        };
        let rows = self.inner.scan(prefix.as_bytes(), &end, limit, true)?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (Key::from_raw(k), v))
            .collect())
    }

    /// The JSON record under `key`, deserialized.
    pub fn get_json<T: DeserializeOwned>(&mut self, key: &Key) -> Result<Option<T>> {
        match self.get(key)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::storage(format!("stored record `{key}` is unreadable: {e}")).with_source(e)
            }),
            None => Ok(None),
        }
    }

    /// Stores `value` as a JSON record under `key`, sealed when the keep seals customer
    /// content (read it back with [`Txn::open_json`]).
    pub(crate) fn put_sealed_json<T: Serialize + ?Sized>(
        &mut self,
        key: &Key,
        value: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("cannot serialize `{key}`: {e}")))?;
        match self.sealer {
            Some(sealer) => {
                let record = sealer.seal(key.as_bytes(), &bytes)?;
                self.put(key, &record)
            }
            None => self.put(key, &bytes),
        }
    }

    /// Reads the value of `key` (e.g. from a scan) stored with [`Txn::put_sealed_json`], or as
    /// plain JSON (as older keeps and bare stores wrote it).
    pub(crate) fn open_json<T: DeserializeOwned>(&self, key: &Key, bytes: &[u8]) -> Result<T> {
        let plain;
        let json = if bytes.first() == Some(&SEALED_RECORD) {
            let sealer = self.sealer.ok_or_else(|| {
                Error::storage(format!(
                    "record `{key}` is sealed and this store has no key"
                ))
            })?;
            plain = sealer.open(key.as_bytes(), bytes)?;
            plain.as_slice()
        } else {
            bytes
        };
        serde_json::from_slice(json).map_err(|e| {
            Error::storage(format!("stored record `{key}` is unreadable: {e}")).with_source(e)
        })
    }

    /// Stores `value` as a JSON record under `key`.
    pub fn put_json<T: Serialize + ?Sized>(&mut self, key: &Key, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("cannot serialize `{key}`: {e}")))?;
        self.put(key, &bytes)
    }

    fn check_write(&self) -> Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(Error::internal(
                "write attempted in a read-only transaction",
            ))
        }
    }
}

/// Immutable byte objects: written once as a stream, read by byte range.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Opens a writer for a new blob. The blob becomes visible only when
    /// [`BlobWriter::finish`] succeeds; dropping the writer discards it.
    ///
    /// # Errors
    /// `InvalidArgument` for a malformed key; `AlreadyExists` (possibly only at finish) when the
    /// key is taken, since blobs are never replaced.
    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter + '_>>;

    /// Reads `len` bytes starting at `offset`.
    ///
    /// # Errors
    /// `NotFound` when the blob is absent; `InvalidArgument` when the range runs past its end.
    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// The size of the blob in bytes.
    fn size(&self, key: &str) -> Result<u64>;

    /// Removes the blob (no error if it is already gone).
    fn delete(&self, key: &str) -> Result<()>;

    /// The keys of all blobs starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Writes a whole blob from memory.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<u64> {
        let mut w = self.writer(key)?;
        w.write_all(bytes)?;
        w.finish()
    }

    /// Reads a whole blob into memory.
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let size = self.size(key)?;
        self.read_range(key, 0, size)
    }
}

/// A blob being written. Implements [`Write`]; call [`BlobWriter::finish`] to publish it.
pub trait BlobWriter: Write + Send {
    /// Publishes the blob atomically and returns its size.
    fn finish(self: Box<Self>) -> Result<u64>;
}

/// Checks a blob key: `/`-separated segments of letters, digits, `.`, `_`, `-`, `=`, none of
/// them empty, `.` or `..`. Keys map to file paths and object names, so this is where path
/// traversal is stopped.
pub(crate) fn validate_blob_key(key: &str) -> Result<()> {
    let fine = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-=".contains(&b))
        });
    if fine {
        Ok(())
    } else {
        Err(Error::invalid(format!("`{key}` is not a valid blob key")))
    }
}

/// Checks a range against a blob's size, returning the end offset.
pub(crate) fn check_range(key: &str, size: u64, offset: u64, len: u64) -> Result<u64> {
    offset
        .checked_add(len)
        .filter(|end| *end <= size)
        .ok_or_else(|| {
            Error::invalid(format!(
                "range {offset}+{len} runs past the end of blob `{key}` ({size} bytes)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys() {
        for ok in ["a", "packs/abc.pack", "x/y-z_1.idx", "a=b"] {
            validate_blob_key(ok).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "../x", "a/../b", "a/./b", "a b", "ä",
        ] {
            assert!(validate_blob_key(bad).is_err(), "{bad}");
        }
    }
}
