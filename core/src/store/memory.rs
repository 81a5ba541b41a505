//! Blobs in memory: for `Keep::memory()` and tests.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use super::{BlobStore, BlobWriter, check_range, validate_blob_key};
use crate::error::{Error, ErrorKind, Result};

/// Blob store that keeps everything in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<BTreeMap<String, Arc<Vec<u8>>>>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn blob(&self, key: &str) -> Result<Arc<Vec<u8>>> {
        validate_blob_key(key)?;
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("blob `{key}` does not exist")))
    }
}

impl BlobStore for MemoryBlobStore {
    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter + '_>> {
        validate_blob_key(key)?;
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            key: key.to_owned(),
            buf: Vec::new(),
        }))
    }

    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let blob = self.blob(key)?;
        let end = check_range(key, blob.len() as u64, offset, len)?;
        let start = usize::try_from(offset).map_err(|_| Error::invalid("offset too large"))?;
        let end = usize::try_from(end).map_err(|_| Error::invalid("range too large"))?;
        blob.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::internal("range check failed"))
    }

    fn size(&self, key: &str) -> Result<u64> {
        Ok(self.blob(key)?.len() as u64)
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_blob_key(key)?;
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(blobs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

struct MemoryWriter {
    store: MemoryBlobStore,
    key: String,
    buf: Vec<u8>,
}

impl Write for MemoryWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for MemoryWriter {
    fn finish(self: Box<Self>) -> Result<u64> {
        let MemoryWriter { store, key, buf } = *self;
        let len = buf.len() as u64;
        let mut blobs = store.blobs.lock().unwrap_or_else(PoisonError::into_inner);
        if blobs.contains_key(&key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("blob `{key}` already exists"),
            ));
        }
        blobs.insert(key, Arc::new(buf));
        Ok(len)
    }
}
