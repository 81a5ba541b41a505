//! Condition operators: every IAM operator, `...IfExists`, `ForAnyValue:` / `ForAllValues:`,
//! and IAM's rules for missing keys.

use std::net::IpAddr;

use base64::Engine as _;

use super::context::{Context, ContextValue};
use super::pattern::{ArnPattern, Pattern, Syntax};

/// One compiled condition: an operator applied to one key with one or more values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    /// The operator as written, e.g. `ForAnyValue:StringLikeIfExists`.
    pub operator_name: Box<str>,
    /// The key as written, e.g. `aws:PrincipalTag/team`.
    pub key_name: Box<str>,
    /// The key lower-cased, for lookups.
    key: Box<str>,
    set: SetOperator,
    if_exists: bool,
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOperator {
    Single,
    ForAnyValue,
    ForAllValues,
}

/// The positive form of the operator with its compiled values.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    String(Box<[Pattern]>),
    Numeric(Ordering, Box<[Option<f64>]>),
    Date(Ordering, Box<[Option<i64>]>),
    /// The policy's values as text patterns (they may hold policy variables), compared without
    /// case with the request's value read as `true` or `false`.
    Bool(Box<[Pattern]>),
    Binary(Box<[Vec<u8>]>),
    Ip(Box<[Option<Cidr>]>),
    Arn(Box<[ArnPattern]>),
    /// `Null`: true when the key is missing and the value is `true`, or present and `false`.
    Null(Box<[Option<bool>]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordering {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

/// Why a condition block could not be compiled.
#[derive(Debug)]
pub(crate) enum ConditionError {
    UnknownOperator,
    KeyWithoutVendor,
    /// A `Date*` operator's value that is neither ISO 8601 nor epoch seconds.
    BadDate(String),
}

impl Condition {
    /// Compiles `operator` (as written in the policy) over `key` with `values`.
    /// `variables` is true when the policy's version allows policy variables.
    pub fn compile(
        operator: &str,
        key: &str,
        values: &[&str],
        variables: bool,
    ) -> Result<Condition, ConditionError> {
        let (set, base) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (SetOperator::ForAnyValue, rest)
        } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (SetOperator::ForAllValues, rest)
        } else {
            (SetOperator::Single, operator)
        };
        let (if_exists, base) = match base.strip_suffix("IfExists") {
            Some(rest) if rest != "Null" => (true, rest),
            _ => (false, base),
        };
        if !key.contains(':') || key.starts_with(':') {
            return Err(ConditionError::KeyWithoutVendor);
        }
        let string = |case_insensitive: bool, wildcards: bool| {
            let syntax = Syntax {
                wildcards,
                variables,
                case_insensitive,
            };
            Test::String(values.iter().map(|v| Pattern::compile(v, syntax)).collect())
        };
        let numeric = |o| Test::Numeric(o, values.iter().map(|v| parse_number(v)).collect());
        let date = |o| Test::Date(o, values.iter().map(|v| parse_date(v)).collect());
        let arn = || {
            Test::Arn(
                values
                    .iter()
                    .map(|v| ArnPattern::compile(v, variables))
                    .collect(),
            )
        };
        let (negated, test) = match base {
            "StringEquals" => (false, string(false, false)),
            "StringNotEquals" => (true, string(false, false)),
            "StringEqualsIgnoreCase" => (false, string(true, false)),
            "StringNotEqualsIgnoreCase" => (true, string(true, false)),
            "StringLike" => (false, string(false, true)),
            "StringNotLike" => (true, string(false, true)),
            "NumericEquals" => (false, numeric(Ordering::Equals)),
            "NumericNotEquals" => (true, numeric(Ordering::Equals)),
            "NumericLessThan" => (false, numeric(Ordering::LessThan)),
            "NumericLessThanEquals" => (false, numeric(Ordering::LessThanEquals)),
            "NumericGreaterThan" => (false, numeric(Ordering::GreaterThan)),
            "NumericGreaterThanEquals" => (false, numeric(Ordering::GreaterThanEquals)),
            "DateEquals" => (false, date(Ordering::Equals)),
            "DateNotEquals" => (true, date(Ordering::Equals)),
            "DateLessThan" => (false, date(Ordering::LessThan)),
            "DateLessThanEquals" => (false, date(Ordering::LessThanEquals)),
            "DateGreaterThan" => (false, date(Ordering::GreaterThan)),
            "DateGreaterThanEquals" => (false, date(Ordering::GreaterThanEquals)),
            "Bool" => (false, Test::Bool(bool_patterns(values, variables))),
            "BinaryEquals" => (
                false,
                Test::Binary(values.iter().map(|v| decode_binary(v)).collect()),
            ),
            "IpAddress" => (
                false,
                Test::Ip(values.iter().map(|v| Cidr::parse(v)).collect()),
            ),
            "NotIpAddress" => (
                true,
                Test::Ip(values.iter().map(|v| Cidr::parse(v)).collect()),
            ),
            "ArnEquals" | "ArnLike" => (false, arn()),
            "ArnNotEquals" | "ArnNotLike" => (true, arn()),
            "Null" if set == SetOperator::Single => (
                false,
                Test::Null(values.iter().map(|v| parse_bool(v)).collect()),
            ),
            _ => return Err(ConditionError::UnknownOperator),
        };
        if let Test::Date(_, dates) = &test
            && let Some(bad) = values.iter().zip(dates.iter()).find(|(_, d)| d.is_none())
        {
            return Err(ConditionError::BadDate((*bad.0).to_owned()));
        }
        Ok(Condition {
            operator_name: operator.into(),
            key_name: key.into(),
            key: key.to_ascii_lowercase().into_boxed_str(),
            set,
            if_exists,
            negated,
            test,
        })
    }

    /// The lower-cased key this condition reads.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lower-cased keys the condition's values refer to as policy variables.
    pub fn variables(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.test {
            Test::String(ps) | Test::Bool(ps) => Box::new(ps.iter().flat_map(Pattern::variables)),
            Test::Arn(ps) => Box::new(ps.iter().flat_map(ArnPattern::variables)),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Evaluates the condition against the request context.
    pub fn holds(&self, context: &Context) -> bool {
        let value = context.lookup(&self.key);
        if let Test::Null(expected) = &self.test {
            let missing = value.is_none();
            return expected.contains(&Some(missing));
        }
        let Some(value) = value else {
            // IAM's missing-key rules.
            return match self.set {
                _ if self.if_exists => true,
                SetOperator::ForAllValues => true,
                SetOperator::ForAnyValue => false,
                SetOperator::Single => self.negated,
            };
        };
        match (self.set, value) {
            (SetOperator::Single, ContextValue::Single(v)) => self.holds_for(v, context),
            // A single-valued operator on a multivalued key: true when a value satisfies it.
            (SetOperator::Single | SetOperator::ForAnyValue, _) => {
                value.values().any(|v| self.holds_for(v, context))
            }
            (SetOperator::ForAllValues, _) => value.values().all(|v| self.holds_for(v, context)),
        }
    }

    /// The operator (negation included) applied to one context value: true when some policy
    /// value matches; negated operators are NOR over the policy values.
    fn holds_for(&self, value: &str, context: &Context) -> bool {
        self.negated != self.any_value_matches(value, context)
    }

    fn any_value_matches(&self, value: &str, context: &Context) -> bool {
        match &self.test {
            Test::String(patterns) => patterns.iter().any(|p| p.matches(value, context)),
            Test::Numeric(ordering, numbers) => parse_number(value).is_some_and(|v| {
                numbers
                    .iter()
                    .flatten()
                    .any(|n| ordering.compare(v.partial_cmp(n)))
            }),
            Test::Date(ordering, dates) => parse_date(value).is_some_and(|v| {
                dates
                    .iter()
                    .flatten()
                    .any(|d| ordering.compare(Some(v.cmp(d))))
            }),
            Test::Bool(patterns) => parse_bool(value).is_some_and(|v| {
                let text = if v { "true" } else { "false" };
                patterns.iter().any(|p| p.matches(text, context))
            }),
            Test::Binary(blobs) => {
                let decoded = decode_binary_vartime_into(value);
                blobs.iter().any(|b| decoded.matches(b))
            }
            Test::Ip(cidrs) => value
                .parse::<IpAddr>()
                .is_ok_and(|ip| cidrs.iter().flatten().any(|c| c.contains(ip))),
            Test::Arn(patterns) => patterns.iter().any(|p| p.matches(value, context)),
            Test::Null(_) => false,
        }
    }
}

impl Ordering {
    fn compare(self, ord: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        matches!(
            (self, ord),
            (
                Ordering::Equals | Ordering::LessThanEquals | Ordering::GreaterThanEquals,
                Some(Equal)
            ) | (Ordering::LessThan | Ordering::LessThanEquals, Some(Less))
                | (
                    Ordering::GreaterThan | Ordering::GreaterThanEquals,
                    Some(Greater)
                )
        )
    }
}

/// `Bool` values as text patterns: `true` / `false` in any case, or a policy variable.
fn bool_patterns(values: &[&str], variables: bool) -> Box<[Pattern]> {
    let syntax = Syntax {
        wildcards: false,
        variables,
        case_insensitive: true,
    };
    values.iter().map(|v| Pattern::compile(v, syntax)).collect()
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A date as IAM reads one: ISO 8601 (with or without time and fraction) or epoch seconds.
/// Returns milliseconds since the epoch.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    // W3C's `YYYY` is a year; any other run of digits is epoch seconds.
    if digits && text.len() != 4 {
        return text.parse::<i64>().ok()?.checked_mul(1000);
    }
    let whole_seconds =
        |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return whole_seconds(t);
    }
    // `YYYY-MM-DDThh:mmTZD`: W3C allows leaving the seconds out.
    if let Some((date, time_part)) = text.split_once('T')
        && let Some(zone_at) = time_part.find(['Z', 'z', '+', '-'])
        && zone_at == 5
    {
        let (hm, zone) = time_part.split_at(zone_at);
        let full = format!("{date}T{hm}:00{zone}");
        return time::OffsetDateTime::parse(&full, &Rfc3339)
            .ok()
            .and_then(whole_seconds);
    }
    let midnight = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &day) {
        return Some(midnight(d));
    }
    if text.len() == 7
        && let Ok(d) = time::Date::parse(&format!("{text}-01"), &day)
    {
        return Some(midnight(d));
    }
    if text.len() == 4
        && let Ok(d) = time::Date::parse(&format!("{text}-01-01"), &day)
    {
        return Some(midnight(d));
    }
    let no_zone =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(text, &no_zone)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp() * 1000)
}

