//! SSH public keys for git over SSH: `ssh-rsa` (2048 to 16384 bits) and `ssh-ed25519`, with
//! IAM's `APKA…` key ids (the SSH user name) and MD5 fingerprints, at most five per user.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::users::authorize_user;
use super::{key, limit_exceeded, lower, no_such_entity, page, unique_id, validation_error};
use crate::api::{OpCtx, required_str};
use crate::clock::epoch_seconds;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Key, Txn};

const MAX_PER_USER: usize = 5;

/// A stored SSH public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SshKeyRecord {
    pub id: String,
    pub account: String,
    pub user: String,
    /// `ssh-rsa AAAA…` / `ssh-ed25519 AAAA…`, without the comment.
    body: String,
    fingerprint: String,
    pub status: String,
    upload_date: i64,
}

impl SshKeyRecord {
    fn json(&self, with_body: bool) -> Value {
        let mut out = json!({
            "UserName": self.user,
            "SSHPublicKeyId": self.id,
            "Status": self.status,
            "UploadDate": epoch_seconds(self.upload_date),
        });
        if with_body {
            crate::api::set_member(&mut out, "Fingerprint", json!(self.fingerprint));
            crate::api::set_member(&mut out, "SSHPublicKeyBody", json!(self.body));
        }
        out
    }

    /// The key in SSH wire format.
    pub fn blob(&self) -> Vec<u8> {
        self.body
            .split_whitespace()
            .nth(1)
            .and_then(|b| B64.decode(b).ok())
            .unwrap_or_default()
    }
}

/// A parsed public key.
#[derive(Debug)]
struct ParsedKey {
    algorithm: &'static str,
    blob: Vec<u8>,
}

fn invalid(why: &str) -> Error {
    Error::aws(
        ErrorKind::InvalidArgument,
        "InvalidPublicKey",
        format!("The specified public key is not valid: {why}"),
    )
}

/// Parses an OpenSSH public key line: `TYPE BASE64 [comment]`.
fn parse_key(body: &str) -> Result<ParsedKey> {
    let mut parts = body.split_whitespace();
    let (Some(kind), Some(data)) = (parts.next(), parts.next()) else {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "UnrecognizedPublicKeyEncoding",
            "The public key encoding format is unsupported or unrecognized: expected an OpenSSH public key line",
        ));
    };
    let blob = B64
        .decode(data)
        .map_err(|_| invalid("the key data is not base64"))?;
    let mut reader = WireReader(&blob);
    let inner_kind = reader.string().ok_or_else(|| invalid("truncated key"))?;
    if inner_kind != kind.as_bytes() {
        return Err(invalid("the key type does not match its data"));
    }
    let algorithm = match kind {
        "ssh-rsa" => {
            let e = reader
                .string()
                .ok_or_else(|| invalid("truncated RSA exponent"))?;
            let n = reader
                .string()
                .ok_or_else(|| invalid("truncated RSA modulus"))?;
            if e.is_empty() || n.is_empty() {
                return Err(invalid("empty RSA parameters"));
            }
            let bits = mpint_bits(n);
            if !(2048..=16384).contains(&bits) {
                return Err(invalid(&format!(
                    "RSA keys must have 2048 to 16384 bits, this one has {bits}"
                )));
            }
            "ssh-rsa"
        }
        "ssh-ed25519" => {
            let k = reader
                .string()
                .ok_or_else(|| invalid("truncated Ed25519 key"))?;
            if k.len() != 32 {
                return Err(invalid("an Ed25519 key has 32 bytes"));
            }
            "ssh-ed25519"
        }
        other => {
            return Err(Error::aws(
                ErrorKind::InvalidArgument,
                "UnrecognizedPublicKeyEncoding",
                format!("The public key encoding format is unsupported or unrecognized: {other}"),
            ));
        }
    };
    if !reader.0.is_empty() {
        return Err(invalid("trailing bytes after the key"));
    }
    Ok(ParsedKey { algorithm, blob })
}

/// The bit length of an SSH mpint (big-endian, possibly with a leading zero byte).
fn mpint_bits(n: &[u8]) -> usize {
    let trimmed: &[u8] = {
        let start = n.iter().position(|b| *b != 0).unwrap_or(n.len());
        n.get(start..).unwrap_or_default()
    };
    match trimmed.first() {
        None => 0,
        Some(top) => (trimmed.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

#[derive(Debug)]
struct WireReader<'a>(&'a [u8]);

impl<'a> WireReader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let value = self.0.get(4..4 + len)?;
        self.0 = self.0.get(4 + len..)?;
        Some(value)
    }
}

