//! Protocol edges with the real git client: shallow clones and deepening, partial clones that
//! fetch blobs lazily, forced pushes and a policy that refuses them, two pushes racing for one
//! ref, a 100 MB file, an STS session, HTTPS, and bad packs or clients that go away.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use codekeep::Caller;
use serde_json::json;

use crate::git_support::{Fixture, allow_all, commit_file, files, git_with};

/// `main` with `n` commits, pushed to `web`; returns the local repository.
fn pushed_history(f: &Fixture, n: usize) -> std::path::PathBuf {
    let local = f.local_repo("origin");
    for i in 2..=n {
        commit_file(
            f,
            &local,
            &format!("f{i}.txt"),
            &format!("{i}\n"),
            &format!("c{i}"),
        );
    }
    f.git_ok(&local, &["push", &f.url("web"), "main"]);
    local
}

fn count(f: &Fixture, dir: &Path) -> usize {
    f.git_ok(dir, &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn shallow_clones_deepen_and_unshallow() {
    let f = Fixture::new(&allow_all());
    let local = pushed_history(&f, 5);
    f.git_ok(&local, &["tag", "c2", "HEAD~3"]);
    f.git_ok(&local, &["push", &f.url("web"), "c2"]);
    let url = f.url("web");

    f.git_ok(&f.work, &["clone", "-q", "--depth", "1", &url, "shallow"]);
    let clone = f.work.join("shallow");
    assert_eq!(count(&f, &clone), 1);
    assert_eq!(
        f.git_ok(&clone, &["rev-parse", "--is-shallow-repository"])
            .trim(),
        "true"
    );
    f.git_ok(&clone, &["fetch", "-q", "--deepen", "2"]);
    assert_eq!(count(&f, &clone), 3);
    f.git_ok(&clone, &["fetch", "-q", "--unshallow"]);
    assert_eq!(count(&f, &clone), 5);
    assert_eq!(
        f.git_ok(&clone, &["rev-parse", "--is-shallow-repository"])
            .trim(),
        "false"
    );
    f.git_ok(&clone, &["fsck", "--strict"]);

    // deepen-not (--shallow-exclude) over v2, and a depth over v0 on SSH.
    f.git_ok(
        &f.work,
        &["clone", "-q", "--shallow-exclude=c2", &url, "exclude"],
    );
    assert_eq!(count(&f, &f.work.join("exclude")), 3);
    let ssh = f.ssh_url("dev", "web");
    f.git_ok(
        &f.work,
        &[
            "-c",
            "protocol.version=0",
            "clone",
            "-q",
            "--depth",
            "2",
            &ssh,
            "v0",
        ],
    );
    let v0 = f.work.join("v0");
    assert_eq!(count(&f, &v0), 2);
    f.git_ok(
        &v0,
        &["-c", "protocol.version=0", "fetch", "-q", "--deepen", "1"],
    );
    assert_eq!(count(&f, &v0), 3);
}

/// Object ids a partial clone lacks.
fn missing(f: &Fixture, dir: &Path) -> Vec<String> {
    f.git_ok(dir, &["rev-list", "--objects", "--all", "--missing=print"])
        .lines()
        .filter_map(|l| l.strip_prefix('?').map(str::to_owned))
        .collect()
}

#[test]
fn partial_clones_fetch_blobs_when_checked_out() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let big: String = (0..4000).map(|i| format!("{i:x}")).collect();
    commit_file(&f, &local, "big.txt", &big, "big");
    f.git_ok(&local, &["push", &f.url("web"), "main"]);
    let url = f.url("web");

    f.git_ok(
        &f.work,
        &[
            "clone",
            "-q",
            "--filter=blob:none",
            "--no-checkout",
            &url,
            "none",
        ],
    );
    let clone = f.work.join("none");
    let absent = missing(&f, &clone);
    let big_id = f
        .git_ok(&local, &["rev-parse", "HEAD:big.txt"])
        .trim()
        .to_owned();
    let readme_id = f
        .git_ok(&local, &["rev-parse", "HEAD:README.md"])
        .trim()
        .to_owned();
    assert!(
        absent.contains(&big_id) && absent.contains(&readme_id),
        "{absent:?}"
    );
    // The checkout fetches the blobs it needs from the server, lazily.
    f.git_ok(&clone, &["checkout", "-q", "main"]);
    assert_eq!(std::fs::read_to_string(clone.join("big.txt")).unwrap(), big);
    assert!(missing(&f, &clone).is_empty());

    // blob:limit leaves out only the blobs over the limit.
    f.git_ok(
        &f.work,
        &[
            "clone",
            "-q",
            "--filter=blob:limit=1k",
            "--no-checkout",
            &url,
            "limit",
        ],
    );
    let absent = missing(&f, &f.work.join("limit"));
    assert_eq!(absent, vec![big_id]);
}

#[test]
fn forced_pushes_are_classified_and_a_policy_can_refuse_them() {
    let f = Fixture::new(&json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "codecommit:GitPush", "Resource": "*",
         "Condition": {"StringEquals": {"codecommit:References": "refs/heads/main"},
                       "Bool": {"codekeep:ForcePush": "true"}}}
    ]}));
    let local = pushed_history(&f, 3);
    let url = f.url("web");
    f.git_ok(&local, &["push", &url, "main:refs/heads/feature"]);
    f.git_ok(&local, &["reset", "-q", "--hard", "HEAD~1"]);
    commit_file(&f, &local, "other.txt", "other\n", "diverged");

    // Without --force, git itself refuses a non-fast-forward.
    let out = f.git(&local, &["push", &url, "main"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-fast-forward"));
    // With --force, the policy refuses it on main, with the reason...
    let out = f.git(&local, &["push", "--force", &url, "main"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[remote rejected] main -> main (denied"),
        "{err}"
    );
    // ...and allows it elsewhere; fast-forwards of main stay allowed.
    f.git_ok(
        &local,
        &["push", "--force", &url, "main:refs/heads/feature"],
    );
    f.git_ok(&local, &["fetch", "-q", &url, "main"]);
    f.git_ok(&local, &["reset", "-q", "--hard", "FETCH_HEAD"]);
    commit_file(&f, &local, "next.txt", "next\n", "next");
    f.git_ok(&local, &["push", &url, "main"]);
    let remote = f.git_ok(&local, &["ls-remote", &url, "refs/heads/main"]);
    assert!(remote.starts_with(f.git_ok(&local, &["rev-parse", "HEAD"]).trim()));
}

#[test]
fn two_pushes_racing_for_one_ref_have_exactly_one_winner() {
    let f = Fixture::new(&allow_all());
    let local = pushed_history(&f, 1);
    let url = f.url("web");
    let clones: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            f.git_ok(&f.work, &["clone", "-q", &url, name]);
            f.work.join(name)
        })
        .collect();
    for round in 0..3 {
        for (i, clone) in clones.iter().enumerate() {
            f.git_ok(clone, &["fetch", "-q", "origin"]);
            f.git_ok(clone, &["reset", "-q", "--hard", "origin/main"]);
            commit_file(&f, clone, &format!("r{round}-{i}.txt"), "x\n", "racer");
        }
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = clones
                .iter()
                .map(|c| s.spawn(|| f.git(c, &["push", "origin", "main"])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.status.success())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one push wins");
        let loser = outcomes.iter().find(|o| !o.status.success()).unwrap();
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(
            err.contains("stale info")
                || err.contains("fetch first")
                || err.contains("non-fast-forward"),
            "{err}"
        );
        let head = f.git_ok(&clones[winners[0].0], &["rev-parse", "HEAD"]);
        let remote = f.git_ok(&local, &["ls-remote", &url, "refs/heads/main"]);
        assert!(
            remote.starts_with(head.trim()),
            "the winner's commit is main"
        );
    }
}

/// Incompressible bytes, quickly: xorshift64.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_100_mb_file_is_pushed_over_http_and_cloned_over_ssh() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    std::fs::write(local.join("big.bin"), noise(100 << 20, 7)).unwrap();
    f.git_ok(&local, &["add", "big.bin"]);
    f.git_ok(&local, &["commit", "-q", "-m", "big"]);
    f.git_ok(&local, &["push", &f.url("web"), "main"]);
    f.git_ok(&f.work, &["clone", "-q", &f.ssh_url("dev", "web"), "big"]);
    let clone = f.work.join("big");
    assert_eq!(
        f.git_ok(&clone, &["rev-parse", "HEAD:big.bin"]),
        f.git_ok(&local, &["rev-parse", "HEAD:big.bin"])
    );
    assert_eq!(
        std::fs::metadata(clone.join("big.bin")).unwrap().len(),
        100 << 20
    );
    // The spool holds nothing once the push is done.
    assert!(files(&f.data.join("spool")).is_empty());
}

#[test]
fn an_sts_session_pushes_and_https_serves_git() {
    let f = Fixture::with_tls(&allow_all(), true);
    let iam = f.keep.client("iam", f.root()).unwrap();
    let key = iam
        .call("CreateAccessKey", json!({"UserName": "dev"}))
        .unwrap()["AccessKey"]
        .clone();
    let sts = f
        .keep
        .client(
            "sts",
            Caller::access_key(
                key["AccessKeyId"].as_str().unwrap(),
                key["SecretAccessKey"].as_str().unwrap(),
            ),
        )
        .unwrap();
    let creds = sts.call("GetSessionToken", json!({})).unwrap()["Credentials"].clone();
    let user = creds["AccessKeyId"].as_str().unwrap();
    let password = format!(
        "{}:{}",
        creds["SecretAccessKey"].as_str().unwrap(),
        creds["SessionToken"].as_str().unwrap()
    );
    let local = f.local_repo("origin");
    let url = f.url("web");
    assert!(url.starts_with("https://"));
    let out = git_with(&f, &local, &["push", &url, "main"], user, &password);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = git_with(&f, &f.work, &["clone", "-q", &url, "tls"], user, &password);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.work.join("tls/README.md").exists());
    // A wrong session secret is challenged like a wrong password.
    let out = git_with(&f, &local, &["ls-remote", &url], user, "wrong:token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Authentication failed"));
    // Without the CA, git does not trust the server.
    let out = Command::new("git")
        .args(["ls-remote", &url])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A pack of `main`'s objects, made by git. Without `--delta-base-offset`, git writes every
