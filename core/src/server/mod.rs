//! The embeddable git front ends (feature `server`): smart HTTP at CodeCommit's paths. The
//! server runs on its own tokio runtime and threads, so the host is never blocked; git's
//! protocol work runs on blocking threads, fed by and feeding the sockets through bounded
//! channels, so memory stays bounded whatever the size of a push or clone.

mod http;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::keep::Keep;

/// What to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address for smart HTTP (port 0 picks a free port).
    pub http: Option<SocketAddr>,
    /// Worker threads of the server's runtime.
    pub threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            threads: 2,
        }
    }
}

/// A running server. Dropping it, or calling [`Server::shutdown`], stops accepting
/// connections and waits for the runtime to wind down.
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    http_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the configured addresses and starts serving `keep` on background threads.
    ///
    /// # Errors
    /// `Io` when an address cannot be bound.
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
        let mut http_addr = None;
        if let Some(addr) = config.http {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot bind {addr}: {e}")))?;
            http_addr = Some(listener.local_addr()?);
            let keep = Arc::new(keep.clone());
            runtime.spawn(http::serve(listener, keep, stopped.clone()));
        }
        Ok(Server {
            runtime: Some(runtime),
            http_addr,
            stop: Some(stop),
        })
    }

    /// The address smart HTTP listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Stops accepting connections, gives open requests a moment to finish, and stops.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}
