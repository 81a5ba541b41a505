//! SNS subscription filter policies: EventBridge's pattern language with SNS's scope and
//! limits. A policy applies to the message's attributes (`MessageAttributes` scope, the
//! default: flat, one level of keys) or to its body parsed as JSON (`MessageBody` scope,
//! nested). SNS has no `wildcard`; a policy names at most 5 keys; its combinations (per `$or`
//! alternative, the product over its keys of values times nesting depth, summed over the
//! alternatives) are at most 150.

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::events::pattern::{Pattern, Test, parse::pattern_value};

/// SNS's limit on a policy's keys.
const MAX_KEYS: usize = 5;
/// SNS's limit on a policy's combinations.
const MAX_COMBINATIONS: usize = 150;
/// SNS's limit on a filter policy's size (256 KiB).
const MAX_POLICY_BYTES: usize = 256 * 1024;

/// Where a filter policy looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The message's attributes (the default).
    MessageAttributes,
    /// The message's body, parsed as JSON.
    MessageBody,
}

impl Scope {
    /// Reads `FilterPolicyScope`.
    ///
    /// # Errors
    /// `InvalidParameter` for another value.
    pub fn parse(text: &str) -> Result<Scope> {
        match text {
            "MessageAttributes" => Ok(Scope::MessageAttributes),
            "MessageBody" => Ok(Scope::MessageBody),
            other => Err(invalid_parameter(format!(
                "Invalid parameter: Attributes Reason: FilterPolicyScope: Invalid value [{other}]. Please use either MessageBody or MessageAttributes"
            ))),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::MessageAttributes => "MessageAttributes",
            Scope::MessageBody => "MessageBody",
        }
    }
}

/// A checked filter policy.
#[derive(Debug, Clone)]
pub struct FilterPolicy {
    pattern: Pattern,
    scope: Scope,
}

pub(crate) fn invalid_parameter(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "InvalidParameter", message).with_status(400)
}

fn refused(reason: impl std::fmt::Display) -> Error {
    invalid_parameter(format!("Invalid parameter: FilterPolicy: {reason}"))
}

impl FilterPolicy {
    /// Parses and checks a policy (JSON text) for `scope`.
    ///
    /// # Errors
    /// `InvalidParameter` ("Invalid parameter: FilterPolicy: ...") saying what is wrong.
    pub fn parse(text: &str, scope: Scope) -> Result<FilterPolicy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(refused("Filter policy is too large"));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| refused(format!("failed to parse JSON. {e}")))?;
        let pattern = pattern_value(&value).map_err(|e| {
            refused(
                e.message()
                    .strip_prefix("Event pattern is not valid. Reason: ")
                    .unwrap_or(e.message()),
            )
        })?;
        // The keys counted against the limit: the attribute names, or the body's top-level
        // keys (SNS counts nested policies by their first level).
        let mut keys: Vec<&str> = Vec::new();
        let mut combinations = 0usize;
        for alternative in &pattern.alternatives {
            let mut product = 1usize;
            for condition in alternative {
                if condition
                    .tests
                    .iter()
                    .any(|t| matches!(t, Test::Wildcard(_)))
                {
                    return Err(refused("Unrecognized match type wildcard"));
                }
                if scope == Scope::MessageAttributes && condition.path.len() > 1 {
                    return Err(refused(
                        "Filter policy scope MessageAttributes does not support nested filter policy",
                    ));
                }
                let key = condition.path.first().map_or("", String::as_str);
                if !keys.contains(&key) {
                    keys.push(key);
                }
                product = product
                    .saturating_mul(condition.path.len().saturating_mul(condition.tests.len()));
            }
            combinations = combinations.saturating_add(product);
        }
        if keys.len() > MAX_KEYS {
            return Err(refused("Filter policy can not have more than 5 keys"));
        }
        if combinations > MAX_COMBINATIONS {
            return Err(refused("Filter policy is too complex"));
        }
        Ok(FilterPolicy { pattern, scope })
    }

    /// Whether a message with these Publish `MessageAttributes` and this body passes.
    #[must_use]
    pub fn matches(&self, attributes: &Value, body: &str) -> bool {
        match self.scope {
            Scope::MessageAttributes => self.pattern.matches(&attribute_values(attributes)),
            Scope::MessageBody => serde_json::from_str::<Value>(body)
                .ok()
                .filter(Value::is_object)
                .is_some_and(|parsed| self.pattern.matches(&parsed)),
        }
    }
}

/// Message attributes as the values a policy sees: `String` as text, `Number` as a number,
/// `String.Array` as its JSON array; `Binary` attributes are not matched.
fn attribute_values(attributes: &Value) -> Value {
    let mut out = Map::new();
    for (name, attribute) in attributes.as_object().into_iter().flatten() {
        let data_type = attribute
            .get("DataType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(text) = attribute.get("StringValue").and_then(Value::as_str) else {
            continue;
        };
        let value = match data_type.split('.').next().unwrap_or_default() {
            "Number" => text
                .trim()
                .parse::<serde_json::Number>()
                .map_or_else(|_| Value::String(text.to_owned()), Value::Number),
            "String" if data_type.starts_with("String.Array") => {
                serde_json::from_str::<Value>(text)
                    .ok()
                    .filter(Value::is_array)
                    .unwrap_or_else(|| Value::String(text.to_owned()))
            }
            "String" => Value::String(text.to_owned()),
            _ => continue,
        };
        out.insert(name.clone(), value);
    }
    Value::Object(out)
}
