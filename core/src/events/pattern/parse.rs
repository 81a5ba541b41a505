//! Pattern text to [`Pattern`], refusing what EventBridge refuses with its reasons
//! (event-ruler's compiler messages, which EventBridge returns).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    Condition, Excluded, Literal, MAX_PATTERN_CHARS, Pattern, Range, Test, cidr, invalid, wildcard,
};
use crate::error::Result;

/// The most alternatives `$or` may expand to (EventBridge's limit).
const MAX_COMBINATIONS: usize = 1000;
/// `numeric` bounds must lie within ±5.0e9 (the EventBridge User Guide).
const NUMERIC_LIMIT: f64 = 5.0e9;

type Alternatives = Vec<Vec<Condition>>;

pub(super) fn pattern(text: &str) -> Result<Pattern> {
    let chars = text.chars().count();
    if chars > MAX_PATTERN_CHARS {
        return Err(invalid(format!(
            "Event pattern is {chars} characters long; the limit is {MAX_PATTERN_CHARS}"
        )));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("Filter is not valid JSON: {e}")))?;
    pattern_value(&value)
}

/// A pattern already read as JSON, without the size quota (SNS filter policies have their own).
pub(crate) fn pattern_value(value: &Value) -> Result<Pattern> {
    let Value::Object(object) = value else {
        return Err(invalid("Filter is not an object"));
    };
    let alternatives = object_alternatives(object, &[])?;
    Ok(Pattern { alternatives })
}

/// The alternatives an object of the pattern stands for: its fields ANDed, `$or` multiplied
/// in.
fn object_alternatives(object: &Map<String, Value>, path: &[String]) -> Result<Alternatives> {
    if object.is_empty() {
        return Err(invalid("Empty objects are not allowed"));
    }
    let mut alternatives: Alternatives = vec![Vec::new()];
    for (key, value) in object {
        let branch = if key == "$or" && is_or(value)? {
            or_alternatives(value, path)?
        } else {
            let mut child = path.to_vec();
            child.push(key.clone());
            match value {
                Value::Object(inner) => object_alternatives(inner, &child)?,
                Value::Array(values) => vec![vec![Condition {
                    path: Arc::from(child),
                    tests: tests(values)?,
                }]],
                _ => {
                    return Err(invalid(format!("\"{key}\" must be an object or an array")));
                }
            }
        };
        alternatives = product(&alternatives, &branch)?;
    }
    Ok(alternatives)
}

/// Whether a `$or` key holds alternatives (an array of objects) rather than naming a field
/// matched against an array of values.
fn is_or(value: &Value) -> Result<bool> {
    let Value::Array(items) = value else {
        return Ok(false);
    };
    let objects = items.iter().filter(|v| v.is_object()).count();
    if objects == 0 && !items.is_empty() {
        return Ok(false);
    }
    if objects != items.len() || objects < 2 {
        return Err(invalid(
            "$or must be an array of at least two objects, each a pattern",
        ));
    }
    Ok(true)
}

fn or_alternatives(value: &Value, path: &[String]) -> Result<Alternatives> {
    let mut all = Vec::new();
    for item in value.as_array().into_iter().flatten() {
        if let Value::Object(object) = item {
            all.extend(object_alternatives(object, path)?);
        }
        if all.len() > MAX_COMBINATIONS {
            return Err(too_complex());
        }
    }
    Ok(all)
}

fn product(left: &Alternatives, right: &Alternatives) -> Result<Alternatives> {
    if left.len().saturating_mul(right.len()) > MAX_COMBINATIONS {
        return Err(too_complex());
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in right {
            let mut both = l.clone();
            both.extend(r.iter().cloned());
            out.push(both);
        }
    }
    Ok(out)
}

fn too_complex() -> crate::error::Error {
    invalid(format!(
        "The rule is too complex: its $or alternatives combine into more than {MAX_COMBINATIONS} patterns"
    ))
}

/// The tests of a pattern array (non-empty; each a value or a one-key operator object).
fn tests(values: &[Value]) -> Result<Vec<Test>> {
    if values.is_empty() {
        return Err(invalid("Empty arrays are not allowed"));
    }
    values.iter().map(test).collect()
}

fn test(value: &Value) -> Result<Test> {
    match value {
        Value::Object(op) => operator(op),
        Value::Array(_) => Err(invalid(
            "Match value must be String, number, true, false, or null",
        )),
        other => Ok(Test::Exact(literal(other)?)),
    }
}

