//! Delivery to in-process functions: a rule's targets receive matching events (custom events
//! and a real git push), shaped by Input, InputPath or InputTransformer; failures are retried
//! with backoff and end in the dead-letter queue; a panicking function fails a delivery and
//! nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codekeep::{Caller, Client, Keep};
use serde_json::{Value, json};

/// A keep with quick retries, an account, and its `events` client.
fn keep() -> (Keep, String, Client) {
    crate::quick_retry_keep("events")
}

use crate::{rule, wait_until};

fn put(events: &Client, source: &str, detail: &Value) -> String {
    let out = events
        .call(
            "PutEvents",
            json!({"Entries": [{"Source": source, "DetailType": "Test", "Detail": detail.to_string()}]}),
        )
        .unwrap();
    assert_eq!(out["FailedEntryCount"], 0, "{out}");
    out["Entries"][0]["EventId"].as_str().unwrap().to_owned()
}

#[test]
fn matching_events_reach_functions_shaped_as_the_target_says() {
    let (keep, account, events) = keep();
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for name in ["whole", "constant", "path", "shaped"] {
        let seen = Arc::clone(&seen);
        let tag = name.to_owned();
        keep.register_function(&account, name, move |payload: &str| {
            seen.lock().unwrap().push((tag.clone(), payload.to_owned()));
            Ok(())
        })
        .unwrap();
    }
    let function = |n: &str| format!("arn:aws:lambda:us-east-1:{account}:function:{n}");
    rule(
        &events,
        "builds",
        &json!({"source": ["my.ci"], "detail": {"status": ["ok"]}}),
        &json!([
            {"Id": "1", "Arn": function("whole")},
            {"Id": "2", "Arn": function("constant"), "Input": "{\"fixed\": 1}"},
            {"Id": "3", "Arn": function("path"), "InputPath": "$.detail"},
            {"Id": "4", "Arn": function("shaped"), "InputTransformer": {
                "InputPathsMap": {"s": "$.detail.status", "n": "$.detail.n"},
                "InputTemplate": "{\"status\": <s>, \"text\": \"build <s> #<n>\", \"rule\": <aws.events.rule-name>}"}}
        ]),
    );
    put(&events, "my.ci", &json!({"status": "failed", "n": 1}));
    let id = put(&events, "my.ci", &json!({"status": "ok", "n": 7}));
    wait_until("four deliveries", || seen.lock().unwrap().len() == 4);
    std::thread::sleep(Duration::from_millis(100));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "the failed build matched nothing: {seen:?}");
    let payload = |tag: &str| -> Value {
        serde_json::from_str(&seen.iter().find(|(t, _)| t == tag).unwrap().1).unwrap()
    };
    assert_eq!(payload("whole")["id"], id.as_str());
    assert_eq!(payload("whole")["detail"]["n"], 7);
    assert_eq!(payload("constant"), json!({"fixed": 1}));
    assert_eq!(payload("path"), json!({"status": "ok", "n": 7}));
    assert_eq!(
        payload("shaped"),
        json!({"status": "ok", "text": "build ok #7", "rule": "builds"})
    );
}

