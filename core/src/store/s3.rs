//! Blobs in an S3-compatible bucket (AWS S3, MinIO, R2, moto), through `object_store`.
//!
//! The rest of codekeep is synchronous, so the store owns a small private tokio runtime and
//! blocks on each request. Consequently its methods must not be called from inside an async
//! task (use `spawn_blocking`), and the store must not be dropped there either.
//!
//! Blobs are immutable: a small blob is written with one create-only `PUT` (`If-None-Match: *`),
//! so it is never replaced. A large one goes up as a multipart upload, started only after a
//! `HEAD` found the key free; the upload becomes visible atomically when completed, and an
//! abandoned writer aborts it.

use std::fmt;
use std::io::{self, Write};
use std::mem;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, WriteMultipart,
};
use tokio::runtime::Runtime;

use super::{BlobStore, BlobWriter, check_range, validate_blob_key};
use crate::error::{Error, ErrorKind, Result};

/// Blobs up to this size are buffered and sent in one `PUT`; larger ones are uploaded in parts
/// of this size.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// How many parts of one blob may be uploading at once. With the part being filled, this bounds
/// a writer's memory to about `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
const PARTS_IN_FLIGHT: usize = 2;

/// Where and how to reach the bucket.
#[derive(Clone)]
#[non_exhaustive]
pub struct S3Config {
    /// The endpoint URL for S3-compatible servers (`http://localhost:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The bucket, which must already exist.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key. Never printed by `Debug`.
    pub secret_access_key: String,
    /// Allow a plain `http://` endpoint (for local test servers).
    pub allow_http: bool,
    /// Prepended to every blob key to form the object name, e.g. `codekeep/`. Empty by default.
    pub prefix: String,
}

impl fmt::Debug for S3Config {
    // By hand, so the secret never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Config {
    /// A configuration for `bucket` in `region` with static credentials, on AWS over HTTPS and
    /// without a key prefix.
    pub fn new(
        bucket: impl Into<String>,
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        S3Config {
            endpoint: None,
            region: region.into(),
            bucket: bucket.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            allow_http: false,
            prefix: String::new(),
        }
    }

    /// Talks to the S3-compatible server at `url` instead of AWS.
    #[must_use]
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Allows (or forbids) a plain `http://` endpoint.
    #[must_use]
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Prepends `prefix` to every object name, so several stores can share a bucket. It must
    /// be empty or a valid blob key, optionally followed by one `/`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// Blob store backed by an S3-compatible bucket.
pub struct S3BlobStore {
    store: AmazonS3,
    rt: Runtime,
    bucket: String,
    endpoint: Option<String>,
    prefix: String,
}

impl fmt::Debug for S3BlobStore {
    // By hand: the client holds the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// Builds the client and its private runtime. No request is made: a wrong endpoint,
    /// bucket or credentials show up as `Storage` errors on first use.
    ///
    /// # Errors
    /// `InvalidArgument` for a malformed prefix or configuration; `Storage` if the runtime
    /// cannot start.
    pub fn new(config: S3Config) -> Result<Self> {
        if !config.prefix.is_empty() {
            let bare = config.prefix.strip_suffix('/').unwrap_or(&config.prefix);
            validate_blob_key(bare).map_err(|_| {
                Error::invalid(format!("`{}` is not a valid s3 prefix", config.prefix))
            })?;
        }
        let mut builder = AmazonS3Builder::new()
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.build().map_err(|e| {
            let mut message = format!("invalid s3 configuration: {e}");
            // Builder errors quote configuration values; make sure the secret is not one.
            if !config.secret_access_key.is_empty() {
                message = message.replace(&config.secret_access_key, "<redacted>");
            }
            Error::invalid(message)
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("codekeep-s3")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::storage(format!("cannot start the s3 runtime: {e}")).with_source(e)
            })?;
        Ok(S3BlobStore {
            store,
            rt,
            bucket: config.bucket,
            endpoint: config.endpoint,
            prefix: config.prefix,
        })
    }

    /// The object name of a blob key.
    fn path(&self, key: &str) -> Result<Path> {
        validate_blob_key(key)?;
        Path::parse(format!("{}{key}", self.prefix))
            .map_err(|e| Error::invalid(format!("`{key}` is not a valid object name: {e}")))
    }