fn literal(value: &Value) -> Result<Literal> {
    Ok(match value {
        Value::String(s) => Literal::Str(s.clone()),
        Value::Number(n) => Literal::Num(number(n)?),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Null => Literal::Null,
        _ => {
            return Err(invalid(
                "Match value must be String, number, true, false, or null",
            ));
        }
    })
}

fn number(n: &serde_json::Number) -> Result<f64> {
    n.as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| invalid(format!("{n} is not a number EventBridge can compare")))
}

fn operator(op: &Map<String, Value>) -> Result<Test> {
    let mut entries = op.iter();
    let (Some((name, value)), None) = (entries.next(), entries.next()) else {
        return Err(if op.is_empty() {
            invalid("Empty objects are not allowed")
        } else {
            invalid("Only one key allowed in match expression")
        });
    };
    match name.as_str() {
        "prefix" | "suffix" => affix(name, value),
        "equals-ignore-case" => Ok(Test::EqualsIgnoreCase(ignore_case_text(value)?)),
        "wildcard" => Ok(Test::Wildcard(wildcard_text(value)?)),
        "anything-but" => Ok(Test::AnythingBut(anything_but(value)?)),
        "numeric" => Ok(Test::Numeric(numeric(value)?)),
        "cidr" => match value {
            Value::String(s) => Ok(Test::Cidr(cidr::Cidr::parse(s)?)),
            _ => Err(invalid("cidr match pattern must be a string")),
        },
        "exists" => match value {
            Value::Bool(b) => Ok(Test::Exists(*b)),
            _ => Err(invalid(
                "exists match pattern must be either true or false.",
            )),
        },
        other => Err(invalid(format!("Unrecognized match type {other}"))),
    }
}

/// `prefix` or `suffix`: a string, or `{"equals-ignore-case": string}`.
fn affix(name: &str, value: &Value) -> Result<Test> {
    let suffix = name == "suffix";
    match value {
        Value::String(s) if suffix => Ok(Test::Suffix(s.clone())),
        Value::String(s) => Ok(Test::Prefix(s.clone())),
        Value::Object(inner) => {
            let mut entries = inner.iter();
            match (entries.next(), entries.next()) {
                (Some((k, v)), None) if k == "equals-ignore-case" => {
                    let text = ignore_case_text(v)?;
                    Ok(if suffix {
                        Test::SuffixIgnoreCase(text)
                    } else {
                        Test::PrefixIgnoreCase(text)
                    })
                }
                (Some((k, _)), _) => Err(invalid(format!("Unsupported {name} pattern: {k}"))),
                (None, _) => Err(invalid("Empty objects are not allowed")),
            }
        }
        _ => Err(invalid(format!("{name} match pattern must be a string"))),
    }
}

fn ignore_case_text(value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.to_lowercase()),
        _ => Err(invalid("equals-ignore-case match pattern must be a string")),
    }
}

fn wildcard_text(value: &Value) -> Result<wildcard::Wildcard> {
    match value {
        Value::String(s) => wildcard::Wildcard::parse(s),
        _ => Err(invalid("wildcard match pattern must be a string")),
    }
}

fn anything_but(value: &Value) -> Result<Excluded> {
    const SINGLE: &str = "Value of anything-but must be an array or single string/number value.";
    match value {
        Value::String(_) | Value::Number(_) => Ok(Excluded::Literals(vec![literal(value)?])),
        Value::Array(items) => {
            if items.iter().any(|v| !(v.is_string() || v.is_number())) {
                return Err(invalid(
                    "Inside anything-but list, start|null|boolean is not supported.",
                ));
            }
            let strings = items.iter().filter(|v| v.is_string()).count();
            if items.is_empty() || (strings != 0 && strings != items.len()) {
                return Err(invalid(
                    "Inside anything-but list, either all values are number or string, mixed type is not supported",
                ));
            }
            Ok(Excluded::Literals(
                items.iter().map(literal).collect::<Result<_>>()?,
            ))
        }
        Value::Object(op) => {
            let mut entries = op.iter();
            let (Some((name, inner)), None) = (entries.next(), entries.next()) else {
                return Err(invalid(SINGLE));
            };
            match name.as_str() {
                "prefix" | "suffix" => {
                    if inner.is_object() {
                        return Err(invalid(SINGLE));
                    }
                    let list = strings_or(inner, "prefix/suffix match pattern must be a string")?;
                    if list.iter().any(String::is_empty) {
                        return Err(invalid("Null prefix/suffix not allowed"));
                    }
                    Ok(if name == "prefix" {
                        Excluded::Prefixes(list)
                    } else {
                        Excluded::Suffixes(list)
                    })
                }
                "equals-ignore-case" => {
                    let list = strings_or(
                        inner,
                        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
                    )?;
                    Ok(Excluded::IgnoreCase(
                        list.iter().map(|s| s.to_lowercase()).collect(),
                    ))
                }
                "wildcard" => {
                    let list = strings_or(inner, "wildcard match pattern must be a string")?;
                    Ok(Excluded::Wildcards(
                        list.iter()
                            .map(|s| wildcard::Wildcard::parse(s))
                            .collect::<Result<_>>()?,
                    ))
                }
                other => Err(invalid(format!(
                    "Unsupported anything-but pattern: {other}"
                ))),
            }
        }
        _ => Err(invalid(SINGLE)),
    }
}

