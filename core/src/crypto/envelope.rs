//! The envelope format: segmented streaming AEAD after Tink's AES-GCM-HKDF streaming design.
//!
//! ```text
//! header  = magic "CKEV" | version 0x01 | segment_size u32be | key_ref_len u16be | key_ref
//!         | salt[32] | nonce_prefix[7] | commitment[32]
//! okm     = HKDF-SHA256(salt, ikm = data key,
//!                       info = "codekeep envelope v1" | segment_size | key_ref_len | key_ref
//!                              | nonce_prefix | canonical(encryption context))  -> 64 bytes
//! key     = okm[0..32]   (AES-256-GCM segment key)
//! commit  = okm[32..64]  (stored in the header, compared in constant time before decrypting)
//! segment i = AES-256-GCM(key, nonce = nonce_prefix | u32be(i) | last?1:0, aad = "", plaintext)
//! ```
//!
//! Every segment but the last holds exactly `segment_size` plaintext bytes; the last holds 1 to
//! `segment_size` bytes, or 0 when the whole plaintext is empty. Because the segment index and
//! the last flag are in the nonce, reordering, truncating or extending the ciphertext fails
//! authentication; because the context is in the key derivation, a blob moved to another
//! context fails the commitment check. Byte-level layout and test vectors: `docs/FORMAT.md`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Plaintext bytes per segment in envelopes this version writes.
pub const SEGMENT_SIZE: u32 = 64 * 1024;
/// The largest key reference a header may carry.
pub const MAX_KEY_REF_LEN: usize = 4096;

const MAGIC: &[u8; 4] = b"CKEV";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 32;
const NONCE_PREFIX_LEN: usize = 7;
const COMMITMENT_LEN: usize = 32;
const FIXED_PREFIX_LEN: usize = 4 + 1 + 4 + 2;
const INFO_LABEL: &[u8] = b"codekeep envelope v1";
/// Smallest and largest segment sizes a reader accepts (untrusted header field).
const MIN_SEGMENT: u32 = 1024;
const MAX_SEGMENT: u32 = 16 * 1024 * 1024;

/// An encryption context: string pairs bound to the ciphertext, which must match exactly
/// (case-sensitive) to decrypt, as in KMS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair.
    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The canonical byte encoding: pairs sorted by key, each `u32be(len) key u32be(len) value`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32_len(self.0.len()).to_be_bytes());
        for (k, v) in &self.0 {
            out.extend_from_slice(&u32_len(k.len()).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&u32_len(v.len()).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }
}

impl From<BTreeMap<String, String>> for EncryptionContext {
    fn from(map: BTreeMap<String, String>) -> Self {
        EncryptionContext(map)
    }
}

