//! Passing over the parts of an event no rule reads, sixteen bytes per comparison.
//!
//! An object or array is passed over 64 bytes at a time: the block's quotes, backslashes and
//! brackets become bit masks (a bit per byte), the bytes inside strings are the running XOR
//! of the unescaped quotes, and only the brackets outside strings are visited, to check that
//! each closes what it opened. No branch depends on what a string or a number holds: branch
//! mispredictions, not bytes, were what skipping cost when each string and bracket was found
//! and handled in turn. The comparisons are `wide`'s (SSE2's `pcmpeqb` and `pmovmskb` on
//! x86-64, NEON on aarch64), which keeps them safe and portable.

use wide::u8x16;

/// The `N` bytes from `at`; past the end, zero bytes (which no search looks for).
fn chunk_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    if let Some(Ok(full)) = bytes.get(at..at + N).map(<[u8; N]>::try_from) {
        return full;
    }
    let mut padded = [0u8; N];
    for (to, from) in padded.iter_mut().zip(bytes.get(at..).unwrap_or_default()) {
        *to = *from;
    }
    padded
}

/// The first `"` or `\\` in `bytes`, sixteen bytes at a time (most keys and values of events
/// end within their first sixteen bytes, so the loop seldom goes round: a predictable branch).
pub(super) fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    let (quote, backslash) = (u8x16::splat(b'"'), u8x16::splat(b'\\'));
    let mut at = 0;
    while at < bytes.len() {
        let sixteen = chunk_at::<16>(bytes, at);
        let v = u8x16::new(sixteen);
        let stops = (v.simd_eq(quote) | v.simd_eq(backslash)).to_bitmask();
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize);
        }
        at += 16;
    }
    None
}

/// Bit masks over the 64 bytes of a block (bit i for byte i).
#[derive(Debug, Default, PartialEq, Eq)]
struct Block {
    quotes: u64,
    backslashes: u64,
    /// `{`, `}`, `[` and `]`.
    brackets: u64,
}

/// Sixteen bytes are compared at once and the comparisons' high bits gathered into a mask.
fn classify(block: &[u8; 64]) -> Block {
    // `"`, `\\`, and `{` / `}` after OR-ing 0x20, which folds `[` onto `{` and `]` onto `}`
    // (and nothing else onto either).
    let (quote, backslash, fold) = (u8x16::splat(b'"'), u8x16::splat(b'\\'), u8x16::splat(0x20));
    let (open, close) = (u8x16::splat(b'{'), u8x16::splat(b'}'));
    let mut out = Block::default();
    for (i, sixteen) in block.as_chunks::<16>().0.iter().enumerate() {
        let v = u8x16::new(*sixteen);
        let folded = v | fold;
        let bits = |m: u8x16| u64::from(m.to_bitmask()) << (16 * i);
        out.quotes |= bits(v.simd_eq(quote));
        out.backslashes |= bits(v.simd_eq(backslash));
        out.brackets |= bits(folded.simd_eq(open) | folded.simd_eq(close));
    }
    out
}

/// The bytes a backslash escapes: the byte after each backslash that is not itself escaped.
/// `carry` says whether the block's first byte is escaped (by the previous block's last
/// byte), and is set for the next block. Backslashes are rare: the loop seldom runs.
fn escaped(backslashes: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(*carry);
    *carry = false;
    let mut escapers = backslashes & !escaped;
    while escapers != 0 {
        let at = escapers.trailing_zeros();
        match 1u64.checked_shl(at + 1) {
            Some(next) => escaped |= next,
            None => *carry = true,
        }
        escapers &= !(1u64 << at) & !escaped;
    }
    escaped
}

/// Bit i set when an odd number of bits up to and including i are set in `x`: over quote
/// bits, the bytes from an opening quote up to (not including) its closing one.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// Why a container could not be passed over, and at which byte.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed {
    pub at: usize,
    pub what: &'static str,
}

