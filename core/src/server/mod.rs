//! The embeddable git front ends (feature `server`): smart HTTP at CodeCommit's paths (plain or
//! TLS) and SSH. The server runs on its own tokio runtime and threads, so the host is never
//! blocked; git's protocol work runs on blocking threads, fed by and feeding the sockets
//! through bounded channels, so memory stays bounded whatever the size of a push or clone.

mod bridge;
mod http;
mod ssh;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::keep::Keep;

/// What to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address for smart HTTP (port 0 picks a free port); `None` serves no HTTP.
    pub http: Option<SocketAddr>,
    /// Serve HTTPS instead of HTTP on [`ServerConfig::http`], with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Address for SSH (port 0 picks a free port); `None` serves no SSH.
    pub ssh: Option<SocketAddr>,
    /// Worker threads of the server's runtime.
    pub threads: usize,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub certificate_chain: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            tls: None,
            ssh: None,
            threads: 2,
        }
    }
}

impl ServerConfig {
    /// Reads the configuration the C and Python bindings pass: `{"Http": "127.0.0.1:0",
    /// "Ssh": "127.0.0.1:0", "Tls": {"CertificateChain": path, "PrivateKey": path},
    /// "Threads": 2}`. An absent `Http` is the default (loopback, a free port); `null` turns a
    /// front end off; an absent `Ssh` serves no SSH.
    ///
    /// # Errors
    /// `InvalidArgument` for an unknown member, an address that does not parse or a TLS member
    /// that is missing.
    pub fn from_json(config: &serde_json::Value) -> Result<ServerConfig> {
        let invalid = |what: String| Error::new(ErrorKind::InvalidArgument, what);
        let object = config
            .as_object()
            .ok_or_else(|| invalid("the server configuration must be a JSON object".to_owned()))?;
        let address = |name: &str| -> Result<Option<SocketAddr>> {
            match object.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(text)) => text.parse().map(Some).map_err(|_| {
                    invalid(format!(
                        "{name}: {text:?} is not an address like 127.0.0.1:0"
                    ))
                }),
                Some(_) => Err(invalid(format!("{name} must be an address string or null"))),
            }
        };
        let mut out = ServerConfig {
            http: address("Http")?,
            ssh: address("Ssh")?,
            ..ServerConfig::default()
        };
        if !object.contains_key("Http") {
            out.http = ServerConfig::default().http;
        }
        if let Some(tls) = object.get("Tls").filter(|t| !t.is_null()) {
            let path = |name: &str| {
                tls.get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(PathBuf::from)
                    .ok_or_else(|| invalid(format!("Tls.{name} must be a file path")))
            };
            out.tls = Some(TlsFiles {
                certificate_chain: path("CertificateChain")?,
                private_key: path("PrivateKey")?,
            });
        }
        if let Some(threads) = object.get("Threads") {
            out.threads = threads
                .as_u64()
                .and_then(|t| usize::try_from(t).ok())
                .filter(|t| (1..=256).contains(t))
                .ok_or_else(|| invalid("Threads must be a number from 1 to 256".to_owned()))?;
        }
        if let Some(unknown) = object
            .keys()
            .find(|k| !["Http", "Ssh", "Tls", "Threads"].contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "unknown server configuration member {unknown:?}"
            )));
        }
        Ok(out)
    }
}

/// A running server. Dropping it, or calling [`Server::shutdown`], stops accepting
/// connections and waits for the runtime to wind down.
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    http_addr: Option<SocketAddr>,
    ssh_addr: Option<SocketAddr>,
    ssh_host_key: Option<String>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    /// The keep served, and the clone URL bases this server registered in it.
    registered: Option<(Arc<Keep>, crate::codecommit::CloneUrls)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http_addr", &self.http_addr)
            .field("ssh_addr", &self.ssh_addr)
            .finish_non_exhaustive()
    }
}

fn bind(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    // On a thread of its own: `block_on` may not run inside a host's own tokio runtime.
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(tokio::net::TcpListener::bind(addr)))
            .join()
            .map_err(|_| Error::internal("binding a listener panicked"))
    })?
    .map_err(|e| Error::new(ErrorKind::Io, format!("cannot bind {addr}: {e}")))
}

