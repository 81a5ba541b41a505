//! Python bindings: a thin adapter over the `codekeep` crate.
//!
//! JSON crosses the boundary as text (Python's `json` module is fast and exact); every call into
//! the core runs with the GIL released. Errors become `codekeep.exceptions.ClientError`
//! subclasses keyed on the AWS error code, built by `codekeep.exceptions._from_native`.

#![expect(
    clippy::unused_self,
    reason = "io.IOBase methods such as `readable` take self in Python"
)]
#![expect(
    clippy::needless_pass_by_value,
    reason = "pyo3 hands buffer arguments over by value"
)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use codekeep::crypto::{EncryptionContext, EnvelopeOpener, KeyProvider, SealWriter};
use codekeep::{Caller, Client as CoreClient, Keep as CoreKeep};
use pyo3::prelude::*;
use zeroize::Zeroizing;

/// Converts a core error into the Python exception for its AWS code.
fn to_py_err(py: Python<'_>, err: &codekeep::Error, operation: &str) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let factory = py.import("codekeep.exceptions")?.getattr("_from_native")?;
        let exc = factory.call1((
            err.code(),
            err.message(),
            err.kind().as_str(),
            err.status(),
            operation,
        ))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

fn parse_json(text: &str) -> PyResult<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("invalid JSON: {e}")))
}

fn closed() -> PyErr {
    pyo3::exceptions::PyValueError::new_err("I/O operation on closed object")
}

/// A key provider implemented in Python: an object with `wrap(plaintext: bytes, aad: bytes)`
/// and `unwrap(wrapped: bytes, aad: bytes)`, each returning bytes. An exception from `unwrap`
/// counts as a failed authentication.
struct PyKeyProvider {
    obj: Py<PyAny>,
}

impl std::fmt::Debug for PyKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyKeyProvider").finish_non_exhaustive()
    }
}

impl PyKeyProvider {
    fn call(&self, method: &str, input: &[u8], aad: &[u8]) -> PyResult<Vec<u8>> {
        Python::attach(|py| {
            let args = (
                pyo3::types::PyBytes::new(py, input),
                pyo3::types::PyBytes::new(py, aad),
            );
            self.obj
                .bind(py)
                .call_method1(method, args)?
                .extract::<Vec<u8>>()
        })
    }
}

impl KeyProvider for PyKeyProvider {
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> codekeep::Result<Vec<u8>> {
        self.call("wrap", plaintext, aad).map_err(|e| {
            codekeep::Error::new(
                codekeep::ErrorKind::Internal,
                format!("the key provider's wrap failed: {e}"),
            )
        })
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> codekeep::Result<Zeroizing<Vec<u8>>> {
        self.call("unwrap", wrapped, aad)
            .map(Zeroizing::new)
            .map_err(|_| codekeep::Error::decrypt())
    }
}

/// A running keep.
#[pyclass(name = "Keep", module = "codekeep._native", frozen)]
struct Keep {
    inner: Mutex<Option<CoreKeep>>,
}

impl Keep {
    fn keep(&self) -> PyResult<CoreKeep> {
        self.inner
            .lock()
            .map_err(|_| closed())?
            .clone()
            .ok_or_else(closed)
    }
}

#[pymethods]
impl Keep {
    /// Opens (creating if needed) the embedded default in directory `path`; key material is
    /// wrapped by `key_provider` (an object with `wrap(plaintext, aad)` and
    /// `unwrap(wrapped, aad)` returning bytes) when given, else by `master.key`.
    #[staticmethod]
    #[pyo3(signature = (path, *, key_provider=None))]
    fn open(py: Python<'_>, path: &str, key_provider: Option<Py<PyAny>>) -> PyResult<Self> {
        let keep = match key_provider {
            Some(obj) => {
                let provider = Arc::new(PyKeyProvider { obj });
                py.detach(|| CoreKeep::open_with_key_provider(path, provider))
            }
            None => py.detach(|| CoreKeep::open(path)),
        }
        .map_err(|e| to_py_err(py, &e, "Open"))?;
        Ok(Keep {
            inner: Mutex::new(Some(keep)),
        })
    }

