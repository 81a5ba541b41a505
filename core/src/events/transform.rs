//! How a target reshapes an event: `InputPath` (a JSONPath into the event) and
//! `InputTransformer` (paths bound to names, then substituted into a template). These are
//! checked when a target is put.

use std::collections::HashMap;

use serde_json::Value;

use super::validation;
use crate::error::Result;

/// EventBridge's limit on `InputPathsMap` entries.
const MAX_PATHS: usize = 100;
/// EventBridge's limit on an `InputTemplate`, in characters.
const MAX_TEMPLATE_CHARS: usize = 8192;

/// One step of a path: an object member or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Member(String),
    Index(usize),
}

/// Parses EventBridge's JSONPath subset: `$`, then `.name`, `['name']` or `[n]` steps.
pub(crate) fn parse_path(path: &str) -> Result<Vec<Step>> {
    let bad = || {
        validation(format!(
            "{path} is not a valid JSONPath (for example $.detail.state)"
        ))
    };
    let mut rest = path.strip_prefix('$').ok_or_else(bad)?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = after.get(..end).filter(|n| !n.is_empty()).ok_or_else(bad)?;
            steps.push(Step::Member(name.to_owned()));
            rest = after.get(end..).unwrap_or_default();
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']").ok_or_else(bad)?;
            steps.push(Step::Member(
                after.get(..end).unwrap_or_default().to_owned(),
            ));
            rest = after.get(end + 2..).unwrap_or_default();
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(bad)?;
            let index = after
                .get(..end)
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?;
            steps.push(Step::Index(index));
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            return Err(bad());
        }
    }
    Ok(steps)
}

/// The value at `steps` in `event`, if there is one.
pub(crate) fn resolve<'v>(event: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(event, |at, step| match step {
        Step::Member(name) => at.get(name),
        Step::Index(i) => at.get(i),
    })
}

pub(crate) fn check_path(path: &str) -> Result<()> {
    parse_path(path).map(|_| ())
}

pub(crate) fn check_transformer(transformer: &Value) -> Result<()> {
    let template = transformer
        .get("InputTemplate")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("InputTransformer needs an InputTemplate string"))?;
    if template.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(validation(format!(
            "InputTemplate must be at most {MAX_TEMPLATE_CHARS} characters"
        )));
    }
    match transformer.get("InputPathsMap") {
        None => Ok(()),
        Some(Value::Object(paths)) => {
            if paths.len() > MAX_PATHS {
                return Err(validation(format!(
                    "InputPathsMap may hold at most {MAX_PATHS} entries"
                )));
            }
            for (name, path) in paths {
                let ok_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
                    && !name.to_ascii_lowercase().starts_with("aws");
                if !ok_name {
                    return Err(validation(format!(
                        "InputPathsMap key {name} must be letters, digits, - and _ and not start with aws"
                    )));
                }
                check_path(
                    path.as_str().ok_or_else(|| {
                        validation("InputPathsMap values must be JSONPath strings")
                    })?,
                )?;
            }
            Ok(())
        }
        Some(_) => Err(validation("InputPathsMap must be an object")),
    }
}

/// What a target receives: its constant `Input`, the value at its `InputPath`, its rendered
/// `InputTransformer`, or else the whole event.
pub(crate) fn payload(
    target: &Value,
    event: &Value,
    rule_arn: &str,
    rule_name: &str,
) -> Result<String> {
    if let Some(input) = target.get("Input").and_then(Value::as_str) {
        return Ok(input.to_owned());
    }
    if let Some(path) = target.get("InputPath").and_then(Value::as_str) {
        let steps = parse_path(path)?;
        return Ok(resolve(event, &steps).map_or_else(|| "null".to_owned(), Value::to_string));
    }
    if let Some(transformer) = target.get("InputTransformer") {
        return render(transformer, event, rule_arn, rule_name);
    }
    Ok(event.to_string())
}

