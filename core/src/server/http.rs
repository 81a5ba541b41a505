//! Smart HTTP (gitprotocol-http) at CodeCommit's paths: `GET /v1/repos/<name>/info/refs
//! ?service=git-upload-pack|git-receive-pack`, `POST /v1/repos/<name>/git-upload-pack`,
//! `POST /v1/repos/<name>/git-receive-pack`. Basic authentication with IAM git credentials or
//! an STS session; 401 with a challenge when credentials are missing or wrong (so git asks its
//! credential helper), 403 with the reason when policy denies.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::Caller;
use crate::codecommit::git::{GitRequest, GitService};
use crate::error::{Error, ErrorKind};
use crate::keep::Keep;

use super::bridge::{CHANNEL_CHUNKS, ChannelReader, ChannelWriter};

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    keep: Arc<Keep>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let keep = Arc::clone(&keep);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(stream, keep, peer).await;
                            }
                        }
                        None => serve_connection(stream, keep, peer).await,
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
}

async fn serve_connection<S>(stream: S, keep: Arc<Keep>, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&keep), peer, req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// The response body: chunks produced by the protocol thread.
struct ChannelBody(mpsc::Receiver<io::Result<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
}

type ResponseBody = http_body_util::Either<ChannelBody, http_body_util::Full<Bytes>>;

enum Route {
    InfoRefs(GitService),
    Rpc(GitService),
}

async fn handle(
    keep: Arc<Keep>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    Ok(match route(&req) {
        Ok((repository, route)) => match authenticate(&keep, peer, req.headers()).await {
            Ok(caller) => run(keep, caller, repository, route, req).await,
            Err(response) => response,
        },
        Err(response) => response,
    })
}

#[expect(clippy::result_large_err, reason = "the error is the response to send")]
fn route(req: &Request<Incoming>) -> Result<(String, Route), Response<ResponseBody>> {
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/v1/repos/")
        .ok_or_else(|| plain(StatusCode::NOT_FOUND, "not found"))?;
    let (name, tail) = rest
        .split_once('/')
        .ok_or_else(|| plain(StatusCode::NOT_FOUND, "not found"))?;
    let name = name.strip_suffix(".git").unwrap_or(name).to_owned();
    match (req.method(), tail) {
        (&Method::GET, "info/refs") => {
            let service = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("service="))
                .and_then(GitService::from_name)
                // Dumb HTTP is not served: smart clients always name a service.
                .ok_or_else(|| {
                    plain(
                        StatusCode::FORBIDDEN,
                        "only the smart HTTP protocol is served",
                    )
                })?;
            Ok((name, Route::InfoRefs(service)))
        }
        (&Method::POST, "git-upload-pack") => Ok((name, Route::Rpc(GitService::UploadPack))),
        (&Method::POST, "git-receive-pack") => Ok((name, Route::Rpc(GitService::ReceivePack))),
        (_, "info/refs" | "git-upload-pack" | "git-receive-pack") => {
            Err(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"))
        }
        _ => Err(plain(StatusCode::NOT_FOUND, "not found")),
    }
}

