//! Events (`make demo`): a rule on pushes to `main` that calls an in-process function, and a
//! rule on branch deletion that POSTs to a webhook receiver this example starts, which checks
//! the Standard Webhooks signature before it believes a word.
#![expect(clippy::print_stdout, reason = "a demo prints what it does")]
#![expect(clippy::too_many_lines, reason = "a demo reads top to bottom")]
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing yields Null for a missing member, it does not panic"
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use codekeep::events::webhook::{self, WebhookAllowance, WebhookConfig};
use codekeep::server::{Server, ServerConfig};
use codekeep::{Caller, Keep};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn git(dir: &Path, args: &[&str], user: &str, password: &str) -> Result<Output> {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "credential.helper=",
            "-c",
            "credential.helper=!f() { echo username=$DEMO_USER; echo password=$DEMO_PASS; }; f",
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("DEMO_USER", user)
        .env("DEMO_PASS", password)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into())
    }
}

/// A webhook receiver on 127.0.0.1: answers 200 to each POST and hands over its headers and
/// body.
/// A received webhook: its headers (names lowercased) and body.
type Hook = (Vec<(String, String)>, Vec<u8>);

fn receiver() -> Result<(u16, mpsc::Receiver<Hook>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = reader.read_line(&mut line); // the request line
            loop {
                line.clear();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = reader
                .into_inner()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    Ok((port, rx))
}

fn main() -> Result<()> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./codekeep-data/events-demo".to_owned());
    let base = Path::new(&base);
    let _ = std::fs::remove_dir_all(base);
    std::fs::create_dir_all(base)?;
    let keep = Keep::open(base.join("keep"))?;
    let account = keep.create_account("events-demo")?["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let root = Caller::account_root(account.parse()?);
    let iam = keep.client("iam", root.clone())?;
    iam.call("CreateUser", json!({"UserName": "dev"}))?;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "dev", "PolicyName": "git", "PolicyDocument": policy.to_string()}),
    )?;
    let cred = iam.call(
        "CreateServiceSpecificCredential",
        json!({"UserName": "dev", "ServiceName": "codecommit.amazonaws.com"}),
    )?["ServiceSpecificCredential"]
        .clone();
    let (user, password) = (
        cred["ServiceUserName"].as_str().unwrap_or_default(),
        cred["ServicePassword"].as_str().unwrap_or_default(),
    );
    let cc = keep.client("codecommit", root.clone())?;
    cc.call("CreateRepository", json!({"repositoryName": "web"}))?;
    let _server = Server::start(&keep, &ServerConfig::default())?;
    let url = cc.call("GetRepository", json!({"repositoryName": "web"}))?["repositoryMetadata"]
        ["cloneUrlHttp"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Rule 1: pushes to main call an in-process function.
    let (calls, called) = mpsc::channel::<Value>();
    keep.register_function(&account, "on-push-to-main", move |payload: &str| {
        let event: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        calls.send(event).map_err(|e| e.to_string())
    })?;
    let events = keep.client("events", root)?;
    events.call(
        "PutRule",
        json!({"Name": "push-to-main", "EventPattern": json!({
            "source": ["aws.codecommit"],
            "detail-type": ["CodeCommit Repository State Change"],
            "detail": {"referenceType": ["branch"], "referenceName": ["main"],
                       "event": ["referenceCreated", "referenceUpdated"]}}).to_string()}),
    )?;
    events.call(
        "PutTargets",
        json!({"Rule": "push-to-main", "Targets": [{"Id": "function",
            "Arn": format!("arn:aws:lambda:us-east-1:{account}:function:on-push-to-main")}]}),
    )?;
    println!("rule push-to-main -> function on-push-to-main");

    // Rule 2: branch deletions go to a webhook receiver (loopback must be allowed by name).
    let (port, hooks) = receiver()?;
    keep.configure_webhooks(&WebhookConfig {
        allowance: WebhookAllowance::new()
            .allow_host("127.0.0.1")?
            .allow_network("127.0.0.0/8")?,
        ..WebhookConfig::default()
    })?;
    let destination = events.call(
        "CreateApiDestination",
        json!({"Name": "receiver", "HttpMethod": "POST",
               "InvocationEndpoint": format!("http://127.0.0.1:{port}/hooks")}),
    )?;
    let secret = destination["SigningSecret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    events.call(
        "PutRule",
        json!({"Name": "branch-deleted", "EventPattern": json!({
            "source": ["aws.codecommit"],
            "detail": {"event": ["referenceDeleted"], "referenceType": ["branch"]}}).to_string()}),
    )?;
    events.call(
        "PutTargets",
        json!({"Rule": "branch-deleted", "Targets": [{"Id": "webhook",
            "Arn": destination["ApiDestinationArn"],
            "RetryPolicy": {"MaximumRetryAttempts": 3}}]}),
    )?;
    println!("rule branch-deleted -> webhook http://127.0.0.1:{port}/hooks (signed)");

    // The real git pushes main and a feature branch.
    let app = base.join("app");
    git(base, &["init", "-q", "app"], user, password)?;
    std::fs::write(app.join("README.md"), "# app\n")?;
    git(&app, &["add", "README.md"], user, password)?;
    git(&app, &["commit", "-q", "-m", "first"], user, password)?;
    git(
        &app,
        &["push", "-q", &url, "main", "main:feature"],
        user,
        password,
    )?;
    println!("$ git push {url} main main:feature");
    let event = called.recv_timeout(Duration::from_secs(20))?;
    println!(
        "  function on-push-to-main called: {} {} {} at {}",
        event["detail-type"].as_str().unwrap_or_default(),
        event["detail"]["event"].as_str().unwrap_or_default(),
        event["detail"]["referenceFullName"]
            .as_str()
            .unwrap_or_default(),
        event["detail"]["commitId"].as_str().unwrap_or_default(),
    );

    // Deleting the feature branch posts to the receiver.
    cc.call(
        "DeleteBranch",
        json!({"repositoryName": "web", "branchName": "feature"}),
    )?;
    println!("DeleteBranch feature");
    let (headers, body) = hooks.recv_timeout(Duration::from_secs(20))?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    webhook::verify(
        &secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        now,
        webhook::DEFAULT_TOLERANCE_SECONDS,
    )?;
    let event: Value = serde_json::from_slice(&body)?;
    println!(
        "  webhook received, signature verified: {} {}",
        event["detail"]["event"].as_str().unwrap_or_default(),
        event["detail"]["referenceFullName"]
            .as_str()
            .unwrap_or_default()
    );
    Ok(())
}
