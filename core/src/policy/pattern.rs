//! Text patterns of policies: IAM's `*` and `?` wildcards, policy variables (`${aws:username}`),
//! and ARN patterns matched segment by segment.
//!
//! Patterns are compiled once. Matching walks the pattern and the text side by side with the
//! classic single-backtrack glob algorithm, resolving variables from the request context as it
//! goes, so it never allocates.

use super::context::Context;

/// One compiled text pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    tokens: Box<[Token]>,
    case_insensitive: bool,
    /// A faster way to match common shapes, decided at compile time.
    shape: Shape,
}

/// Common pattern shapes matched without the general algorithm.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// `*`.
    Any,
    /// Literal ASCII text: equality.
    Exact(Box<str>),
    /// Literal ASCII text then `*`: a prefix test.
    Prefix(Box<str>),
    /// Anything else (variables, `?`, inner stars, non-ASCII with case folding).
    General,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// Literal text (wildcard characters in it are literal too: they come from `${*}`).
    Literal(Box<str>),
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
    /// A `*` inside an ARN field of a `Resource` (not at the field's end): any run of
    /// characters without a colon.
    FieldStar,
    /// `${key}` or `${key, 'default'}`: the context's single value for `key`.
    Variable {
        /// Lower-cased key name.
        key: Box<str>,
        default: Option<Box<str>>,
    },
}

/// How a pattern's text is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (`StringLike`, `Resource`, `Action`); otherwise literal.
    pub wildcards: bool,
    /// `${...}` is a policy variable (Version 2012-10-17, operators that allow variables).
    pub variables: bool,
    /// Letters compare without case (`Action`, `StringEqualsIgnoreCase`).
    pub case_insensitive: bool,
}

/// One step of a pattern while matching.
#[derive(Clone, Copy, PartialEq)]
enum Atom {
    Char(char),
    One,
    Star,
    FieldStar,
}

