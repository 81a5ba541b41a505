//! Parsing, validating and compiling policy documents, with IAM's grammar and messages.

use serde_json::{Map, Value};

use super::condition::{Condition, ConditionError};
use super::pattern::{ArnPattern, Pattern, Syntax};
use super::{Effect, Policy, PolicyKind, Statement};
use crate::error::{Error, ErrorKind};

/// Where in a document a problem is.
#[derive(Clone, Copy)]
struct Place {
    statement: Option<usize>,
    element: &'static str,
}

/// One compiled principal entry of a resource or trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone, authenticated or not.
    Everyone,
    /// An account id or `arn:aws:iam::ACCOUNT:root`: the account delegates to its own policies.
    Account(Box<str>),
    /// A user, role, or role session ARN (or any other principal ARN), compared exactly.
    Arn(Box<str>),
    /// `{"Service": "..."}`, `{"Federated": "..."}`, `{"CanonicalUser": "..."}`.
    Other(Box<str>),
}

type PrincipalList = Box<[PrincipalEntry]>;
type ResourceList = Box<[ArnPattern]>;

pub(crate) fn parse(kind: PolicyKind, name: &str, text: &str) -> Result<Policy, Error> {
    let parsed = parse_kind(kind, name, text);
    if kind != PolicyKind::ServiceControl {
        return parsed;
    }
    // Organizations words its refusal of a service control policy its own way.
    parsed.map_err(|e| {
        Error::aws(
            ErrorKind::InvalidArgument,
            "MalformedPolicyDocument",
            format!(
                "The provided policy document does not meet the requirements of the specified policy type: {}",
                e.message()
            ),
        )
    })
}

