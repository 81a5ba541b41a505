//! The EventBridge pattern conformance vectors (`core/tests/vectors/events/*.json`, written
//! from the EventBridge User Guide; see its README): every case through `Pattern::parse` and
//! `Pattern::matches`, and every valid case once more through one shared `Matcher` holding all
//! of them at once (so rules cannot disturb each other's answers), from a parsed event and
//! from its bytes.

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
    let mut scratch = codekeep::events::pattern::Scratch::default();
    let mut hits = Vec::new();
    for (key, expected) in valid {
        let c = &cases[key];
        let hit = shared.matching(&c.body["event"]).contains(&(key as u64));
        if hit != expected {
            failures.push(format!(
                "{}/{}: with every rule in one matcher, expected matches={expected}",
                c.file, c.name
            ));
        }
        // The same event read straight from its text (pretty-printed, so the scanner meets
        // white space everywhere), not through serde_json.
        let text = serde_json::to_vec_pretty(&c.body["event"]).unwrap();
        shared
            .matching_bytes(&text, &mut scratch, &mut hits)
            .unwrap();
        if hits.contains(&(key as u64)) != expected {
            failures.push(format!(
                "{}/{}: from the event's bytes, expected matches={expected}",
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

#[test]
fn events_read_from_bytes_are_checked_as_far_as_they_are_read() {
    let pattern = Pattern::parse(r#"{"detail": {"name": ["a\"b"], "n": [3]}}"#).unwrap();
    let mut matcher = Matcher::new();
    matcher.insert(1, &pattern);
    let mut scratch = codekeep::events::pattern::Scratch::default();
    let mut hits = Vec::new();
    let event = br#"{"skip": {"deep": [1, "x\"]", {"y": null}]}, "detail": {"n": 3.0, "name": "a\u0022b"}}"#;
    matcher
        .matching_bytes(event, &mut scratch, &mut hits)
        .unwrap();
    assert_eq!(hits, vec![1]);
    for bad in [
        &b"[1]"[..],
        b"{\"detail\": ",
        b"{\"detail\": {\"n\": 3} x",
        b"{\"a\": @}",
    ] {
        let err = matcher
            .matching_bytes(bad, &mut scratch, &mut hits)
            .unwrap_err();
        assert_eq!(
            err.kind(),
            codekeep::ErrorKind::InvalidArgument,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
