//! Metadata keys: ordered tuples of text or number components.
//!
//! Each component is written followed by a `0x00` terminator (a `0x00` inside a component is
//! escaped as `0x00 0xFF`), so tuples sort component by component and every key with a given
//! prefix tuple falls in one contiguous range. Numbers are 16 lowercase hex digits, so they sort
//! numerically and stay readable in a database browser.

use std::fmt;

/// A metadata key built from components: `Key::new("kms").push(account).push("key").push(id)`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key with one component.
    pub fn new(first: &str) -> Self {
        Key(Vec::with_capacity(64)).push(first)
    }

    /// Appends a text component.
    #[must_use]
    pub fn push(mut self, component: &str) -> Self {
        for &b in component.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(0xff);
            }
        }
        self.0.push(0);
        self
    }

    /// Appends a number component that sorts numerically.
    #[must_use]
    pub fn push_u64(self, n: u64) -> Self {
        self.push(&format!("{n:016x}"))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The last component as text, when it is valid UTF-8.
    pub fn last(&self) -> Option<String> {
        self.components().pop()
    }

    /// The last component read as a number written by [`Key::push_u64`].
    pub fn last_u64(&self) -> Option<u64> {
        // Hot in audit verification: read the 16 hex digits in place instead of decoding every
        // component. Hex digits never need escaping, so the byte before them is a terminator.
        let body = self.0.strip_suffix(&[0])?;
        let start = body.len().checked_sub(16)?;
        let digits = body.get(start..)?;
        if start > 0 && body.get(start - 1) != Some(&0) {
            return None;
        }
        let text = std::str::from_utf8(digits).ok()?;
        u64::from_str_radix(text, 16).ok()
    }

    /// All components, decoded.
    pub fn components(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        let mut bytes = self.0.iter().copied().peekable();
        while let Some(b) = bytes.next() {
            if b == 0 {
                if bytes.peek() == Some(&0xff) {
                    bytes.next();
                    cur.push(0);
                } else {
                    out.push(String::from_utf8_lossy(&cur).into_owned());
                    cur.clear();
                }
            } else {
                cur.push(b);
            }
        }
        out
    }

    pub(crate) fn from_raw(raw: Vec<u8>) -> Self {
        Key(raw)
    }

    /// The smallest key greater than every key starting with this one.
    pub(crate) fn prefix_end(&self) -> Vec<u8> {
        // A child key continues the prefix with the first byte of its next component: never
        // 0xff, which (after a 0x00) only escapes a NUL inside the prefix's own last component.
        // So `prefix ++ 0xff` bounds exactly the keys below the prefix.
        let mut end = self.0.clone();
        end.push(0xff);
        end
    }

    /// The smallest key strictly greater than this one.
    pub(crate) fn successor(&self) -> Vec<u8> {
        let mut s = self.0.clone();
        s.push(0);
        s
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components().join("/"))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_nul_inside_a_component_is_not_a_child() {
        let p = Key::new("a");
        let sibling = Key::new("a\0b");
        let child = Key::new("a").push("");
        assert!(sibling.as_bytes() >= p.prefix_end().as_slice());
        assert!(child.as_bytes() < p.prefix_end().as_slice() && child.as_bytes() > p.as_bytes());
    }

    #[test]
    fn prefix_ranges_are_contiguous() {
        let p = Key::new("kms").push("1");
        let inside = Key::new("kms").push("1").push("key").push("z");
        let outside = Key::new("kms").push("10");
        assert!(inside.as_bytes() >= p.as_bytes() && inside.as_bytes() < p.prefix_end().as_slice());
        assert!(outside.as_bytes() >= p.prefix_end().as_slice());
    }

    proptest! {
        #[test]
        fn components_round_trip(parts in proptest::collection::vec(".{0,8}", 1..5)) {
            let mut k = Key::new(&parts[0]);
            for p in &parts[1..] {
                k = k.push(p);
            }
            prop_assert_eq!(k.components(), parts);
        }

        #[test]
        fn numbers_sort_numerically(a in any::<u64>(), b in any::<u64>()) {
            let ka = Key::new("n").push_u64(a);
            let kb = Key::new("n").push_u64(b);
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
            prop_assert_eq!(ka.last_u64(), Some(a));
        }
    }
}
