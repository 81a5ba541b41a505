//! The real `git` client against the embedded smart HTTP server: pushes, clones (protocol v2
//! and v0), incremental fetches, per-branch policies, and what reaches the disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use codekeep::server::{Server, ServerConfig};
use codekeep::{Caller, Keep};
use serde_json::json;

/// A marker written into pushed files; it must never appear in the keep's data directory.
const MARKER: &str = "CODEKEEP-PLAINTEXT-MARKER-5d1e";

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    work: PathBuf,
    keep: Keep,
    account: String,
    server: Option<Server>,
    user: String,
    password: String,
}

impl Fixture {
    /// A keep on disk with an account, a user `dev` with git credentials and `policy`, and a
    /// repository `web`; the HTTP server started on a free port.
    fn new(policy: &serde_json::Value) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("keep");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let keep = Keep::open(&data).unwrap();
        let account = keep.create_account("git").unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let root = Caller::account_root(account.parse().unwrap());
        let iam = keep.client("iam", root.clone()).unwrap();
        iam.call("CreateUser", json!({"UserName": "dev"})).unwrap();
        iam.call(
            "PutUserPolicy",
            json!({"UserName": "dev", "PolicyName": "git", "PolicyDocument": policy.to_string()}),
        )
        .unwrap();
        let cred = iam
            .call(
                "CreateServiceSpecificCredential",
                json!({"UserName": "dev", "ServiceName": "codecommit.amazonaws.com"}),
            )
            .unwrap()["ServiceSpecificCredential"]
            .clone();
        let cc = keep.client("codecommit", root).unwrap();
        cc.call("CreateRepository", json!({"repositoryName": "web"}))
            .unwrap();
        let server = Server::start(&keep, &ServerConfig::default()).unwrap();
        Fixture {
            _dir: dir,
            data,
            work,
            keep,
            account,
            server: Some(server),
            user: cred["ServiceUserName"].as_str().unwrap().to_owned(),
            password: cred["ServicePassword"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, repo: &str) -> String {
        let addr = self.server.as_ref().unwrap().http_addr().unwrap();
        format!("http://{addr}/v1/repos/{repo}")
    }

    /// Runs git in `dir` with the fixture's credentials supplied by a credential helper.
    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        git_as(dir, args, &self.user, &self.password)
    }

    fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git(dir, args);
        assert!(
            out.status.success(),
            "git {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new local repository with one commit on `main`.
    fn local_repo(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        self.git_ok(&dir, &["init", "-q", "-b", "main"]);
        commit_file(
            self,
            &dir,
            "README.md",
            &format!("hello {MARKER}\n"),
            "first",
        );
        dir
    }
}

fn git_as(dir: &Path, args: &[&str], user: &str, password: &str) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "credential.helper=",
            "-c",
            "credential.helper=!f() { test \"$1\" = get && echo username=$CK_USER && echo password=$CK_PASS; }; f",
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("CK_USER", user)
        .env("CK_PASS", password)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_PROTOCOL")
        .output()
        .unwrap()
}

fn commit_file(f: &Fixture, dir: &Path, file: &str, content: &str, message: &str) {
    std::fs::write(dir.join(file), content).unwrap();
    f.git_ok(dir, &["add", file]);
    f.git_ok(dir, &["commit", "-q", "-m", message]);
}

