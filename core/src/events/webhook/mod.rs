//! Webhooks: events POSTed over HTTP(S), signed the Standard Webhooks way, only to hosts the
//! keep's configuration allows.
//!
//! A delivery carries three headers: `webhook-id` (the same on every retry of one delivery, so
//! receivers can drop duplicates), `webhook-timestamp` (seconds since the epoch at the attempt)
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. The secret is per
//! destination, `whsec_` followed by base64 of 32 random bytes; the HMAC key is those bytes.
//! [`verify`] is the receiver's side (also exported to C and Python).

mod allow;
pub(crate) mod http;

use base64::Engine as _;
use zeroize::Zeroizing;

use std::time::Duration;

pub use allow::WebhookAllowance;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// How long one delivery attempt may take, connection to response (EventBridge gives API
/// destinations five seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The keep's webhook settings (not stored: the host application sets them at each start).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where webhooks may go; by default nowhere.
    pub allowance: WebhookAllowance,
    /// The limit on one attempt.
    pub timeout: Duration,
    /// PEM certificates trusted for https endpoints besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allowance: WebhookAllowance::new(),
            timeout: DEFAULT_TIMEOUT,
            ca_file: None,
        }
    }
}

impl WebhookConfig {
    /// Reads `{"hosts": [...], "networks": [...], "timeout_ms": n, "ca_file": "path"}` (the
    /// bindings' form; every member optional).
    ///
    /// # Errors
    /// `InvalidArgument` for another shape, an invalid host pattern or network, or a timeout
    /// outside 1 ms to 10 minutes.
    pub fn from_json(value: &Value) -> Result<Self> {
        let object = value
            .as_object()
            .ok_or_else(|| Error::invalid("the webhook settings must be a JSON object"))?;
        if let Some(unknown) = object
            .keys()
            .find(|k| !["hosts", "networks", "timeout_ms", "ca_file"].contains(&k.as_str()))
        {
            return Err(Error::invalid(format!(
                "unknown webhook setting {unknown:?}"
            )));
        }
        let timeout = match value.get("timeout_ms") {
            None => DEFAULT_TIMEOUT,
            Some(v) => v
                .as_u64()
                .filter(|ms| (1..=600_000).contains(ms))
                .map(Duration::from_millis)
                .ok_or_else(|| Error::invalid("timeout_ms must be 1 to 600000"))?,
        };
        let ca_file = match value.get("ca_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(path)) => Some(path.into()),
            Some(_) => return Err(Error::invalid("ca_file must be a path")),
        };
        Ok(WebhookConfig {
            allowance: WebhookAllowance::from_json(value)?,
            timeout,
            ca_file,
        })
    }

    /// The client these settings describe (reads the CA file).
    pub(crate) fn client(&self) -> Result<http::WebhookClient> {
        use rustls_pki_types::pem::PemObject as _;
        let roots = match &self.ca_file {
            None => Vec::new(),
            Some(path) => rustls_pki_types::CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
                .map_err(|e| Error::invalid(format!("webhook CA file {}: {e}", path.display())))?,
        };
        Ok(http::WebhookClient::new(
            self.allowance.clone(),
            roots,
            self.timeout,
        ))
    }
}

/// The prefix of a signing secret.
const SECRET_PREFIX: &str = "whsec_";
/// The receiver's default tolerance for a timestamp's distance from its clock (Standard
/// Webhooks' reference libraries use five minutes).
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;
/// The longest `webhook-signature` header [`verify`] reads.
const MAX_SIGNATURE_HEADER: usize = 4096;

/// A new signing secret.
///
/// # Errors
/// `Internal` when the system's random generator fails.
pub(crate) fn new_secret() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 32]);
    crate::id::fill_secret(&mut raw[..])?;
    Ok(Zeroizing::new(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(&raw[..])
    )))
}

/// A new signing secret and its stored form: wrapped by the keep's key provider, bound to
/// `aad` (which names its owner), base64.
pub(crate) fn new_wrapped_secret(
    keep: &crate::keep::KeepInner,
    aad: &str,
) -> Result<(Zeroizing<String>, String)> {
    let secret = new_secret()?;
    let wrapped = keep.key_provider.wrap(secret.as_bytes(), aad.as_bytes())?;
    Ok((
        secret,
        base64::engine::general_purpose::STANDARD.encode(wrapped),
    ))
}