impl Pattern {
    /// Compiles `text` read with `syntax`.
    pub fn compile(text: &str, syntax: Syntax) -> Pattern {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables
                && rest.starts_with("${")
                && let Some((token, after)) = parse_variable(rest)
            {
                {
                    match token {
                        Token::Literal(text) => literal.push_str(&text),
                        token => {
                            flush(&mut tokens, &mut literal);
                            tokens.push(token);
                        }
                    }
                    rest = after;
                    continue;
                }
            }
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut tokens, &mut literal);
                    // Consecutive stars mean the same as one.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut tokens, &mut literal);
                    tokens.push(Token::One);
                }
                c => literal.push(c),
            }
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
        }
        flush(&mut tokens, &mut literal);
        let shape = match tokens.as_slice() {
            [Token::Star] => Shape::Any,
            [] => Shape::Exact("".into()),
            [Token::Literal(text)] if text.is_ascii() => Shape::Exact(text.clone()),
            [Token::Literal(text), Token::Star] if text.is_ascii() => Shape::Prefix(text.clone()),
            _ => Shape::General,
        };
        Pattern {
            tokens: tokens.into_boxed_slice(),
            case_insensitive: syntax.case_insensitive,
            shape,
        }
    }

    /// The literal text before any wildcard or variable, when the pattern starts with one.
    pub fn literal_prefix(&self) -> &str {
        match self.tokens.first() {
            Some(Token::Literal(text)) => text,
            _ => "",
        }
    }

    /// The lower-cased keys of the variables the pattern uses.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().filter_map(|t| match t {
            Token::Variable { key, .. } => Some(&**key),
            _ => None,
        })
    }

    /// Does `text` match? A variable that the context cannot resolve to a single value makes
    /// the pattern match nothing, as IAM documents.
    pub fn matches(&self, text: &str, context: &Context) -> bool {
        match &self.shape {
            Shape::Any => return true,
            Shape::Exact(literal) => {
                return if self.case_insensitive {
                    literal.eq_ignore_ascii_case(text)
                } else {
                    **literal == *text
                };
            }
            Shape::Prefix(literal) => {
                return text.get(..literal.len()).is_some_and(|head| {
                    if self.case_insensitive {
                        literal.eq_ignore_ascii_case(head)
                    } else {
                        **literal == *head
                    }
                });
            }
            Shape::General => {}
        }
        if !self.variables_resolve(context) {
            return false;
        }
        let mut pattern = (0usize, 0usize);
        let mut at = 0usize;
        // Where to resume after the last star: (pattern position after it, text position).
        let mut backtrack: Option<((usize, usize), usize)> = None;
        loop {
            let next_char = text.get(at..).and_then(|t| t.chars().next());
            match (self.atom(pattern, context), next_char) {
                (Some((Atom::Star | Atom::FieldStar, after)), _) => {
                    backtrack = Some((after, at));
                    pattern = after;
                    continue;
                }
                (Some((Atom::One, after)), Some(c)) => {
                    pattern = after;
                    at += c.len_utf8();
                    continue;
                }
                (Some((Atom::Char(p), after)), Some(c)) if self.same(p, c) => {
                    pattern = after;
                    at += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last star swallow one more character, if there is one.
            let Some((after_star, star_at)) = backtrack else {
                return false;
            };
            let Some(c) = text.get(star_at..).and_then(|t| t.chars().next()) else {
                return false;
            };
            let star_at = star_at + c.len_utf8();
            backtrack = Some((after_star, star_at));
            pattern = after_star;
            at = star_at;
        }
    }

    /// A whole `Resource` ARN pattern whose first five fields hold wildcards: IAM lets a `*` that
    /// ends a field match across colons, while a `*` inside a field stays within it. Variables
    /// count only in the resource part, after the fifth colon.
    fn compile_resource(head: &[&str], tail: &str, variables: bool) -> Pattern {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        for field in head {
            let mut chars = field.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '*' => {
                        flush(&mut tokens, &mut literal);
                        tokens.push(if chars.peek().is_none() {
                            Token::Star
                        } else {
                            Token::FieldStar
                        });
                    }
                    '?' => {
                        flush(&mut tokens, &mut literal);
                        tokens.push(Token::One);
                    }
                    c => literal.push(c),
                }
            }
            literal.push(':');
        }
        flush(&mut tokens, &mut literal);
        let tail = Pattern::compile(
            tail,
            Syntax {
                wildcards: true,
                variables,
                case_insensitive: false,
            },
        );
        tokens.extend(tail.tokens.iter().cloned());
        Pattern {
            tokens: tokens.into_boxed_slice(),
            case_insensitive: false,
            shape: Shape::General,
        }
    }

    /// Matching by the set of text positions each step can reach, which copes with stars that
    /// may not cross colons (the single-backtrack algorithm cannot). Up to 255-byte texts it
    /// keeps its two position sets on the stack.
    fn matches_fields(&self, text: &str, context: &Context) -> bool {
        if !self.variables_resolve(context) {
            return false;
        }
        let n = text.len();
        let mut small = ([false; 256], [false; 256]);
        let mut large;
        let (cur, next): (&mut [bool], &mut [bool]) =
            if let (Some(a), Some(b)) = (small.0.get_mut(..=n), small.1.get_mut(..=n)) {
                (a, b)
            } else {
                large = (vec![false; n + 1], vec![false; n + 1]);
                (&mut large.0[..], &mut large.1[..])
            };
        if let Some(first) = cur.first_mut() {
            *first = true;
        }
        let bytes = text.as_bytes();
        let mut position = (0usize, 0usize);
        while let Some((atom, after)) = self.atom(position, context) {
            next.fill(false);
            match atom {
                Atom::Star | Atom::FieldStar => {
                    let mut reach = false;
                    for j in 0..=n {
                        if atom == Atom::FieldStar && j > 0 && bytes.get(j - 1) == Some(&b':') {
                            reach = false;
                        }
                        reach |= cur.get(j).copied().unwrap_or(false);
                        if let Some(slot) = next.get_mut(j) {
                            *slot = reach;
                        }
                    }
                }
                Atom::One | Atom::Char(_) => {
                    for i in 0..n {
                        if !cur.get(i).copied().unwrap_or(false) {
                            continue;
                        }
                        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
                            continue;
                        };
                        let fits = match atom {
                            Atom::Char(p) => self.same(p, c),
                            _ => true,
                        };
                        if fits && let Some(slot) = next.get_mut(i + c.len_utf8()) {
                            *slot = true;
                        }
                    }
                }
            }
            cur.copy_from_slice(next);
            position = after;
        }
        cur.get(n).copied().unwrap_or(false)
    }

    fn variables_resolve(&self, context: &Context) -> bool {
        self.tokens.iter().all(|t| match t {
            Token::Variable { key, default } => {
                default.is_some() || context.single_value(key).is_some()
            }
            _ => true,
        })
    }

    /// The atom at `(token, byte offset)` and the position after it.
    fn atom(
        &self,
        (token, offset): (usize, usize),
        context: &Context,
    ) -> Option<(Atom, (usize, usize))> {
        let mut token = token;
        let mut offset = offset;
        loop {
            let text = match self.tokens.get(token)? {
                Token::Star => return Some((Atom::Star, (token + 1, 0))),
                Token::One => return Some((Atom::One, (token + 1, 0))),
                Token::FieldStar => return Some((Atom::FieldStar, (token + 1, 0))),
                Token::Literal(text) => &**text,
                Token::Variable { key, default } => context
                    .single_value(key)
                    .or(default.as_deref())
                    .unwrap_or_default(),
            };
            if let Some(c) = text.get(offset..).and_then(|t| t.chars().next()) {
                return Some((Atom::Char(c), (token, offset + c.len_utf8())));
            }
            // An empty variable value, or the end of this literal: go on to the next token.
            token += 1;
            offset = 0;
        }
    }

    fn same(&self, p: char, c: char) -> bool {
        p == c
            || (self.case_insensitive
                && (p.eq_ignore_ascii_case(&c) || p.to_lowercase().eq(c.to_lowercase())))
    }
}