    /// A keep that lives only in memory, its key material wrapped by `key_provider` when given.
    #[staticmethod]
    #[pyo3(signature = (*, key_provider=None))]
    fn memory(py: Python<'_>, key_provider: Option<Py<PyAny>>) -> PyResult<Self> {
        let keep = match key_provider {
            Some(obj) => {
                let provider = Arc::new(PyKeyProvider { obj });
                py.detach(|| CoreKeep::builder().key_provider(provider).build())
            }
            None => py.detach(CoreKeep::memory),
        }
        .map_err(|e| to_py_err(py, &e, "Open"))?;
        Ok(Keep {
            inner: Mutex::new(Some(keep)),
        })
    }

    /// Creates an account; returns its description as JSON text.
    fn create_account_json(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let keep = self.keep()?;
        py.detach(|| keep.create_account(name))
            .map(|v| v.to_string())
            .map_err(|e| to_py_err(py, &e, "CreateAccount"))
    }

    /// Every account as a JSON array.
    fn list_accounts_json(&self, py: Python<'_>) -> PyResult<String> {
        let keep = self.keep()?;
        py.detach(|| keep.list_accounts())
            .map(|v| serde_json::Value::Array(v).to_string())
            .map_err(|e| to_py_err(py, &e, "ListAccounts"))
    }

    /// A client of `service` acting as the caller described by `caller_json`.
    fn client(&self, py: Python<'_>, service: &str, caller_json: &str) -> PyResult<Client> {
        let keep = self.keep()?;
        let caller = Caller::from_json(&parse_json(caller_json)?)
            .map_err(|e| to_py_err(py, &e, "Client"))?;
        let client = keep
            .client(service, caller)
            .map_err(|e| to_py_err(py, &e, "Client"))?;
        Ok(Client { inner: client })
    }

    /// Decides whether the caller may perform `action` on `resource`; returns the decision and
    /// its explanation as JSON text.
    fn authorize_json(
        &self,
        py: Python<'_>,
        caller_json: &str,
        action: &str,
        resource: &str,
        context_json: &str,
    ) -> PyResult<String> {
        let keep = self.keep()?;
        let caller = Caller::from_json(&parse_json(caller_json)?)
            .map_err(|e| to_py_err(py, &e, "Authorize"))?;
        let context = codekeep::policy::Context::from_json(&parse_json(context_json)?)
            .map_err(|e| to_py_err(py, &e, "Authorize"))?;
        py.detach(|| keep.authorize(&caller, action, resource, &context))
            .map(|a| a.to_json().to_string())
            .map_err(|e| to_py_err(py, &e, "Authorize"))
    }

    /// Verifies the audit log; returns the report as JSON text.
    fn verify_audit_log_json(&self, py: Python<'_>) -> PyResult<String> {
        let keep = self.keep()?;
        let report = py
            .detach(|| keep.verify_audit_log())
            .map_err(|e| to_py_err(py, &e, "VerifyAuditLog"))?;
        serde_json::to_string(&report)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }

    /// Signs a checkpoint over the audit log's head; JSON text (`null` when nothing is new).
    fn audit_checkpoint_json(&self, py: Python<'_>) -> PyResult<String> {
        let keep = self.keep()?;
        let cp = py
            .detach(|| keep.audit().checkpoint())
            .map_err(|e| to_py_err(py, &e, "Checkpoint"))?;
        serde_json::to_string(&cp)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }

    /// Writes the audit log as JSON Lines to `path`; returns the number of records.
    fn export_audit_log(&self, py: Python<'_>, path: &str) -> PyResult<u64> {
        let keep = self.keep()?;
        py.detach(|| -> codekeep::Result<u64> {
            let mut out = BufWriter::new(File::create(path)?);
            let n = keep.audit().export_jsonl(&mut out)?;
            out.flush()?;
            Ok(n)
        })
        .map_err(|e| to_py_err(py, &e, "ExportAuditLog"))
    }

