//! The git story (`make demo`): an account; a user with git credentials and an SSH key; a
//! policy that allows pushing but denies pushes to `main`; a repository encrypted under the
//! account's own KMS key; the real `git` pushing a feature branch (accepted), pushing to main
//! (refused, with the reason) and cloning over SSH; then the events and audit records of it.
#![expect(clippy::print_stdout, reason = "a demo prints what it does")]
#![expect(clippy::too_many_lines, reason = "a demo reads top to bottom")]
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing yields Null for a missing member, it does not panic"
)]

use std::path::Path;
use std::process::{Command, Output};

use codekeep::server::{Server, ServerConfig};
use codekeep::{Caller, Keep};
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs git in `dir` with the demo's credentials (HTTPS password from a credential helper,
/// SSH key and known host from `ssh`).
fn git(dir: &Path, args: &[&str], user: &str, password: &str, ssh: &str) -> Result<Output> {
    Ok(Command::new("git")
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
        .env("GIT_SSH_COMMAND", ssh)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()?)
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr)).into())
    }
}

fn main() -> Result<()> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./codekeep-data/git-demo".to_owned());
    let base = Path::new(&base);
    let _ = std::fs::remove_dir_all(base);
    std::fs::create_dir_all(base.join("work"))?;
    let keep = Keep::open(base.join("keep"))?;
    let account = keep.create_account("git-demo")?["Id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let root = Caller::account_root(account.parse()?);
    println!("account {account}");

    // A user with git credentials, an SSH key, and AWS's "deny pushes to main" policy.
    let iam = keep.client("iam", root.clone())?;
    iam.call("CreateUser", json!({"UserName": "dev"}))?;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"},
        // Repositories under a customer managed key: the key is usable through CodeCommit.
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": "*",
         "Condition": {"StringEquals": {"kms:ViaService": "codecommit.us-east-1.amazonaws.com"}}},
        {"Effect": "Deny", "Action": "codecommit:GitPush", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]},
                       "Null": {"codecommit:References": "false"}}}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "dev", "PolicyName": "no-push-to-main", "PolicyDocument": policy.to_string()}),
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
    let key_file = base.join("id_ed25519");
    check(
        &Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f"])
            .arg(&key_file)
            .output()?,
        "ssh-keygen",
    )?;
    let public = std::fs::read_to_string(key_file.with_extension("pub"))?;
    let ssh_key_id = iam.call(
        "UploadSSHPublicKey",
        json!({"UserName": "dev", "SSHPublicKeyBody": public}),
    )?["SSHPublicKey"]["SSHPublicKeyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("user dev: git credentials {user}, SSH key {ssh_key_id}, policy no-push-to-main");

    // A repository encrypted under the account's own KMS key.
    let kms = keep.client("kms", root.clone())?;
    let key = kms.call("CreateKey", json!({"Description": "repositories"}))?["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let cc = keep.client("codecommit", root.clone())?;
    cc.call(
        "CreateRepository",
        json!({"repositoryName": "web", "kmsKeyId": key}),
    )?;

    let server = Server::start(
        &keep,
        &ServerConfig {
            ssh: Some(([127, 0, 0, 1], 0).into()),
            ..ServerConfig::default()
        },
    )?;
    let meta =
        cc.call("GetRepository", json!({"repositoryName": "web"}))?["repositoryMetadata"].clone();
    let http_url = meta["cloneUrlHttp"].as_str().unwrap_or_default().to_owned();
    let ssh_url = meta["cloneUrlSsh"]
        .as_str()
        .unwrap_or_default()
        .replace("ssh://", &format!("ssh://{ssh_key_id}@"));
    println!("repository web, encrypted under {key}");
    println!("  {http_url}\n  {ssh_url}");
    let known_hosts = base.join("known_hosts");
    let ssh_port = server.ssh_addr().map(|a| a.port()).unwrap_or_default();
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{ssh_port} {}\n",
            server.ssh_host_key().unwrap_or_default()
        ),
    )?;
    let ssh = format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={}",
        key_file.display(),
        known_hosts.display()
    );

    let work = base.join("work");
    let run = |dir: &Path, args: &[&str]| git(dir, args, user, password, &ssh);
    check(&run(&work, &["init", "-q", "app"])?, "git init")?;
    let app = work.join("app");
    std::fs::write(app.join("README.md"), "# app\n")?;
    check(&run(&app, &["add", "README.md"])?, "git add")?;
    check(&run(&app, &["commit", "-q", "-m", "first"])?, "git commit")?;
    check(
        &run(&app, &["checkout", "-q", "-b", "feature"])?,
        "git checkout",
    )?;
    let out = run(&app, &["push", &http_url, "feature"])?;
    check(&out, "git push feature")?;
    println!("$ git push {http_url} feature\n  accepted");
    let out = run(&app, &["push", &http_url, "feature:main"])?;
    println!("$ git push {http_url} feature:main");
    for line in String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("rejected"))
    {
        println!("  {}", line.trim());
    }
    if out.status.success() {
        return Err("the push to main should have been refused".into());
    }
    let out = run(&work, &["clone", "-q", &ssh_url, "clone"])?;
    check(&out, "git clone over SSH")?;
    println!(
        "$ git clone {ssh_url}\n  cloned: README.md = {:?}",
        std::fs::read_to_string(work.join("clone/README.md"))?
    );

    println!("events (the outbox, EventBridge envelopes):");
    for entry in keep.read_events("git-demo", 100)? {
        let event = &entry["Event"];
        // The outbox also holds the write calls' "AWS API Call via CloudTrail" events.
        if event["detail-type"] != "CodeCommit Repository State Change" {
            continue;
        }
        let detail = &event["detail"];
        println!(
            "  {} {} {} {}",
            event["detail-type"].as_str().unwrap_or_default(),
            detail["event"].as_str().unwrap_or_default(),
            detail["referenceFullName"].as_str().unwrap_or_default(),
            detail["commitId"].as_str().unwrap_or_default(),
        );
    }
    println!("audit records (CloudTrail LookupEvents, newest first):");
    let trail = keep.client("cloudtrail", root)?;
    let records = trail.call("LookupEvents", json!({"MaxResults": 12}))?;
    for record in records["Events"].as_array().into_iter().flatten() {
        let detail: serde_json::Value =
            serde_json::from_str(record["CloudTrailEvent"].as_str().unwrap_or("{}"))?;
        // A push's per-ref results are in its response elements.
        let refs: Vec<String> = detail["responseElements"]["references"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let result = r["result"].as_str().unwrap_or_default();
                let short = result.split(':').next().unwrap_or(result);
                format!("{} {short}", r["reference"].as_str().unwrap_or_default())
            })
            .collect();
        println!(
            "  {:<32} {:<6} {} {}",
            record["EventName"].as_str().unwrap_or_default(),
            record["Username"].as_str().unwrap_or("-"),
            detail["errorCode"].as_str().unwrap_or("ok"),
            refs.join(", "),
        );
    }
    server.shutdown();
    Ok(())
}