fn flush(tokens: &mut Vec<Token>, literal: &mut String) {
    if !literal.is_empty() {
        tokens.push(Token::Literal(std::mem::take(literal).into_boxed_str()));
    }
}

/// Parses `${...}` at the start of `text`: the escapes `${*}`, `${?}`, `${$}` (literal
/// characters), or a key with an optional `, 'default'`. `None` when it is not a variable, in
/// which case the characters are literal.
fn parse_variable(text: &str) -> Option<(Token, &str)> {
    let body_end = text.find('}')?;
    let body = text.get(2..body_end)?;
    let after = text.get(body_end + 1..)?;
    let token = match body {
        "*" | "?" | "$" => Token::Literal(body.into()),
        _ => {
            let (key, default) = match body.split_once(',') {
                Some((key, default)) => {
                    let default = default.trim();
                    let default = default
                        .strip_prefix('\'')
                        .and_then(|d| d.strip_suffix('\''))?;
                    (key.trim(), Some(default.into()))
                }
                None => (body.trim(), None),
            };
            if key.is_empty() || key.contains(['$', '{', '\'']) {
                return None;
            }
            Token::Variable {
                key: key.to_ascii_lowercase().into_boxed_str(),
                default,
            }
        }
    };
    Some((token, after))
}

/// An ARN pattern: up to six colon-separated segments, each a [`Pattern`]; the last segment
/// also matches any colons left in the text (resource ids may contain colons).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArnPattern {
    segments: Box<[Pattern]>,
    any: bool,
    /// When the first five segments are plain text, the whole pattern as one text pattern: a
    /// wildcard can then only be in the last segment, which takes the rest of the ARN anyway.
    whole: Option<Pattern>,
    /// For a `Resource` with wildcards in its first five fields: the whole pattern, matched
    /// with IAM's rule that a `*` ending a field may match across colons.
    fields: Option<Pattern>,
}

impl ArnPattern {
    /// Compiles an ARN pattern, or `*` meaning every resource.
    pub fn compile(text: &str, variables: bool) -> ArnPattern {
        ArnPattern::compile_with(text, variables, variables)
    }

    /// Compiles a `Resource` pattern: IAM substitutes policy variables only in the resource
    /// part, after the fifth colon; before it, `${...}` is literal text.
    pub fn compile_resource(text: &str, variables: bool) -> ArnPattern {
        let mut pattern = ArnPattern::compile_with(text, false, variables);
        let parts: Vec<&str> = split_arn(text, 6).collect();
        if !pattern.any
            && pattern.whole.is_none()
            && let [head @ .., tail] = parts.as_slice()
            && head.len() == 5
        {
            pattern.fields = Some(Pattern::compile_resource(head, tail, variables));
        }
        pattern
    }

    fn compile_with(text: &str, head_variables: bool, tail_variables: bool) -> ArnPattern {
        let syntax = |variables| Syntax {
            wildcards: true,
            variables,
            case_insensitive: false,
        };
        let count = split_arn(text, 6).count();
        let segments: Vec<Pattern> = split_arn(text, 6)
            .enumerate()
            .map(|(i, segment)| {
                let variables = if i + 1 == count {
                    tail_variables
                } else {
                    head_variables
                };
                Pattern::compile(segment, syntax(variables))
            })
            .collect();
        // The one-pattern fast path reads variables everywhere, so it is used only when the
        // head has neither wildcards nor anything that looks like a variable.
        let head_is_plain = segments.len() == 6
            && split_arn(text, 6)
                .take(5)
                .all(|s| !s.contains(['*', '?']) && !s.contains("${"));
        ArnPattern {
            any: text == "*",
            segments: segments.into_boxed_slice(),
            whole: head_is_plain.then(|| Pattern::compile(text, syntax(tail_variables))),
            fields: None,
        }
    }