/// Substitutes `<name>` placeholders of the template: inside a JSON string a value goes in as
/// text (a string without its quotes), elsewhere as JSON. Names are those of
/// `InputPathsMap` and EventBridge's predefined `aws.events.*` ones; a path that resolves to
/// nothing gives `null` (or nothing, inside a string); anything else between `<` and `>` is
/// left as it is.
fn render(transformer: &Value, event: &Value, rule_arn: &str, rule_name: &str) -> Result<String> {
    let template = transformer
        .get("InputTemplate")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut values: HashMap<&str, Option<Value>> = HashMap::new();
    if let Some(Value::Object(paths)) = transformer.get("InputPathsMap") {
        for (name, path) in paths {
            let steps = parse_path(path.as_str().unwrap_or_default())?;
            values.insert(name, resolve(event, &steps).cloned());
        }
    }
    values.insert("aws.events.rule-arn", Some(Value::from(rule_arn)));
    values.insert("aws.events.rule-name", Some(Value::from(rule_name)));
    values.insert("aws.events.event", Some(event.clone()));
    values.insert("aws.events.event.json", Some(event.clone()));
    values.insert(
        "aws.events.event.ingestion-time",
        event.get("time").cloned(),
    );
    let mut out = String::with_capacity(template.len());
    let mut in_string = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let placeholder = (c == '<')
            .then(|| rest.find('>'))
            .flatten()
            .and_then(|end| rest.get(1..end).map(|name| (name, end)))
            .and_then(|(name, end)| values.get(name).map(|v| (v, end)));
        if let Some((value, end)) = placeholder {
            out.push_str(&substitute(value.as_ref(), in_string));
            rest = rest.get(end + 1..).unwrap_or_default();
            continue;
        }
        if c == '\\' && in_string {
            // An escape: copy it and the character it escapes.
            let escaped: String = rest.chars().take(2).collect();
            out.push_str(&escaped);
            rest = rest.get(escaped.len()..).unwrap_or_default();
            continue;
        }
        if c == '"' {
            in_string = !in_string;
        }
        out.push(c);
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    Ok(out)
}

fn substitute(value: Option<&Value>, in_string: bool) -> String {
    match (value, in_string) {
        (None, true) => String::new(),
        (None, false) => "null".to_owned(),
        (Some(Value::String(s)), true) => {
            let quoted = Value::from(s.as_str()).to_string();
            quoted
                .get(1..quoted.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned()
        }
        (Some(other), true) => {
            let text = other.to_string();
            let quoted = Value::from(text).to_string();
            quoted
                .get(1..quoted.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned()
        }
        (Some(v), false) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_members_and_indexes() {
        let event = serde_json::json!({"detail": {"refs": [{"name": "main"}]}});
        let steps = parse_path("$.detail.refs[0]['name']").unwrap();
        assert_eq!(resolve(&event, &steps), Some(&serde_json::json!("main")));
        assert_eq!(resolve(&event, &parse_path("$").unwrap()), Some(&event));
        assert!(parse_path("detail").is_err());
        assert!(parse_path("$..x").is_err());
    }

    #[test]
    fn templates_put_values_in_as_json_or_as_text() {
        let event = serde_json::json!({"time": "t", "detail": {"name": "a\"b", "n": 3}});
        let transformer = serde_json::json!({
            "InputPathsMap": {"name": "$.detail.name", "n": "$.detail.n", "gone": "$.nope"},
            "InputTemplate": "{\"name\": <name>, \"line\": \"<name> #<n> <gone>\", \"n\": <n>, \"g\": <gone>, \"r\": <aws.events.rule-name>, \"keep\": \"<other>\"}"
        });
        let text = render(&transformer, &event, "arn:r", "r").unwrap();
        let rendered: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            rendered,
            serde_json::json!({"name": "a\"b", "line": "a\"b #3 ", "n": 3, "g": null, "r": "r", "keep": "<other>"})
        );
    }
}
