//! An event as the matcher sees it: the leaf values at the paths some pattern names (nothing
//! else is visited), each with the elements of arrays of objects it sits in. Arrays are looked
//! through; an element of an array of objects (or of arrays) is recorded so that one pattern
//! object's fields can be required to match within one element. An event is read either from a
//! parsed `serde_json::Value` or straight from its bytes ([`Flat::scan`]), where values no
//! pattern names are skipped without being parsed.

use foldhash::HashMap;

use serde_json::Value;

use super::Leaf;
use super::skip::{self, quote_or_backslash};

/// The paths patterns name, as a tree of keys.
#[derive(Debug, Default, Clone)]
pub(crate) struct Paths {
    nodes: Vec<Node>,
    count: usize,
}

#[derive(Debug, Default, Clone)]
struct Node {
    /// By the key's bytes, so an event's keys are looked up without checking their UTF-8
    /// first (a key that matches one of these is valid UTF-8).
    children: HashMap<Box<[u8]>, usize>,
    /// The same, as a list while short: a few length-checked comparisons beat hashing every
    /// key of the event.
    few: Vec<(Box<[u8]>, usize)>,
    /// Set when a condition names this path.
    path: Option<usize>,
}

/// Children kept in a list as well, up to this many.
const FEW_CHILDREN: usize = 8;

impl Node {
    fn child(&self, key: &[u8]) -> Option<usize> {
        if self.children.len() <= FEW_CHILDREN {
            self.few
                .iter()
                .find(|(k, _)| same_bytes(k, key))
                .map(|(_, c)| *c)
        } else {
            self.children.get(key).copied()
        }
    }
}

impl Paths {
    /// The id of `path` (keys from the root), added if new.
    pub(crate) fn id(&mut self, path: &[String]) -> usize {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0;
        for key in path {
            let next = self.nodes.len();
            let Some(node) = self.nodes.get_mut(at) else {
                return 0;
            };
            let child = *node.children.entry(key.as_bytes().into()).or_insert(next);
            if child == next && node.children.len() <= FEW_CHILDREN {
                node.few.push((key.as_bytes().into(), next));
            } else if node.children.len() > FEW_CHILDREN {
                node.few.clear();
            }
            if child == next {
                self.nodes.push(Node::default());
            }
            at = child;
        }
        match self.nodes.get_mut(at).map(|n| &mut n.path) {
            Some(Some(id)) => *id,
            Some(slot) => {
                *slot = Some(self.count);
                self.count += 1;
                self.count - 1
            }
            None => 0,
        }
    }

    /// How many distinct paths there are (ids run from 0 to this, exclusive).
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

/// One leaf value found at a named path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'e> {
    pub path: usize,
    value: Text<'e>,
    /// Range in [`Flat::elements`] of the array elements the leaf sits in.
    pub within: (u32, u32),
}

/// A leaf as found: borrowed from the event, or a string that had escapes, unescaped into
/// [`Flat::owned`].
#[derive(Debug, Clone, Copy)]
enum Text<'e> {
    Leaf(Leaf<'e>),
    Owned(usize),
}

/// An event flattened against [`Paths`].
#[derive(Debug, Default)]
pub(crate) struct Flat<'e> {
    /// Inline for the usual handful: no allocation per event.
    pub found: smallvec::SmallVec<[Found<'e>; 8]>,
    owned: Vec<String>,
    /// `(array, element index)` pairs, referenced by [`Found::within`].
    pub elements: Vec<(u32, u32)>,
    arrays: u32,
    stack: Vec<(u32, u32)>,
}

impl<'e> Flat<'e> {
    pub(crate) fn clear(&mut self) {
        self.found.clear();
        self.owned.clear();
        self.elements.clear();
        self.arrays = 0;
        self.stack.clear();
    }

    /// Collects the leaves of `event` at the paths of `paths`.
    pub(crate) fn read(&mut self, paths: &Paths, event: &'e Value) {
        self.clear();
        if paths.nodes.is_empty() {
            return;
        }
        self.visit(paths, 0, event);
    }

    /// True when some leaf sits in an array of objects (so element consistency matters).
    pub(crate) fn has_elements(&self) -> bool {
        !self.elements.is_empty()
    }

    /// The value of a found leaf.
    pub(crate) fn leaf<'f>(&'f self, found: &Found<'e>) -> Leaf<'f>
    where
        'e: 'f,
    {
        match found.value {
            Text::Leaf(leaf) => leaf,
            Text::Owned(i) => Leaf::Str(self.owned.get(i).map_or("", String::as_str)),
        }
    }

