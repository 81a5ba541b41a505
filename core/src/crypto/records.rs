//! The keep's record key: seals metadata records that hold customer content (event payloads,
//! topic messages, dead letters) with AES-256-GCM, bound to the record's key, so they are not
//! readable at rest and cannot be moved to another key. The key is made once per keep and
//! stored wrapped by the key provider; unwrapped, it lives only in memory.
//!
//! A sealed record: `0x01`, a 12-byte random nonce, the ciphertext and its tag.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::KeyProvider;
use crate::error::{Error, Result};
use crate::store::{Key, Meta, RecordSealer, SEALED_RECORD};

const WRAP_AAD: &[u8] = b"codekeep record key v1";

/// The record key, unwrapped.
pub(crate) struct RecordKey(LessSafeKey);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

impl RecordKey {
    /// Unwraps the stored record key, creating it on first open.
    pub(crate) fn load_or_create(meta: &Meta, provider: &dyn KeyProvider) -> Result<Self> {
        let raw = super::keep_secret(
            meta,
            provider,
            &Key::new("keep").push("record-key"),
            WRAP_AAD,
        )?;
        let unbound = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| Error::storage("the stored record key has the wrong length"))?;
        Ok(RecordKey(LessSafeKey::new(unbound)))
    }
}

impl RecordSealer for RecordKey {
    fn seal(&self, key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::id::fill_secret(&mut nonce)?;
        let mut body = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key),
                &mut body,
            )
            .map_err(|_| Error::internal("sealing a record failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(SEALED_RECORD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn open(&self, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let unreadable = || {
            Error::new(
                crate::error::ErrorKind::IntegrityFailure,
                "a sealed record does not authenticate",
            )
        };
        let rest = sealed
            .strip_prefix(&[SEALED_RECORD])
            .ok_or_else(unreadable)?;
        let (nonce, body) = rest.split_at_checked(NONCE_LEN).ok_or_else(unreadable)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(key), &mut body)
            .map_err(|_| unreadable())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_open_only_under_their_key() {
        let meta = Meta::new(crate::store::SqliteMeta::memory().unwrap());
        let provider = crate::crypto::MasterKeyProvider::ephemeral().unwrap();
        let key = RecordKey::load_or_create(&meta, &provider).unwrap();
        let sealed = key
            .seal(b"events-delivery/pending/1", b"{\"secret\":1}")
            .unwrap();
        assert_eq!(sealed.first(), Some(&SEALED_RECORD));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(b"events-delivery/pending/1", &sealed).unwrap(),
            b"{\"secret\":1}"
        );
        assert!(key.open(b"events-delivery/pending/2", &sealed).is_err());
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(key.open(b"events-delivery/pending/1", &flipped).is_err());
        // The same key comes back on the next open.
        let again = RecordKey::load_or_create(&meta, &provider).unwrap();
        assert!(again.open(b"events-delivery/pending/1", &sealed).is_ok());
    }
}
