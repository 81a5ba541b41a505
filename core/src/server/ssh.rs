//! git over SSH (russh): public-key authentication against IAM SSH keys, the SSH user being
//! the key id (`APKA…`, as CodeCommit) or the IAM user name; `exec git-upload-pack
//! '/v1/repos/<name>'` and `git-receive-pack`; `GIT_PROTOCOL` from an `env` request selects
//! protocol v2. The host key is an Ed25519 key generated once per keep and stored wrapped by
//! the keep's key provider, so every start presents the same identity.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg, ChannelWriteHalf, MethodKind, MethodSet};
use tokio::sync::{mpsc, watch};

use crate::api::Caller;
use crate::codecommit::git::{GitRequest, GitService};
use crate::error::{Error, ErrorKind, Result};
use crate::keep::Keep;
use crate::store::Key;

use super::bridge::{CHANNEL_CHUNKS, ChannelReader, ChannelWriter};

/// Binds the wrapped host key to its purpose.
const HOST_KEY_AAD: &[u8] = b"codekeep ssh host key ed25519 v1";
/// git's exit status for a fatal error.
const FATAL: u32 = 128;

/// The keep's SSH host key: loaded, or generated and stored wrapped on first use.
pub(super) fn host_key(keep: &Keep) -> Result<PrivateKey> {
    let inner = keep.inner();
    let key = Key::new("server").push("ssh-host-key");
    let seed =
        crate::crypto::keep_secret(&inner.meta, inner.key_provider.as_ref(), &key, HOST_KEY_AAD)?;
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| Error::storage("the stored SSH host key has the wrong length"))?;
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(seed);
    Ok(PrivateKey::from(pair))
}

