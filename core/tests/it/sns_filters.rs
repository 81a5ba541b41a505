//! The SNS filter-policy conformance vectors (`core/tests/vectors/sns/filter_policy.json`,
//! written from the Amazon SNS Developer Guide; see its README): each policy is parsed for its
//! scope and either refused with the documented reason or matched against its message.

use std::path::Path;

use codekeep::events::sns::{FilterPolicy, Scope};
use serde_json::Value;

#[test]
fn sns_filter_policy_vectors_from_the_sns_guide() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sns/filter_policy.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    let (mut matching, mut invalid) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let scope = Scope::parse(case["scope"].as_str().unwrap()).unwrap();
        let parsed = FilterPolicy::parse(&case["policy"].to_string(), scope);
        if case["invalid"] == Value::Bool(true) {
            invalid += 1;
            match parsed {
                Ok(_) => failures.push(format!("{name}: accepted, should be refused")),
                Err(e) => {
                    let wanted = case["message_contains"].as_str().unwrap_or_default();
                    if e.code() != "InvalidParameter"
                        || !e.message().starts_with("Invalid parameter: FilterPolicy: ")
                        || !e.message().to_lowercase().contains(wanted)
                    {
                        failures.push(format!("{name}: refused as {}: {}", e.code(), e.message()));
                    }
                }
            }
            continue;
        }
        matching += 1;
        let policy = match parsed {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: refused: {}", e.message()));
                continue;
            }
        };
        let body = match &case["message_body"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let got = policy.matches(&case["message_attributes"], &body);
        if got != case["matches"].as_bool().unwrap() {
            failures.push(format!("{name}: matched {got}"));
        }
    }
    assert!(
        matching >= 80 && invalid >= 20,
        "{matching} matching, {invalid} invalid"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