fn allow_all() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}
    ]})
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn push_clone_and_fetch_with_the_real_git_client() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let url = f.url("web");
    f.git_ok(&local, &["push", &url, "main"]);
    f.git_ok(&local, &["checkout", "-q", "-b", "feature"]);
    commit_file(
        &f,
        &local,
        "app.txt",
        &format!("app {MARKER}\n"),
        "feature work",
    );
    f.git_ok(&local, &["tag", "-a", "v1", "-m", "release 1"]);
    f.git_ok(&local, &["push", &url, "feature", "v1"]);

    // Clone over protocol v2 and v0: same history, same files.
    for (name, version) in [("clone-v2", "2"), ("clone-v0", "0")] {
        let proto = format!("protocol.version={version}");
        f.git_ok(&f.work, &["-c", &proto, "clone", "-q", &url, name]);
        let clone = f.work.join(name);
        assert_eq!(
            std::fs::read_to_string(clone.join("README.md")).unwrap(),
            format!("hello {MARKER}\n")
        );
        let remote_branches = f.git_ok(&clone, &["branch", "-r"]);
        assert!(
            remote_branches.contains("origin/feature"),
            "{remote_branches}"
        );
        assert_eq!(
            f.git_ok(&clone, &["rev-parse", "origin/feature"]),
            f.git_ok(&local, &["rev-parse", "feature"])
        );
        let tags = f.git_ok(&clone, &["tag"]);
        assert!(tags.contains("v1"), "{tags}");
        f.git_ok(&clone, &["fsck", "--strict"]);
    }

    // The first branch pushed became the default branch (HEAD).
    let cc = f
        .keep
        .client(
            "codecommit",
            Caller::account_root(f.account.parse().unwrap()),
        )
        .unwrap();
    let repo = cc
        .call("GetRepository", json!({"repositoryName": "web"}))
        .unwrap();
    assert_eq!(repo["repositoryMetadata"]["defaultBranch"], "main");

    // An incremental fetch brings only the new commit.
    f.git_ok(&local, &["checkout", "-q", "main"]);
    commit_file(&f, &local, "more.txt", "more\n", "second");
    f.git_ok(&local, &["push", &url, "main"]);
    let clone = f.work.join("clone-v2");
    f.git_ok(&clone, &["fetch", "-q", "origin"]);
    assert_eq!(
        f.git_ok(&clone, &["rev-parse", "origin/main"]),
        f.git_ok(&local, &["rev-parse", "main"])
    );
    f.git_ok(&clone, &["fsck", "--strict"]);

    // Deleting a branch by push.
    f.git_ok(&local, &["push", &url, "--delete", "feature"]);
    let remote = f.git_ok(&local, &["ls-remote", &url]);
    assert!(!remote.contains("refs/heads/feature"), "{remote}");
    assert!(remote.contains("refs/heads/main"), "{remote}");

    // Nothing stored holds the plaintext.
    for file in files(&f.data) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "plaintext in {}",
            file.display()
        );
    }
}

#[test]
fn credentials_are_challenged_and_policies_refuse_with_reasons() {
    let f = Fixture::new(&json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codecommit:GitPull", "codecommit:GitPush"], "Resource": "*"},
        // AWS's documented policy: no pushes to main.
        {"Effect": "Deny", "Action": "codecommit:GitPush", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]},
                       "Null": {"codecommit:References": "false"}}}
    ]}));
    let local = f.local_repo("origin");
    let url = f.url("web");
    // Wrong password: 401, and git reports an authentication failure.
    let out = git_as(&local, &["ls-remote", &url], &f.user, "wrong");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Authentication failed"), "{err}");

    // Push to main is refused with the reason, a feature branch is accepted.
    let out = f.git(&local, &["push", &url, "main"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[remote rejected] main -> main"), "{err}");
    assert!(err.contains("denied"), "{err}");
    f.git_ok(&local, &["push", &url, "main:refs/heads/feature"]);
    let remote = f.git_ok(&local, &["ls-remote", &url]);
    assert!(remote.contains("refs/heads/feature"), "{remote}");
    assert!(!remote.contains("refs/heads/main"), "{remote}");

    // --atomic with one denied ref: nothing moves.
    commit_file(&f, &local, "b.txt", "b\n", "b");
    let out = f.git(
        &local,
        &["push", "--atomic", &url, "main", "main:refs/heads/other"],
    );
    assert!(!out.status.success());
    let remote = f.git_ok(&local, &["ls-remote", &url]);
    assert!(!remote.contains("refs/heads/other"), "{remote}");

    // A repository that does not exist.
    let out = f.git(&local, &["ls-remote", &f.url("nope")]);
    assert!(!out.status.success());
}