/// IAM's fingerprint: the MD5 of the key blob, as colon-separated hex.
fn fingerprint(blob: &[u8]) -> String {
    let digest = md5::Md5::digest(blob);
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn by_id(id: &str) -> Key {
    Key::new("iam-ssh-key").push(id)
}

fn user_index(account: &str, user: &str, id: &str) -> Key {
    key(account, &["user-ssh", &lower(user), id])
}

/// The SSH key `id`, wherever it lives.
pub(crate) fn find(txn: &mut Txn<'_>, id: &str) -> Result<Option<SshKeyRecord>> {
    txn.get_json(&by_id(id))
}

/// Keeps the owner name of a renamed user's keys current.
pub(crate) fn rename_owner(
    txn: &mut Txn<'_>,
    account: &str,
    lname: &str,
    name: &str,
) -> Result<()> {
    for id in super::index_entries(txn, account, "user-ssh", lname)? {
        if let Some(mut record) = find(txn, &id)? {
            name.clone_into(&mut record.user);
            txn.put_json(&by_id(&id), &record)?;
        }
    }
    Ok(())
}

fn load_of(ctx: &mut OpCtx<'_, '_>, user: &str, id: &str) -> Result<SshKeyRecord> {
    let account = ctx.account()?.to_string();
    match find(ctx.txn, id)? {
        Some(r) if r.account == account && lower(&r.user) == lower(user) => Ok(r),
        _ => Err(no_such_entity(format!(
            "The Public Key with id {id} cannot be found."
        ))),
    }
}

pub(crate) fn upload_ssh_public_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let body = required_str(input, "SSHPublicKeyBody")?;
    if body.len() > 16384 {
        return Err(validation_error(
            "SSHPublicKeyBody must be at most 16384 characters",
        ));
    }
    let user = authorize_user(ctx, name)?;
    let parsed = parse_key(body)?;
    let account = ctx.account()?.to_string();
    let mut count = 0;
    for (k, _) in ctx.txn.scan_prefix(
        &key(&account, &["user-ssh", &lower(&user.name)]),
        None,
        usize::MAX,
    )? {
        count += 1;
        if let Some(existing) = find(ctx.txn, &k.last().unwrap_or_default())?
            && existing.blob() == parsed.blob
        {
            return Err(Error::aws(
                ErrorKind::AlreadyExists,
                "DuplicateSSHPublicKey",
                "The SSH public key specified is not unique.",
            ));
        }
    }
    if count >= MAX_PER_USER {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for SSHPublicKeysPerUser: {MAX_PER_USER}"
        )));
    }
    let record = SshKeyRecord {
        id: unique_id("APKA", 21),
        account: account.clone(),
        user: user.name.clone(),
        body: format!("{} {}", parsed.algorithm, B64.encode(&parsed.blob)),
        fingerprint: fingerprint(&parsed.blob),
        status: "Active".to_owned(),
        upload_date: ctx.now(),
    };
    ctx.txn.put_json(&by_id(&record.id), &record)?;
    ctx.txn
        .put(&user_index(&account, &user.name, &record.id), b"{}")?;
    Ok(json!({"SSHPublicKey": record.json(true)}))
}

pub(crate) fn get_ssh_public_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let id = required_str(input, "SSHPublicKeyId")?;
    let encoding = required_str(input, "Encoding")?;
    authorize_user(ctx, name)?;
    let record = load_of(ctx, name, id)?;
    let mut out = record.json(true);
    match encoding {
        "SSH" => {}
        "PEM" => {
            let pem = pem_of(&record.blob()).ok_or_else(|| {
                Error::aws(
                    ErrorKind::InvalidArgument,
                    "UnrecognizedPublicKeyEncoding",
                    "The stored key cannot be written as PEM.",
                )
            })?;
            crate::api::set_member(&mut out, "SSHPublicKeyBody", json!(pem));
        }
        other => {
            return Err(validation_error(format!(
                "1 validation error detected: Value '{other}' at 'encoding' failed to satisfy constraint: Member must satisfy enum value set: [SSH, PEM]"
            )));
        }
    }
    Ok(json!({"SSHPublicKey": out}))
}

pub(crate) fn list_ssh_public_keys(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = super::user_name_or_caller(ctx, input)?;
    let user = authorize_user(ctx, &name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for id in super::index_entries(ctx.txn, &account, "user-ssh", &lower(&user.name))? {
        if let Some(record) = find(ctx.txn, &id)? {
            rows.push((id, record.json(false)));
        }
    }
    page(rows, input, "SSHPublicKeys", json!({}))
}

pub(crate) fn update_ssh_public_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let id = required_str(input, "SSHPublicKeyId")?;
    let status = super::status_member(input)?;
    authorize_user(ctx, name)?;
    let mut record = load_of(ctx, name, id)?;
    status.clone_into(&mut record.status);
    ctx.txn.put_json(&by_id(id), &record)?;
    Ok(json!({}))
}

pub(crate) fn delete_ssh_public_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let id = required_str(input, "SSHPublicKeyId")?;
    authorize_user(ctx, name)?;
    let record = load_of(ctx, name, id)?;
    ctx.txn.delete(&by_id(id))?;
    ctx.txn
        .delete(&user_index(&record.account, &record.user, id))?;
    Ok(json!({}))
}

