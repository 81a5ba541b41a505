//! The root of trust: something that wraps and unwraps key material.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// Wraps and unwraps key material (KMS key versions, the audit signing key).
///
/// The embedded default is [`MasterKeyProvider`]; a host can plug in an external KMS or HSM by
/// implementing this trait (from C through callbacks, from Python through an object with
/// `wrap`/`unwrap`). `aad` must be bound to the wrapped bytes: unwrapping with a different
/// `aad` must fail.
///
/// A provider is called inside codekeep's metadata transactions: it must not call back into
/// the same keep (that would wait on the transaction it runs in), and a slow provider delays
/// other writers while it runs.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// Encrypts `plaintext` key material bound to `aad`.
    ///
    /// # Errors
    /// Any error of the provider.
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;

    /// Decrypts what [`KeyProvider::wrap`] produced with the same `aad`.
    ///
    /// # Errors
    /// `IntegrityFailure` when the wrapped bytes or `aad` do not match.
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// A 32-byte secret the keep keeps for itself (the STS token key, the SSH host key's seed):
/// read from metadata at `key` and unwrapped by `provider`, or generated, wrapped and stored
/// there on first use. It is never stored unwrapped.
///
/// # Errors
/// The provider's errors; `Storage` when the stored secret does not have 32 bytes.
pub(crate) fn keep_secret(
    meta: &crate::store::Meta,
    provider: &dyn KeyProvider,
    key: &crate::store::Key,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let wrapped = meta.txn(|t| {
        if let Some(w) = t.get(key)? {
            return Ok(w);
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        crate::id::fill_secret(&mut raw[..])?;
        let w = provider.wrap(&raw[..], aad)?;
        t.put(key, &w)?;
        Ok(w)
    })?;
    let secret = provider.unwrap(&wrapped, aad)?;
    if secret.len() != 32 {
        return Err(Error::storage(format!(
            "the stored secret `{key}` has the wrong length"
        )));
    }
    Ok(secret)
}

/// A 256-bit master key held in memory that wraps with AES-256-GCM.
pub struct MasterKeyProvider {
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeyProvider")
            .field("algorithm", &"AES-256-GCM")
            .finish_non_exhaustive()
    }
}

/// Format byte of wrapped material, so the format can evolve.
const WRAP_VERSION: u8 = 1;
/// PBKDF2-HMAC-SHA256 iterations for passphrases (OWASP's 2023 recommendation).
pub(crate) const PBKDF2_ITERATIONS: u32 = 600_000;

impl MasterKeyProvider {
    /// Uses `key` (32 bytes) as the master key.
    ///
    /// # Errors
    /// `InvalidArgument` when `key` is not 32 bytes.
    pub fn from_raw(key: &[u8]) -> Result<Self> {
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| Error::invalid("a master key must be 32 bytes"))?;
        Ok(MasterKeyProvider {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Derives the master key from a passphrase with PBKDF2-HMAC-SHA256.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty passphrase or a salt shorter than 16 bytes.
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8], iterations: u32) -> Result<Self> {
        if passphrase.is_empty() || salt.len() < 16 {
            return Err(Error::invalid(
                "a passphrase must not be empty and its salt must have 16 bytes",
            ));
        }
        let iterations = std::num::NonZeroU32::new(iterations)
            .ok_or_else(|| Error::invalid("iterations must be positive"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            passphrase,
            key.as_mut_slice(),
        );
        Self::from_raw(key.as_slice())
    }

    /// A fresh random master key, never stored: for in-memory keeps.
    ///
    /// # Errors
    /// `Internal` if the system generator fails.
    pub fn ephemeral() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        crate::id::fill_secret(key.as_mut_slice())?;
        Self::from_raw(key.as_slice())
    }

    /// Loads the master key file at `path`, creating it (mode 0600) with a fresh random key
    /// when it does not exist.
    ///
    /// # Errors
    /// `Io` on file errors; `InvalidArgument` when the file does not hold exactly 32 bytes;
    /// `AccessDenied` when the file is readable by others than its owner.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let mode = fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(Error::new(
                        ErrorKind::AccessDenied,
                        format!(
                            "master key file `{}` must not be accessible to group or others (mode {:o})",
                            path.display(),
                            mode & 0o777
                        ),
                    ));
                }
                Self::from_raw(&bytes).map_err(|_| {
                    Error::invalid(format!(
                        "master key file `{}` must hold exactly 32 bytes",
                        path.display()
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                crate::id::fill_secret(key.as_mut_slice())?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(key.as_slice())?;
                file.sync_all()?;
                Self::from_raw(key.as_slice())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl KeyProvider for MasterKeyProvider {
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::id::fill_secret(&mut nonce)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| Error::internal("key wrap failed"))?;
        out.extend_from_slice(&body);
        zeroize::Zeroize::zeroize(&mut body);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (&version, rest) = wrapped.split_first().ok_or_else(Error::decrypt)?;
        if version != WRAP_VERSION {
            return Err(Error::decrypt());
        }
        let (nonce, body) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or_else(Error::decrypt)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::decrypt())?;
        let mut body = Zeroizing::new(body.to_vec());
        let n = self
            .key
            .open_in_place(nonce, Aad::from(aad), body.as_mut_slice())
            .map_err(|_| Error::decrypt())?
            .len();
        body.truncate(n);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_binds_aad() {
        let p = MasterKeyProvider::ephemeral().unwrap();
        let w = p.wrap(b"material", b"aad-1").unwrap();
        assert_eq!(p.unwrap(&w, b"aad-1").unwrap().as_slice(), b"material");
        assert!(p.unwrap(&w, b"aad-2").is_err());
        let other = MasterKeyProvider::ephemeral().unwrap();
        assert!(other.unwrap(&w, b"aad-1").is_err());
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKeyProvider::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let w = a.wrap(b"x", b"").unwrap();
        let b = MasterKeyProvider::load_or_create(&path).unwrap();
        assert_eq!(b.unwrap(&w, b"").unwrap().as_slice(), b"x");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            MasterKeyProvider::load_or_create(&path).unwrap_err().kind(),
            ErrorKind::AccessDenied
        );
    }

    #[test]
    fn passphrase_derivation_is_deterministic() {
        let a = MasterKeyProvider::from_passphrase(b"correct horse", &[1u8; 16], 1000).unwrap();
        let b = MasterKeyProvider::from_passphrase(b"correct horse", &[1u8; 16], 1000).unwrap();
        let c = MasterKeyProvider::from_passphrase(b"wrong horse", &[1u8; 16], 1000).unwrap();
        let w = a.wrap(b"k", b"").unwrap();
        assert!(b.unwrap(&w, b"").is_ok());
        assert!(c.unwrap(&w, b"").is_err());
    }
}
