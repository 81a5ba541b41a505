//! A small HTTP/1.1 client for webhook deliveries: one POST per connection, TLS through rustls
//! (the system's roots plus any the keep adds), a deadline over the whole exchange, and the
//! allowance checked on the very address connected to.
//!
//! Why not a general HTTP client crate: the allowance must see each resolved address before
//! the connection is made (a client that resolves on its own can be steered to an internal
//! address by DNS after the check), and a webhook needs nothing else of HTTP: write one
//! request, read one status line.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, ServerName};
use url::{Host, Url};

use super::WebhookAllowance;
use crate::error::{Error, Result};

/// The most of a response's head read before giving up on it.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A 2xx answer.
    Delivered(u16),
    /// Worth trying again (a connection failure, a timeout, 401, 407, 409, 429 or 5xx: the
    /// statuses EventBridge retries for API destinations).
    Retry(String),
    /// Not worth trying again (any other status, or a destination the allowance refuses).
    Fail(String),
}

/// Sends webhooks for one keep.
#[derive(Debug)]
pub(crate) struct WebhookClient {
    allowance: WebhookAllowance,
    extra_roots: Vec<CertificateDer<'static>>,
    tls: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>>,
    timeout: Duration,
}

impl WebhookClient {
    pub(crate) fn new(
        allowance: WebhookAllowance,
        extra_roots: Vec<CertificateDer<'static>>,
        timeout: Duration,
    ) -> Self {
        WebhookClient {
            allowance,
            extra_roots,
            tls: OnceLock::new(),
            timeout,
        }
    }

    /// Checks an endpoint when it is configured: http or https, a host the allowance names,
    /// no credentials in the URL. (Addresses are checked at each delivery.)
    pub(crate) fn check_endpoint(&self, endpoint: &str) -> Result<Url> {
        let url = Url::parse(endpoint)
            .map_err(|e| Error::invalid(format!("{endpoint} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid(format!(
                "{endpoint}: a webhook endpoint is http:// or https://"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(format!(
                "{endpoint}: credentials do not belong in a webhook URL"
            )));
        }
        let host = url.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !self.allowance.permits_host(bare) {
            return Err(Error::invalid(format!(
                "{endpoint}: host {host} is not in the keep's webhook allowance"
            )));
        }
        Ok(url)
    }

    /// One delivery attempt: `method` of `body` to `endpoint` with `headers`.
    pub(crate) fn send(
        &self,
        method: &str,
        endpoint: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Outcome {
        let url = match self.check_endpoint(endpoint) {
            Ok(url) => url,
            Err(e) => return Outcome::Fail(e.message().to_owned()),
        };
        let deadline = Instant::now() + self.timeout;
        match self.exchange(method, &url, headers, body, deadline) {
            Ok(status) if (200..300).contains(&status) => Outcome::Delivered(status),
            Ok(status) if matches!(status, 401 | 407 | 409 | 429) || status >= 500 => {
                Outcome::Retry(format!("{endpoint} answered {status}"))
            }
            Ok(status) => Outcome::Fail(format!("{endpoint} answered {status}")),
            Err(Attempt::Refused(why)) => Outcome::Fail(why),
            Err(Attempt::Failed(why)) => Outcome::Retry(format!("{endpoint}: {why}")),
        }
    }

    fn exchange(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: &[u8],
        deadline: Instant,
    ) -> std::result::Result<u16, Attempt> {
        let https = url.scheme() == "https";
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let (addresses, server_name) = match url.host() {
            Some(Host::Domain(name)) => (
                (name, port)
                    .to_socket_addrs()
                    .map_err(|e| Attempt::Failed(format!("cannot resolve {name}: {e}")))?
                    .collect::<Vec<_>>(),
                ServerName::try_from(name.to_owned())
                    .map_err(|_| Attempt::Refused(format!("{name} is not a DNS name")))?,
            ),
            Some(Host::Ipv4(ip)) => (
                vec![SocketAddr::new(ip.into(), port)],
                ServerName::IpAddress(std::net::IpAddr::from(ip).into()),
            ),
            Some(Host::Ipv6(ip)) => (
                vec![SocketAddr::new(ip.into(), port)],
                ServerName::IpAddress(std::net::IpAddr::from(ip).into()),
            ),
            None => return Err(Attempt::Refused("the URL names no host".to_owned())),
        };
        let permitted: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|a| self.allowance.permits_address(a.ip()))
            .collect();
        if permitted.is_empty() {
            let shown: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            return Err(Attempt::Refused(format!(
                "{} resolves to {} only, which the keep's webhook allowance does not include",
                url.host_str().unwrap_or_default(),
                shown.join(", ")
            )));
        }
        let stream = connect(&permitted, deadline)?;
        let request = request_head(method, url, headers, body.len());
        if https {
            let config = self.tls_config().map_err(Attempt::Refused)?;
            let connection = rustls::ClientConnection::new(config, server_name)
                .map_err(|e| Attempt::Failed(format!("TLS: {e}")))?;
            let mut tls = rustls::StreamOwned::new(connection, stream);
            exchange_on(&mut tls, &request, body, deadline, |s, d| {
                set_deadline(&s.sock, d)
            })
        } else {
            let mut plain = stream;
            exchange_on(&mut plain, &request, body, deadline, |s, d| {
                set_deadline(s, d)
            })
        }
    }

    fn tls_config(&self) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                // Unreadable system certificates are skipped: the rest still verify.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                for cert in &self.extra_roots {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("a configured webhook CA is not usable: {e}"))?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }
}

/// Why an exchange did not produce a status.
enum Attempt {
    /// The destination is not allowed or cannot be named; trying again will not help.
    Refused(String),
    /// The network or the peer failed; another attempt may succeed.
    Failed(String),
}

fn remaining(deadline: Instant) -> std::result::Result<Duration, Attempt> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Attempt::Failed("timed out".to_owned()))
}