/// Authenticates an SSH user presenting `blob` (SSH wire format) to `(account, IAM user
/// name)`. The user is an SSH key id (`APKA…`, as CodeCommit uses), or an IAM user name: then the
/// key must be one of that user's active keys, and a name that several accounts use for users
/// holding this same key is refused rather than guessed.
pub(crate) fn authenticate(
    txn: &mut Txn<'_>,
    ssh_user: &str,
    blob: &[u8],
) -> Result<(String, String)> {
    let refused = || {
        Error::aws(
            ErrorKind::AccessDenied,
            "InvalidClientTokenId",
            "The SSH key is not valid for this user.",
        )
        .with_status(403)
    };
    if let Some(record) = find(txn, ssh_user)? {
        return if record.accepts(blob) {
            Ok((record.account, record.user))
        } else {
            Err(refused())
        };
    }
    // Not a key id: an IAM user name. Keys are few (five per user), so a scan of the key
    // records is cheap next to the SSH handshake that precedes it.
    let name = lower(ssh_user);
    let mut found = None;
    for (_, value) in txn.scan_prefix(&Key::new("iam-ssh-key"), None, usize::MAX)? {
        let record: SshKeyRecord = serde_json::from_slice(&value)
            .map_err(|e| Error::storage(format!("a stored SSH key record is corrupt: {e}")))?;
        if lower(&record.user) == name && record.accepts(blob) {
            if found.is_some() {
                return Err(refused());
            }
            found = Some((record.account, record.user));
        }
    }
    found.ok_or_else(refused)
}

impl SshKeyRecord {
    /// An active key whose blob is `blob` (compared in constant time).
    fn accepts(&self, blob: &[u8]) -> bool {
        let same = subtle::ConstantTimeEq::ct_eq(self.blob().as_slice(), blob);
        self.status == "Active" && bool::from(same)
    }
}

// ---- PEM (SubjectPublicKeyInfo) for GetSSHPublicKey(Encoding=PEM) ----

fn pem_of(blob: &[u8]) -> Option<String> {
    let mut reader = WireReader(blob);
    let spki = match reader.string()? {
        b"ssh-rsa" => {
            let e = reader.string()?;
            let n = reader.string()?;
            let rsa_key = der(0x30, &[der_integer(n), der_integer(e)].concat());
            let algorithm = der(
                0x30,
                &[
                    der(
                        0x06,
                        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                    ),
                    der(0x05, &[]),
                ]
                .concat(),
            );
            der(0x30, &[algorithm, der_bit_string(&rsa_key)].concat())
        }
        b"ssh-ed25519" => {
            let k = reader.string()?;
            let algorithm = der(0x30, &der(0x06, &[0x2b, 0x65, 0x70]));
            der(0x30, &[algorithm, der_bit_string(k)].concat())
        }
        _ => return None,
    };
    let text = B64.encode(spki);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).ok()?);
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Some(pem)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or_default());
    } else {
        let bytes = len.to_be_bytes();
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let significant = bytes.get(start..).unwrap_or_default();
        out.push(0x80 | u8::try_from(significant.len()).unwrap_or_default());
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

fn der_integer(mpint: &[u8]) -> Vec<u8> {
    // An SSH mpint is already a minimal two's-complement big-endian integer.
    der(0x02, mpint)
}

fn der_bit_string(content: &[u8]) -> Vec<u8> {
    der(0x03, &[&[0u8][..], content].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";

    #[test]
    fn ed25519_keys_parse_and_fingerprint() {
        let key = parse_key(ED25519).unwrap();
        assert_eq!(key.algorithm, "ssh-ed25519");
        assert_eq!(fingerprint(&key.blob).len(), 47);
        assert!(
            pem_of(&key.blob)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA")
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            parse_key("ssh-ed25519 !!!").unwrap_err().code(),
            "InvalidPublicKey"
        );
        assert_eq!(
            parse_key("ecdsa-sha2-nistp256 AAAA").unwrap_err().code(),
            "InvalidPublicKey"
        );
        assert_eq!(
            parse_key("nonsense").unwrap_err().code(),
            "UnrecognizedPublicKeyEncoding"
        );
        // A 1024-bit RSA key: e = 65537, n = 0x00 | 0x80 followed by 127 bytes.
        let mut blob = Vec::new();
        let modulus = [&[0x00u8, 0x80][..], &[0u8; 127][..]].concat();
        for part in [&b"ssh-rsa"[..], &[1u8, 0, 1][..], &modulus[..]] {
            blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
            blob.extend_from_slice(part);
        }
        let text = format!("ssh-rsa {}", B64.encode(&blob));
        assert!(parse_key(&text).unwrap_err().message().contains("1024"));

        // The same shape with a 2048-bit modulus is accepted.
        let modulus = [&[0x00u8, 0x80][..], &[0u8; 255][..]].concat();
        let mut blob = Vec::new();
        for part in [&b"ssh-rsa"[..], &[1u8, 0, 1][..], &modulus[..]] {
            blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
            blob.extend_from_slice(part);
        }
        let key = parse_key(&format!("ssh-rsa {} c", B64.encode(&blob))).unwrap();
        assert_eq!(key.algorithm, "ssh-rsa");
        assert!(pem_of(&key.blob).unwrap().starts_with(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAgAAA"
        ));
    }
}
