//! The real `git` client against the embedded smart HTTP server: pushes, clones (protocol v2
//! and v0), incremental fetches, per-branch policies, and what reaches the disk.

use codekeep::Caller;
use serde_json::json;

use crate::git_support::{
    Fixture, MARKER, allow_all, commit_file, deny_push_to_main, files, git_with,
};

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
    let f = Fixture::new(&deny_push_to_main());
    let local = f.local_repo("origin");
    let url = f.url("web");
    // Wrong password: 401, and git reports an authentication failure.
    let out = git_with(&f, &local, &["ls-remote", &url], &f.user, "wrong");
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
