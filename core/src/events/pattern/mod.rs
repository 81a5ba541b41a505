//! EventBridge event patterns: the language in full (exact values, prefix, suffix,
//! equals-ignore-case, anything-but and its forms, numeric ranges, cidr, exists, wildcard,
//! `$or`), parsed and checked as EventBridge does ([`Pattern::parse`]), and matched by one
//! compiled [`Matcher`] shared by every rule of a bus.
//!
//! Semantics worth knowing (each pinned by a case in `core/tests/vectors/events/`):
//! - fields AND, values in a pattern array OR; an event array matches when any element does;
//!   with arrays of objects, one pattern object's fields must match within one element;
//! - `null` and `""` differ; an empty event array counts as absent; `exists` looks at leaves;
//! - numbers compare as numbers, exactly or with `numeric` (300, 300.0 and 3.0e2 are equal);
//! - `anything-but` needs the field present.

pub(crate) mod cidr;
mod event;
mod matcher;
pub(crate) mod parse;
mod skip;
mod wildcard;

use std::sync::Arc;

pub use matcher::{Matcher, Scratch};

use crate::error::{Error, ErrorKind, Result};

/// EventBridge's default pattern size quota, in characters.
pub const MAX_PATTERN_CHARS: usize = 2048;

/// A checked event pattern: one or more alternatives (`$or` expanded), each a conjunction of
/// conditions on fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub(crate) alternatives: Vec<Vec<Condition>>,
}

impl Pattern {
    /// Parses and checks a pattern written as JSON text.
    ///
    /// # Errors
    /// `InvalidEventPatternException` saying what is wrong (EventBridge's reasons).
    pub fn parse(text: &str) -> Result<Pattern> {
        parse::pattern(text)
    }

    /// True when `event` (any JSON object; usually an EventBridge envelope) matches.
    #[must_use]
    pub fn matches(&self, event: &serde_json::Value) -> bool {
        let mut matcher = Matcher::new();
        matcher.insert(0, self);
        !matcher.matching(event).is_empty()
    }
}

/// A condition on one field (a path of object keys; arrays are looked through).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub path: Arc<[String]>,
    /// Any one of these matching a value of the field satisfies the condition.
    pub tests: Vec<Test>,
}

impl Condition {
    /// True when the condition also holds for an absent field (`exists: false` in its list).
    pub(crate) fn holds_when_absent(&self) -> bool {
        self.tests.contains(&Test::Exists(false))
    }
}

/// One value of a pattern array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Exact(Literal),
    Prefix(String),
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    /// The text, lowercased.
    EqualsIgnoreCase(String),
    Wildcard(wildcard::Wildcard),
    AnythingBut(Excluded),
    Numeric(Range),
    Cidr(cidr::Cidr),
    Exists(bool),
}

/// A literal value of a pattern or an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// What `anything-but` excludes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Excluded {
    Literals(Vec<Literal>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Lowercased.
    IgnoreCase(Vec<String>),
    Wildcards(Vec<wildcard::Wildcard>),
}

/// A numeric range; `None` is unbounded. The flag is true for an inclusive bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    pub low: Option<(f64, bool)>,
    pub high: Option<(f64, bool)>,
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = match self.low {
            None => true,
            Some((b, true)) => n >= b,
            Some((b, false)) => n > b,
        };
        let below = match self.high {
            None => true,
            Some((b, true)) => n <= b,
            Some((b, false)) => n < b,
        };
        above && below
    }
}

/// A leaf value of an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Leaf<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

impl Test {
    /// True when the test accepts `leaf` (a present value; absence is the caller's).
    pub(crate) fn accepts(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Test::Exact(lit), leaf) => literal_is(lit, leaf),
            (Test::Prefix(p), Leaf::Str(s)) => s.starts_with(p.as_str()),
            (Test::Suffix(p), Leaf::Str(s)) => s.ends_with(p.as_str()),
            (Test::PrefixIgnoreCase(p), Leaf::Str(s)) => s.to_lowercase().starts_with(p.as_str()),
            (Test::SuffixIgnoreCase(p), Leaf::Str(s)) => s.to_lowercase().ends_with(p.as_str()),
            (Test::EqualsIgnoreCase(p), Leaf::Str(s)) => s.to_lowercase() == *p,
            (Test::Wildcard(w), Leaf::Str(s)) => w.matches(s),
            (Test::AnythingBut(ex), leaf) => !excluded(ex, leaf),
            (Test::Numeric(r), Leaf::Num(n)) => r.contains(n),
            (Test::Cidr(c), Leaf::Str(s)) => c.contains(s),
            (Test::Exists(present), _) => *present,
            _ => false,
        }
    }
}

fn literal_is(lit: &Literal, leaf: Leaf<'_>) -> bool {
    match (lit, leaf) {
        (Literal::Str(a), Leaf::Str(b)) => event::same_bytes(a.as_bytes(), b.as_bytes()),
        #[expect(
            clippy::float_cmp,
            reason = "exact numeric equality is the documented rule"
        )]
        (Literal::Num(a), Leaf::Num(b)) => *a == b,
        (Literal::Bool(a), Leaf::Bool(b)) => *a == b,
        (Literal::Null, Leaf::Null) => true,
        _ => false,
    }
}

fn excluded(ex: &Excluded, leaf: Leaf<'_>) -> bool {
    match (ex, leaf) {
        (Excluded::Literals(list), leaf) => list.iter().any(|l| literal_is(l, leaf)),
        (Excluded::Prefixes(list), Leaf::Str(s)) => list.iter().any(|p| s.starts_with(p.as_str())),
        (Excluded::Suffixes(list), Leaf::Str(s)) => list.iter().any(|p| s.ends_with(p.as_str())),
        (Excluded::IgnoreCase(list), Leaf::Str(s)) => {
            let lower = s.to_lowercase();
            list.contains(&lower)
        }
        (Excluded::Wildcards(list), Leaf::Str(s)) => list.iter().any(|w| w.matches(s)),
        _ => false,
    }
}

/// EventBridge's error for a pattern it refuses.
pub(crate) fn invalid(reason: impl std::fmt::Display) -> Error {
    Error::aws(
        ErrorKind::InvalidArgument,
        "InvalidEventPatternException",
        format!("Event pattern is not valid. Reason: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_honour_inclusive_and_open_bounds() {
        let r = Range {
            low: Some((0.0, false)),
            high: Some((5.0, true)),
        };
        assert!(!r.contains(0.0));
        assert!(r.contains(0.5));
        assert!(r.contains(5.0));
        assert!(!r.contains(5.1));
    }

    #[test]
    fn a_pattern_matches_an_event() {
        let p = Pattern::parse(
            r#"{"source": ["aws.codecommit"], "detail": {"referenceName": [{"prefix": "ma"}]}}"#,
        )
        .unwrap();
        let event =
            serde_json::json!({"source": "aws.codecommit", "detail": {"referenceName": "main"}});
        assert!(p.matches(&event));
        let other =
            serde_json::json!({"source": "aws.codecommit", "detail": {"referenceName": "dev"}});
        assert!(!p.matches(&other));
    }
}