#[test]
fn failures_are_retried_then_dead_lettered_and_panics_are_contained() {
    let (keep, account, events) = keep();
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky_calls = Arc::clone(&calls);
    keep.register_function(&account, "flaky", move |_: &str| {
        if flaky_calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Err("not yet".to_owned())
        } else {
            Ok(())
        }
    })
    .unwrap();
    let broken_calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&broken_calls);
    keep.register_function(&account, "broken", move |_: &str| {
        counted.fetch_add(1, Ordering::SeqCst);
        panic!("boom");
    })
    .unwrap();
    let function = |n: &str| format!("arn:aws:lambda:us-east-1:{account}:function:{n}");
    let queue = format!("arn:aws:sqs:us-east-1:{account}:dead");
    rule(
        &events,
        "all",
        &json!({"source": ["my.app"]}),
        &json!([
            {"Id": "flaky", "Arn": function("flaky")},
            {"Id": "broken", "Arn": function("broken"),
             "RetryPolicy": {"MaximumRetryAttempts": 2}, "DeadLetterConfig": {"Arn": queue}}
        ]),
    );
    let id = put(&events, "my.app", &json!({"k": 1}));
    wait_until("the flaky function to succeed", || {
        calls.load(Ordering::SeqCst) >= 3
    });
    wait_until("the broken delivery to be dead-lettered", || {
        !keep.dead_letters(&queue).unwrap().is_empty()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "delivered once it succeeded"
    );
    assert_eq!(
        broken_calls.load(Ordering::SeqCst),
        3,
        "one try and two retries"
    );
    let dead = keep.dead_letters(&queue).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["Event"]["id"], id.as_str());
    assert_eq!(dead[0]["TargetId"], "broken");
    assert_eq!(dead[0]["Attempts"], 3);
    assert!(dead[0]["Error"].as_str().unwrap().contains("boom"));
    // The keep is fine after the panics.
    events.call("ListRules", json!({})).unwrap();
}

#[cfg(feature = "server")]
#[test]
fn a_git_push_to_main_calls_a_function() {
    use crate::git_support::{Fixture, allow_all, commit_file};
    let f = Fixture::new(&allow_all());
    let events = f
        .keep
        .client("events", Caller::account_root(f.account.parse().unwrap()))
        .unwrap();
    let pushes: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&pushes);
    f.keep
        .register_function(&f.account, "on-push", move |payload: &str| {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(payload).map_err(|e| e.to_string())?);
            Ok(())
        })
        .unwrap();
    rule(
        &events,
        "push-main",
        &json!({"source": ["aws.codecommit"], "detail-type": ["CodeCommit Repository State Change"],
                "detail": {"referenceType": ["branch"], "referenceName": ["main"]}}),
        &json!([{"Id": "f", "Arn": format!("arn:aws:lambda:us-east-1:{}:function:on-push", f.account)}]),
    );
    let local = f.local_repo("origin");
    f.git_ok(&local, &["push", &f.url("web"), "main"]);
    commit_file(&f, &local, "b.txt", "b", "second");
    f.git_ok(&local, &["push", &f.url("web"), "main:feature"]);
    wait_until("the push event", || !pushes.lock().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let pushes = pushes.lock().unwrap();
    assert_eq!(pushes.len(), 1, "only main: {pushes:?}");
    assert_eq!(pushes[0]["detail"]["event"], "referenceCreated");
    assert_eq!(pushes[0]["detail"]["repositoryName"], "web");
}

