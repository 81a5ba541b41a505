//! `wildcard` patterns: `*` stands for any run of characters (none included); `\*` and `\\`
//! are a literal star and backslash, and no other escape exists. Two stars in a row are
//! refused, as are patterns with more stars than [`MAX_STARS`]: EventBridge refuses wildcards
//! it deems too complex without publishing its measure, so codekeep's is a star count.

use super::invalid;
use crate::error::Result;

/// Most `*` one wildcard may hold.
pub(crate) const MAX_STARS: usize = 5;

/// A parsed wildcard: the literal pieces between stars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wildcard {
    /// Literal text between stars; `pieces.len()` is the number of stars plus one.
    pieces: Vec<String>,
}

impl Wildcard {
    pub(crate) fn parse(text: &str) -> Result<Wildcard> {
        let mut pieces = vec![String::new()];
        let mut chars = text.char_indices().peekable();
        let mut previous_star = false;
        while let Some((pos, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => {
                        push(&mut pieces, escaped);
                        previous_star = false;
                    }
                    _ => return Err(invalid(format!("Invalid escape character at pos {pos}"))),
                },
                '*' => {
                    if previous_star {
                        return Err(invalid(format!(
                            "Consecutive wildcard characters at pos {pos}"
                        )));
                    }
                    pieces.push(String::new());
                    previous_star = true;
                }
                other => {
                    push(&mut pieces, other);
                    previous_star = false;
                }
            }
        }
        if pieces.len() - 1 > MAX_STARS {
            return Err(invalid(format!(
                "Rule is too complex: a wildcard may hold at most {MAX_STARS} '*'"
            )));
        }
        Ok(Wildcard { pieces })
    }

    /// True when `text` matches: the first piece starts it, the last ends it, and the middle
    /// ones appear in order in between (leftmost placement is optimal for `*`-only globs).
    pub(crate) fn matches(&self, text: &str) -> bool {
        let (Some(first), Some(last)) = (self.pieces.first(), self.pieces.last()) else {
            return false;
        };
        if self.pieces.len() == 1 {
            return text == first;
        }
        if text.len() < first.len() + last.len()
            || !text.starts_with(first.as_str())
            || !text.ends_with(last.as_str())
        {
            return false;
        }
        let Some(mut rest) = text.get(first.len()..text.len() - last.len()) else {
            return false;
        };
        let middle = self
            .pieces
            .get(1..self.pieces.len() - 1)
            .unwrap_or_default();
        for piece in middle {
            match rest.find(piece.as_str()) {
                Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }
}

fn push(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run_and_escapes_are_literal() {
        let w = Wildcard::parse("arn:*:bus/*").unwrap();
        assert!(w.matches("arn:aws:events:bus/default"));
        assert!(w.matches("arn::bus/"));
        assert!(!w.matches("arn:aws:queue/x"));
        let star = Wildcard::parse(r"a\*b").unwrap();
        assert!(star.matches("a*b"));
        assert!(!star.matches("axb"));
        assert!(Wildcard::parse("ab").unwrap().matches("ab"));
        assert!(Wildcard::parse("a*a").unwrap().matches("aa"));
        assert!(!Wildcard::parse("a*a").unwrap().matches("a"));
        assert!(Wildcard::parse("**").is_err());
        assert!(Wildcard::parse(r"a\b").is_err());
        assert!(Wildcard::parse("a\\").is_err());
    }
}