fn decode_binary(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|_| text.as_bytes().to_vec())
}

/// A context value for `BinaryEquals`: base64 text compared decoded, without allocating for
/// values up to 96 bytes.
struct DecodedBinary<'a> {
    buf: [u8; 96],
    len: Option<usize>,
    raw: &'a str,
}

impl DecodedBinary<'_> {
    fn matches(&self, expected: &[u8]) -> bool {
        match self.len {
            Some(len) => self.buf.get(..len) == Some(expected),
            None => decode_binary(self.raw) == expected,
        }
    }
}

fn decode_binary_vartime_into(text: &str) -> DecodedBinary<'_> {
    let mut buf = [0u8; 96];
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(text, &mut buf)
        .ok();
    DecodedBinary {
        buf,
        len,
        raw: text,
    }
}

/// An IPv4 or IPv6 network: `203.0.113.0/24`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (
                addr.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u8>().ok()?),
            ),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr {
            network: addr,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(op: &str, key: &str, values: &[&str], ctx: &Context) -> bool {
        Condition::compile(op, key, values, true)
            .unwrap()
            .holds(ctx)
    }

    #[test]
    fn missing_key_rules() {
        let c = Context::new();
        assert!(!holds("StringEquals", "aws:x", &["a"], &c));
        assert!(holds("StringNotEquals", "aws:x", &["a"], &c));
        assert!(holds("StringEqualsIfExists", "aws:x", &["a"], &c));
        assert!(holds("ForAllValues:StringEquals", "aws:x", &["a"], &c));
        assert!(!holds("ForAnyValue:StringEquals", "aws:x", &["a"], &c));
        assert!(holds("Null", "aws:x", &["true"], &c));
        assert!(!holds("Null", "aws:x", &["false"], &c));
    }

    #[test]
    fn cidr() {
        let mut c = Context::new();
        c.insert("aws:SourceIp", "203.0.113.7");
        assert!(holds("IpAddress", "aws:SourceIp", &["203.0.113.0/24"], &c));
        assert!(!holds("IpAddress", "aws:SourceIp", &["2001:db8::/32"], &c));
        assert!(holds("NotIpAddress", "aws:SourceIp", &["10.0.0.0/8"], &c));
        c.insert("aws:SourceIp", "2001:db8::1");
        assert!(holds("IpAddress", "aws:SourceIp", &["2001:db8::/32"], &c));
        assert!(holds(
            "IpAddress",
            "aws:SourceIp",
            &["0.0.0.0/0", "::/0"],
            &c
        ));
    }

    #[test]
    fn w3c_dates() {
        let day = parse_date("2026-12-01").unwrap();
        assert_eq!(parse_date("2026-12-01T00:00Z"), Some(day));
        assert_eq!(parse_date("2026-12-01T01:00+01:00"), Some(day));
        assert_eq!(parse_date("2026-12"), Some(day));
        assert_eq!(parse_date("2026-12-01T00:00:00.000Z"), Some(day));
        assert_eq!(
            parse_date("2026"),
            parse_date("2026-01-01"),
            "four digits are a year"
        );
        assert_eq!(parse_date("1795687200"), Some(1_795_687_200_000));
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn empty_values_are_null_and_bool_takes_variables() {
        let mut c = Context::new();
        c.insert("aws:RequestTag/CostCenter", "");
        assert!(holds("Null", "aws:RequestTag/CostCenter", &["true"], &c));
        assert!(!holds(
            "StringLike",
            "aws:RequestTag/CostCenter",
            &["*"],
            &c
        ));
        c.insert("aws:SecureTransport", "true");
        c.insert("aws:PrincipalTag/tls", "TRUE");
        assert!(holds(
            "Bool",
            "aws:SecureTransport",
            &["${aws:PrincipalTag/tls}"],
            &c
        ));
        c.insert("aws:PrincipalTag/tls", "false");
        assert!(!holds(
            "Bool",
            "aws:SecureTransport",
            &["${aws:PrincipalTag/tls}"],
            &c
        ));
    }

    #[test]
    fn dates_and_numbers() {
        let mut c = Context::new();
        c.insert("aws:CurrentTime", "2026-11-26T10:00:00Z");
        c.insert("s3:max-keys", "10");
        assert!(holds(
            "DateGreaterThan",
            "aws:CurrentTime",
            &["2026-01-01T00:00:00Z"],
            &c
        ));
        assert!(holds(
            "DateLessThan",
            "aws:currenttime",
            &["1900000000"],
            &c
        ));
        assert!(holds("NumericLessThanEquals", "s3:max-keys", &["10"], &c));
        assert!(!holds("NumericLessThan", "s3:max-keys", &["10"], &c));
        assert!(holds("NumericNotEquals", "s3:max-keys", &["9", "11"], &c));
    }
}