fn parse_kind(kind: PolicyKind, name: &str, text: &str) -> Result<Policy, Error> {
    if let Some(bad) = text.chars().find(|c| !allowed_char(*c)) {
        return Err(malformed(
            &format!(
                "The policy contains the character U+{:04X}, which IAM does not allow",
                u32::from(bad)
            ),
            None,
        ));
    }
    let value = strict_json::parse(text)
        .map_err(|e| malformed(&format!("Syntax errors in policy. ({e})"), None))?;
    let Value::Object(doc) = value else {
        return Err(malformed(
            "Syntax errors in policy. (the document must be a JSON object)",
            None,
        ));
    };
    for key in doc.keys() {
        if !["Version", "Id", "Statement"].contains(&key.as_str()) {
            return Err(malformed(
                &format!("Syntax errors in policy. Unknown field {key}"),
                None,
            ));
        }
    }
    let variables = match doc.get("Version") {
        None => false,
        Some(Value::String(v)) if v == "2012-10-17" => true,
        Some(Value::String(v)) if v == "2008-10-17" => false,
        Some(_) => {
            return Err(malformed(
                "Syntax errors in policy. The policy failed legacy parsing: Version must be 2012-10-17 or 2008-10-17",
                at(None, "Version"),
            ));
        }
    };
    let id = match doc.get("Id") {
        None => None,
        Some(Value::String(id)) => Some(id.clone().into_boxed_str()),
        Some(_) => {
            return Err(malformed(
                "Syntax errors in policy. Id must be a string",
                at(None, "Id"),
            ));
        }
    };
    let statements: Vec<&Map<String, Value>> = match doc.get("Statement") {
        None => {
            return Err(malformed(
                "Syntax errors in policy. Missing required field Statement",
                None,
            ));
        }
        Some(Value::Object(s)) => vec![s],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_object().ok_or_else(|| {
                    malformed(
                        "Syntax errors in policy. A statement must be an object",
                        at(Some(i), "Statement"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(malformed(
                "Syntax errors in policy. Statement must be an object or a non-empty array",
                at(None, "Statement"),
            ));
        }
    };
    let mut compiled = Vec::with_capacity(statements.len());
    let mut sids: Vec<&str> = Vec::new();
    for (index, statement) in statements.into_iter().enumerate() {
        let s = compile_statement(kind, index, statement, variables)?;
        if let Some(sid) = statement.get("Sid").and_then(Value::as_str) {
            if kind != PolicyKind::Resource && sids.contains(&sid) {
                return Err(malformed(
                    "Statement IDs (SID) in a single policy must be unique.",
                    at(Some(index), "Sid"),
                ));
            }
            sids.push(sid);
        }
        compiled.push(s);
    }
    Ok(Policy::new(
        name.into(),
        kind,
        id,
        variables,
        compiled.into_boxed_slice(),
    ))
}

fn compile_statement(
    kind: PolicyKind,
    index: usize,
    s: &Map<String, Value>,
    variables: bool,
) -> Result<Statement, Error> {
    const ELEMENTS: &[&str] = &[
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ];
    for key in s.keys() {
        if !ELEMENTS.contains(&key.as_str()) {
            return Err(malformed(
                &format!("Syntax errors in policy. Unknown field {key}"),
                at(Some(index), "Statement"),
            ));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => {
            let strict = kind != PolicyKind::Resource;
            if strict && !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(malformed(
                    &format!(
                        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*; `{sid}` does not"
                    ),
                    at(Some(index), "Sid"),
                ));
            }
            Some(sid.clone().into_boxed_str())
        }
        Some(_) => {
            return Err(malformed(
                "Syntax errors in policy. Sid must be a string",
                at(Some(index), "Sid"),
            ));
        }
    };
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => {
            return Err(malformed(
                &if e.eq_ignore_ascii_case("allow") || e.eq_ignore_ascii_case("deny") {
                    format!("The policy failed legacy parsing. Effect is case-sensitive: `{e}`")
                } else {
                    format!("Syntax errors in policy. Invalid effect: {e}")
                },
                at(Some(index), "Effect"),
            ));
        }
        Some(_) => {
            return Err(malformed(
                "Syntax errors in policy. Effect must be the string Allow or Deny",
                at(Some(index), "Effect"),
            ));
        }
        None => {
            return Err(malformed(
                "Syntax errors in policy. Missing required field Effect",
                at(Some(index), "Effect"),
            ));
        }
    };

    let (principals, not_principal) = compile_principal_element(kind, effect, s, index)?;
    let (actions, not_action) = compile_action_element(kind, s, index)?;
    let (resources, not_resource) = compile_resource_element(kind, s, index, variables)?;
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(v) => compile_conditions(v, index, variables)?,
    };

    Ok(Statement {
        sid,
        index,
        effect,
        principals,
        not_principal,
        actions,
        not_action,
        resources,
        not_resource,
        conditions: conditions.into_boxed_slice(),
    })
}

/// `Principal` / `NotPrincipal`: only in resource and trust policies, where one is required.
fn compile_principal_element(
    kind: PolicyKind,
    effect: Effect,
    s: &Map<String, Value>,
    index: usize,
) -> Result<(Option<PrincipalList>, bool), Error> {
    let (principal_value, not_principal) = pair(s, "Principal", "NotPrincipal", index)?;
    match (kind, principal_value) {
        (PolicyKind::Identity | PolicyKind::ServiceControl, Some(_)) => {
            return Err(malformed(
                "Policy document should not specify a principal.",
                at(
                    Some(index),
                    if not_principal {
                        "NotPrincipal"
                    } else {
                        "Principal"
                    },
                ),
            ));
        }
        (PolicyKind::Trust, Some(_)) if not_principal => {
            return Err(malformed(
                "AssumeRole policy may not contain NotPrincipal",
                at(Some(index), "NotPrincipal"),
            ));
        }
        (PolicyKind::Resource, Some(_)) if not_principal && effect == Effect::Allow => {
            return Err(malformed(
                "NotPrincipal must be used with \"Effect\":\"Deny\"",
                at(Some(index), "NotPrincipal"),
            ));
        }
        (PolicyKind::Resource | PolicyKind::Trust, None) => {
            return Err(malformed(
                "Missing required field Principal",
                at(Some(index), "Principal"),
            ));
        }
        _ => {}
    }
    let principals = principal_value
        .map(|v| {
            compile_principals(
                v,
                index,
                if not_principal {
                    "NotPrincipal"
                } else {
                    "Principal"
                },
            )
        })
        .transpose()?;

    Ok((principals, not_principal))
}

/// `Action` / `NotAction`: required; trust policies name only STS actions.
fn compile_action_element(
    kind: PolicyKind,
    s: &Map<String, Value>,
    index: usize,
) -> Result<(Box<[Pattern]>, bool), Error> {
    let (action_value, not_action) = pair(s, "Action", "NotAction", index)?;
    let action_element = if not_action { "NotAction" } else { "Action" };
    let Some(action_value) = action_value else {
        return Err(malformed(
            "Policy statement must contain actions.",
            at(Some(index), "Action"),
        ));
    };
    let action_texts = strings(action_value, index, action_element)?;
    if action_texts.is_empty() {
        return Err(malformed(
            "Policy statement must contain actions.",
            at(Some(index), action_element),
        ));
    }
    let mut actions = Vec::with_capacity(action_texts.len());
    for action in action_texts {
        validate_action(action, index, action_element)?;
        if kind == PolicyKind::Trust && !trust_action(action) {
            return Err(malformed(
                "AssumeRole policy may only specify STS AssumeRole actions.",
                at(Some(index), action_element),
            ));
        }
        actions.push(Pattern::compile(
            action,
            Syntax {
                wildcards: true,
                variables: false,
                case_insensitive: true,
            },
        ));
    }

    Ok((actions.into_boxed_slice(), not_action))
}

/// `Resource` / `NotResource`: required, except in trust policies, which must not have one.
fn compile_resource_element(
    kind: PolicyKind,
    s: &Map<String, Value>,
    index: usize,
    variables: bool,
) -> Result<(Option<ResourceList>, bool), Error> {
    let (resource_value, not_resource) = pair(s, "Resource", "NotResource", index)?;
    let resource_element = if not_resource {
        "NotResource"
    } else {
        "Resource"
    };
    let resources = match (kind, resource_value) {
        (PolicyKind::Trust, Some(_)) => {
            return Err(malformed(
                &format!("Has prohibited field {resource_element}"),
                at(Some(index), resource_element),
            ));
        }
        (PolicyKind::Trust, None) => None,
        (_, None) => {
            return Err(malformed(
                "Policy statement must contain resources.",
                at(Some(index), "Resource"),
            ));
        }
        (_, Some(v)) => {
            let texts = strings(v, index, resource_element)?;
            if texts.is_empty() {
                return Err(malformed(
                    "Policy statement must contain resources.",
                    at(Some(index), resource_element),
                ));
            }
            let mut patterns = Vec::with_capacity(texts.len());
            for text in texts {
                validate_resource(text, index, resource_element)?;
                patterns.push(ArnPattern::compile_resource(text, variables));
            }
            Some(patterns.into_boxed_slice())
        }
    };

    Ok((resources, not_resource))
}

/// Reads one of a mutually exclusive pair of elements (`Action` / `NotAction`); returns the
/// value and whether it was the `Not` form.
fn pair<'v>(
    s: &'v Map<String, Value>,
    positive: &'static str,
    negative: &'static str,
    index: usize,
) -> Result<(Option<&'v Value>, bool), Error> {
    match (s.get(positive), s.get(negative)) {
        (Some(_), Some(_)) => Err(malformed(
            &format!(
                "Syntax errors in policy. A statement cannot have both {positive} and {negative}"
            ),
            at(Some(index), negative),
        )),
        (Some(v), None) => Ok((Some(v), false)),
        (None, Some(v)) => Ok((Some(v), true)),
        (None, None) => Ok((None, false)),
    }
}