fn u32_len(n: usize) -> u32 {
    // Context sizes are validated far below 4 GiB by the API layer.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The parsed, not yet authenticated, header of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader {
    segment_size: u32,
    key_ref: Vec<u8>,
    salt: [u8; SALT_LEN],
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

impl EnvelopeHeader {
    /// The key reference: for sealed files, the wrapped data key (a KMS ciphertext blob).
    pub fn key_ref(&self) -> &[u8] {
        &self.key_ref
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// Length of the encoded header in bytes.
    pub fn encoded_len(&self) -> usize {
        FIXED_PREFIX_LEN + self.key_ref.len() + SALT_LEN + NONCE_PREFIX_LEN + COMMITMENT_LEN
    }

    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        let len = u16::try_from(self.key_ref.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.key_ref);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.nonce_prefix);
        out.extend_from_slice(&self.commitment);
        out
    }

    /// Reads a header from the start of a stream.
    ///
    /// # Errors
    /// `InvalidCiphertextException` when the bytes are not an envelope this version can open.
    pub fn read_from(src: &mut impl Read) -> Result<Self> {
        let mut fixed = [0u8; FIXED_PREFIX_LEN];
        src.read_exact(&mut fixed).map_err(|_| Error::decrypt())?;
        let key_ref_len = parse_fixed(&fixed)?.1;
        let mut rest = vec![0u8; key_ref_len + SALT_LEN + NONCE_PREFIX_LEN + COMMITMENT_LEN];
        src.read_exact(&mut rest).map_err(|_| Error::decrypt())?;
        Self::from_parts(&fixed, &rest)
    }

    /// Reads a header from the start of a random-access source.
    ///
    /// # Errors
    /// As [`EnvelopeHeader::read_from`].
    pub fn read_at(src: &dyn RangeSource) -> Result<Self> {
        let fixed = src
            .read_at(0, FIXED_PREFIX_LEN as u64)
            .map_err(|_| Error::decrypt())?;
        let key_ref_len = parse_fixed(&fixed)?.1;
        let rest_len = key_ref_len + SALT_LEN + NONCE_PREFIX_LEN + COMMITMENT_LEN;
        let rest = src
            .read_at(FIXED_PREFIX_LEN as u64, rest_len as u64)
            .map_err(|_| Error::decrypt())?;
        Self::from_parts(&fixed, &rest)
    }

    fn from_parts(fixed: &[u8], rest: &[u8]) -> Result<Self> {
        let (segment_size, key_ref_len) = parse_fixed(fixed)?;
        let (key_ref, rest) = rest
            .split_at_checked(key_ref_len)
            .ok_or_else(Error::decrypt)?;
        let (salt, rest) = rest.split_at_checked(SALT_LEN).ok_or_else(Error::decrypt)?;
        let (prefix, commitment) = rest
            .split_at_checked(NONCE_PREFIX_LEN)
            .ok_or_else(Error::decrypt)?;
        Ok(EnvelopeHeader {
            segment_size,
            key_ref: key_ref.to_vec(),
            salt: salt.try_into().map_err(|_| Error::decrypt())?,
            nonce_prefix: prefix.try_into().map_err(|_| Error::decrypt())?,
            commitment: commitment.try_into().map_err(|_| Error::decrypt())?,
        })
    }
}

fn parse_fixed(fixed: &[u8]) -> Result<(u32, usize)> {
    let magic = fixed.get(0..4).ok_or_else(Error::decrypt)?;
    let version = fixed.get(4).copied().ok_or_else(Error::decrypt)?;
    if magic != MAGIC || version != VERSION {
        return Err(Error::decrypt());
    }
    let seg = u32::from_be_bytes(
        fixed
            .get(5..9)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(Error::decrypt)?,
    );
    let key_ref_len = usize::from(u16::from_be_bytes(
        fixed
            .get(9..11)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(Error::decrypt)?,
    ));
    if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&seg) || key_ref_len > MAX_KEY_REF_LEN {
        return Err(Error::decrypt());
    }
    Ok((seg, key_ref_len))
}

/// The keys of one envelope: derived from the data key, the header and the context.
struct SegmentKeys {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    segment_size: usize,
}

impl std::fmt::Debug for SegmentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentKeys")
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}

struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(
    data_key: &[u8],
    header: &EnvelopeHeader,
    context: &EncryptionContext,
) -> Result<(SegmentKeys, Zeroizing<[u8; COMMITMENT_LEN]>)> {
    if data_key.len() != 32 {
        return Err(Error::invalid("an envelope data key must be 32 bytes"));
    }
    let mut info = Vec::with_capacity(64 + header.key_ref.len());
    info.extend_from_slice(INFO_LABEL);
    info.extend_from_slice(&header.segment_size.to_be_bytes());
    info.extend_from_slice(
        &u16::try_from(header.key_ref.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    info.extend_from_slice(&header.key_ref);
    info.extend_from_slice(&header.nonce_prefix);
    info.extend_from_slice(&context.canonical_bytes());
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header.salt).extract(data_key);
    let info_parts = [info.as_slice()];
    let okm = prk
        .expand(&info_parts, OkmLen(64))
        .map_err(|_| Error::internal("hkdf expand"))?;
    let mut out = Zeroizing::new([0u8; 64]);
    okm.fill(out.as_mut_slice())
        .map_err(|_| Error::internal("hkdf fill"))?;
    let (aes, commit) = out.split_at(32);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, aes).map_err(|_| Error::internal("aes key setup"))?,
    );
    let mut commitment = Zeroizing::new([0u8; COMMITMENT_LEN]);
    commitment.copy_from_slice(commit);
    let segment_size =
        usize::try_from(header.segment_size).map_err(|_| Error::internal("segment size"))?;
    Ok((
        SegmentKeys {
            key,
            nonce_prefix: header.nonce_prefix,
            segment_size,
        },
        commitment,
    ))
}