    /// Outbox events `consumer` has not acknowledged, as JSON text (see
    /// `codekeep::Keep::read_events`).
    fn read_events_json(&self, py: Python<'_>, consumer: &str, limit: usize) -> PyResult<String> {
        let keep = self.keep()?;
        py.detach(|| keep.read_events(consumer, limit))
            .map(|v| serde_json::Value::Array(v).to_string())
            .map_err(|e| to_py_err(py, &e, "ReadEvents"))
    }

    /// Acknowledges, for `consumer`, every outbox event up to and including `seq`.
    fn ack_events(&self, py: Python<'_>, consumer: &str, seq: u64) -> PyResult<()> {
        let keep = self.keep()?;
        py.detach(|| keep.ack_events(consumer, seq))
            .map_err(|e| to_py_err(py, &e, "AckEvents"))
    }

    /// Compacts a repository; `options_json` as `codekeep::CompactOptions::from_json`; returns
    /// the report as JSON text.
    fn compact_repository_json(
        &self,
        py: Python<'_>,
        account: &str,
        repository: &str,
        options_json: &str,
    ) -> PyResult<String> {
        let keep = self.keep()?;
        let options = codekeep::CompactOptions::from_json(&parse_json(options_json)?)
            .map_err(|e| to_py_err(py, &e, "CompactRepository"))?;
        py.detach(|| keep.compact_repository(account, repository, options))
            .map(|v| v.to_string())
            .map_err(|e| to_py_err(py, &e, "CompactRepository"))
    }

    /// Sets an account's CodeCommit limits from JSON text; returns the limits in force.
    fn set_codecommit_limits_json(
        &self,
        py: Python<'_>,
        account: &str,
        limits_json: &str,
    ) -> PyResult<String> {
        let keep = self.keep()?;
        let limits = parse_json(limits_json)?;
        py.detach(|| keep.set_codecommit_limits(account, &limits))
            .map(|v| v.to_string())
            .map_err(|e| to_py_err(py, &e, "SetCodeCommitLimits"))
    }

    /// Starts the git server (smart HTTP, HTTPS, SSH) on background threads, configured by
    /// `config_json` (see `codekeep::server::ServerConfig::from_json`).
    fn serve(&self, py: Python<'_>, config_json: &str) -> PyResult<Server> {
        let keep = self.keep()?;
        let config = codekeep::server::ServerConfig::from_json(&parse_json(config_json)?)
            .map_err(|e| to_py_err(py, &e, "Serve"))?;
        let server = py
            .detach(|| codekeep::server::Server::start(&keep, &config))
            .map_err(|e| to_py_err(py, &e, "Serve"))?;
        Ok(Server {
            inner: Mutex::new(Some(server)),
        })
    }

