//! Blobs as files under a directory: the embedded default.
//!
//! A blob is written to a temporary file under `.tmp/`, fsynced, then hard-linked into place
//! (which fails if the name is taken, so a blob is never replaced) and the directory fsynced. A
//! reader therefore sees either no blob or the whole blob, even across a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{BlobStore, BlobWriter, check_range, validate_blob_key};
use crate::error::{Error, ErrorKind, Result};

/// Blob store backed by a local directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Uses (creating it if needed) the directory at `root`.
    ///
    /// # Errors
    /// `Io` when the directory cannot be created.
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join(".tmp"))?;
        // Temporary files from a crash mid-write are garbage: nothing refers to them.
        if let Ok(entries) = fs::read_dir(root.join(".tmp")) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(LocalBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_blob_key(key)?;
        Ok(self.root.join(key))
    }

    fn not_found(key: &str) -> Error {
        Error::new(ErrorKind::NotFound, format!("blob `{key}` does not exist"))
    }

    fn open_existing(&self, key: &str) -> Result<File> {
        File::open(self.path(key)?).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Self::not_found(key)
            } else {
                e.into()
            }
        })
    }
}

impl BlobStore for LocalBlobStore {
    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter + '_>> {
        let target = self.path(key)?;
        if target.exists() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("blob `{key}` already exists"),
            ));
        }
        let temp = self.root.join(".tmp").join(crate::id::uuid_v4());
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Box::new(LocalWriter {
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            temp,
            target,
            key: key.to_owned(),
            written: 0,
        }))
    }

    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let file = self.open_existing(key)?;
        let size = file.metadata()?.len();
        check_range(key, size, offset, len)?;
        let len = usize::try_from(len).map_err(|_| Error::invalid("range too large for memory"))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn size(&self, key: &str) -> Result<u64> {
        Ok(self.open_existing(key)?.metadata()?.len())
    }

    fn delete(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out)?;
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if dir == root && entry.file_name() == ".tmp" {
                continue;
            }
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root)
            && let Some(s) = rel.to_str()
        {
            out.push(s.to_owned());
        }
    }
    Ok(())
}

struct LocalWriter {
    file: Option<io::BufWriter<File>>,
    temp: PathBuf,
    target: PathBuf,
    key: String,
    written: u64,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer is finished"))?;
        let n = file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl BlobWriter for LocalWriter {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::internal("blob writer finished twice"))?;
        let file = file.into_inner().map_err(|e| Error::from(e.into_error()))?;
        file.sync_all()?;
        drop(file);
        if let Some(parent) = self.target.parent() {
            fs::create_dir_all(parent)?;
        }
        // hard_link refuses an existing target: blobs are immutable, never replaced.
        fs::hard_link(&self.temp, &self.target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::AlreadyExists,
                    format!("blob `{}` already exists", self.key),
                )
            } else {
                e.into()
            }
        })?;
        let _ = fs::remove_file(&self.temp);
        if let Some(parent) = self.target.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(self.written)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Finished or abandoned, the temporary file goes; only the hard link survives.
        let _ = fs::remove_file(&self.temp);
    }
}