    pub(crate) fn elements_of(&self, found: &Found<'_>) -> &[(u32, u32)] {
        let (start, len) = (found.within.0 as usize, found.within.1 as usize);
        self.elements.get(start..start + len).unwrap_or_default()
    }

    fn visit(&mut self, paths: &Paths, node: usize, value: &'e Value) {
        let Some(n) = paths.nodes.get(node) else {
            return;
        };
        let leaf = match value {
            Value::Object(map) => {
                if n.children.len() <= map.len() {
                    for (key, child) in &n.children {
                        if let Some(v) = std::str::from_utf8(key).ok().and_then(|k| map.get(k)) {
                            self.visit(paths, *child, v);
                        }
                    }
                } else {
                    for (key, v) in map {
                        if let Some(child) = n.children.get(key.as_bytes()) {
                            self.visit(paths, *child, v);
                        }
                    }
                }
                return;
            }
            Value::Array(items) => {
                let array = self.arrays;
                self.arrays += 1;
                for (i, item) in items.iter().enumerate() {
                    let container = item.is_object() || item.is_array();
                    if container {
                        self.stack
                            .push((array, u32::try_from(i).unwrap_or(u32::MAX)));
                    }
                    self.visit(paths, node, item);
                    if container {
                        self.stack.pop();
                    }
                }
                return;
            }
            Value::String(s) => Leaf::Str(s),
            Value::Number(num) => match num.as_f64() {
                Some(f) => Leaf::Num(f),
                None => return,
            },
            Value::Bool(b) => Leaf::Bool(*b),
            Value::Null => Leaf::Null,
        };
        if let Some(path) = n.path {
            self.push(path, Text::Leaf(leaf));
        }
    }

    fn push(&mut self, path: usize, value: Text<'e>) {
        let start = u32::try_from(self.elements.len()).unwrap_or(u32::MAX);
        self.elements.extend_from_slice(&self.stack);
        let len = u32::try_from(self.stack.len()).unwrap_or(u32::MAX);
        self.found.push(Found {
            path,
            value,
            within: (start, len),
        });
    }

    /// Collects the leaves of the JSON object `bytes` at the paths of `paths`, parsing only
    /// what leads to them. Values on other paths are skipped, not checked.
    ///
    /// # Errors
    /// `InvalidArgument` when the bytes are not a JSON object (as far as they were read).
    pub(crate) fn scan(&mut self, paths: &Paths, bytes: &'e [u8]) -> crate::error::Result<()> {
        self.clear();
        let mut scanner = Scanner { bytes, at: 0 };
        scanner.space();
        if scanner.peek() != Some(b'{') {
            return Err(scanner.fail("an event must be a JSON object"));
        }
        let root = (!paths.nodes.is_empty()).then_some(0);
        self.scan_value(paths, root, &mut scanner, 0)?;
        scanner.space();
        if scanner.at != bytes.len() {
            return Err(scanner.fail("text after the event"));
        }
        Ok(())
    }

    fn scan_value(
        &mut self,
        paths: &Paths,
        node: Option<usize>,
        s: &mut Scanner<'e>,
        depth: usize,
    ) -> crate::error::Result<()> {
        if depth > MAX_DEPTH {
            return Err(s.fail("the event nests too deeply"));
        }
        let Some(n) = node.and_then(|n| paths.nodes.get(n)) else {
            return s.skip_value(depth);
        };
        s.space();
        match s.peek() {
            Some(b'{') => {
                s.at += 1;
                s.space();
                if s.peek() == Some(b'}') {
                    s.at += 1;
                    return Ok(());
                }
                loop {
                    s.space();
                    let child = s.key(n)?;
                    s.space();
                    s.expect(b':')?;
                    self.scan_value(paths, child, s, depth + 1)?;
                    s.space();
                    match s.next() {
                        Some(b',') => {}
                        Some(b'}') => return Ok(()),
                        _ => return Err(s.fail("expected , or } in an object")),
                    }
                }
            }
            Some(b'[') => {
                s.at += 1;
                let array = self.arrays;
                self.arrays += 1;
                s.space();
                if s.peek() == Some(b']') {
                    s.at += 1;
                    return Ok(());
                }
                for i in 0u32.. {
                    s.space();
                    let container = matches!(s.peek(), Some(b'{' | b'['));
                    if container {
                        self.stack.push((array, i));
                    }
                    self.scan_value(paths, node, s, depth + 1)?;
                    if container {
                        self.stack.pop();
                    }
                    s.space();
                    match s.next() {
                        Some(b',') => {}
                        Some(b']') => return Ok(()),
                        _ => return Err(s.fail("expected , or ] in an array")),
                    }
                }
                Ok(())
            }
            Some(b'"') => {
                let text = s.string()?;
                if let Some(path) = n.path {
                    let value = match text {
                        Str::Raw(t) => Text::Leaf(Leaf::Str(t)),
                        Str::Escaped(t) => {
                            self.owned.push(t);
                            Text::Owned(self.owned.len() - 1)
                        }
                    };
                    self.push(path, value);
                }
                Ok(())
            }
            _ => {
                let leaf = s.scalar()?;
                if let Some(path) = n.path {
                    self.push(path, Text::Leaf(leaf));
                }
                Ok(())
            }
        }
    }
}