    /// The object's metadata; `NotFound` when absent.
    fn head(&self, key: &str, path: &Path) -> Result<ObjectMeta> {
        self.rt
            .block_on(self.store.head(path))
            .map_err(|e| map_err(e, "head", key))
    }
}

/// The attributes of every object written. `Content-Type` matters: some S3-compatible servers
/// (moto among them) drop the body of a request without one.
fn attributes() -> Attributes {
    let mut attrs = Attributes::new();
    attrs.insert(Attribute::ContentType, "application/octet-stream".into());
    attrs
}

fn already_exists(key: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("blob `{key}` already exists"),
    )
}

fn map_err(e: object_store::Error, what: &str, key: &str) -> Error {
    let (kind, message) = match &e {
        object_store::Error::NotFound { .. } => {
            (ErrorKind::NotFound, format!("blob `{key}` does not exist"))
        }
        // A create-only PUT that found the key taken; depending on the server this comes back
        // as either.
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => (
            ErrorKind::AlreadyExists,
            format!("blob `{key}` already exists"),
        ),
        other => (
            ErrorKind::Storage,
            format!("s3 {what} of blob `{key}` failed: {other}"),
        ),
    };
    Error::new(kind, message).with_source(e)
}

impl BlobStore for S3BlobStore {
    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter + '_>> {
        let path = self.path(key)?;
        Ok(Box::new(S3Writer {
            store: self,
            key: key.to_owned(),
            path,
            state: State::Buffering(Vec::new()),
            written: 0,
        }))
    }

    fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        // Checked against HEAD because some servers (moto) silently truncate a range that
        // runs past the end instead of refusing it.
        let size = self.head(key, &path)?.size;
        let end = check_range(key, size, offset, len)?;
        let expected =
            usize::try_from(len).map_err(|_| Error::invalid("range too large for memory"))?;
        if expected == 0 {
            // An empty HTTP range cannot be expressed; there is nothing to fetch anyway.
            return Ok(Vec::new());
        }
        let bytes = self
            .rt
            .block_on(self.store.get_range(&path, offset..end))
            .map_err(|e| map_err(e, "read", key))?;
        if bytes.len() != expected {
            return Err(Error::storage(format!(
                "s3 returned {} bytes instead of {expected} for blob `{key}`",
                bytes.len()
            )));
        }
        Ok(Vec::from(bytes))
    }

    fn size(&self, key: &str) -> Result<u64> {
        let path = self.path(key)?;
        Ok(self.head(key, &path)?.size)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.rt.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e, "delete", key)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("{}{prefix}", self.prefix);
        // object_store lists whole path segments (it appends `/` to the prefix), so list the
        // directory part and filter by the full string prefix here.
        let dir = full.rfind('/').and_then(|i| full.get(..i)).unwrap_or("");
        let listed = if dir.is_empty() {
            None
        } else {
            match Path::parse(dir) {
                Ok(p) => Some(p),
                // An empty or odd segment: no valid key can start with this prefix.
                Err(_) => return Ok(Vec::new()),
            }
        };
        let objects: Vec<ObjectMeta> = self
            .rt
            .block_on(self.store.list(listed.as_ref()).try_collect())
            .map_err(|e| map_err(e, "list", prefix))?;
        let mut keys: Vec<String> = objects
            .into_iter()
            .filter_map(|meta| {
                let name = String::from(meta.location);
                if !name.starts_with(&full) {
                    return None;
                }
                let key = name.strip_prefix(&self.prefix)?;
                // Objects some other tool put here that are no valid blob keys are left out:
                // every other method would refuse them.
                validate_blob_key(key).is_ok().then(|| key.to_owned())
            })
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// What a writer holds so far.
enum State {
    /// Everything written so far, while it still fits one `PUT`.
    Buffering(Vec<u8>),
    /// A multipart upload in progress.
    Uploading(WriteMultipart),
    /// The key turned out to be taken when the upload was about to start. Later writes are
    /// discarded and `finish` reports `AlreadyExists` (so the kind survives; a `Write` error
    /// would reach the caller as a plain i/o error).
    Taken,
    /// An earlier write failed (the upload, if any, is aborted).
    Broken,
}