/// The offset just past the object or array that opens at `start`, whose brackets may nest
/// `depth_left` more levels. Strings and numbers inside are passed over, not checked.
pub(super) fn container_end(
    bytes: &[u8],
    start: usize,
    depth_left: usize,
) -> Result<usize, Malformed> {
    // Bit i is set when the container opened at nesting i (from here) is an object.
    let mut objects = [0u64; 3];
    let mut level = 0usize;
    let mut in_string = 0u64;
    let mut escape_carry = false;
    let mut base = start;
    while base < bytes.len() {
        let block = classify(&chunk_at::<64>(bytes, base));
        let escaped = escaped(block.backslashes, &mut escape_carry);
        let inside = prefix_xor(block.quotes & !escaped) ^ in_string;
        // All ones when the block ends inside a string.
        in_string = 0u64.wrapping_sub(inside >> 63);
        // (A backslash outside a string is not JSON; the byte after it is passed over too.)
        let mut brackets = block.brackets & !inside & !escaped;
        while brackets != 0 {
            let at = base + brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let byte = bytes.get(at).copied().unwrap_or_default();
            let (word, bit) = (level / 64, level % 64);
            if byte == b'{' || byte == b'[' {
                if level > depth_left || word >= objects.len() {
                    return Err(Malformed {
                        at,
                        what: "the event nests too deeply",
                    });
                }
                if let Some(w) = objects.get_mut(word) {
                    *w = (*w & !(1 << bit)) | (u64::from(byte == b'{') << bit);
                }
                level += 1;
                continue;
            }
            let Some(open) = level.checked_sub(1) else {
                return Err(Malformed {
                    at,
                    what: "a bracket closes nothing",
                });
            };
            let was_object = objects
                .get(open / 64)
                .is_some_and(|w| w & (1 << (open % 64)) != 0);
            if was_object != (byte == b'}') {
                return Err(Malformed {
                    at,
                    what: "a bracket closes what it did not open",
                });
            }
            level = open;
            if level == 0 {
                return Ok(at + 1);
            }
        }
        base += 64;
    }
    Err(Malformed {
        at: bytes.len(),
        what: "an unterminated object or array",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same walk a byte at a time: the reference the block walk must agree with.
    fn container_end_bytewise(bytes: &[u8], start: usize, depth_left: usize) -> Option<usize> {
        let mut stack = Vec::new();
        let (mut at, mut in_string, mut escape) = (start, false, false);
        while let Some(&b) = bytes.get(at) {
            at += 1;
            if in_string {
                match (escape, b) {
                    (true, _) => escape = false,
                    (false, b'\\') => escape = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'\\' => {
                    // Outside strings too, as the block walk does: the next byte is passed.
                    at += 1;
                }
                b'"' => in_string = true,
                b'{' | b'[' => {
                    if stack.len() > depth_left {
                        return None;
                    }
                    stack.push(b);
                }
                b'}' | b']' => {
                    let open = stack.pop()?;
                    if (open == b'{') != (b == b'}') {
                        return None;
                    }
                    if stack.is_empty() {
                        return Some(at);
                    }
                }
                _ => {}
            }
        }
        None
    }

    #[test]
    fn containers_end_where_their_brackets_balance() {
        let cases: &[(&str, Option<usize>)] = &[
            ("[1, 2] tail", Some(6)),
            (r#"{"a": "]}", "b": [{}]} x"#, Some(22)),
            (r#"["\"]", "\\"]"#, Some(13)),
            ("[1, 2}", None),
            (r#"{"a": [}"#, None),
            (r#"["open]"#, None),
        ];
        for (text, end) in cases {
            assert_eq!(container_end(text.as_bytes(), 0, 128).ok(), *end, "{text}");
        }
        // Strings and escapes that straddle a block boundary.
        let long = format!(
            r#"["{}\"{}", [{}]]"#,
            "a".repeat(61),
            "b".repeat(70),
            "1,".repeat(40)
        );
        assert_eq!(
            container_end(long.as_bytes(), 0, 128).ok(),
            Some(long.len())
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(container_end(deep.as_bytes(), 0, 128).is_err());
    }

    proptest::proptest! {
        #[test]
        fn the_block_walk_agrees_with_a_byte_walk(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                b'"', b'\\', b'{', b'}', b'[', b']', b'1', b',', b' ', b'a', 0x02, 0x5c, 0x7b
            ]), 0..300),
            depth_left in 0usize..6,
        ) {
            let mut text = vec![b'['];
            text.extend_from_slice(&bytes);
            proptest::prop_assert_eq!(
                container_end(&text, 0, depth_left).ok(),
                container_end_bytewise(&text, 0, depth_left)
            );
        }

        #[test]
        fn blocks_are_classified_byte_for_byte(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::num::u8::ANY,
                proptest::sample::select(vec![b'"', b'\\', b'{', b'}', b'[', b']', 0x02, 0x7b | 0x80]),
            ], 0..140),
            start in 0usize..70,
        ) {
            let mut expected = Block::default();
            for (i, b) in bytes.iter().skip(start).take(64).enumerate() {
                let bit = 1u64 << i;
                match b {
                    b'"' => expected.quotes |= bit,
                    b'\\' => expected.backslashes |= bit,
                    b'{' | b'}' | b'[' | b']' => expected.brackets |= bit,
                    _ => {}
                }
            }
            let mut block = [0u8; 64];
            for (to, from) in block.iter_mut().zip(bytes.iter().skip(start)) {
                *to = *from;
            }
            proptest::prop_assert_eq!(classify(&block), expected);
        }

        #[test]
        fn string_ends_are_found_as_a_byte_loop_finds_them(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::num::u8::ANY,
                proptest::sample::select(vec![b'"', b'\\', 0x22 | 0x80, 0x5c | 0x80]),
            ], 0..40)
        ) {
            proptest::prop_assert_eq!(
                quote_or_backslash(&bytes),
                bytes.iter().position(|b| matches!(b, b'"' | b'\\'))
            );
        }
    }
}
