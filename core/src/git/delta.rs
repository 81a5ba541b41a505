//! Git's delta format (gitformat-pack, "Deltified representation"): a base size, a result size,
//! then copy-from-base and insert-literal instructions. gix-pack applies deltas only inside its
//! in-memory pack files; our packs are sealed, so entries are resolved here.

use crate::error::{Error, Result};

/// Applies `delta` to `base`, refusing anything that does not describe exactly `base` and a
/// result of at most `limit` bytes (sizes come from stored, but still untrusted, bytes).
pub(crate) fn apply(base: &[u8], delta: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut at = 0usize;
    let base_size = varint(delta, &mut at)?;
    let result_size = varint(delta, &mut at)?;
    if base_size != base.len() as u64 {
        return Err(corrupt("its base size does not match the base object"));
    }
    let result_size = usize::try_from(result_size)
        .ok()
        .filter(|n| *n <= limit)
        .ok_or_else(|| corrupt("its result is larger than allowed"))?;
    let mut out = Vec::with_capacity(result_size);
    while let Some(&op) = delta.get(at) {
        at += 1;
        if op & 0x80 != 0 {
            let mut offset = 0u64;
            let mut size = 0u64;
            for (bit, shift) in (0..4).map(|i| (1u8 << i, 8 * i)) {
                if op & bit != 0 {
                    offset |= u64::from(byte(delta, &mut at)?) << shift;
                }
            }
            for (bit, shift) in (0..3).map(|i| (0x10u8 << i, 8 * i)) {
                if op & bit != 0 {
                    size |= u64::from(byte(delta, &mut at)?) << shift;
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            let start = usize::try_from(offset).map_err(|_| corrupt("a copy is out of range"))?;
            let end =
                usize::try_from(offset + size).map_err(|_| corrupt("a copy is out of range"))?;
            let chunk = base
                .get(start..end)
                .ok_or_else(|| corrupt("a copy reads past the end of its base"))?;
            out.extend_from_slice(chunk);
        } else if op != 0 {
            let n = usize::from(op);
            let chunk = delta
                .get(at..at + n)
                .ok_or_else(|| corrupt("an insert runs past its end"))?;
            at += n;
            out.extend_from_slice(chunk);
        } else {
            return Err(corrupt("it holds the reserved instruction 0"));
        }
        if out.len() > result_size {
            return Err(corrupt("it produces more than its declared size"));
        }
    }
    if out.len() != result_size {
        return Err(corrupt("it produces less than its declared size"));
    }
    Ok(out)
}

fn byte(data: &[u8], at: &mut usize) -> Result<u8> {
    let b = *data
        .get(*at)
        .ok_or_else(|| corrupt("an instruction is truncated"))?;
    *at += 1;
    Ok(b)
}

fn varint(data: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = byte(data, at)?;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a size does not fit 64 bits"))
}

fn corrupt(what: &str) -> Error {
    Error::new(
        crate::error::ErrorKind::IntegrityFailure,
        format!("corrupt delta: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_inserts() {
        let base = b"hello world";
        // base 11, result 12; copy 6 bytes at 0 ("hello "), insert "there!"
        let delta = [11, 12, 0x90, 6, 6, b't', b'h', b'e', b'r', b'e', b'!'];
        assert_eq!(apply(base, &delta, 100).unwrap(), b"hello there!");
    }

    #[test]
    fn refuses_corruption() {
        let base = b"hello world";
        assert!(apply(base, &[10, 1, 1, b'x'], 100).is_err(), "base size");
        assert!(apply(base, &[11, 2, 1, b'x'], 100).is_err(), "short result");
        assert!(
            apply(base, &[11, 1, 0x91, 10, 5], 100).is_err(),
            "copy past end"
        );
        assert!(apply(base, &[11, 1, 0], 100).is_err(), "reserved op");
        assert!(apply(base, &[11, 200, 1], 100).is_err(), "over the limit");
        assert!(
            apply(base, &[11, 1, 5, b'x'], 100).is_err(),
            "insert past end"
        );
    }
}