fn connect(addresses: &[SocketAddr], deadline: Instant) -> std::result::Result<TcpStream, Attempt> {
    let mut last = String::new();
    for address in addresses {
        match TcpStream::connect_timeout(address, remaining(deadline)?) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(Attempt::Failed(last))
}

fn set_deadline(stream: &TcpStream, deadline: Instant) -> std::result::Result<(), Attempt> {
    let left = remaining(deadline)?;
    stream
        .set_read_timeout(Some(left))
        .and_then(|()| stream.set_write_timeout(Some(left)))
        .map_err(|e| Attempt::Failed(e.to_string()))
}

fn request_head(method: &str, url: &Url, headers: &[(String, String)], length: usize) -> Vec<u8> {
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: codekeep/{}\r\nContent-Length: {length}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        // Header names and values were checked when configured; drop any line break anyway.
        if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Writes the request and reads the response's status, refreshing the socket's timeouts to the
/// deadline before each step.
fn exchange_on<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    head: &[u8],
    body: &[u8],
    deadline: Instant,
    arm: impl Fn(&S, Instant) -> std::result::Result<(), Attempt>,
) -> std::result::Result<u16, Attempt> {
    let io = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            Attempt::Failed("timed out".to_owned())
        } else {
            Attempt::Failed(e.to_string())
        }
    };
    arm(stream, deadline)?;
    stream.write_all(head).map_err(io)?;
    arm(stream, deadline)?;
    stream.write_all(body).map_err(io)?;
    stream.flush().map_err(io)?;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        arm(stream, deadline)?;
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err(Attempt::Failed(
                "the connection closed before a response".to_owned(),
            ));
        }
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buffer) {
            Ok(httparse::Status::Complete(_)) => {
                return response
                    .code
                    .ok_or_else(|| Attempt::Failed("a response without a status".to_owned()));
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_RESPONSE_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(Attempt::Failed("the response head is too long".to_owned()));
            }
            Err(e) => return Err(Attempt::Failed(format!("a malformed response: {e}"))),
        }
    }
}