    /// Does the ARN `text` match, segment by segment?
    pub fn matches(&self, text: &str, context: &Context) -> bool {
        if self.any {
            return true;
        }
        if let Some(whole) = &self.whole {
            return whole.matches(text, context);
        }
        if let Some(fields) = &self.fields {
            return fields.matches_fields(text, context);
        }
        let mut parts = split_arn(text, self.segments.len());
        for segment in &*self.segments {
            match parts.next() {
                Some(part) if segment.matches(part, context) => {}
                _ => return false,
            }
        }
        true
    }

    /// The lower-cased keys of the variables the pattern uses.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().flat_map(Pattern::variables)
    }
}

/// Splits an ARN at its first `n - 1` colons, ignoring colons inside `${...}` (a default value
/// may hold one).
fn split_arn(text: &str, n: usize) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    let mut count = 0;
    std::iter::from_fn(move || {
        let current = rest?;
        count += 1;
        if count >= n {
            rest = None;
            return Some(current);
        }
        let mut depth = 0usize;
        let mut prev = '\0';
        for (i, c) in current.char_indices() {
            match c {
                '{' if prev == '$' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                ':' if depth == 0 => {
                    rest = current.get(i + 1..);
                    return current.get(..i);
                }
                _ => {}
            }
            prev = c;
        }
        rest = None;
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOB: Syntax = Syntax {
        wildcards: true,
        variables: true,
        case_insensitive: false,
    };

    fn ctx() -> Context {
        let mut c = Context::new();
        c.insert("aws:username", "alice");
        c.insert_multi("aws:TagKeys", ["a", "b"]);
        c
    }

    #[test]
    fn wildcards() {
        let c = ctx();
        let m = |p: &str, t: &str| Pattern::compile(p, GLOB).matches(t, &c);
        assert!(m("*", ""));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*c", "ac"));
        assert!(!m("a*c", "acb"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*b*", "abc"));
        assert!(m("a**b", "ab"));
        assert!(m("home/${aws:username}/*", "home/alice/x"));
        assert!(!m("home/${aws:username}/*", "home/bob/x"));
        assert!(
            !m("${aws:TagKeys}", "a"),
            "multi-valued keys do not resolve"
        );
        assert!(!m("${aws:nothing}", ""), "unresolved matches nothing");
        assert!(m("${aws:nothing, 'x'}", "x"));
        assert!(m("a${*}b", "a*b"));
        assert!(!m("a${*}b", "axb"), "escaped star is literal");
        assert!(m("${$}{x}", "${x}"));
    }

    #[test]
    fn case_insensitive() {
        let p = Pattern::compile(
            "s3:Get*",
            Syntax {
                case_insensitive: true,
                ..GLOB
            },
        );
        assert!(p.matches("S3:GETOBJECT", &Context::new()));
    }

    #[test]
    fn arn_segments() {
        let c = ctx();
        let m = |p: &str, t: &str| ArnPattern::compile(p, true).matches(t, &c);
        assert!(m("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b"));
        assert!(
            m("arn:aws:iam::*", "arn:aws:iam::1:user/x"),
            "the last segment takes the rest"
        );
        assert!(m("arn:aws:iam::*:user/*", "arn:aws:iam::1:user/x"));
        assert!(!m("arn:aws:iam::*:user/*", "arn:aws:iam::1:x:user/x"));
        // In `Resource`, a `*` that ends a field may match across colons; one inside a field
        // may not.
        let r = |p: &str, t: &str| ArnPattern::compile_resource(p, true).matches(t, &c);
        assert!(r("arn:aws:iam::*:user/*", "arn:aws:iam::1:x:user/x"));
        assert!(r("arn:aws:iam::*:user/*", "arn:aws:iam::1:user/x"));
        assert!(!r("arn:aws:iam::1*2:user/x", "arn:aws:iam::1:x2:user/x"));
        assert!(r("arn:aws:iam::1*2:user/x", "arn:aws:iam::1x2:user/x"));
        assert!(r(
            "arn:aws:iam:?:*:user/${aws:username}",
            "arn:aws:iam:a:1:user/alice"
        ));
        assert!(!r(
            "arn:aws:iam:*:*:user/${aws:username}",
            "arn:aws:iam::1:user/bob"
        ));
        assert!(!r(
            "arn:aws:iam:${aws:username}:*:user/x",
            "arn:aws:iam:alice:1:user/x"
        ));
        assert!(m("*", "anything"));
    }
}
