//! The real `git` and `ssh` clients against the embedded SSH server: IAM SSH keys (the SSH user
//! being the key id or the IAM user name), protocol v2 through `GIT_PROTOCOL`, refusals.

use std::process::Command;

use codekeep::server::{Server, ServerConfig};

use crate::git_support::{Fixture, MARKER, allow_all, commit_file, deny_push_to_main};

#[test]
fn push_clone_and_fetch_over_ssh_as_key_id_or_user_name() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let by_key_id = f.ssh_url(&f.ssh_key_id, "web");
    let by_name = f.ssh_url("dev", "web");
    f.git_ok(&local, &["push", &by_key_id, "main"]);
    f.git_ok(&local, &["checkout", "-q", "-b", "feature"]);
    commit_file(&f, &local, "app.txt", "app\n", "feature work");
    f.git_ok(&local, &["push", &by_name, "feature"]);

    for (name, version) in [("ssh-v2", "2"), ("ssh-v0", "0")] {
        let proto = format!("protocol.version={version}");
        let trace = f.git(
            &f.work,
            &[
                "-c",
                &proto,
                "-c",
                "trace2.eventTarget=",
                "clone",
                "-q",
                &by_name,
                name,
            ],
        );
        assert!(
            trace.status.success(),
            "{}",
            String::from_utf8_lossy(&trace.stderr)
        );
        let clone = f.work.join(name);
        assert_eq!(
            std::fs::read_to_string(clone.join("README.md")).unwrap(),
            format!("hello {MARKER}\n")
        );
        assert_eq!(
            f.git_ok(&clone, &["rev-parse", "origin/feature"]),
            f.git_ok(&local, &["rev-parse", "feature"])
        );
        f.git_ok(&clone, &["fsck", "--strict"]);
    }

    // v2 was negotiated over SSH: git's packet trace shows the v2 capability advertisement.
    let out = Command::new("git")
        .current_dir(&f.work)
        .args(["ls-remote", &by_name])
        .env("GIT_SSH_COMMAND", f.ssh_command())
        .env("GIT_TRACE_PACKET", "1")
        .env_remove("GIT_PROTOCOL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(trace.contains("< version 2"), "{trace}");
    assert!(trace.contains("> command=ls-refs"), "{trace}");

    // An incremental fetch over SSH.
    f.git_ok(&local, &["checkout", "-q", "main"]);
    commit_file(&f, &local, "more.txt", "more\n", "second");
    f.git_ok(&local, &["push", &by_key_id, "main"]);
    let clone = f.work.join("ssh-v2");
    f.git_ok(&clone, &["fetch", "-q", "origin"]);
    assert_eq!(
        f.git_ok(&clone, &["rev-parse", "origin/main"]),
        f.git_ok(&local, &["rev-parse", "main"])
    );

    // The host key was generated once: a new server on this keep presents the same one.
    let first = f
        .server
        .as_ref()
        .unwrap()
        .ssh_host_key()
        .unwrap()
        .to_owned();
    let again = Server::start(
        &f.keep,
        &ServerConfig {
            http: None,
            ssh: Some(([127, 0, 0, 1], 0).into()),
            ..ServerConfig::default()
        },
    )
    .unwrap();
    assert_eq!(again.ssh_host_key().unwrap(), first);
    assert!(first.starts_with("ssh-ed25519 "), "{first}");
}

#[test]
fn ssh_refuses_unknown_keys_shells_other_commands_and_denied_refs() {
    let f = Fixture::new(&deny_push_to_main());
    let local = f.local_repo("origin");
    let url = f.ssh_url(&f.ssh_key_id, "web");

    // The AWS "deny push to main" policy over SSH, with the reason.
    let out = f.git(&local, &["push", &url, "main"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[remote rejected] main -> main"), "{err}");
    assert!(err.contains("denied"), "{err}");
    f.git_ok(&local, &["push", &url, "main:refs/heads/feature"]);

    // A repository that does not exist: git stops with the server's reason.
    let out = f.git(&local, &["ls-remote", &f.ssh_url("dev", "nope")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");

    // A key IAM does not know, and a known key under another user's name.
    let stranger = f.work.join("stranger");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let port = f
        .server
        .as_ref()
        .unwrap()
        .ssh_addr()
        .unwrap()
        .port()
        .to_string();
    let known = f.ssh_key.with_file_name("known_hosts");
    let ssh = |key: &std::path::Path, user: &str, command: Option<&str>| {
        let mut c = Command::new("ssh");
        c.args([
            "-F",
            "/dev/null",
            "-T",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-i")
        .arg(key)
        .args(["-p", &port, &format!("{user}@127.0.0.1")]);
        if let Some(command) = command {
            c.arg(command);
        }
        c.output().unwrap()
    };
    for (key, user) in [
        (&stranger, "dev"),
        (&stranger, f.ssh_key_id.as_str()),
        (&f.ssh_key, "someone"),
    ] {
        let out = ssh(key, user, Some("git-upload-pack '/v1/repos/web'"));
        assert_eq!(out.status.code(), Some(255), "{user}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Permission denied (publickey)"), "{err}");
    }

    // No shell and no other command: git's fatal status and the reason on stderr.
    let out = ssh(&f.ssh_key, "dev", None);
    assert_eq!(out.status.code(), Some(128));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only serves git"));
    let out = ssh(&f.ssh_key, "dev", Some("cat /etc/passwd"));
    assert_eq!(out.status.code(), Some(128));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported command"));
}