struct S3Writer<'a> {
    store: &'a S3BlobStore,
    key: String,
    path: Path,
    state: State,
    written: u64,
}

impl S3Writer<'_> {
    /// Moves from buffering to a multipart upload, once the blob outgrows one `PUT`.
    fn start_upload(&mut self, buffered: Vec<u8>, buf: &[u8]) -> Result<()> {
        let store = self.store;
        // A multipart upload cannot be made create-only, so check first. Blob keys are
        // unique names, so the window between this check and completion is harmless.
        match store.rt.block_on(store.store.head(&self.path)) {
            Ok(_) => {
                self.state = State::Taken;
                return Ok(());
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(map_err(e, "head", &self.key)),
        }
        let opts = PutMultipartOptions::from(attributes());
        let upload = store
            .rt
            .block_on(store.store.put_multipart_opts(&self.path, opts))
            .map_err(|e| map_err(e, "upload start", &self.key))?;
        let upload = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        self.feed(upload, Some(buffered), buf)
    }

    /// Hands bytes to the upload, waiting for part uploads to finish so memory stays bounded.
    /// On failure the upload is aborted.
    fn feed(
        &mut self,
        mut upload: WriteMultipart,
        first: Option<Vec<u8>>,
        buf: &[u8],
    ) -> Result<()> {
        let rt = &self.store.rt;
        // Inside block_on: WriteMultipart spawns each part upload on the current runtime.
        let fed = rt.block_on(async {
            if let Some(first) = first {
                upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                upload.put(Bytes::from(first));
            }
            for chunk in buf.chunks(PART_SIZE) {
                upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                upload.write(chunk);
            }
            Ok::<(), object_store::Error>(())
        });
        match fed {
            Ok(()) => {
                self.state = State::Uploading(upload);
                Ok(())
            }
            Err(e) => {
                // A part failed: completing now would publish a blob with a hole.
                let _ = rt.block_on(upload.abort());
                Err(map_err(e, "upload", &self.key))
            }
        }
    }

    fn write_inner(&mut self, buf: &[u8]) -> Result<()> {
        // Taken out so the arms own it; every arm puts back the state that follows.
        match mem::replace(&mut self.state, State::Broken) {
            State::Buffering(mut buffered) => {
                if buffered.len().saturating_add(buf.len()) <= PART_SIZE {
                    buffered.extend_from_slice(buf);
                    self.state = State::Buffering(buffered);
                    Ok(())
                } else {
                    self.start_upload(buffered, buf)
                }
            }
            State::Uploading(upload) => self.feed(upload, None, buf),
            State::Taken => {
                self.state = State::Taken;
                Ok(())
            }
            State::Broken => Err(Error::storage(format!(
                "an earlier write to blob `{}` failed",
                self.key
            ))),
        }
    }
}

impl Write for S3Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf).map_err(io::Error::other)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is visible before finish, so there is nothing to flush to.
        Ok(())
    }
}

impl BlobWriter for S3Writer<'_> {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let store = self.store;
        match mem::replace(&mut self.state, State::Broken) {
            State::Buffering(buffered) => {
                let mut opts = PutOptions::from(PutMode::Create);
                opts.attributes = attributes();
                store
                    .rt
                    .block_on(
                        store
                            .store
                            .put_opts(&self.path, PutPayload::from(buffered), opts),
                    )
                    .map_err(|e| map_err(e, "put", &self.key))?;
            }
            State::Uploading(upload) => {
                // WriteMultipart::finish aborts the upload itself when completing fails.
                store
                    .rt
                    .block_on(upload.finish())
                    .map_err(|e| map_err(e, "upload completion", &self.key))?;
            }
            State::Taken => return Err(already_exists(&self.key)),
            State::Broken => {
                return Err(Error::storage(format!(
                    "an earlier write to blob `{}` failed",
                    self.key
                )));
            }
        }
        Ok(self.written)
    }
}

impl Drop for S3Writer<'_> {
    fn drop(&mut self) {
        // An abandoned upload would keep its parts (and their storage cost) until a bucket
        // lifecycle rule removes them; abort it. Failing to is not worth reporting.
        if let State::Uploading(upload) = mem::replace(&mut self.state, State::Broken) {
            let _ = self.store.rt.block_on(upload.abort());
        }
    }
}