#[test]
fn dead_letters_are_read_and_redriven_through_sqs() {
    let (keep, account, events) = keep();
    let healthy = Arc::new(AtomicUsize::new(0));
    keep.register_function(&account, "flaky", |_: &str| Err("down".to_owned()))
        .unwrap();
    let queue = format!("arn:aws:sqs:us-east-1:{account}:dead");
    rule(
        &events,
        "all",
        &json!({"source": ["my.app"]}),
        &json!([{"Id": "t", "Arn": format!("arn:aws:lambda:us-east-1:{account}:function:flaky"),
                 "RetryPolicy": {"MaximumRetryAttempts": 0}, "DeadLetterConfig": {"Arn": queue}}]),
    );
    let first = put(&events, "my.app", &json!({"n": 1}));
    let second = put(&events, "my.app", &json!({"n": 2}));
    wait_until("two dead letters", || {
        keep.dead_letters(&queue).unwrap().len() == 2
    });

    let sqs = keep
        .client("sqs", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let url = sqs
        .call("GetQueueUrl", json!({"QueueName": "dead"}))
        .unwrap()["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        url,
        format!("https://sqs.us-east-1.amazonaws.com/{account}/dead")
    );
    let received = sqs
        .call(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
        )
        .unwrap();
    let messages = received["Messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let ids: Vec<String> = messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
            assert!(
                m["MessageAttributes"]["RULE_ARN"]["StringValue"]
                    .as_str()
                    .unwrap()
                    .ends_with(":rule/all")
            );
            assert_eq!(
                m["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"],
                "down"
            );
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(ids.contains(&first) && ids.contains(&second));
    // Another account's queue is not this caller's.
    let other = sqs
        .call(
            "ReceiveMessage",
            json!({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/111122223333/dead"}),
        )
        .unwrap_err();
    assert_eq!(other.code(), "QueueDoesNotExist");
    // Delete one; re-drive the other once the function works again.
    sqs.call(
        "DeleteMessage",
        json!({"QueueUrl": url, "ReceiptHandle": messages[0]["ReceiptHandle"]}),
    )
    .unwrap();
    let bad = sqs
        .call(
            "DeleteMessage",
            json!({"QueueUrl": url, "ReceiptHandle": "nope"}),
        )
        .unwrap_err();
    assert_eq!(bad.code(), "ReceiptHandleIsInvalid");
    let counted = Arc::clone(&healthy);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    keep.register_function(&account, "flaky", move |payload: &str| {
        counted.fetch_add(1, Ordering::SeqCst);
        let event: Value = serde_json::from_str(payload).unwrap();
        log.lock()
            .unwrap()
            .push(event["id"].as_str().unwrap().to_owned());
        Ok(())
    })
    .unwrap();
    let moved = sqs
        .call("StartMessageMoveTask", json!({"SourceArn": queue}))
        .unwrap();
    assert_eq!(moved["ApproximateNumberOfMessagesMoved"], 1);
    wait_until("the re-driven delivery", || {
        healthy.load(Ordering::SeqCst) == 1
    });
    let kept: Vec<String> =
        ids.iter()
            .filter(|id| {
                **id != serde_json::from_str::<Value>(messages[0]["Body"].as_str().unwrap())
                    .unwrap()["id"]
            })
            .cloned()
            .collect();
    assert_eq!(*seen.lock().unwrap(), kept, "the event kept its id");
    assert!(keep.dead_letters(&queue).unwrap().is_empty());
}

#[test]
fn event_payloads_are_sealed_at_rest() {
    use codekeep::store::Key;
    let (keep, account, events) = keep();
    keep.register_function(&account, "down", |_: &str| Err("down".to_owned()))
        .unwrap();
    let queue = format!("arn:aws:sqs:us-east-1:{account}:sealed");
    rule(
        &events,
        "all",
        &json!({"source": ["my.app"]}),
        &json!([{"Id": "t", "Arn": format!("arn:aws:lambda:us-east-1:{account}:function:down"),
                 "RetryPolicy": {"MaximumRetryAttempts": 0}, "DeadLetterConfig": {"Arn": queue}}]),
    );
    let id = put(&events, "my.app", &json!({"card": "MARKER-4111-1111"}));
    wait_until("the dead letter", || {
        !keep.dead_letters(&queue).unwrap().is_empty()
    });
    // Readable through the API…
    assert_eq!(
        keep.dead_letters(&queue).unwrap()[0]["Event"]["id"],
        id.as_str()
    );
    let outbox = keep.read_events("check", 100).unwrap();
    assert!(
        outbox
            .iter()
            .any(|e| e["Event"]["detail"]["card"] == "MARKER-4111-1111")
    );
    // …but not in the store: the outbox and the dead letter are sealed.
    let raw = keep
        .meta()
        .read(|t| {
            let mut all = t.scan_prefix(&Key::new("outbox").push("e"), None, usize::MAX)?;
            all.extend(t.scan_prefix(&Key::new("events-delivery"), None, usize::MAX)?);
            Ok(all)
        })
        .unwrap();
    assert!(raw.len() >= 2);
    for (key, value) in &raw {
        assert_eq!(value.first(), Some(&1u8), "{key} is not sealed");
        assert!(
            !value.windows(6).any(|w| w == b"MARKER"),
            "{key} holds the payload in the clear"
        );
    }
    // Nor does the audit log copy the detail.
    let mut log = Vec::new();
    keep.audit().export_jsonl(&mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("PutEvents"));
    assert!(!log.contains("MARKER"));
}