/// delta as a `REF_DELTA` naming its base by id.
fn pack_of(dir: &Path) -> Vec<u8> {
    pack_revs(dir, &[], "main\n")
}

/// `git pack-objects --revs` of the revisions on `stdin` (e.g. `"tip\n^base\n"`).
fn pack_revs(dir: &Path, extra: &[&str], stdin: &str) -> Vec<u8> {
    let mut child = Command::new("git")
        .current_dir(dir)
        .args(["pack-objects", "--stdout", "-q", "--revs"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().stdout
}

/// How many entries of `pack` git reports as deltas (`git verify-pack -v`).
fn delta_entries(dir: &Path, pack: &[u8]) -> usize {
    let path = dir.join("probe.pack");
    std::fs::write(&path, pack).unwrap();
    let indexed = Command::new("git")
        .current_dir(dir)
        .args(["index-pack", "probe.pack"])
        .output()
        .unwrap();
    assert!(indexed.status.success(), "{indexed:?}");
    let verified = Command::new("git")
        .current_dir(dir)
        .args(["verify-pack", "-v", "probe.idx"])
        .output()
        .unwrap();
    for leftover in ["probe.pack", "probe.idx"] {
        std::fs::remove_file(dir.join(leftover)).unwrap();
    }
    // A delta's line has two more fields than a whole object's: depth and base id.
    String::from_utf8(verified.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.split_whitespace().count() == 7)
        .count()
}

#[test]
fn in_pack_ref_deltas_are_taken_and_a_missing_thin_base_is_refused() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let text: String = (0..2000)
        .map(|i| format!("line {i} of a long file\n"))
        .collect();
    commit_file(&f, &local, "long.txt", &text, "long");
    commit_file(
        &f,
        &local,
        "long.txt",
        &format!("{text}one more\n"),
        "longer",
    );
    let head = f.git_ok(&local, &["rev-parse", "main"]).trim().to_owned();
    let pack = pack_of(&local);
    assert!(delta_entries(&local, &pack) > 0, "git wrote REF_DELTAs");
    let zero = "0".repeat(40);
    let mut body = pkt(&format!("{zero} {head} refs/heads/main\0report-status\n"));
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&pack);
    let response = raw_push(&f, &body, body.len());
    assert!(response.contains("unpack ok"), "{response}");
    assert!(response.contains("ok refs/heads/main"), "{response}");
    // git's own thin push: a delta against the stored blob, whose base codekeep inserts.
    commit_file(
        &f,
        &local,
        "long.txt",
        &format!("{text}one more\nand another\n"),
        "longest",
    );
    f.git_ok(&local, &["push", "-q", &f.url("web"), "main"]);
    let copy = f.work.join("copy");
    f.git_ok(
        &f.work,
        &["clone", "-q", &f.url("web"), copy.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(copy.join("long.txt")).unwrap(),
        format!("{text}one more\nand another\n")
    );
    f.git_ok(&copy, &["fsck", "--strict"]);

    // A thin pack whose delta base the repository has never seen.
    f.git_ok(&local, &["checkout", "-q", "-b", "unpushed"]);
    let other: String = (0..2000).map(|i| format!("row {i} elsewhere\n")).collect();
    commit_file(&f, &local, "other.txt", &other, "base, never pushed");
    commit_file(&f, &local, "other.txt", &format!("{other}tail\n"), "on top");
    let tip = f
        .git_ok(&local, &["rev-parse", "unpushed"])
        .trim()
        .to_owned();
    let thin = pack_revs(&local, &["--thin"], "unpushed\n^unpushed~1\n");
    let mut body = pkt(&format!("{zero} {tip} refs/heads/thin\0report-status\n"));
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&thin);
    let response = raw_push(&f, &body, body.len());
    assert!(!response.contains("unpack ok"), "{response}");
    assert!(response.contains("ng refs/heads/thin"), "{response}");
    // git deltifies the blob and the root tree against the unpushed commit's: either base
    // may be the one named.
    let bases: Vec<String> = ["unpushed~1:other.txt", "unpushed~1^{tree}"]
        .iter()
        .map(|r| f.git_ok(&local, &["rev-parse", r]).trim().to_owned())
        .collect();
    assert!(
        bases.iter().any(|b| response.contains(b.as_str())),
        "the error names a missing base ({bases:?}): {response}"
    );
    let remote = f.git_ok(&local, &["ls-remote", &f.url("web")]);
    assert!(!remote.contains("refs/heads/thin"), "{remote}");
    let main = f.git_ok(&local, &["rev-parse", "main"]);
    assert!(
        remote.contains(main.trim()),
        "main is where the last good push left it: {remote}"
    );
}