/// Deepest nesting an event may have (serde_json's own limit is 128).
const MAX_DEPTH: usize = 128;

/// A JSON string as read: borrowed when it had no escapes.
enum Str<'e> {
    Raw(&'e str),
    Escaped(String),
}

/// Byte equality for the short keys and values of events without a call into `memcmp`: whole
/// words compared, the tail byte by byte.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| <[u8; 8]>::try_from(c).map_or(0, u64::from_ne_bytes);
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .all(|(x, y)| x == y);
    tails && wa.zip(wb).all(|(x, y)| word(x) == word(y))
}

/// A cursor over an event's bytes.
struct Scanner<'e> {
    bytes: &'e [u8],
    at: usize,
}

impl<'e> Scanner<'e> {
    fn fail(&self, what: &str) -> crate::error::Error {
        crate::error::Error::invalid(format!(
            "the event is not valid JSON: {what} (at byte {})",
            self.at
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.at += 1;
        b
    }

    fn expect(&mut self, byte: u8) -> crate::error::Result<()> {
        if self.next() == Some(byte) {
            Ok(())
        } else {
            Err(self.fail(&format!("expected {}", char::from(byte))))
        }
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The extent of the string starting here (at its quote); true when it has escapes.
    fn string_extent(&mut self) -> crate::error::Result<(usize, usize, bool)> {
        if self.next() != Some(b'"') {
            return Err(self.fail("expected a string"));
        }
        let start = self.at;
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(self.at..).unwrap_or_default();
            match quote_or_backslash(rest) {
                Some(k) if rest.get(k) == Some(&b'"') => {
                    self.at += k + 1;
                    return Ok((start, self.at - 1, escaped));
                }
                Some(k) => {
                    escaped = true;
                    self.at += k + 2;
                }
                None => return Err(self.fail("an unterminated string")),
            }
        }
    }

    /// Reads an object's key and looks it up among the node's children by its bytes (unescaped first
    /// when it has escapes).
    fn key(&mut self, node: &Node) -> crate::error::Result<Option<usize>> {
        let (start, end, escaped) = self.string_extent()?;
        if escaped {
            let quoted = self.bytes.get(start - 1..=end).unwrap_or_default();
            let key: String =
                serde_json::from_slice(quoted).map_err(|_| self.fail("a malformed string"))?;
            return Ok(node.child(key.as_bytes()));
        }
        Ok(node.child(self.bytes.get(start..end).unwrap_or_default()))
    }

    fn string(&mut self) -> crate::error::Result<Str<'e>> {
        let (start, end, escaped) = self.string_extent()?;
        let quoted = self.bytes.get(start - 1..=end).unwrap_or_default();
        if escaped {
            serde_json::from_slice::<String>(quoted)
                .map(Str::Escaped)
                .map_err(|_| self.fail("a malformed string"))
        } else {
            std::str::from_utf8(self.bytes.get(start..end).unwrap_or_default())
                .map(Str::Raw)
                .map_err(|_| self.fail("a string that is not UTF-8"))
        }
    }

    /// A number, `true`, `false` or `null`.
    fn scalar(&mut self) -> crate::error::Result<Leaf<'e>> {
        let start = self.at;
        while matches!(self.peek(), Some(b) if !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
        let token = self.bytes.get(start..self.at).unwrap_or_default();
        match token {
            b"true" => Ok(Leaf::Bool(true)),
            b"false" => Ok(Leaf::Bool(false)),
            b"null" => Ok(Leaf::Null),
            _ => std::str::from_utf8(token)
                .ok()
                .filter(|t| t.starts_with(|c: char| c == '-' || c.is_ascii_digit()))
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|f| f.is_finite())
                .map(Leaf::Num)
                .ok_or_else(|| self.fail("a value that is not JSON")),
        }
    }