/// A string, or a non-empty array of strings; anything else is refused with `message`.
fn strings_or(value: &Value, message: &str) -> Result<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(message))
            })
            .collect(),
        _ => Err(invalid(message)),
    }
}

/// `numeric`: `[op, n]`, or `[">"|">=", n, "<"|"<=", m]` with n < m.
fn numeric(value: &Value) -> Result<Range> {
    let Value::Array(terms) = value else {
        return Err(invalid("Value of numeric must be an array."));
    };
    let (first, n, rest) = numeric_term(terms)?;
    let mut range = Range {
        low: None,
        high: None,
    };
    match first {
        "=" => {
            range.low = Some((n, true));
            range.high = Some((n, true));
        }
        "<" | "<=" => range.high = Some((n, first == "<=")),
        _ => range.low = Some((n, first == ">=")),
    }
    if rest.is_empty() {
        return Ok(range);
    }
    if range.low.is_none() || range.high.is_some() {
        return Err(invalid("Too many elements in numeric expression"));
    }
    let (second, m, rest) = numeric_term(rest)?;
    if !matches!(second, "<" | "<=") {
        return Err(invalid(format!("Bad numeric range operator: {second}")));
    }
    if !rest.is_empty() {
        return Err(invalid("Too many terms in numeric range expression"));
    }
    if n >= m {
        return Err(invalid("Bottom must be less than top"));
    }
    range.high = Some((m, second == "<="));
    Ok(range)
}

/// One `op, number` pair at the start of `terms`; the rest.
fn numeric_term(terms: &[Value]) -> Result<(&str, f64, &[Value])> {
    let Some((op, rest)) = terms.split_first() else {
        return Err(invalid("Invalid member in numeric match: ]"));
    };
    let Value::String(op) = op else {
        return Err(invalid(format!("Invalid member in numeric match: {op}")));
    };
    let op = op.as_str();
    if !matches!(op, "=" | "<" | "<=" | ">" | ">=") {
        return Err(invalid(format!(
            "Unrecognized numeric range operator: {op}"
        )));
    }
    let named = if op == "=" { "equals" } else { op };
    let Some((Value::Number(n), rest)) = rest.split_first() else {
        return Err(invalid(format!("Value of {named} must be numeric")));
    };
    let n = number(n)?;
    if n.abs() > NUMERIC_LIMIT {
        return Err(invalid(format!(
            "Value of {named} must be between -5.0E9 and 5.0E9 inclusive"
        )));
    }
    Ok((op, n, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        pattern(text).unwrap_err().message().to_owned()
    }

    #[test]
    fn or_expands_into_alternatives() {
        let p = pattern(
            r#"{"source": ["a"], "$or": [{"x": [1]}, {"y": [2]}, {"$or": [{"z": [3]}, {"w": [4]}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.alternatives.len(), 4);
        assert!(p.alternatives.iter().all(|a| a.len() == 2));
    }

    #[test]
    fn reasons_say_what_is_wrong() {
        assert!(
            reason(r#"{"a": [{"numeric": [">", 10, "<", 5]}]}"#)
                .contains("Bottom must be less than top")
        );
        assert!(reason(r#"{"a": "x"}"#).contains("must be an object or an array"));
        assert!(reason("[1]").contains("Filter is not an object"));
        assert!(reason(r#"{"a": [{"contains": "x"}]}"#).contains("Unrecognized match type"));
    }
}