fn strings<'v>(
    value: &'v Value,
    index: usize,
    element: &'static str,
) -> Result<Vec<&'v str>, Error> {
    let bad = || {
        malformed(
            &format!("Syntax errors in policy. {element} must be a string or an array of strings"),
            at(Some(index), element),
        )
    };
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(|v| v.as_str().ok_or_else(bad)).collect(),
        _ => Err(bad()),
    }
}

fn validate_action(action: &str, index: usize, element: &'static str) -> Result<(), Error> {
    if action == "*" {
        return Ok(());
    }
    let Some((vendor, name)) = action.split_once(':') else {
        return Err(malformed(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
            at(Some(index), element),
        ));
    };
    if vendor.is_empty()
        || !vendor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(malformed(
            &format!("Vendor {vendor} is not valid"),
            at(Some(index), element),
        ));
    }
    if name.is_empty() || name.contains(':') {
        return Err(malformed(
            &format!("Actions/Condition can contain only one colon: {action}"),
            at(Some(index), element),
        ));
    }
    Ok(())
}

fn trust_action(action: &str) -> bool {
    let Some(name) = action
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("sts:"))
        .and_then(|_| action.get(4..))
    else {
        return action == "*";
    };
    let pattern = Pattern::compile(
        name,
        Syntax {
            wildcards: true,
            variables: false,
            case_insensitive: true,
        },
    );
    let empty = super::Context::new();
    TRUST_ACTIONS.iter().any(|a| pattern.matches(a, &empty))
}

