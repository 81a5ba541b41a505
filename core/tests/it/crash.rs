//! At least once across a crash: a child process commits an event and is killed with SIGKILL
//! while its function is being called; the restarted keep delivers the event (same id) to each
//! target exactly once, and a further restart delivers nothing again.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codekeep::{Caller, Keep};
use serde_json::json;

const DIR: &str = "CODEKEEP_CRASH_DIR";
const ACCOUNT: &str = "CODEKEEP_CRASH_ACCOUNT";

/// Run by `an_event_committed_before_sigkill_is_delivered_once_after_restart` in a child
/// process: commits an event, says so, and hangs inside the delivery until it is killed.
#[test]
#[ignore = "helper run in a child process"]
fn crash_child() {
    let keep = Keep::open(std::env::var(DIR).unwrap()).unwrap();
    let account = std::env::var(ACCOUNT).unwrap();
    for name in ["a", "b"] {
        keep.register_function(&account, name, |_: &str| {
            println!("DELIVERING");
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        })
        .unwrap();
    }
    let events = keep
        .client("events", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let out = events
        .call(
            "PutEvents",
            json!({"Entries": [{"Source": "my.app", "DetailType": "Crash", "Detail": "{}"}]}),
        )
        .unwrap();
    println!(
        "COMMITTED {}",
        out["Entries"][0]["EventId"].as_str().unwrap()
    );
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn recording(keep: &Keep, account: &str) -> Arc<Mutex<Vec<(String, String)>>> {
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for name in ["a", "b"] {
        let log = Arc::clone(&calls);
        keep.register_function(account, name, move |payload: &str| {
            let event: serde_json::Value = serde_json::from_str(payload).unwrap();
            log.lock()
                .unwrap()
                .push((name.to_owned(), event["id"].as_str().unwrap().to_owned()));
            Ok(())
        })
        .unwrap();
    }
    calls
}

#[test]
fn an_event_committed_before_sigkill_is_delivered_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let account = {
        let keep = Keep::open(dir.path()).unwrap();
        let account = keep.create_account("crash").unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let events = keep
            .client("events", Caller::account_root(account.parse().unwrap()))
            .unwrap();
        events
            .call(
                "PutRule",
                json!({"Name": "r", "EventPattern": "{\"source\": [\"my.app\"]}"}),
            )
            .unwrap();
        let function = |n: &str| format!("arn:aws:lambda:us-east-1:{account}:function:{n}");
        events
            .call(
                "PutTargets",
                json!({"Rule": "r", "Targets": [{"Id": "a", "Arn": function("a")},
                                                 {"Id": "b", "Arn": function("b")}]}),
            )
            .unwrap();
        account
    };

    let mut child = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR, dir.path())
            .env(ACCOUNT, &account)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    // Either line may come first: the delivery can start before PutEvents returns.
    let (mut committed, mut delivering) = (None, false);
    while committed.is_none() || !delivering {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the child to commit and start delivering");
        // libtest's "test ... " header may share the line.
        if let Some((_, id)) = line.split_once("COMMITTED ") {
            committed = Some(id.trim().to_owned());
        }
        delivering |= line.ends_with("DELIVERING");
    }
    child.0.kill().unwrap(); // SIGKILL: no destructor, no flush, no goodbye
    child.0.wait().unwrap();
    let committed = committed.unwrap();

    let keep = Keep::open(dir.path()).unwrap();
    let calls = recording(&keep, &account);
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the event was not delivered after the restart"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut seen = calls.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), committed.clone()),
            ("b".to_owned(), committed.clone())
        ],
        "each target once, with the committed event's id"
    );
    drop(keep);

    // Acknowledged deliveries are not delivered again by a later start.
    let keep = Keep::open(dir.path()).unwrap();
    let again = recording(&keep, &account);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        again.lock().unwrap().is_empty(),
        "{:?}",
        again.lock().unwrap()
    );
}