    /// Registers `function` (called with the event's JSON text; an exception fails the
    /// delivery) as function `name` of `account`, addressed by rules as
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    fn register_function(
        &self,
        py: Python<'_>,
        account: &str,
        name: &str,
        function: Py<PyAny>,
    ) -> PyResult<()> {
        let keep = self.keep()?;
        py.detach(|| {
            keep.register_function(account, name, move |payload: &str| {
                Python::attach(|py| {
                    function
                        .call1(py, (payload,))
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            })
        })
        .map(drop)
        .map_err(|e| to_py_err(py, &e, "RegisterFunction"))
    }

    /// Removes function `name` of `account`; true when it existed.
    fn remove_function(&self, py: Python<'_>, account: &str, name: &str) -> PyResult<bool> {
        let keep = self.keep()?;
        py.detach(|| keep.remove_function(account, name))
            .map_err(|e| to_py_err(py, &e, "RemoveFunction"))
    }

    /// The dead letters of queue `queue_arn`, as JSON text.
    fn dead_letters_json(&self, py: Python<'_>, queue_arn: &str) -> PyResult<String> {
        let keep = self.keep()?;
        py.detach(|| keep.dead_letters(queue_arn))
            .map(|v| serde_json::Value::from(v).to_string())
            .map_err(|e| to_py_err(py, &e, "DeadLetters"))
    }

    /// Up to `max` messages of application queue `queue` of `account`, as JSON text.
    fn application_messages_json(
        &self,
        py: Python<'_>,
        account: &str,
        queue: &str,
        max: usize,
    ) -> PyResult<String> {
        let keep = self.keep()?;
        py.detach(|| keep.application_messages(account, queue, max))
            .map(|v| serde_json::Value::from(v).to_string())
            .map_err(|e| to_py_err(py, &e, "ApplicationMessages"))
    }

    /// Deletes a received application message; true when it was there.
    fn delete_application_message(
        &self,
        py: Python<'_>,
        account: &str,
        queue: &str,
        receipt_handle: &str,
    ) -> PyResult<bool> {
        let keep = self.keep()?;
        py.detach(|| keep.delete_application_message(account, queue, receipt_handle))
            .map_err(|e| to_py_err(py, &e, "DeleteApplicationMessage"))
    }

    /// Sets the webhook settings from JSON text (see `WebhookConfig::from_json`).
    fn configure_webhooks(&self, py: Python<'_>, config_json: &str) -> PyResult<()> {
        let keep = self.keep()?;
        let config = codekeep::events::webhook::WebhookConfig::from_json(&parse_json(config_json)?)
            .map_err(|e| to_py_err(py, &e, "ConfigureWebhooks"))?;
        py.detach(|| keep.configure_webhooks(&config))
            .map_err(|e| to_py_err(py, &e, "ConfigureWebhooks"))
    }

    /// Releases the keep. Idempotent; clients already made stay usable.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let keep = self.inner.lock().map_err(|_| closed())?.take();
        // The last handle stops the delivery thread and waits for it; that thread may be
        // waiting for the GIL to call a Python function, so the GIL is released meanwhile.
        py.detach(move || drop(keep));
        Ok(())
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().map_or(true, |g| g.is_none())
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        let keep = self.inner.get_mut().ok().and_then(Option::take);
        if keep.is_some() {
            // As in `close`: never wait for the delivery thread while holding the GIL.
            Python::attach(|py| py.detach(move || drop(keep)));
        }
    }
}

/// Checks a received webhook's signature and timestamp (see `codekeep::events::webhook::verify`).
#[pyfunction]
#[expect(clippy::too_many_arguments, reason = "the scheme's parts, as named")]
fn verify_webhook(
    py: Python<'_>,
    secret: &str,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> PyResult<()> {
    codekeep::events::webhook::verify(secret, id, timestamp, signature, body, now, tolerance)
        .map_err(|e| to_py_err(py, &e, "VerifyWebhook"))
}

/// A client of one service acting as one caller.
#[pyclass(name = "Client", module = "codekeep._native", frozen)]
struct Client {
    inner: CoreClient,
}

#[pymethods]
impl Client {
    /// Calls `operation` with JSON text input; returns JSON text output.
    fn call_json(&self, py: Python<'_>, operation: &str, input_json: &str) -> PyResult<String> {
        let input = parse_json(input_json)?;
        let client = &self.inner;
        py.detach(|| client.call(operation, input))
            .map(|v| v.to_string())
            .map_err(|e| to_py_err(py, &e, operation))
    }

    /// The top-level output members of `operation` that are blobs (base64 in JSON).
    fn blob_members(&self, operation: &str) -> Vec<&'static str> {
        self.inner.blob_members(operation).to_vec()
    }

    /// The operations this client can call.
    fn operation_names(&self) -> Vec<&'static str> {
        self.inner.operation_names()
    }

    /// The service name.
    #[getter]
    fn service(&self) -> &str {
        self.inner.service()
    }

    /// Opens `path` for writing an envelope sealed under KMS key `key_id`.
    fn create_sealed(
        &self,
        py: Python<'_>,
        path: &str,
        key_id: &str,
        context_json: &str,
    ) -> PyResult<SealedWriter> {
        let context = context_of(context_json)?;
        let client = &self.inner;
        let writer = py
            .detach(|| -> codekeep::Result<SealWriter<BufWriter<File>>> {
                let file = File::create(path)?;
                client
                    .seal_writer(key_id, &context, BufWriter::new(file))
                    .inspect_err(|_| {
                        let _ = std::fs::remove_file(path);
                    })
            })
            .map_err(|e| to_py_err(py, &e, "GenerateDataKey"))?;
        Ok(SealedWriter {
            inner: Mutex::new(Some(writer)),
            path: path.to_owned(),
        })
    }