fn validate_resource(resource: &str, index: usize, element: &'static str) -> Result<(), Error> {
    if resource == "*" {
        return Ok(());
    }
    let mut parts = resource.splitn(6, ':');
    let (prefix, _partition, service, region, account, rest) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    if prefix != Some("arn") {
        return Err(malformed(
            &format!("Resource {resource} must be in ARN format or \"*\"."),
            at(Some(index), element),
        ));
    }
    let Some(service) = service.filter(|s| !s.is_empty() && !s.contains(['*', '?'])) else {
        return Err(malformed(
            "Resource vendor must be fully qualified and cannot contain regexes.",
            at(Some(index), element),
        ));
    };
    if account.is_none() || rest.is_none() {
        return Err(malformed(
            &format!("Resource {resource} must be in ARN format or \"*\"."),
            at(Some(index), element),
        ));
    }
    if service == "iam" && region.is_some_and(|r| !r.is_empty() && r != "*") {
        return Err(malformed(
            &format!("IAM resource {resource} cannot contain region information."),
            at(Some(index), element),
        ));
    }
    Ok(())
}

fn compile_principals(
    value: &Value,
    index: usize,
    element: &'static str,
) -> Result<Box<[PrincipalEntry]>, Error> {
    let invalid = |what: &str| {
        malformed(
            &format!("Invalid principal in policy: {what}"),
            at(Some(index), element),
        )
    };
    let map = match value {
        Value::String(s) if s == "*" => return Ok(Box::new([PrincipalEntry::Everyone])),
        Value::Object(map) if !map.is_empty() => map,
        _ => {
            return Err(invalid(
                "it must be \"*\" or an object such as {\"AWS\": ...}",
            ));
        }
    };
    let mut entries = Vec::new();
    for (kind, v) in map {
        let texts = strings(v, index, element)?;
        if texts.is_empty() {
            return Err(invalid(&format!("{kind} names no principal")));
        }
        for text in texts {
            let entry = match kind.as_str() {
                "AWS" => {
                    aws_principal(text).ok_or_else(|| invalid(&format!("\"AWS\":\"{text}\"")))?
                }
                // Only `"*"` and `{"AWS": "*"}` mean everyone; other types name one principal.
                "Service" | "Federated" | "CanonicalUser" => {
                    if text.is_empty() || text.contains(['*', '?']) {
                        return Err(invalid(&format!("\"{kind}\":\"{text}\"")));
                    }
                    PrincipalEntry::Other(text.into())
                }
                other => return Err(invalid(&format!("unknown principal type {other}"))),
            };
            entries.push(entry);
        }
    }
    Ok(entries.into_boxed_slice())
}