fn pkt(text: &str) -> Vec<u8> {
    let mut out = format!("{:04x}", text.len() + 4).into_bytes();
    out.extend_from_slice(text.as_bytes());
    out
}

/// POSTs `body` to receive-pack over a raw socket; `declared` is the Content-Length (more than
/// the body: the client goes away mid-push). Returns what came back.
fn raw_push(f: &Fixture, body: &[u8], declared: usize) -> String {
    let addr = f.server.as_ref().unwrap().http_addr().unwrap();
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", f.user, f.password));
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/repos/web/git-receive-pack HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/x-git-receive-pack-request\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream.write_all(body).unwrap();
    if declared > body.len() {
        stream.shutdown(std::net::Shutdown::Both).unwrap();
        return String::new();
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn bad_packs_and_vanishing_clients_change_nothing() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let head = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    let zero = "0".repeat(40);
    let mut commands = pkt(&format!("{zero} {head} refs/heads/main\0report-status\n"));
    commands.extend_from_slice(b"0000");
    let pack = pack_of(&local);
    let blobs_before = files(&f.data).len();

    let mut truncated = commands.clone();
    truncated.extend_from_slice(&pack[..pack.len() / 2]);
    let mut corrupt = commands.clone();
    corrupt.extend_from_slice(&pack);
    let middle = commands.len() + pack.len() / 2;
    corrupt[middle] ^= 0x55;
    let mut missing_base = commands.clone();
    missing_base.extend_from_slice(&pack[..12]); // a header that promises objects, then nothing
    for (what, body) in [
        ("truncated", truncated),
        ("corrupt", corrupt),
        ("empty", missing_base),
    ] {
        let response = raw_push(&f, &body, body.len());
        assert!(response.starts_with("HTTP/1.1 200"), "{what}: {response}");
        assert!(response.contains("unpack "), "{what}: {response}");
        assert!(!response.contains("unpack ok"), "{what}: {response}");
        assert!(
            response.contains("ng refs/heads/main"),
            "{what}: {response}"
        );
    }
    // A client that goes away in the middle of its pack.
    let mut partial = commands.clone();
    partial.extend_from_slice(&pack[..pack.len() / 2]);
    raw_push(&f, &partial, partial.len() + pack.len());
    // A malformed command list.
    let response = raw_push(&f, b"0010not a command0000", 21);
    assert!(!response.contains("unpack ok"), "{response}");
    // git's `0000` probe: answered, and no ref transaction is run or audited for it.
    let applied = || {
        let mut exported = Vec::new();
        f.keep.audit().export_jsonl(&mut exported).unwrap();
        String::from_utf8(exported)
            .unwrap()
            .matches("\"references\"")
            .count()
    };
    let before = applied();
    let response = raw_push(&f, b"0000", 4);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(applied(), before);

    // Nothing moved, nothing was left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !files(&f.data.join("spool")).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        files(&f.data.join("spool")).is_empty(),
        "the spool is empty"
    );
    let remote = f.git_ok(&local, &["ls-remote", &f.url("web")]);
    assert!(remote.is_empty(), "{remote}");
    assert_eq!(files(&f.data).len(), blobs_before, "no pack was kept");
    // And a good push still works afterwards.
    f.git_ok(&local, &["push", &f.url("web"), "main"]);
}

