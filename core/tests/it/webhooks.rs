//! Webhooks through EventBridge API destinations, against a receiver on 127.0.0.1: deliveries
//! are signed the Standard Webhooks way (checked with the receiver's side of the scheme),
//! retried on 5xx with the same webhook-id, dead-lettered when retries run out, on a 4xx
//! (not retried) and on timeouts; and they go only where the keep's allowance says.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codekeep::events::webhook::{self, WebhookAllowance, WebhookConfig};
use codekeep::{Client, Keep};
use serde_json::{Value, json};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A receiver answering the n-th request (from 0) as `answer(n)` says: a status and a delay.
pub struct Receiver {
    pub port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(answer: impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = Arc::clone(&seen);
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                let answer = Arc::clone(&answer);
                // One thread per connection, so a slow answer does not hold up the next request.
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((n, v)) = h.trim_end().split_once(':') {
                            headers.push((n.to_owned(), v.trim().to_owned()));
                        }
                    }
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let n = {
                        let mut seen = log.lock().unwrap();
                        seen.push(Received {
                            path,
                            headers,
                            body,
                        });
                        seen.len() - 1
                    };
                    let (status, delay) = answer(n);
                    std::thread::sleep(delay);
                    let mut stream = reader.into_inner();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                });
            }
        });
        Receiver { port, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

/// A keep with quick retries, an account, and its `events` client.
fn keep() -> (Keep, String, Client) {
    crate::quick_retry_keep("events")
}

pub fn allow_loopback(keep: &Keep, timeout: Duration) {
    keep.configure_webhooks(&WebhookConfig {
        allowance: WebhookAllowance::new()
            .allow_host("127.0.0.1")
            .unwrap()
            .allow_host("localhost")
            .unwrap()
            .allow_network("127.0.0.0/8")
            .unwrap(),
        timeout,
        ca_file: None,
    })
    .unwrap();
}

use crate::wait_until;

/// Creates destination `name` at `url`; answers its ARN and signing secret.
fn destination(events: &Client, name: &str, url: &str) -> (String, String) {
    let out = events
        .call(
            "CreateApiDestination",
            json!({"Name": name, "InvocationEndpoint": url, "HttpMethod": "POST"}),
        )
        .unwrap();
    (
        out["ApiDestinationArn"].as_str().unwrap().to_owned(),
        out["SigningSecret"].as_str().unwrap().to_owned(),
    )
}

pub fn now_seconds() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[test]
fn webhooks_are_signed_retried_and_dead_lettered() {
    let (keep, account, events) = keep();
    allow_loopback(&keep, Duration::from_millis(500));
    let flaky = Receiver::start(|n| (if n < 2 { 503 } else { 204 }, Duration::ZERO));
    let broken = Receiver::start(|_| (500, Duration::ZERO));
    let refusing = Receiver::start(|_| (400, Duration::ZERO));
    let slow = Receiver::start(|_| (200, Duration::from_secs(3)));
    let (flaky_arn, flaky_secret) = destination(&events, "flaky", &flaky.url("/hook/*"));
    let (broken_arn, _) = destination(&events, "broken", &broken.url("/"));
    let (refusing_arn, _) = destination(&events, "refusing", &refusing.url("/"));
    let (slow_arn, _) = destination(&events, "slow", &slow.url("/"));
    let queue = format!("arn:aws:sqs:us-east-1:{account}:webhooks-dlq");
    let retry = json!({"MaximumRetryAttempts": 2});
    let dlq = json!({"Arn": queue});
    events
        .call(
            "PutRule",
            json!({"Name": "deletions", "EventPattern": json!({"source": ["my.app"]}).to_string()}),
        )
        .unwrap();
    events
        .call(
            "PutTargets",
            json!({"Rule": "deletions", "Targets": [
                {"Id": "flaky", "Arn": flaky_arn, "RetryPolicy": retry, "DeadLetterConfig": dlq,
                 "HttpParameters": {"PathParameterValues": ["a b"],
                                    "HeaderParameters": {"X-Team": "infra"},
                                    "QueryStringParameters": {"source": "codekeep"}}},
                {"Id": "broken", "Arn": broken_arn, "RetryPolicy": retry, "DeadLetterConfig": dlq},
                {"Id": "refusing", "Arn": refusing_arn, "RetryPolicy": retry, "DeadLetterConfig": dlq},
                {"Id": "slow", "Arn": slow_arn, "RetryPolicy": retry, "DeadLetterConfig": dlq},
            ]}),
        )
        .unwrap();
    let out = events
        .call(
            "PutEvents",
            json!({"Entries": [{"Source": "my.app", "DetailType": "Branch deleted",
                                "Detail": "{\"branch\": \"feature\"}"}]}),
        )
        .unwrap();
    let event_id = out["Entries"][0]["EventId"].as_str().unwrap().to_owned();
    wait_until("three dead letters", || {
        keep.dead_letters(&queue).unwrap().len() == 3
    });
    wait_until("the flaky receiver's third request", || flaky.count() == 3);
    std::thread::sleep(Duration::from_millis(300));

    // The flaky receiver: two failures, then success; the same signed delivery each time.
    let requests = flaky.requests();
    assert_eq!(
        requests.len(),
        3,
        "retried until it succeeded, then no more"
    );
    let id = requests[0].header("webhook-id").to_owned();
    assert!(!id.is_empty());
    for r in &requests {
        assert_eq!(r.header("webhook-id"), id, "retries carry the same id");
        assert_eq!(r.path, "/hook/a+b?source=codekeep");
        assert_eq!(r.header("x-team"), "infra");
        assert_eq!(r.header("content-type"), "application/json");
        webhook::verify(
            &flaky_secret,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.body,
            now_seconds(),
            webhook::DEFAULT_TOLERANCE_SECONDS,
        )
        .unwrap();
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event["id"], event_id.as_str());
        assert_eq!(event["detail"]["branch"], "feature");
    }
    // Another destination's secret does not verify it.
    let other = events
        .call(
            "CreateApiDestination",
            json!({"Name": "other", "InvocationEndpoint": flaky.url("/"), "HttpMethod": "POST"}),
        )
        .unwrap();
    let r = &requests[0];
    assert!(
        webhook::verify(
            other["SigningSecret"].as_str().unwrap(),
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.body,
            now_seconds(),
            300,
        )
        .is_err()
    );

    // 5xx and timeouts are retried twice; a 4xx is not retried.
    assert_eq!(broken.count(), 3);
    assert_eq!(slow.count(), 3);
    assert_eq!(refusing.count(), 1);
    let dead = keep.dead_letters(&queue).unwrap();
    let by_target = |t: &str| dead.iter().find(|d| d["TargetId"] == t).unwrap().clone();
    assert!(
        by_target("broken")["Error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert_eq!(by_target("broken")["Attempts"], 3);
    assert!(
        by_target("slow")["Error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert!(
        by_target("refusing")["Error"]
            .as_str()
            .unwrap()
            .contains("400")
    );
    assert_eq!(by_target("refusing")["Attempts"], 1);
    for d in &dead {
        assert_eq!(d["Event"]["id"], event_id.as_str());
    }
}

#[test]
fn webhooks_go_only_where_the_keep_allows() {
    let (keep, account, events) = keep();
    let receiver = Receiver::start(|_| (200, Duration::ZERO));
    // Nothing is allowed until the host configures it.
    let refused = events
        .call(
            "CreateApiDestination",
            json!({"Name": "local", "InvocationEndpoint": receiver.url("/"), "HttpMethod": "POST"}),
        )
        .unwrap_err();
    assert_eq!(refused.code(), "ValidationException");
    assert!(refused.message().contains("allowance"), "{refused}");

    // The host is allowed but loopback is not: the delivery is refused at connection time and
    // is not retried.
    keep.configure_webhooks(&WebhookConfig {
        allowance: WebhookAllowance::new().allow_host("localhost").unwrap(),
        timeout: Duration::from_secs(2),
        ca_file: None,
    })
    .unwrap();
    let url = format!("http://localhost:{}/", receiver.port);
    let (arn, _) = destination(&events, "local", &url);
    let queue = format!("arn:aws:sqs:us-east-1:{account}:refused");
    events
        .call(
            "PutRule",
            json!({"Name": "r", "EventPattern": json!({"source": ["my.app"]}).to_string()}),
        )
        .unwrap();
    events
        .call(
            "PutTargets",
            json!({"Rule": "r", "Targets": [{"Id": "t", "Arn": arn, "DeadLetterConfig": {"Arn": queue}}]}),
        )
        .unwrap();
    events
        .call(
            "PutEvents",
            json!({"Entries": [{"Source": "my.app", "DetailType": "x", "Detail": "{}"}]}),
        )
        .unwrap();
    wait_until("the refused delivery", || {
        !keep.dead_letters(&queue).unwrap().is_empty()
    });
    let dead = keep.dead_letters(&queue).unwrap();
    assert!(
        dead[0]["Error"].as_str().unwrap().contains("allowance"),
        "{dead:?}"
    );
    assert_eq!(dead[0]["Attempts"], 1);
    assert_eq!(receiver.count(), 0, "nothing reached the loopback receiver");
}

#[test]
fn a_slow_webhook_does_not_hold_up_other_deliveries() {
    let (keep, account, events) = keep();
    allow_loopback(&keep, Duration::from_secs(120));
    // The receiver holds its first request until the test lets it go.
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held = Arc::clone(&release);
    let receiver = Receiver::start(move |_| {
        while !held.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        (204, Duration::ZERO)
    });
    let (arn, _) = destination(&events, "slow", &receiver.url("/hook"));
    crate::rule(
        &events,
        "to-webhook",
        &json!({"source": ["slow"]}),
        &json!([{"Id": "w", "Arn": arn}]),
    );
    let called = crate::recorder(&keep, &account, "fast");
    crate::rule(
        &events,
        "to-function",
        &json!({"source": ["fast"]}),
        &json!([{"Id": "f", "Arn": format!("arn:aws:lambda:us-east-1:{account}:function:fast")}]),
    );
    let put = |source: &str| {
        events
            .call(
                "PutEvents",
                json!({"Entries": [{"Source": source, "DetailType": "x", "Detail": "{}"}]}),
            )
            .unwrap();
    };
    put("slow");
    wait_until("the webhook request", || receiver.count() == 1);
    // An event committed while the webhook is held reaches its function all the same.
    put("fast");
    wait_until("the function, while the webhook is held", || {
        called.lock().unwrap().len() == 1
    });
    assert!(!release.load(std::sync::atomic::Ordering::SeqCst));
    release.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(receiver.count(), 1, "the held delivery was not tried twice");
}

#[test]
fn api_destinations_have_eventbridge_shapes_and_keep_their_secret() {
    let (keep, _account, events) = keep();
    allow_loopback(&keep, Duration::from_secs(1));
    let created = events
        .call(
            "CreateApiDestination",
            json!({"Name": "d1", "InvocationEndpoint": "http://127.0.0.1:9/x",
                   "HttpMethod": "PUT", "Description": "first", "InvocationRateLimitPerSecond": 10}),
        )
        .unwrap();
    let arn = created["ApiDestinationArn"].as_str().unwrap();
    assert!(arn.contains(":api-destination/d1/"), "{arn}");
    assert_eq!(created["ApiDestinationState"], "ACTIVE");
    assert!(
        created["SigningSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let described = events
        .call("DescribeApiDestination", json!({"Name": "d1"}))
        .unwrap();
    assert_eq!(described["HttpMethod"], "PUT");
    assert_eq!(described["Description"], "first");
    assert_eq!(described["InvocationRateLimitPerSecond"], 10);
    assert!(described.get("SigningSecret").is_none());
    let again = events
        .call(
            "CreateApiDestination",
            json!({"Name": "d1", "InvocationEndpoint": "http://127.0.0.1:9/", "HttpMethod": "POST"}),
        )
        .unwrap_err();
    assert_eq!(again.code(), "ResourceAlreadyExistsException");
    let bad_method = events
        .call(
            "CreateApiDestination",
            json!({"Name": "d2", "InvocationEndpoint": "http://127.0.0.1:9/", "HttpMethod": "FETCH"}),
        )
        .unwrap_err();
    assert_eq!(bad_method.code(), "ValidationException");
    events
        .call(
            "UpdateApiDestination",
            json!({"Name": "d1", "HttpMethod": "POST"}),
        )
        .unwrap();
    let listed = events
        .call("ListApiDestinations", json!({"NamePrefix": "d"}))
        .unwrap();
    assert_eq!(listed["ApiDestinations"].as_array().unwrap().len(), 1);
    assert_eq!(listed["ApiDestinations"][0]["HttpMethod"], "POST");
    events
        .call("DeleteApiDestination", json!({"Name": "d1"}))
        .unwrap();
    let gone = events
        .call("DescribeApiDestination", json!({"Name": "d1"}))
        .unwrap_err();
    assert_eq!(gone.code(), "ResourceNotFoundException");
    // The secret never reaches the audit log.
    let mut exported = Vec::new();
    keep.audit().export_jsonl(&mut exported).unwrap();
    let log = String::from_utf8(exported).unwrap();
    assert!(log.contains("CreateApiDestination"));
    assert!(!log.contains(created["SigningSecret"].as_str().unwrap()));
}