fn aws_principal(text: &str) -> Option<PrincipalEntry> {
    if text == "*" {
        return Some(PrincipalEntry::Everyone);
    }
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(PrincipalEntry::Account(text.into()));
    }
    if text.contains(['*', '?']) {
        return None;
    }
    let arn: crate::arn::Arn = text.parse().ok()?;
    if !matches!(arn.service(), "iam" | "sts") || arn.account().len() != 12 {
        return None;
    }
    if arn.service() == "iam" && arn.resource() == "root" {
        return Some(PrincipalEntry::Account(arn.account().into()));
    }
    // Users, roles and sessions are principals; groups (and anything else) are not.
    let kind = arn.resource().split('/').next().unwrap_or_default();
    let principal = match arn.service() {
        "iam" => matches!(kind, "user" | "role"),
        _ => matches!(kind, "assumed-role" | "federated-user"),
    };
    principal.then(|| PrincipalEntry::Arn(text.into()))
}

fn compile_conditions(
    value: &Value,
    index: usize,
    variables: bool,
) -> Result<Vec<Condition>, Error> {
    let Value::Object(block) = value else {
        return Err(malformed(
            "Syntax errors in policy. Condition must be an object",
            at(Some(index), "Condition"),
        ));
    };
    let mut conditions = Vec::new();
    for (operator, keys) in block {
        let Value::Object(keys) = keys else {
            return Err(malformed(
                &format!(
                    "Syntax errors in policy. The value of {operator} must be an object of condition keys"
                ),
                at(Some(index), "Condition"),
            ));
        };
        for (key, values) in keys {
            let texts = condition_values(values).ok_or_else(|| {
                malformed(
                    &format!("Syntax errors in policy. Condition values of {key} must be strings, numbers or booleans"),
                    at(Some(index), "Condition"),
                )
            })?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let condition = Condition::compile(operator, key, &refs, variables).map_err(|e| match e {
                ConditionError::UnknownOperator => malformed(
                    &format!("Syntax errors in policy. Invalid Condition type : {operator}"),
                    at(Some(index), "Condition"),
                ),
                ConditionError::BadDate(value) => malformed(
                    &format!("The policy failed legacy parsing: `{value}` is not a date"),
                    at(Some(index), "Condition"),
                ),
                ConditionError::KeyWithoutVendor => malformed(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                    at(Some(index), "Condition"),
                ),
            })?;
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

fn condition_values(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        v => one(v).map(|s| vec![s]),
    }
}

/// The actions a role trust policy may name.
const TRUST_ACTIONS: &[&str] = &[
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "TagSession",
    "SetSourceIdentity",
    "SetContext",
];

/// IAM's allowed characters: tab, line feed, carriage return, and U+0020 through U+00FF.
fn allowed_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}')
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "document-level problems pass `None`; both share `malformed`'s parameter"
)]
fn at(statement: Option<usize>, element: &'static str) -> Option<Place> {
    Some(Place { statement, element })
}

fn malformed(reason: &str, place: Option<Place>) -> Error {
    let message = match place {
        Some(Place {
            statement: Some(i),
            element,
        }) => format!("{reason} (statement {i}, element {element})"),
        Some(Place {
            statement: None,
            element,
        }) => format!("{reason} (element {element})"),
        None => reason.to_owned(),
    };
    Error::aws(
        ErrorKind::InvalidArgument,
        "MalformedPolicyDocument",
        message,
    )
}

/// The length IAM counts against its size quotas: every character except white space.
pub(crate) fn counted_len(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// JSON parsing that refuses duplicate object keys, as IAM does (serde_json keeps the last).
mod strict_json {
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    pub(super) fn parse(text: &str) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = de.deserialize_any(StrictVisitor)?;
        de.end()?;
        Ok(value)
    }

    struct StrictVisitor;

    struct Strict(Value);

    impl<'de> de::Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor).map(Strict)
        }
    }

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(value) = map.next_value()?;
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format!("duplicate element `{key}`")));
                }
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }
}
