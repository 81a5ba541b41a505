//! Random identifiers: key ids, request ids, event ids.

use ring::rand::{SecureRandom, SystemRandom};

/// Fills an array with bytes from the operating system's CSPRNG.
///
/// The OS generator does not fail on the platforms codekeep supports; should it ever, the bytes
/// fall back to a hash of the time and a counter so that ids stay distinct (never secrets: secret
/// material goes through [`fill_secret`]).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if SystemRandom::new().fill(&mut out).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        ctx.update(&nanos.to_be_bytes());
        let digest = ctx.finish();
        for (o, d) in out.iter_mut().zip(digest.as_ref().iter().cycle()) {
            *o = *d;
        }
    }
    out
}

/// Fills `out` with secret random bytes.
///
/// # Errors
/// `Internal` if the operating system's generator fails.
pub(crate) fn fill_secret(out: &mut [u8]) -> crate::Result<()> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| crate::Error::internal("the system random number generator failed"))
}

/// A random version-4 UUID in its canonical lowercase text form.
pub(crate) fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    if let Some(x) = b.get_mut(6) {
        *x = (*x & 0x0f) | 0x40;
    }
    if let Some(x) = b.get_mut(8) {
        *x = (*x & 0x3f) | 0x80;
    }
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

/// True when `s` is a canonical lowercase UUID.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(
                DIGITS
                    .get(usize::from(nibble))
                    .map_or('0', |d| char::from(*d)),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_canonical_and_distinct() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert!(is_uuid(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(!is_uuid("not-a-uuid"));
    }
}