impl SegmentKeys {
    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[NONCE_PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
        n[11] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }

    /// Seals `buf` in place and appends the tag.
    fn seal(&self, index: u32, last: bool, buf: &mut Vec<u8>) -> Result<()> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last), Aad::empty(), buf)
            .map_err(|_| Error::internal("segment seal failed"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens a sealed segment (ciphertext with tag) in place; returns the plaintext length.
    fn open(&self, index: u32, last: bool, buf: &mut [u8]) -> Result<usize> {
        let plain = self
            .key
            .open_in_place(self.nonce(index, last), Aad::empty(), buf)
            .map_err(|_| Error::decrypt())?;
        Ok(plain.len())
    }
}

/// Seals a stream: write plaintext into it, then call [`SealWriter::finish`].
///
/// Dropping it without `finish` leaves an incomplete envelope that will not open.
pub struct SealWriter<W: Write> {
    out: W,
    keys: SegmentKeys,
    header: Option<Vec<u8>>,
    buf: Vec<u8>,
    index: u32,
    plaintext_len: u64,
    /// Set when writing a segment failed: the buffer no longer holds plaintext, so the
    /// envelope cannot be completed and every later call fails.
    failed: bool,
}

impl<W: Write> std::fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealWriter")
            .field("segments", &self.index)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SealWriter<W> {
    /// Starts an envelope under `data_key` (32 bytes) bound to `context`; `key_ref` is stored in
    /// the header so a reader can find the data key again.
    ///
    /// # Errors
    /// `InvalidArgument` for a data key that is not 32 bytes or a key reference over
    /// [`MAX_KEY_REF_LEN`] bytes.
    pub fn new(
        out: W,
        data_key: &[u8],
        key_ref: &[u8],
        context: &EncryptionContext,
    ) -> Result<Self> {
        Self::with_segment_size(out, data_key, key_ref, context, SEGMENT_SIZE)
    }

    pub(crate) fn with_segment_size(
        out: W,
        data_key: &[u8],
        key_ref: &[u8],
        context: &EncryptionContext,
        segment_size: u32,
    ) -> Result<Self> {
        if key_ref.len() > MAX_KEY_REF_LEN {
            return Err(Error::invalid("the envelope key reference is too long"));
        }
        let mut salt = [0u8; SALT_LEN];
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        crate::id::fill_secret(&mut salt)?;
        crate::id::fill_secret(&mut nonce_prefix)?;
        let mut header = EnvelopeHeader {
            segment_size,
            key_ref: key_ref.to_vec(),
            salt,
            nonce_prefix,
            commitment: [0; COMMITMENT_LEN],
        };
        let (keys, commitment) = derive(data_key, &header, context)?;
        header.commitment = *commitment;
        let seg = keys.segment_size;
        Ok(SealWriter {
            out,
            keys,
            header: Some(header.encode()),
            buf: Vec::with_capacity(seg + TAG_LEN),
            index: 0,
            plaintext_len: 0,
            failed: false,
        })
    }

    fn emit(&mut self, last: bool) -> Result<()> {
        if self.failed {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                "an earlier write failed; this envelope cannot be completed",
            ));
        }
        let result = self.emit_segment(last);
        self.failed = result.is_err();
        result
    }

    fn emit_segment(&mut self, last: bool) -> Result<()> {
        if let Some(h) = self.header.take() {
            self.out.write_all(&h)?;
        }
        self.keys.seal(self.index, last, &mut self.buf)?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| Error::invalid("envelope too large: segment index overflow"))?;
        Ok(())
    }

    /// Seals `data` where it lies and writes it out: the zero-copy twin of `write` for callers
    /// that own their buffer. Full segments are encrypted in place (`data` is left holding
    /// ciphertext, so its plaintext is consumed); only a trailing partial segment, and the last
    /// full one (which may turn out to be final), are copied into the writer.
    ///
    /// # Errors
    /// `Io` if the inner writer fails; the writer is then unusable.
    pub fn write_in_place(&mut self, mut data: &mut [u8]) -> Result<()> {
        let seg = self.keys.segment_size;
        while !data.is_empty() {
            if self.buf.len() == seg {
                self.emit(false)?;
            }
            if !self.buf.is_empty() || data.len() <= seg {
                let take = (seg - self.buf.len()).min(data.len());
                let (head, tail) = data.split_at_mut(take);
                self.buf.extend_from_slice(head);
                self.plaintext_len += take as u64;
                data = tail;
                continue;
            }
            // More than a segment remains, so this one is not the last: seal it in place.
            let (segment, tail) = data.split_at_mut(seg);
            self.emit_external(segment)?;
            self.plaintext_len += seg as u64;
            data = tail;
        }
        Ok(())
    }

    fn emit_external(&mut self, segment: &mut [u8]) -> Result<()> {
        if self.failed {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                "an earlier write failed; this envelope cannot be completed",
            ));
        }
        let result = (|| {
            if let Some(h) = self.header.take() {
                self.out.write_all(&h)?;
            }
            let tag = self
                .keys
                .key
                .seal_in_place_separate_tag(
                    self.keys.nonce(self.index, false),
                    Aad::empty(),
                    segment,
                )
                .map_err(|_| Error::internal("segment seal failed"))?;
            self.out.write_all(segment)?;
            self.out.write_all(tag.as_ref())?;
            self.index = self
                .index
                .checked_add(1)
                .ok_or_else(|| Error::invalid("envelope too large: segment index overflow"))?;
            Ok(())
        })();
        self.failed = result.is_err();
        result
    }

    /// Seals the final segment, flushes, and returns the inner writer.
    ///
    /// # Errors
    /// `Io` if the inner writer fails.
    pub fn finish(mut self) -> Result<W> {
        self.emit(true)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Plaintext bytes written so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write failed; this envelope cannot be completed",
            ));
        }
        let total = data.len();
        let seg = self.keys.segment_size;
        while !data.is_empty() {
            // A full buffer is sealed only once more data arrives: until then it may be the last.
            if self.buf.len() == seg {
                self.emit(false).map_err(io::Error::other)?;
            }
            let take = (seg - self.buf.len()).min(data.len());
            let (head, tail) = data.split_at(take);
            self.buf.extend_from_slice(head);
            data = tail;
        }
        self.plaintext_len += total as u64;
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Something an envelope can be read from at arbitrary offsets.
pub trait RangeSource {
    /// Total length in bytes.
    fn len(&self) -> Result<u64>;
    /// Exactly `len` bytes at `offset`.
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// True when the source is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl RangeSource for &[u8] {
    fn len(&self) -> Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| Error::decrypt())?;
        let end = start.checked_add(usize::try_from(len).map_err(|_| Error::decrypt())?);
        end.and_then(|e| self.get(start..e))
            .map(<[u8]>::to_vec)
            .ok_or_else(Error::decrypt)
    }
}