/// A secret stored by [`new_wrapped_secret`], unwrapped.
pub(crate) fn unwrap_secret(
    keep: &crate::keep::KeepInner,
    aad: &str,
    stored: &str,
) -> Result<Zeroizing<String>> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .map_err(|_| Error::storage("a stored webhook secret is not base64"))?;
    let raw = keep.key_provider.unwrap(&wrapped, aad.as_bytes())?;
    String::from_utf8(raw.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| Error::storage("a stored webhook secret is not text"))
}

/// The three headers that sign one delivery attempt: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`.
pub(crate) fn signature_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(String, String); 3]> {
    let signature = sign(secret, id, timestamp, body)?;
    Ok([
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), signature),
    ])
}

/// The HMAC key a secret names: the bytes after `whsec_` (the prefix is optional).
fn secret_key(secret: &str) -> Result<ring::hmac::Key> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| Error::invalid("a webhook secret is whsec_ followed by base64"))?,
    );
    if raw.is_empty() {
        return Err(Error::invalid("a webhook secret must not be empty"));
    }
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw))
}

fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` header value for one delivery: `v1,<base64 signature>`.
///
/// # Errors
/// `InvalidArgument` when `secret` is not a signing secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let key = secret_key(secret)?;
    let tag = ring::hmac::sign(&key, &signed_content(id, &timestamp.to_string(), body));
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    ))
}

/// Checks a received webhook: one of the space-separated `v1,` signatures in `signatures`
/// must be the HMAC of `id.timestamp.body` under `secret` (compared in constant time), and
/// `timestamp` must be within `tolerance_seconds` of `now_seconds`, so a captured delivery
/// cannot be replayed later.
///
/// # Errors
/// `AccessDenied` for a wrong signature or a timestamp outside the tolerance;
/// `InvalidArgument` for a malformed secret, timestamp or signature header.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_seconds: i64,
    tolerance_seconds: i64,
) -> Result<()> {
    let key = secret_key(secret)?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Error::invalid("webhook-timestamp is not a number of seconds"))?;
    if signatures.len() > MAX_SIGNATURE_HEADER {
        return Err(Error::invalid("webhook-signature is too long"));
    }
    if sent.abs_diff(now_seconds) > tolerance_seconds.unsigned_abs() {
        return Err(Error::new(
            ErrorKind::AccessDenied,
            "webhook-timestamp is outside the tolerance: the message is too old or too new",
        ));
    }
    let content = signed_content(id, timestamp.trim(), body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .any(|tag| ring::hmac::verify(&key, &content, &tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::AccessDenied,
            "no webhook-signature matches the message",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Standard Webhooks' published example (standard-webhooks spec, "Signature scheme").
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn a_signature_verifies_and_anything_else_does_not() {
        let signature = sign(SECRET, ID, 1_614_265_330, BODY).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        verify(
            SECRET,
            ID,
            "1614265330",
            &signature,
            BODY,
            1_614_265_330,
            300,
        )
        .unwrap();
        // Several signatures (a rotated secret): one match is enough.
        let both = format!("v1,AAAA {signature}");
        verify(SECRET, ID, "1614265330", &both, BODY, 1_614_265_400, 300).unwrap();
        let denied = |r: Result<()>| r.unwrap_err().kind();
        assert_eq!(
            denied(verify(
                SECRET,
                ID,
                "1614265330",
                &signature,
                b"{}",
                1_614_265_330,
                300
            )),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            denied(verify(
                SECRET,
                "msg_other",
                "1614265330",
                &signature,
                BODY,
                1_614_265_330,
                300
            )),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            denied(verify(
                SECRET,
                ID,
                "1614265330",
                &signature,
                BODY,
                1_614_265_331 + 300,
                300
            )),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            denied(verify(
                SECRET,
                ID,
                "soon",
                &signature,
                BODY,
                1_614_265_330,
                300
            )),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            denied(verify(
                "whsec_!!",
                ID,
                "1614265330",
                &signature,
                BODY,
                1_614_265_330,
                300
            )),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn new_secrets_differ_and_sign() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(*a, *b);
        assert!(a.starts_with(SECRET_PREFIX));
        sign(&a, ID, 1, BODY).unwrap();
    }
}
