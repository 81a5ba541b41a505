//! The EventBridge pattern conformance vectors (`core/tests/vectors/events/*.json`, written
//! from the EventBridge User Guide; see its README): every case through `Pattern::parse` and
//! `Pattern::matches`, and every valid case once more through one shared `Matcher` holding all
//! of them at once, so rules cannot disturb each other's answers.

use std::path::Path;

use codekeep::events::pattern::{Matcher, Pattern};
use serde_json::Value;

struct Case {
    file: String,
    name: String,
    text: String,
    body: Value,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            let text = match case.get("pattern_text") {
                Some(Value::String(t)) => t.clone(),
                _ => case["pattern"].to_string(),
            };
            out.push(Case {
                file: file.file_name().unwrap().to_string_lossy().into_owned(),
                name: case["name"].as_str().unwrap().to_owned(),
                text,
                body: case.clone(),
            });
        }
    }
    out
}

#[test]
fn event_pattern_vectors_from_the_eventbridge_guide() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut shared = Matcher::new();
    let mut valid = Vec::new();
    let (mut matching, mut invalid) = (0, 0);
    for (key, c) in cases.iter().enumerate() {
        let parsed = Pattern::parse(&c.text);
        if c.body["invalid"] == Value::Bool(true) {
            invalid += 1;
            match parsed {
                Ok(_) => failures.push(format!(
                    "{}/{}: accepted, should be refused",
                    c.file, c.name
                )),
                Err(e) => {
                    if e.code() != "InvalidEventPatternException" {
                        failures.push(format!("{}/{}: code {}", c.file, c.name, e.code()));
                    }
                    if let Some(phrase) = c.body["message_contains"].as_str()
                        && !e.message().to_lowercase().contains(&phrase.to_lowercase())
                    {
                        failures.push(format!(
                            "{}/{}: message {:?} lacks {phrase:?}",
                            c.file,
                            c.name,
                            e.message()
                        ));
                    }
                }
            }
            continue;
        }
        matching += 1;
        let pattern = match parsed {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}/{}: refused: {}", c.file, c.name, e.message()));
                continue;
            }
        };
        let expected = c.body["matches"].as_bool().unwrap();
        if pattern.matches(&c.body["event"]) != expected {
            failures.push(format!(
                "{}/{}: expected matches={expected}",
                c.file, c.name
            ));
        }
        shared.insert(key as u64, &pattern);
        valid.push((key, expected));
    }
    for (key, expected) in valid {
        let c = &cases[key];
        let hit = shared.matching(&c.body["event"]).contains(&(key as u64));
        if hit != expected {
            failures.push(format!(
                "{}/{}: with every rule in one matcher, expected matches={expected}",
                c.file, c.name
            ));
        }
    }
    assert!(
        matching >= 150 && invalid >= 15,
        "{matching} cases, {invalid} invalid"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