impl RangeSource for Vec<u8> {
    fn len(&self) -> Result<u64> {
        Ok(self.as_slice().len() as u64)
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.as_slice().read_at(offset, len)
    }
}

impl RangeSource for File {
    fn len(&self) -> Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf =
            vec![0u8; usize::try_from(len).map_err(|_| Error::invalid("range too large"))?];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// An authenticated envelope key, ready to decrypt segments of one envelope.
#[derive(Debug)]
pub struct EnvelopeOpener {
    keys: SegmentKeys,
    header_len: u64,
    /// Length of the source whose final segment was authenticated (`u64::MAX`: none yet).
    tail_verified: std::sync::atomic::AtomicU64,
}

impl EnvelopeOpener {
    /// Checks the header's key commitment against `data_key` and `context`.
    ///
    /// # Errors
    /// `InvalidCiphertextException` when the data key or the context is not the one the
    /// envelope was sealed with, or the header was altered.
    pub fn new(
        header: &EnvelopeHeader,
        data_key: &[u8],
        context: &EncryptionContext,
    ) -> Result<Self> {
        let (keys, commitment) = derive(data_key, header, context).map_err(|_| Error::decrypt())?;
        if !bool::from(commitment.as_slice().ct_eq(&header.commitment)) {
            return Err(Error::decrypt());
        }
        Ok(EnvelopeOpener {
            keys,
            header_len: header.encoded_len() as u64,
            tail_verified: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    /// The plaintext length of an envelope whose total ciphertext length is `total`.
    ///
    /// # Errors
    /// `InvalidCiphertextException` when no plaintext length produces that ciphertext length
    /// (the envelope was truncated or extended).
    pub fn plaintext_len(&self, total: u64) -> Result<u64> {
        Ok(self.layout(total)?.plaintext_len)
    }

    fn layout(&self, total: u64) -> Result<Layout> {
        let seg = self.keys.segment_size as u64;
        let sealed_seg = seg + TAG_LEN as u64;
        let body = total
            .checked_sub(self.header_len)
            .ok_or_else(Error::decrypt)?;
        if body < TAG_LEN as u64 {
            return Err(Error::decrypt());
        }
        let segments = body.div_ceil(sealed_seg);
        let last_sealed = body - (segments - 1) * sealed_seg;
        // Only an empty plaintext has an empty last segment.
        if last_sealed < TAG_LEN as u64 || (last_sealed == TAG_LEN as u64 && segments > 1) {
            return Err(Error::decrypt());
        }
        let plaintext_len = body - segments * TAG_LEN as u64;
        let last_index = u32::try_from(segments - 1).map_err(|_| Error::decrypt())?;
        Ok(Layout {
            last_index,
            plaintext_len,
        })
    }

    /// Decrypts `len` plaintext bytes starting at plaintext offset `offset`, reading only the
    /// segments that cover the range.
    ///
    /// # Errors
    /// `InvalidCiphertextException` on any authentication failure; `InvalidArgument` when the
    /// range runs past the end of the plaintext.
    pub fn read_range(&self, src: &dyn RangeSource, offset: u64, len: u64) -> Result<Vec<u8>> {
        let layout = self.layout(src.len()?)?;
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= layout.plaintext_len)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "range {offset}+{len} runs past the end of the plaintext ({} bytes)",
                    layout.plaintext_len
                ))
            })?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let seg = self.keys.segment_size as u64;
        let sealed_seg = seg + TAG_LEN as u64;
        let first = offset / seg;
        let last = (end - 1) / seg;
        if last < u64::from(layout.last_index) {
            self.verify_tail(src, &layout)?;
        }
        let start_at = self.header_len + first * sealed_seg;
        let end_at = (self.header_len + (last + 1) * sealed_seg).min(src.len()?);
        // Segments are decrypted in place and their wanted bytes moved down over the tags, so
        // one buffer serves for ciphertext and result (a second large allocation costs more in
        // page faults than the decryption itself).
        let mut buf = src.read_at(start_at, end_at - start_at)?;
        let sealed = usize::try_from(sealed_seg).map_err(|_| Error::decrypt())?;
        let mut written = 0usize;
        let segments = buf.len().div_ceil(sealed);
        for i in 0..segments {
            let index = u32::try_from(first + i as u64).map_err(|_| Error::decrypt())?;
            let at = i * sealed;
            let chunk = buf
                .get_mut(at..(at + sealed).min(end_at_len(start_at, end_at)?))
                .ok_or_else(Error::decrypt)?;
            let n = self.keys.open(index, index == layout.last_index, chunk)?;
            let seg_start = u64::from(index) * seg;
            let from =
                usize::try_from(offset.saturating_sub(seg_start)).map_err(|_| Error::decrypt())?;
            let to =
                usize::try_from((end - seg_start).min(n as u64)).map_err(|_| Error::decrypt())?;
            if from > to {
                return Err(Error::decrypt());
            }
            buf.copy_within(at + from..at + to, written);
            written += to - from;
        }
        buf.truncate(written);
        Ok(buf)
    }

    /// Authenticates the final segment once per opener, so an envelope with bytes appended or
    /// removed at the end is refused even by a range read that does not cover the end.
    fn verify_tail(&self, src: &dyn RangeSource, layout: &Layout) -> Result<()> {
        // Keyed by the source's length, so an opener reused on a different (say truncated)
        // source checks that source's tail again.
        let total = src.len()?;
        if self
            .tail_verified
            .load(std::sync::atomic::Ordering::Relaxed)
            == total
        {
            return Ok(());
        }
        let sealed_seg = self.keys.segment_size as u64 + TAG_LEN as u64;
        let start = self.header_len + u64::from(layout.last_index) * sealed_seg;
        let mut tail = src.read_at(start, total.checked_sub(start).ok_or_else(Error::decrypt)?)?;
        self.keys.open(layout.last_index, true, &mut tail)?;
        self.tail_verified
            .store(total, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Wraps a stream positioned just after the header into a plaintext reader.
    pub fn reader<R: Read>(self, src: R) -> OpenReader<R> {
        let sealed = self.keys.segment_size + TAG_LEN;
        OpenReader {
            src,
            keys: self.keys,
            cur: Vec::with_capacity(sealed),
            next: Vec::with_capacity(sealed),
            primed: false,
            out_pos: 0,
            out_len: 0,
            index: 0,
            done: false,
        }
    }
}

struct Layout {
    last_index: u32,
    plaintext_len: u64,
}

/// Reads the plaintext of an envelope as a stream, authenticating each segment before any of
/// its bytes are returned.
pub struct OpenReader<R: Read> {
    src: R,
    keys: SegmentKeys,
    // `cur` holds the segment being returned; `next` the following one, read ahead so that we
    // know whether `cur` is the last.
    cur: Vec<u8>,
    next: Vec<u8>,
    primed: bool,
    out_pos: usize,
    out_len: usize,
    index: u32,
    done: bool,
}

impl<R: Read> std::fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenReader")
            .field("segment", &self.index)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpenReader<R> {
    fn fill(src: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
        // Buffers keep their full length between segments, so this zeroes memory only the
        // first time: re-zeroing 64 KiB per segment costs as much as a copy.
        buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match src.read(buf.get_mut(got..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(())
    }

    /// Decrypts the next segment into `cur`. Returns false at the end.
    fn advance(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let sealed = self.keys.segment_size + TAG_LEN;
        if !self.primed {
            Self::fill(&mut self.src, &mut self.next, sealed)?;
            self.primed = true;
        }
        std::mem::swap(&mut self.cur, &mut self.next);
        if self.cur.len() < TAG_LEN {
            // Missing segments: the stream was truncated (a missing final segment included).
            return Err(Error::decrypt());
        }
        Self::fill(&mut self.src, &mut self.next, sealed)?;
        let last = self.next.is_empty();
        if !last && self.cur.len() != sealed {
            return Err(Error::decrypt());
        }
        if last && self.cur.len() == TAG_LEN && self.index > 0 {
            return Err(Error::decrypt());
        }
        let n = self.keys.open(self.index, last, &mut self.cur)?;
        self.out_pos = 0;
        self.out_len = n;
        self.done = last;
        self.index = self.index.checked_add(1).ok_or_else(Error::decrypt)?;
        Ok(true)
    }

    /// The next authenticated segment of plaintext, borrowed from the reader: the zero-copy
    /// way to stream an envelope (to a socket, a hash, another writer). `None` at the end.
    /// Bytes already returned by `read` are skipped.
    ///
    /// # Errors
    /// `InvalidCiphertextException` on any authentication failure.
    pub fn next_segment(&mut self) -> Result<Option<&[u8]>> {
        if self.out_pos >= self.out_len && !self.advance()? {
            return Ok(None);
        }
        let from = self.out_pos;
        self.out_pos = self.out_len;
        Ok(self.cur.get(from..self.out_len))
    }

    /// Reads the whole remaining plaintext.
    ///
    /// # Errors
    /// `InvalidCiphertextException` on any authentication failure.
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            if self.out_pos < self.out_len {
                out.extend_from_slice(self.cur.get(self.out_pos..self.out_len).unwrap_or_default());
                self.out_pos = self.out_len;
            }
            if !self.advance()? {
                return Ok(out);
            }
        }
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos >= self.out_len {
            if !self.advance().map_err(to_io)? {
                return Ok(0);
            }
        }
        let avail = self.cur.get(self.out_pos..self.out_len).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(avail.get(..n).unwrap_or_default());
        self.out_pos += n;
        Ok(n)
    }
}

/// The length of the byte range `start..end` as a `usize`.
fn end_at_len(start: u64, end: u64) -> Result<usize> {
    usize::try_from(end - start).map_err(|_| Error::decrypt())
}

/// Carries a codekeep error through `io::Read`/`io::Write`, to be recovered with
/// [`from_io`].
pub(crate) fn to_io(e: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Recovers a codekeep error carried by [`to_io`]; other I/O errors become `Io`.
pub(crate) fn from_io(e: io::Error) -> Error {
    if e.get_ref()
        .and_then(|i| i.downcast_ref::<Error>())
        .is_some()
    {
        if let Some(inner) = e.into_inner()
            && let Ok(err) = inner.downcast::<Error>()
        {
            return *err;
        }
        return Error::decrypt();
    }
    Error::from(e)
}

/// Seals `plaintext` in memory: convenience for small values.
///
/// # Errors
/// As [`SealWriter::new`].
pub fn seal_bytes(
    data_key: &[u8],
    key_ref: &[u8],
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut w = SealWriter::new(
        Vec::with_capacity(plaintext.len() + 256),
        data_key,
        key_ref,
        context,
    )?;
    w.write_all(plaintext)?;
    w.finish()
}

/// Opens an envelope held in memory, given the data key it was sealed with.
///
/// # Errors
/// `InvalidCiphertextException` on any authentication failure.
pub fn open_bytes(data_key: &[u8], context: &EncryptionContext, sealed: &[u8]) -> Result<Vec<u8>> {
    let mut src = sealed;
    let header = EnvelopeHeader::read_from(&mut src)?;
    EnvelopeOpener::new(&header, data_key, context)?
        .reader(src)
        .read_all()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    fn ctx() -> EncryptionContext {
        EncryptionContext::new().with("aws:codecommit:id", "repo-1")
    }

    fn seal_small(plain: &[u8]) -> Vec<u8> {
        let mut w =
            SealWriter::with_segment_size(Vec::new(), &KEY, b"ref", &ctx(), MIN_SEGMENT).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn open_small(sealed: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
        open_bytes(&KEY, context, sealed)
    }

    #[test]
    fn round_trip_at_segment_boundaries() {
        for n in [0usize, 1, 1023, 1024, 1025, 2048, 5000] {
            let plain: Vec<u8> = (0..n).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let sealed = seal_small(&plain);
            assert_eq!(open_small(&sealed, &ctx()).unwrap(), plain, "n={n}");
            let header = EnvelopeHeader::read_at(&sealed).unwrap();
            let opener = EnvelopeOpener::new(&header, &KEY, &ctx()).unwrap();
            assert_eq!(opener.plaintext_len(sealed.len() as u64).unwrap(), n as u64);
            if n > 10 {
                let got = opener.read_range(&sealed, 5, (n - 10) as u64).unwrap();
                assert_eq!(got, &plain[5..n - 5]);
            }
        }
    }

    #[test]
    fn wrong_context_or_key_fails() {
        let sealed = seal_small(b"secret");
        let other = EncryptionContext::new().with("aws:codecommit:id", "repo-2");
        assert_eq!(
            open_small(&sealed, &other).unwrap_err().code(),
            "InvalidCiphertextException"
        );
        assert!(open_bytes(&[8u8; 32], &ctx(), &sealed).is_err());
    }

    #[test]
    fn truncation_extension_and_reordering_fail() {
        let plain = vec![42u8; 4000];
        let sealed = seal_small(&plain);
        let header_len = EnvelopeHeader::read_at(&sealed).unwrap().encoded_len();
        let sealed_seg = 1024 + TAG_LEN;
        // Drop the final segment exactly at a boundary.
        let cut = header_len + 3 * sealed_seg;
        assert!(open_small(&sealed[..cut], &ctx()).is_err());
        // Append a byte.
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open_small(&longer, &ctx()).is_err());
        // Swap segments 0 and 1.
        let mut swapped = sealed.clone();
        let (a, b) = (header_len, header_len + sealed_seg);
        let seg0 = sealed[a..b].to_vec();
        let seg1 = sealed[b..b + sealed_seg].to_vec();
        swapped[a..b].copy_from_slice(&seg1);
        swapped[b..b + sealed_seg].copy_from_slice(&seg0);
        assert!(open_small(&swapped, &ctx()).is_err());
        let opener =
            EnvelopeOpener::new(&EnvelopeHeader::read_at(&swapped).unwrap(), &KEY, &ctx()).unwrap();
        assert!(opener.read_range(&swapped, 0, 10).is_err());
    }

    #[test]
    fn swapping_blobs_between_envelopes_fails() {
        let one = seal_small(&[1u8; 3000]);
        let two = seal_small(&[1u8; 3000]);
        let h = EnvelopeHeader::read_at(&one).unwrap().encoded_len();
        let mut mixed = one[..h].to_vec();
        mixed.extend_from_slice(&two[h..]);
        assert!(open_small(&mixed, &ctx()).is_err());
    }

    /// A sink that fails after `left` bytes.
    struct FailingSink {
        left: usize,
    }

    impl Write for FailingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.len() > self.left {
                return Err(io::Error::other("disk full"));
            }
            self.left -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn segments_stream_the_plaintext() {
        let plain: Vec<u8> = (0..5000u32)
            .map(|i| u8::try_from(i % 241).unwrap())
            .collect();
        let sealed = seal_small(&plain);
        let mut src = sealed.as_slice();
        let header = EnvelopeHeader::read_from(&mut src).unwrap();
        let mut r = EnvelopeOpener::new(&header, &KEY, &ctx())
            .unwrap()
            .reader(src);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let mut got = first.to_vec();
        while let Some(seg) = r.next_segment().unwrap() {
            got.extend_from_slice(seg);
        }
        assert_eq!(got, plain);
    }

    #[test]
    fn write_in_place_matches_write() {
        for n in [0usize, 1, 1024, 1025, 3000, 4096, 5000] {
            let plain: Vec<u8> = (0..n).map(|i| u8::try_from(i % 249).unwrap()).collect();
            let mut w =
                SealWriter::with_segment_size(Vec::new(), &KEY, b"ref", &ctx(), MIN_SEGMENT)
                    .unwrap();
            let mut owned = plain.clone();
            let (a, b) = owned.split_at_mut(n / 3);
            w.write_in_place(a).unwrap();
            w.write_all(&b[..b.len() / 2]).unwrap();
            let half = b.len() / 2;
            w.write_in_place(&mut b[half..]).unwrap();
            assert_eq!(w.plaintext_len(), n as u64);
            let sealed = w.finish().unwrap();
            assert_eq!(open_small(&sealed, &ctx()).unwrap(), plain, "n={n}");
        }
    }

    #[test]
    fn a_failed_write_poisons_the_writer_instead_of_panicking() {
        let mut w = SealWriter::with_segment_size(
            FailingSink { left: 1500 },
            &KEY,
            b"r",
            &ctx(),
            MIN_SEGMENT,
        )
        .unwrap();
        assert!(w.write_all(&[1u8; 5000]).is_err());
        assert!(w.write_all(&[1u8; 10]).is_err());
        assert!(w.finish().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn seal_then_open_is_identity(plain in proptest::collection::vec(any::<u8>(), 0..5000)) {
            prop_assert_eq!(open_small(&seal_small(&plain), &ctx()).unwrap(), plain);
        }

        #[test]
        fn range_reads_match_the_plaintext(
            plain in proptest::collection::vec(any::<u8>(), 1..5000),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let sealed = seal_small(&plain);
            let header = EnvelopeHeader::read_at(&sealed).unwrap();
            let opener = EnvelopeOpener::new(&header, &KEY, &ctx()).unwrap();
            let (x, y) = (a.index(plain.len() + 1), b.index(plain.len() + 1));
            let (x, y) = (x.min(y), x.max(y));
            let got = opener.read_range(&sealed, x as u64, (y - x) as u64).unwrap();
            prop_assert_eq!(got.as_slice(), &plain[x..y]);
        }

        #[test]
        fn any_single_byte_flip_fails(
            plain in proptest::collection::vec(any::<u8>(), 0..3000),
            pos in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut sealed = seal_small(&plain);
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(open_small(&sealed, &ctx()).is_err());
        }
    }
}