impl Server {
    /// Binds the configured addresses and starts serving `keep` on background threads.
    ///
    /// # Errors
    /// `Io` when an address cannot be bound; `InvalidArgument` for unreadable TLS files;
    /// the key provider's errors when the SSH host key cannot be loaded.
    pub fn start(keep: &Keep, config: &ServerConfig) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("codekeep-server")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot start the server runtime: {e}"),
                )
            })?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let keep = Arc::new(keep.clone());
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut server = Server {
            runtime: None,
            http_addr: None,
            ssh_addr: None,
            ssh_host_key: None,
            stop: Some(stop),
            registered: None,
        };
        if let Some(addr) = config.ssh {
            let host_key = ssh::host_key(&keep)?;
            server.ssh_host_key = host_key.public_key().to_openssh().ok();
            let listener = bind(&runtime, addr)?;
            server.ssh_addr = Some(listener.local_addr()?);
            let ssh_config = Arc::new(ssh::config(host_key));
            runtime.spawn(ssh::serve(
                listener,
                Arc::clone(&keep),
                ssh_config,
                stopped.clone(),
            ));
        }
        if let Some(addr) = config.http {
            let listener = bind(&runtime, addr)?;
            server.http_addr = Some(listener.local_addr()?);
            runtime.spawn(http::serve(listener, Arc::clone(&keep), tls, stopped));
        }
        server.runtime = Some(runtime);
        server.register_clone_urls(keep, config.tls.is_some());
        Ok(server)
    }

    /// Points RepositoryMetadata's clone URLs at this server (until it stops).
    fn register_clone_urls(&mut self, keep: Arc<Keep>, tls: bool) {
        let scheme = if tls { "https" } else { "http" };
        let ours = crate::codecommit::CloneUrls {
            http: self.http_addr.map(|a| format!("{scheme}://{a}")),
            ssh: self.ssh_addr.map(|a| format!("ssh://{a}")),
        };
        if let Ok(mut urls) = keep.inner().clone_urls.write() {
            *urls = ours.clone();
        }
        self.registered = Some((keep, ours));
    }

    /// The address smart HTTP (or HTTPS) listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The address SSH listens on.
    pub fn ssh_addr(&self) -> Option<SocketAddr> {
        self.ssh_addr
    }

    /// The SSH host key in OpenSSH form (`ssh-ed25519 AAAA…`), for clients' `known_hosts`.
    pub fn ssh_host_key(&self) -> Option<&str> {
        self.ssh_host_key.as_deref()
    }

    /// What the server serves, as JSON: `HttpAddress`, `HttpUrl`, `SshAddress`, `SshUrl` and
    /// `SshHostKey`, each present when that front end runs.
    pub fn describe(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        let urls = self.registered.as_ref().map(|(_, urls)| urls);
        if let Some(a) = self.http_addr {
            out.insert("HttpAddress".into(), a.to_string().into());
        }
        if let Some(url) = urls.and_then(|u| u.http.clone()) {
            out.insert("HttpUrl".into(), url.into());
        }
        if let Some(a) = self.ssh_addr {
            out.insert("SshAddress".into(), a.to_string().into());
        }
        if let Some(url) = urls.and_then(|u| u.ssh.clone()) {
            out.insert("SshUrl".into(), url.into());
        }
        if let Some(key) = &self.ssh_host_key {
            out.insert("SshHostKey".into(), key.clone().into());
        }
        serde_json::Value::Object(out)
    }

    /// Stops accepting connections, gives open requests a moment to finish, and stops.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some((keep, ours)) = self.registered.take()
            && let Ok(mut urls) = keep.inner().clone_urls.write()
            && *urls == ours
        {
            *urls = crate::codecommit::CloneUrls::default();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(runtime) = self.runtime.take() {
            // On a thread of its own: a runtime may not be dropped inside a host's own tokio
            // runtime.
            let _ = std::thread::spawn(move || {
                runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            })
            .join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}