/// POSTs a protocol v2 upload-pack request over a raw socket; returns the response.
fn raw_fetch_v2(f: &Fixture, lines: &[String]) -> String {
    let addr = f.server.as_ref().unwrap().http_addr().unwrap();
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", f.user, f.password));
    let mut body = pkt("command=fetch\n");
    body.extend_from_slice(b"0001");
    for line in lines {
        body.extend_from_slice(&pkt(&format!("{line}\n")));
    }
    body.extend_from_slice(b"0000");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/repos/web/git-upload-pack HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
         Git-Protocol: version=2\r\nContent-Type: application/x-git-upload-pack-request\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn clashing_names_non_commit_branches_and_foreign_shallow_lines_are_refused() {
    let f = Fixture::new(&allow_all());
    let local = pushed_history(&f, 2);
    let url = f.url("web");
    let main = f.git_ok(&local, &["rev-parse", "main"]).trim().to_owned();

    // `a` and `a/b` cannot both exist: git's rule, for pushes and for CreateBranch.
    f.git_ok(&local, &["push", &url, "main:refs/heads/a"]);
    let out = f.git(
        &local,
        &["push", &url, "main:refs/heads/a/b", "main:refs/heads/ok"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot lock ref"), "{err}");
    let remote = f.git_ok(&local, &["ls-remote", &url]);
    assert!(
        remote.contains("refs/heads/ok") && !remote.contains("refs/heads/a/b"),
        "{remote}"
    );
    let cc = f.keep.client("codecommit", f.root()).unwrap();
    assert_eq!(
        crate::code(cc.call(
            "CreateBranch",
            json!({"repositoryName": "web", "branchName": "a/c", "commitId": main})
        )),
        "InvalidBranchNameException"
    );

    // A branch must name a commit; the other refs of the push still land.
    let tree = f
        .git_ok(&local, &["rev-parse", "main^{tree}"])
        .trim()
        .to_owned();
    let out = f.git(
        &local,
        &[
            "push",
            &url,
            &format!("{tree}:refs/heads/tree"),
            &format!("{tree}:refs/tags/tree"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("non-commit"), "{err}");
    let remote = f.git_ok(&local, &["ls-remote", &url]);
    assert!(
        remote.contains("refs/tags/tree") && !remote.contains("refs/heads/tree"),
        "{remote}"
    );

    // A shallow line naming a commit no ref reaches opens nothing (git: reachable shallows).
    f.git_ok(&local, &["checkout", "-q", "-b", "gone"]);
    commit_file(&f, &local, "secret.txt", "secret\n", "secret");
    let gone = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    f.git_ok(&local, &["push", &url, "gone"]);
    f.git_ok(&local, &["push", &url, "--delete", "gone"]);
    let response = raw_fetch_v2(
        &f,
        &[
            format!("want {main}"),
            format!("shallow {gone}"),
            "deepen 1".into(),
            "deepen-relative".into(),
            "done".into(),
        ],
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        !response.contains(&format!("unshallow {gone}")),
        "{response}"
    );
    // ...and one naming a tree is refused, as git refuses it.
    let response = raw_fetch_v2(
        &f,
        &[
            format!("want {main}"),
            format!("shallow {tree}"),
            "deepen 1".into(),
            "done".into(),
        ],
    );
    assert!(response.contains("invalid shallow object"), "{response}");

    // ListBranches refuses a continuation token past the end instead of failing.
    assert_eq!(
        crate::code(cc.call(
            "ListBranches",
            json!({"repositoryName": "web", "nextToken": "18446744073709551615"})
        )),
        "InvalidContinuationTokenException"
    );
    // GetFile understands HEAD.
    let file = cc
        .call(
            "GetFile",
            json!({"repositoryName": "web", "filePath": "README.md", "commitSpecifier": "HEAD"}),
        )
        .unwrap();
    assert_eq!(file["commitId"], main);
}

/// Files under `dir` whose name ends with `suffix`.
fn count_files(dir: &Path, suffix: &str) -> usize {
    files(dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .count()
}

#[test]
fn compaction_merges_packs_and_drops_unreachable_objects_only_after_the_grace_period() {
    let f = Fixture::new(&allow_all());
    let local = f.local_repo("origin");
    let url = f.url("web");
    f.git_ok(&local, &["push", &url, "main"]);
    for i in 0..3 {
        commit_file(
            &f,
            &local,
            &format!("n{i}.txt"),
            &format!("{i}\n"),
            &format!("n{i}"),
        );
        f.git_ok(&local, &["push", &url, "main"]);
    }
    // A commit that becomes unreachable: pushed on a branch, then the branch is deleted.
    f.git_ok(&local, &["checkout", "-q", "-b", "tmp"]);
    commit_file(&f, &local, "tmp.txt", "temporary\n", "tmp");
    let orphan = f.git_ok(&local, &["rev-parse", "HEAD"]).trim().to_owned();
    f.git_ok(&local, &["push", &url, "tmp"]);
    f.git_ok(&local, &["push", &url, "--delete", "tmp"]);
    f.git_ok(&local, &["checkout", "-q", "main"]);
    assert_eq!(count_files(&f.data, ".pack"), 5);

    let day = std::time::Duration::from_secs(86_400);
    let now = codekeep::CompactOptions {
        grace: std::time::Duration::ZERO,
        retired_blob_delay: std::time::Duration::ZERO,
    };
    let report = f
        .keep
        .compact_repository(&f.account, "web", codekeep::CompactOptions::default())
        .unwrap();
    assert_eq!(report["RetiredPacksDeleted"], 0, "{report}");
    assert_eq!(report["PacksBefore"], 5, "{report}");
    assert_eq!(report["PacksAfter"], 2, "{report}");
    assert_eq!(report["DroppedObjects"], 0, "{report}");
    assert_eq!(
        report["CruftObjects"], 3,
        "commit, tree and blob of the orphan: {report}"
    );
    let cc = f.keep.client("codecommit", f.root()).unwrap();
    let get_orphan = || {
        cc.call(
            "GetCommit",
            json!({"repositoryName": "web", "commitId": orphan}),
        )
    };
    assert!(
        get_orphan().is_ok(),
        "within the grace period the orphan stays"
    );
    f.git_ok(&f.work, &["clone", "-q", &url, "after"]);
    f.git_ok(&f.work.join("after"), &["fsck", "--strict"]);
    assert_eq!(
        f.git_ok(&f.work.join("after"), &["rev-parse", "HEAD"]),
        f.git_ok(&local, &["rev-parse", "HEAD"])
    );

    // With no grace, unreachable objects go; the retired packs' blobs go at the next run.
    let report = f.keep.compact_repository(&f.account, "web", now).unwrap();
    assert_eq!(report["PacksAfter"], 1, "{report}");
    assert_eq!(report["DroppedObjects"], 3, "{report}");
    assert_eq!(report["RetiredPacksDeleted"], 5, "{report}");
    assert_eq!(crate::code(get_orphan()), "CommitIdDoesNotExistException");
    let report = f.keep.compact_repository(&f.account, "web", now).unwrap();
    assert_eq!(report["RetiredPacksDeleted"], 2, "{report}");
    assert_eq!(count_files(&f.data, ".pack"), 1);
    f.git_ok(&f.work, &["clone", "-q", &url, "final"]);
    f.git_ok(&f.work.join("final"), &["fsck", "--strict"]);
    // Pushing on top of the compacted repository works, and nothing was left in the spool.
    commit_file(&f, &local, "later.txt", "later\n", "later");
    f.git_ok(&local, &["push", &url, "main"]);
    assert!(files(&f.data.join("spool")).is_empty());
    assert_eq!(
        crate::code(
            f.keep
                .compact_repository(
                    &f.account,
                    "nope",
                    codekeep::CompactOptions { grace: day, ..now }
                )
                .map(|_| json!({}))
        ),
        "RepositoryDoesNotExistException"
    );
}

#[test]
fn account_limits_refuse_repositories_refs_and_pushes_with_reasons() {
    let f = Fixture::new(&allow_all());
    let limits = f
        .keep
        .set_codecommit_limits(
            &f.account,
            &json!({"MaxRepositories": 2, "MaxRefUpdatesPerPush": 2, "MaxRefsPerRepository": 3, "MaxPushBytes": 200_000}),
        )
        .unwrap();
    assert_eq!(limits["MaxPushBytes"], 200_000);
    assert_eq!(f.keep.codecommit_limits(&f.account).unwrap(), limits);
    for bad in [
        json!({"Nope": 1}),
        json!({"MaxPushBytes": -1}),
        json!({"MaxPushBytes": "x"}),
        json!([]),
    ] {
        let e = f.keep.set_codecommit_limits(&f.account, &bad).unwrap_err();
        assert_eq!(e.kind(), codekeep::ErrorKind::InvalidArgument, "{bad}");
    }
    let cc = f.keep.client("codecommit", f.root()).unwrap();
    cc.call("CreateRepository", json!({"repositoryName": "two"}))
        .unwrap();
    assert_eq!(
        crate::code(cc.call("CreateRepository", json!({"repositoryName": "three"}))),
        "RepositoryLimitExceededException"
    );

    let local = f.local_repo("origin");
    let url = f.url("web");
    let out = f.git(&local, &["push", &url, "main", "main:b1", "main:b2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("too many ref updates"));
    f.git_ok(&local, &["push", &url, "main", "main:b1"]);
    f.git_ok(&local, &["push", &url, "main:b2"]);
    let out = f.git(&local, &["push", &url, "main:b3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit of 3 refs"));
    let head = f.git_ok(&local, &["rev-parse", "main"]).trim().to_owned();
    assert_eq!(
        crate::code(cc.call(
            "CreateBranch",
            json!({"repositoryName": "web", "branchName": "b4", "commitId": head})
        )),
        "RepositoryLimitExceededException"
    );

    std::fs::write(local.join("big.bin"), noise(1 << 20, 3)).unwrap();
    f.git_ok(&local, &["add", "big.bin"]);
    f.git_ok(&local, &["commit", "-q", "-m", "big"]);
    let out = f.git(&local, &["push", &url, "main"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("larger than this account's limit of 200000 bytes"),
        "{err}"
    );
    f.keep
        .set_codecommit_limits(&f.account, &json!({"MaxPushBytes": null}))
        .unwrap();
    f.git_ok(&local, &["push", &url, "main"]);
}