    /// Opens the envelope in `path` for reading with range reads.
    fn open_sealed(
        &self,
        py: Python<'_>,
        path: &str,
        context_json: &str,
    ) -> PyResult<SealedReader> {
        let context = context_of(context_json)?;
        let client = &self.inner;
        let (file, opener, len) = py
            .detach(|| -> codekeep::Result<(File, EnvelopeOpener, u64)> {
                let file = File::open(path)?;
                let opener = client.envelope_opener(&context, &file)?;
                let len = opener.plaintext_len(file.metadata()?.len())?;
                Ok((file, opener, len))
            })
            .map_err(|e| to_py_err(py, &e, "Decrypt"))?;
        Ok(SealedReader {
            state: Mutex::new(ReaderState {
                file: Some(file),
                opener,
                pos: 0,
                len,
            }),
        })
    }
}

fn context_of(json: &str) -> PyResult<EncryptionContext> {
    let value = parse_json(json)?;
    let map = value.as_object().ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err("EncryptionContext must be a dict of str")
    })?;
    let mut ctx = EncryptionContext::new();
    for (k, v) in map {
        let v = v.as_str().ok_or_else(|| {
            pyo3::exceptions::PyTypeError::new_err("EncryptionContext values must be str")
        })?;
        ctx = ctx.with(k, v);
    }
    Ok(ctx)
}

/// A file-like writer of a sealed envelope. `close()` seals the final segment.
#[pyclass(name = "SealedWriter", module = "codekeep._native", frozen)]
struct SealedWriter {
    inner: Mutex<Option<SealWriter<BufWriter<File>>>>,
    path: String,
}

// Locks are only ever taken with the GIL released (inside `py.detach`): a thread waiting for a
// lock while holding the GIL would deadlock with the holder, which needs the GIL to return.
#[pymethods]
impl SealedWriter {
    /// Writes bytes; returns how many.
    fn write(&self, py: Python<'_>, data: pyo3::buffer::PyBuffer<u8>) -> PyResult<usize> {
        let bytes = data.to_vec(py)?;
        let inner = &self.inner;
        py.detach(|| -> PyResult<()> {
            let mut guard = inner.lock().map_err(|_| closed())?;
            let writer = guard.as_mut().ok_or_else(closed)?;
            writer
                .write_all(&bytes)
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))
        })?;
        Ok(bytes.len())
    }

    /// Seals the final segment and closes the file. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        let path = &self.path;
        py.detach(|| -> codekeep::Result<()> {
            let Some(w) = inner.lock().ok().and_then(|mut g| g.take()) else {
                return Ok(());
            };
            let sealed = w.finish().and_then(|out| {
                let file = out
                    .into_inner()
                    .map_err(|e| codekeep::Error::from(e.into_error()))?;
                file.sync_all()?;
                Ok(())
            });
            if sealed.is_err() {
                let _ = std::fs::remove_file(path);
            }
            sealed
        })
        .map_err(|e| to_py_err(py, &e, "Seal"))
    }

    /// Discards what was written: the file is removed and never becomes a valid envelope.
    fn abort(&self, py: Python<'_>) {
        let inner = &self.inner;
        let path = &self.path;
        py.detach(|| {
            if inner.lock().ok().and_then(|mut g| g.take()).is_some() {
                let _ = std::fs::remove_file(path);
            }
        });
    }

    /// True once closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        let inner = &self.inner;
        py.detach(|| inner.lock().map_or(true, |g| g.is_none()))
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    fn seekable(&self) -> bool {
        false
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Seals on a normal exit; on an exception the partial plaintext is discarded, so a
    /// truncated stream never becomes an authentic envelope.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_some_and(|t| !t.is_none()) {
            self.abort(py);
        } else {
            self.close(py)?;
        }
        Ok(false)
    }
}

