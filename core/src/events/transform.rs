//! How a target reshapes an event: `InputPath` (a JSONPath into the event) and
//! `InputTransformer` (paths bound to names, then substituted into a template). These are
//! checked when a target is put.

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
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "delivery applies InputPath; the dispatcher comes next"
    )
)]
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
}