    /// Passes over one value without looking inside strings or numbers: one pass over the
    /// bytes, brackets matched (a stack of bits), string ends found with memchr.
    fn skip_value(&mut self, depth: usize) -> crate::error::Result<()> {
        self.space();
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.skip_string_rest()
            }
            Some(b'{' | b'[') => self.skip_container(depth),
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                // A number or literal no rule reads: passed over, not parsed.
                while matches!(self.peek(), Some(b) if !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.at += 1;
                }
                Ok(())
            }
            Some(_) => Err(self.fail("a value that is not JSON")),
            None => Err(self.fail("a missing value")),
        }
    }

    /// Moves past the closing quote of a string whose opening quote was read.
    fn skip_string_rest(&mut self) -> crate::error::Result<()> {
        loop {
            let rest = self.bytes.get(self.at..).unwrap_or_default();
            match quote_or_backslash(rest) {
                Some(k) if rest.get(k) == Some(&b'"') => {
                    self.at += k + 1;
                    return Ok(());
                }
                // A backslash: it and the byte it escapes.
                Some(k) => self.at += k + 2,
                None => return Err(self.fail("an unterminated string")),
            }
        }
    }

    /// Passes over an object or array, counting brackets (each must close what it opened).
    fn skip_container(&mut self, depth: usize) -> crate::error::Result<()> {
        match skip::container_end(self.bytes, self.at, MAX_DEPTH.saturating_sub(depth)) {
            Ok(end) => {
                self.at = end;
                Ok(())
            }
            Err(skip::Malformed { at, what }) => {
                self.at = at;
                Err(self.fail(what))
            }
        }
    }
}

/// True when two leaves can belong to one match: every array both sit in, they sit in the
/// same element of.
pub(crate) fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(array, i)| b.iter().all(|(other, j)| array != other || i == j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(paths: &Paths, text: &str) -> crate::error::Result<usize> {
        let mut flat = Flat::default();
        flat.scan(paths, text.as_bytes())?;
        Ok(flat.found.len())
    }

    #[test]
    fn skipped_values_are_passed_over_but_still_well_bracketed() {
        let mut paths = Paths::default();
        paths.id(&["a".to_owned()]);
        // Values nobody names are skipped, strings with escaped quotes and brackets included.
        let skipped = r#"{"x": {"y": ["]\"}", {"z": "\\"}], "w": [[1, 2], {}]}, "a": "hit"}"#;
        assert_eq!(scan(&paths, skipped).unwrap(), 1);
        let long = format!(
            r#"{{"x": "{}\"{}", "a": 1}}"#,
            "q".repeat(40),
            "r".repeat(40)
        );
        assert_eq!(scan(&paths, &long).unwrap(), 1);
        for bad in [
            r#"{"x": [1, 2}, "a": 1}"#,
            r#"{"x": {"y": 1], "a": 1}"#,
            r#"{"x": ["open, "a": 1}"#,
            r#"{"x": [[[1]], "a": 1"#,
        ] {
            assert!(scan(&paths, bad).is_err(), "{bad}");
        }
        let deep = format!(r#"{{"x": {}{}, "a": 1}}"#, "[".repeat(200), "]".repeat(200));
        assert!(scan(&paths, &deep).is_err());
    }

    #[test]
    fn keys_are_found_among_few_and_many_children() {
        let mut paths = Paths::default();
        let ids: Vec<usize> = (0..20).map(|i| paths.id(&[format!("k{i}")])).collect();
        let event = r#"{"k3": 1, "k19": 2, "other": 3, "k\u0031": 4}"#;
        let mut flat = Flat::default();
        flat.scan(&paths, event.as_bytes()).unwrap();
        let found: Vec<usize> = flat.found.iter().map(|f| f.path).collect();
        assert_eq!(found, [ids[3], ids[19], ids[1]]);
        let mut few = Paths::default();
        let id = few.id(&["only".to_owned()]);
        flat.scan(&few, br#"{"onl": 1, "only": 2, "onlyx": 3}"#)
            .unwrap();
        assert_eq!(flat.found.iter().map(|f| f.path).collect::<Vec<_>>(), [id]);
    }
}
