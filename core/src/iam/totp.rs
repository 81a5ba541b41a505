//! TOTP (RFC 6238) as virtual MFA devices use it: HMAC-SHA1, a 30-second step from T0 = 0,
//! six digits.

use ring::hmac;
use subtle::ConstantTimeEq;

/// The step length, in seconds.
pub(crate) const STEP_SECONDS: i64 = 30;

/// The time step that `unix_seconds` falls in.
pub(crate) fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The code of `step` with `digits` digits (RFC 4226's dynamic truncation).
pub(crate) fn code(seed: &[u8], step: i64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let counter = u64::try_from(step).unwrap_or_default().to_be_bytes();
    let tag = hmac::sign(&key, &counter);
    let mac = tag.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or_default() & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes);
    (word & 0x7fff_ffff) % 10u32.pow(digits)
}

/// Does the six-digit `text` equal the code of `step`? Compared in constant time.
pub(crate) fn matches(seed: &[u8], step: i64, text: &str) -> bool {
    let expected = format!("{:06}", code(seed, step, 6));
    text.len() == 6 && bool::from(expected.as_bytes().ct_eq(text.as_bytes()))
}

/// The step within one step of `now_step` whose code is `text`, if any (earliest first, so a
/// code is tied to a single step).
pub(crate) fn find_step(seed: &[u8], now_step: i64, text: &str) -> Option<i64> {
    (now_step - 1..=now_step + 1).find(|s| matches(seed, *s, text))
}

/// Base32 (RFC 4648, no padding) as authenticator apps take a seed.
pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let index = usize::try_from((buffer >> bits) & 31).unwrap_or_default();
            out.extend(ALPHABET.get(index).map(|c| char::from(*c)));
        }
    }
    if bits > 0 {
        let index = usize::try_from((buffer << (5 - bits)) & 31).unwrap_or_default();
        out.extend(ALPHABET.get(index).map(|c| char::from(*c)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column (the seed is the ASCII "12345678901234567890"); the
    /// eight-digit values taken to six digits are the same truncation modulo 10^6.
    #[test]
    fn rfc_6238_vectors() {
        let seed = b"12345678901234567890";
        for (time, eight) in [
            (59, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(code(seed, step_at(time), 8), eight, "T={time}");
            assert_eq!(code(seed, step_at(time), 6), eight % 1_000_000, "T={time}");
        }
        assert!(matches(seed, step_at(59), "287082"));
        assert!(!matches(seed, step_at(59), "287083"));
        assert_eq!(
            find_step(seed, step_at(59) + 1, "287082"),
            Some(step_at(59))
        );
        assert_eq!(find_step(seed, step_at(59) + 2, "287082"), None);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