struct ReaderState {
    file: Option<File>,
    opener: EnvelopeOpener,
    pos: u64,
    len: u64,
}

/// A file-like, seekable reader of a sealed envelope: each read decrypts only the segments it
/// covers.
#[pyclass(name = "SealedReader", module = "codekeep._native", frozen)]
struct SealedReader {
    state: Mutex<ReaderState>,
}

#[pymethods]
impl SealedReader {
    /// Reads up to `size` bytes (all remaining when negative); `b""` at or past the end.
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&self, py: Python<'py>, size: i64) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let state = &self.state;
        // The lock is taken with the GIL released, so a thread holding the GIL never waits on a
        // lock whose holder needs the GIL back.
        let data = py
            .detach(|| -> Option<codekeep::Result<Vec<u8>>> {
                let mut st = state.lock().ok()?;
                let st = &mut *st;
                let file = st.file.as_ref()?;
                let remaining = st.len.saturating_sub(st.pos);
                let want = u64::try_from(size).map_or(remaining, |s| s.min(remaining));
                if want == 0 {
                    return Some(Ok(Vec::new()));
                }
                let data = st.opener.read_range(file, st.pos, want);
                if let Ok(d) = &data {
                    st.pos += d.len() as u64;
                }
                Some(data)
            })
            .ok_or_else(closed)?
            .map_err(|e| to_py_err(py, &e, "Read"))?;
        Ok(pyo3::types::PyBytes::new(py, &data))
    }

    /// Moves the position like `io.IOBase.seek`; returns the new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, offset: i64, whence: i32) -> PyResult<u64> {
        let mut st = self.state.lock().map_err(|_| closed())?;
        let base = match whence {
            0 => 0i128,
            1 => i128::from(st.pos),
            2 => i128::from(st.len),
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "whence must be 0, 1 or 2",
                ));
            }
        };
        let target = base + i128::from(offset);
        st.pos = u64::try_from(target)
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("negative seek position"))?;
        Ok(st.pos)
    }

    /// The current position.
    fn tell(&self) -> PyResult<u64> {
        Ok(self.state.lock().map_err(|_| closed())?.pos)
    }

    /// The plaintext length.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.state.lock().map_err(|_| closed())?.len)
    }

    /// Closes the file. Idempotent.
    fn close(&self) -> PyResult<()> {
        self.state.lock().map_err(|_| closed())?.file.take();
        Ok(())
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.state.lock().map_or(true, |s| s.file.is_none())
    }

    fn readable(&self) -> bool {
        true
    }

    fn seekable(&self) -> bool {
        true
    }

    fn writable(&self) -> bool {
        false
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }
}

/// A running git server; stopped by `stop()` (idempotent) or when collected.
#[pyclass(name = "Server", module = "codekeep._native", frozen)]
struct Server {
    inner: Mutex<Option<codekeep::server::Server>>,
}

#[pymethods]
impl Server {
    /// What the server serves (addresses, URLs, SSH host key) as JSON text.
    fn describe_json(&self) -> PyResult<String> {
        let guard = self.inner.lock().map_err(|_| closed())?;
        let server = guard.as_ref().ok_or_else(closed)?;
        Ok(server.describe().to_string())
    }

    /// Stops the server, letting open requests finish for a few seconds. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let server = self.inner.lock().map_err(|_| closed())?.take();
        if let Some(server) = server {
            py.detach(|| server.shutdown());
        }
        Ok(())
    }

    /// True once stopped.
    #[getter]
    fn stopped(&self) -> bool {
        self.inner.lock().map_or(true, |g| g.is_none())
    }
}

/// The native module.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{Client, Keep, SealedReader, SealedWriter, Server, verify_webhook};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods as _;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        let kinds: Vec<&str> = codekeep::ErrorKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        m.add("ERROR_KINDS", kinds)?;
        m.add(
            "TIMESTAMP_MEMBERS",
            codekeep::api::TIMESTAMP_MEMBERS.to_vec(),
        )?;
        Ok(())
    }
}