/// Basic credentials: an IAM git credential (user name and password), or an STS session
/// (access key id as the user, `secret:token` as the password) or access key (secret).
async fn authenticate(
    keep: &Arc<Keep>,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Caller, Response<ResponseBody>> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(challenge());
    };
    let agent = headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("git")
        .to_owned();
    let keep = Arc::clone(keep);
    let looks_like_key = (user.starts_with("AKIA") || user.starts_with("ASIA")) && user.len() == 20;
    let caller = tokio::task::spawn_blocking(move || {
        if looks_like_key {
            Ok(match password.split_once(':') {
                Some((secret, token)) => Caller::session(&user, secret, token),
                None => Caller::access_key(&user, &password),
            })
        } else {
            keep.authenticate_git_https(&user, &password)
        }
    })
    .await
    .map_err(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
    .map_err(|_| challenge())?;
    caller
        .with_source_ip(&peer.ip().to_canonical().to_string())
        .map(|c| c.with_user_agent(&agent))
        .map_err(|_| plain(StatusCode::BAD_REQUEST, "bad peer address"))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = B64.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn run(
    keep: Arc<Keep>,
    caller: Caller,
    repository: String,
    route: Route,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let protocol_v2 = req
        .headers()
        .get("git-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(':').any(|kv| kv.trim() == "version=2"));
    let (service, rpc) = match route {
        Route::InfoRefs(s) => (s, false),
        Route::Rpc(s) => (s, true),
    };
    let git = GitRequest {
        caller,
        repository,
        service,
        protocol_v2,
        transport: "HTTP",
    };
    if rpc {
        let wanted = format!("application/x-{}-request", service.name());
        let content_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if content_type != Some(wanted.as_str()) {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content type",
            );
        }
    }
    let gzip = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip"));
    let body_rx = forward_body(req.into_body());
    let (out_tx, out_rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let (started_tx, started_rx) = oneshot::channel::<Result<(), Error>>();
    let prefix = if !rpc && !git.v2_requested() {
        let mut p = Vec::new();
        crate::git::pktline::text(&mut p, &format!("# service={}", service.name()))
            .and_then(|()| crate::git::pktline::flush(&mut p))
            .ok();
        p
    } else {
        Vec::new()
    };
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(out_tx, prefix, Some(started_tx));
        let mut body = ChannelReader::new(body_rx);
        let result = if rpc {
            if gzip {
                let mut decoder = flate2::read::GzDecoder::new(body);
                keep.git_serve_stateless(&git, &mut decoder, &mut out)
            } else {
                keep.git_serve_stateless(&git, &mut body, &mut out)
            }
        } else {
            keep.git_advertise(&git, &mut out)
        };
        match result {
            Ok(()) => {
                let _ = out.finish();
            }
            Err(e) => {
                out.fail(e);
            }
        }
    });
    match started_rx.await {
        Ok(Ok(())) => {
            let kind = if rpc { "result" } else { "advertisement" };
            let mut response = Response::new(ResponseBody::Left(ChannelBody(out_rx)));
            let headers = response.headers_mut();
            if let Ok(v) =
                HeaderValue::from_str(&format!("application/x-{}-{kind}", service.name()))
            {
                headers.insert(hyper::header::CONTENT_TYPE, v);
            }
            no_cache(headers);
            response
        }
        Ok(Err(e)) => error_response(&e),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

impl GitRequest {
    fn v2_requested(&self) -> bool {
        self.protocol_v2 && self.service == GitService::UploadPack
    }
}

fn error_response(e: &Error) -> Response<ResponseBody> {
    match e.kind() {
        ErrorKind::AccessDenied
            if matches!(
                e.code(),
                "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "UnrecognizedClientException"
                    | "MissingAuthenticationToken"
            ) =>
        {
            challenge()
        }
        ErrorKind::AccessDenied | ErrorKind::Disabled | ErrorKind::InvalidState => {
            plain(StatusCode::FORBIDDEN, e.message())
        }
        ErrorKind::NotFound => plain(StatusCode::NOT_FOUND, e.message()),
        ErrorKind::InvalidArgument => plain(StatusCode::BAD_REQUEST, e.message()),
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, e.message()),
    }
}

fn challenge() -> Response<ResponseBody> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "authentication required");
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"codekeep\""),
    );
    response
}

fn plain(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Right(http_body_util::Full::new(Bytes::from(
        format!("{message}\n"),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    no_cache(response.headers_mut());
    response
}

/// git's http-backend headers for responses that must never be cached.
fn no_cache(headers: &mut HeaderMap) {
    headers.insert(
        hyper::header::EXPIRES,
        HeaderValue::from_static("Fri, 01 Jan 1980 00:00:00 GMT"),
    );
    headers.insert(hyper::header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0, must-revalidate"),
    );
}

/// Forwards the request body's chunks to a channel the protocol thread reads.
fn forward_body(mut incoming: Incoming) -> mpsc::Receiver<io::Result<Bytes>> {
    let (body_tx, body_rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        while let Some(frame) = incoming.frame().await {
            let chunk = match frame {
                Ok(f) => match f.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Err(e) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
            };
            let failed = chunk.is_err();
            if body_tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    body_rx
}