/// russh's configuration: public keys only, AWS-like limits on idle and failed sessions.
pub(super) fn config(host_key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard(format!("SSH-2.0-{}", crate::git::agent()).into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: vec![host_key],
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        max_auth_attempts: 6,
        inactivity_timeout: Some(std::time::Duration::from_secs(600)),
        keepalive_interval: Some(std::time::Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    }
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    keep: Arc<Keep>,
    config: Arc<russh::server::Config>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let handler = Connection {
                    keep: Arc::clone(&keep),
                    peer,
                    caller: None,
                    channels: HashMap::new(),
                };
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    if let Ok(session) = russh::server::run_stream(config, stream, handler).await {
                        let _ = session.await;
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
}

/// One SSH connection: its authenticated caller and its session channels.
struct Connection {
    keep: Arc<Keep>,
    peer: SocketAddr,
    caller: Option<Caller>,
    channels: HashMap<ChannelId, OpenChannel>,
}

/// A session channel before its command: its writing half, the queue its reader fills once
/// the command runs, and what `env` requests said.
struct OpenChannel {
    output: ChannelWriteHalf<Msg>,
    input: mpsc::Receiver<io::Result<Bytes>>,
    running: Arc<AtomicBool>,
    protocol_v2: bool,
}

/// Session channels one connection may hold open.
const MAX_CHANNELS: usize = 4;

impl OpenChannel {
    /// Splits `channel` and reads it from now on: russh hands every message of a channel to a
    /// bounded queue and stops the whole connection while that queue is full, so nothing may
    /// sit unread. Data before the command runs is dropped (git sends none).
    fn new(channel: Channel<Msg>) -> OpenChannel {
        let (mut incoming, output) = channel.split();
        let (tx, input) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
        let running = Arc::new(AtomicBool::new(false));
        let started = Arc::clone(&running);
        tokio::spawn(async move {
            while let Some(message) = incoming.wait().await {
                let data = match message {
                    ChannelMsg::Data { data } => data,
                    ChannelMsg::Eof | ChannelMsg::Close => break,
                    _ => continue,
                };
                if started.load(Ordering::Acquire) && tx.send(Ok(data)).await.is_err() {
                    break;
                }
            }
        });
        OpenChannel {
            output,
            input,
            running,
            protocol_v2: false,
        }
    }
}

impl Connection {
    /// The IAM user that `ssh_user` presenting `key` is, if any.
    async fn authenticate(&self, ssh_user: &str, key: &PublicKey) -> Option<Caller> {
        let blob = key.to_bytes().ok()?;
        let keep = Arc::clone(&self.keep);
        let ssh_user = ssh_user.to_owned();
        let caller = tokio::task::spawn_blocking(move || keep.authenticate_ssh(&ssh_user, &blob))
            .await
            .ok()?
            .ok()?;
        caller
            .with_source_ip(&self.peer.ip().to_canonical().to_string())
            .ok()
            .map(|c| c.with_user_agent("git/ssh"))
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Only keys that could succeed are worth the client's signature.
        Ok(match self.authenticate(user, offer.public_key).await {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.caller = self.authenticate(user, key.public_key).await;
        Ok(if self.caller.is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= MAX_CHANNELS {
            // Dropping the reply refuses the channel.
            return Ok(());
        }
        self.channels
            .insert(channel.id(), OpenChannel::new(channel));
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // git sends GIT_PROTOCOL (ssh's SendEnv); every other variable is ignored.
        if let Some(open) = self.channels.get_mut(&channel)
            && name == "GIT_PROTOCOL"
        {
            open.protocol_v2 = value.split(':').any(|kv| kv.trim() == "version=2");
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(open), Some(caller)) = (self.channels.remove(&channel), self.caller.clone())
        else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let keep = Arc::clone(&self.keep);
        let command = parse_command(data_to_str(data));
        open.running.store(true, Ordering::Release);
        tokio::spawn(async move {
            match command {
                Ok((service, repository)) => {
                    let request = GitRequest {
                        caller,
                        repository,
                        service,
                        protocol_v2: open.protocol_v2,
                        transport: "SSH",
                    };
                    run_git(keep, request, open.output, open.input).await;
                }
                Err(e) => refuse(&open.output, e).await,
            }
        });
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // As CodeCommit: there is no shell, only git.
        match self.channels.remove(&channel) {
            Some(open) => {
                session.channel_success(channel)?;
                let refusal = Error::new(
                    ErrorKind::AccessDenied,
                    "shell access is not granted; this server only serves git",
                );
                tokio::spawn(async move { refuse(&open.output, refusal).await });
            }
            None => session.channel_failure(channel)?,
        }
        Ok(())
    }
}

fn data_to_str(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Splits `git-upload-pack '/v1/repos/<name>'` (git single-quotes the path, `'\''` standing
/// for a quote) into the service and the repository name.
fn parse_command(command: &str) -> Result<(GitService, String)> {
    let refused = || {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "unsupported command {command:?}: only git-upload-pack and git-receive-pack '/v1/repos/<name>' are served"
            ),
        )
    };
    let command = command.trim();
    let (service, argument) = [
        ("git-upload-pack ", GitService::UploadPack),
        ("git upload-pack ", GitService::UploadPack),
        ("git-receive-pack ", GitService::ReceivePack),
        ("git receive-pack ", GitService::ReceivePack),
    ]
    .iter()
    .find_map(|(program, service)| command.strip_prefix(program).map(|rest| (*service, rest)))
    .ok_or_else(refused)?;
    let path = unquote(argument.trim()).ok_or_else(refused)?;
    let name = path
        .trim_start_matches('/')
        .strip_prefix("v1/repos/")
        .ok_or_else(refused)?
        .trim_end_matches('/');
    let name = name.strip_suffix(".git").unwrap_or(name);
    if name.is_empty() || name.contains('/') {
        return Err(refused());
    }
    Ok((service, name.to_owned()))
}

/// git's `sq_dequote`: `'a'\''b'` is `a'b`; an unquoted word is taken as it is.
fn unquote(text: &str) -> Option<String> {
    if !text.starts_with('\'') {
        return (!text.contains(['\'', ' '])).then(|| text.to_owned());
    }
    let mut out = String::new();
    let mut rest = text;
    loop {
        let body = rest.strip_prefix('\'')?;
        let end = body.find('\'')?;
        out.push_str(body.get(..end)?);
        rest = body.get(end + 1..)?;
        if rest.is_empty() {
            return Some(out);
        }
        rest = rest.strip_prefix("\\'")?;
        out.push('\'');
        if rest.is_empty() {
            return Some(out);
        }
    }
}

/// Runs one git service: the engine on a blocking thread, the channel's data through bounded
/// queues both ways; errors go to stderr with git's fatal exit status.
async fn run_git(
    keep: Arc<Keep>,
    request: GitRequest,
    outgoing: ChannelWriteHalf<Msg>,
    input: mpsc::Receiver<io::Result<Bytes>>,
) {
    let (out_tx, mut out_rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let worker = tokio::task::spawn_blocking(move || {
        let mut input = ChannelReader::new(input);
        let mut output = ChannelWriter::new(out_tx, Vec::new(), None);
        let served = keep.git_serve_session(&request, &mut input, &mut output);
        let flushed = output.finish();
        served.and(flushed.map_err(Error::from))
    });
    let mut connected = true;
    while let Some(chunk) = out_rx.recv().await {
        let Ok(chunk) = chunk else { break };
        if outgoing.data_bytes(chunk).await.is_err() {
            connected = false;
            break;
        }
    }
    // Unblock a worker still writing to a client that went away.
    drop(out_rx);
    let status = match worker.await {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            if connected {
                let line = format!("fatal: {}\n", e.message());
                let _ = outgoing.extended_data_bytes(1, line.into_bytes()).await;
            }
            FATAL
        }
        Err(_) => FATAL,
    };
    let _ = outgoing.exit_status(status).await;
    let _ = outgoing.eof().await;
    let _ = outgoing.close().await;
}

/// Tells the client why nothing runs, as git's server would: on stderr, exit status 128.
async fn refuse(channel: &ChannelWriteHalf<Msg>, error: Error) {
    let line = format!("fatal: {}\n", error.message());
    let _ = channel.extended_data_bytes(1, line.into_bytes()).await;
    let _ = channel.exit_status(FATAL).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_as_git_quotes_them() {
        let (service, name) = parse_command("git-upload-pack '/v1/repos/web'").unwrap();
        assert_eq!((service, name.as_str()), (GitService::UploadPack, "web"));
        let (service, name) = parse_command("git-receive-pack 'v1/repos/web.git/'").unwrap();
        assert_eq!((service, name.as_str()), (GitService::ReceivePack, "web"));
        let (service, name) = parse_command("git upload-pack '/v1/repos/web'").unwrap();
        assert_eq!((service, name.as_str()), (GitService::UploadPack, "web"));
        let (service, name) = parse_command("git-receive-pack 'v1/repos/web.git/'").unwrap();
        assert_eq!((service, name.as_str()), (GitService::ReceivePack, "web"));
        assert_eq!(unquote("'a'\\''b'").as_deref(), Some("a'b"));
        assert_eq!(unquote("/v1/repos/x").as_deref(), Some("/v1/repos/x"));
        for bad in [
            "ls /",
            "git-upload-pack",
            "git-upload-pack '/etc/passwd'",
            "git-upload-pack '/v1/repos/a/b'",
            "git-upload-pack '/v1/repos/x",
            "git-upload-pack '/v1/repos/x' extra",
            "git-upload-pack '/v1/repos/'",
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }
}
