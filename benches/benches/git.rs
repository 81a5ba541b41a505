//! Git hosting against git itself, in the same run, on the same generated repository (about
//! 20,000 commits, 50,000 files, 200 MB; `CODEKEEP_BENCH_GIT_SCALE` scales it down).
//!
//! - ours: codekeep's smart HTTP server, in a child process of this bench (so its memory is
//!   its own), encrypted storage on;
//! - peer: `git daemon` serving bare repositories (git's own upload-pack and receive-pack).
//!
//! The real `git` client drives both. Lines: clone and push wall times (lower is better, the
//! goal is ratio <= 1), ls-refs with 10,000 refs, 16 concurrent clones (throughput, higher is
//! better), and the server's peak resident memory during a 2 GB push whose largest object is
//! 50 MB (`CODEKEEP_BENCH_GIT_BIG=0` skips it), against git's receive-pack and the 300 MB goal.
#![expect(clippy::print_stdout, reason = "benchmarks report on stdout")]
#![expect(clippy::unwrap_used, reason = "benchmark harness")]
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing yields Null, and the word index is reduced modulo the length"
)]
#![expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "sizes and rates in a benchmark"
)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use codekeep_bench::{median_time, summary, target_dir};
use serde_json::json;

const CHILD_ENV: &str = "CODEKEEP_BENCH_GIT_SERVER";

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        serve_child(Path::new(&dir));
        return;
    }
    // `CODEKEEP_BENCH_GIT_ONLY=big` runs only the 2 GB push, `=clone` only push and clone.
    let only = std::env::var("CODEKEEP_BENCH_GIT_ONLY").unwrap_or_default();
    let only_big = only == "big";
    let scale: f64 = std::env::var("CODEKEEP_BENCH_GIT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let work = tempfile::tempdir_in(target_dir()).unwrap();
    let shape = Shape::scaled(scale);
    println!(
        "git bench: generating {} commits, {} files, ~{} MB",
        shape.commits,
        shape.files,
        shape.bytes >> 20
    );
    let mut ours = Ours::spawn(&work.path().join("keep"));
    if !only_big {
        // `CODEKEEP_BENCH_GIT_SOURCE=DIR` keeps the generated repository in DIR and reuses it.
        let source = std::env::var_os("CODEKEEP_BENCH_GIT_SOURCE")
            .map_or_else(|| work.path().join("source"), std::path::PathBuf::from);
        if !source.join(".git").exists() {
            generate(&source, &shape);
        }
        let peer = Daemon::spawn(&work.path().join("daemon"));
        push_and_clone(&mut ours, &peer, &source, work.path());
        if only == "clone" {
            return;
        }
        ls_refs(&mut ours, &peer, &source, work.path());
        concurrent_clones(&mut ours, &peer, work.path(), scale);
    }
    if std::env::var("CODEKEEP_BENCH_GIT_BIG").as_deref() != Ok("0") {
        // A server of its own, as git's receive-pack is a process of its own: the figure is
        // what the push takes, not what earlier benchmarks left in the allocator (a server
        // that served the benchmarks above holds several hundred MB more; see issue 4's note).
        drop(ours);
        let mut fresh = Ours::spawn(&work.path().join("keep-big"));
        big_push_memory(&mut fresh, work.path());
    }
}

// ---- the generated repository ----

struct Shape {
    commits: usize,
    files: usize,
    bytes: usize,
}

impl Shape {
    fn scaled(scale: f64) -> Shape {
        Shape {
            commits: ((20_000.0 * scale) as usize).max(10),
            files: ((50_000.0 * scale) as usize).max(25),
            bytes: ((200.0 * scale) as usize).max(1) << 20,
        }
    }
}

/// xorshift64*: deterministic, fast.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "keep",
    "commit",
    "branch",
    "merge",
    "object",
    "tree",
    "blob",
    "delta",
    "pack",
    "index",
    "policy",
    "account",
    "region",
    "signature",
    "envelope",
    "segment",
    "cipher",
    "event",
    "rule",
    "pipeline",
    "stage",
    "action",
    "build",
    "artifact",
    "source",
    "target",
    "lambda",
    "queue",
];

/// Text of `len` bytes: words from the list and numbers, so it compresses about as source does.
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let word = WORDS[rng.below(WORDS.len())];
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(format!("{} ", rng.next() % 100_000).as_bytes());
        if rng.below(12) == 0 {
            out.push(b'\n');
        }
    }
    out.truncate(len);
    out.push(b'\n');
    out
}

/// Writes the history with `git fast-import`: every commit adds new files (until there are
/// `files`) and rewrites one older file, so history has deltas as real repositories do.
fn generate(dir: &Path, shape: &Shape) {
    git(
        dir.parent().unwrap(),
        &["init", "-q", "-b", "main", dir.to_str().unwrap()],
    );
    let mut import = Command::new("git")
        .current_dir(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = std::io::BufWriter::with_capacity(1 << 20, import.stdin.take().unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let per_blob = shape.bytes / (shape.files + shape.commits);
    let mut created = 0usize;
    for c in 0..shape.commits {
        let target = (c + 1) * shape.files / shape.commits;
        let message = format!("commit {c}\n");
        write!(
            input,
            "commit refs/heads/main\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{message}",
            1_600_000_000 + c * 60,
            message.len()
        )
        .unwrap();
        let mut touched = Vec::new();
        while created < target {
            touched.push(created);
            created += 1;
        }
        if created > 0 {
            touched.push(rng.below(created));
        }
        for id in touched {
            let size = per_blob / 2 + rng.below(per_blob);
            let data = text(&mut rng, size);
            writeln!(
                input,
                "M 100644 inline d{:04}/f{id}.txt\ndata {}",
                id / 100,
                data.len()
            )
            .unwrap();
            input.write_all(&data).unwrap();
            writeln!(input).unwrap();
        }
    }
    drop(input);
    assert!(import.wait().unwrap().success(), "git fast-import failed");
    git(dir, &["repack", "-adq"]);
}

// ---- servers ----

/// codekeep's HTTP server in a child process (this binary, run with `CHILD_ENV`).
struct Ours {
    child: Child,
    commands: ChildStdin,
    replies: BufReader<ChildStdout>,
    base: String,
    user: String,
    password: String,
}

impl Ours {
    fn spawn(dir: &Path) -> Ours {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let commands = child.stdin.take().unwrap();
        let mut replies = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        let hello: serde_json::Value = serde_json::from_str(&line).unwrap();
        Ours {
            child,
            commands,
            replies,
            base: hello["HttpUrl"].as_str().unwrap().to_owned(),
            user: hello["User"].as_str().unwrap().to_owned(),
            password: hello["Password"].as_str().unwrap().to_owned(),
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.commands, "{command}").unwrap();
        let mut line = String::new();
        self.replies.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    /// A new empty repository; its URL.
    fn create(&mut self, name: &str) -> String {
        assert_eq!(self.ask(&format!("create {name}")), "ok");
        format!("{}/v1/repos/{name}", self.base)
    }

    fn git(&self, dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "credential.helper=",
                "-c",
                "credential.helper=!f() { echo username=$CK_USER; echo password=$CK_PASS; }; f",
            ])
            .args(args)
            .env("CK_USER", &self.user)
            .env("CK_PASS", &self.password)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = writeln!(self.commands, "exit");
        let _ = self.child.wait();
    }
}

/// The child: a keep with a user who has git credentials, served over HTTP; commands on
/// stdin (`create NAME`, `reset-peak`, `peak`, `exit`), replies on stdout.
fn serve_child(dir: &Path) {
    let keep = codekeep::Keep::open(dir).unwrap();
    let account = keep.create_account("bench").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = codekeep::Caller::account_root(account.parse().unwrap());
    let iam = keep.client("iam", root.clone()).unwrap();
    iam.call("CreateUser", json!({"UserName": "bench"}))
        .unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "bench", "PolicyName": "git", "PolicyDocument": policy.to_string()}),
    )
    .unwrap();
    let cred = iam
        .call(
            "CreateServiceSpecificCredential",
            json!({"UserName": "bench", "ServiceName": "codecommit.amazonaws.com"}),
        )
        .unwrap()["ServiceSpecificCredential"]
        .clone();
    let cc = keep.client("codecommit", root).unwrap();
    // The ls-refs bench pushes 10,000 tags at once (CodeCommit allows 4,000 per push).
    keep.set_codecommit_limits(&account, &json!({"MaxRefUpdatesPerPush": null}))
        .unwrap();
    let config = codekeep::server::ServerConfig {
        threads: 2,
        ..codekeep::server::ServerConfig::default()
    };
    let server = codekeep::server::Server::start(&keep, &config).unwrap();
    let mut hello = server.describe();
    hello["User"] = cred["ServiceUserName"].clone();
    hello["Password"] = cred["ServicePassword"].clone();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{hello}").unwrap();
    stdout.flush().unwrap();
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let reply = match line.split_once(' ') {
            Some(("create", name)) => cc
                .call("CreateRepository", json!({"repositoryName": name}))
                .map_or_else(|e| e.to_string(), |_| "ok".to_owned()),
            _ if line == "reset-peak" => std::fs::write("/proc/self/clear_refs", "5")
                .map_or_else(|e| e.to_string(), |()| "ok".to_owned()),
            _ if line == "peak" => peak_rss_kb(std::process::id()).to_string(),
            _ => break,
        };
        writeln!(stdout, "{reply}").unwrap();
        stdout.flush().unwrap();
    }
    server.shutdown();
}

/// `VmHWM` of a process, in KiB.
fn peak_rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` figure, in KiB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `git daemon` serving bare repositories under a directory.
struct Daemon {
    child: Child,
    root: PathBuf,
    port: u16,
}

impl Daemon {
    fn spawn(root: &Path) -> Daemon {
        std::fs::create_dir_all(root).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself (not `git daemon`, which forks it): killing the child then stops
        // the server instead of leaving it behind holding this process's output.
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.display()),
                root.to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            root: root.to_owned(),
            port,
        }
    }

    /// A new empty bare repository; its URL.
    fn create(&self, name: &str) -> String {
        git(&self.root, &["init", "-q", "--bare", name]);
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the measurements ----

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn push_and_clone(ours: &mut Ours, peer: &Daemon, source: &Path, work: &Path) {
    // Each run pushes the whole history into a new empty repository.
    let mut n = 0;
    let ours_push = median_time(3, || {
        n += 1;
        let url = ours.create(&format!("push{n}"));
        ours.git(source, &["push", "-q", &url, "main"]);
    });
    let mut n = 0;
    let peer_push = median_time(3, || {
        n += 1;
        let url = peer.create(&format!("push{n}.git"));
        git(source, &["push", "-q", &url, "main"]);
    });
    summary(
        "git_push_whole_repo_wall_s_lower_is_better",
        seconds(ours_push),
        seconds(peer_push),
        "s",
    );
    let ours_url = format!("{}/v1/repos/push1", ours.base);
    let peer_url = format!("git://127.0.0.1:{}/push1.git", peer.port);
    let clone = |url: &str, dest: &Path, with_ours: Option<&Ours>| {
        let args = ["clone", "-q", "--bare", url, dest.to_str().unwrap()];
        match with_ours {
            Some(o) => o.git(work, &args),
            None => git(work, &args),
        }
        std::fs::remove_dir_all(dest).unwrap();
    };
    let dest = work.join("clone");
    let ours_clone = median_time(3, || clone(&ours_url, &dest, Some(ours)));
    let peer_clone = median_time(3, || clone(&peer_url, &dest, None));
    summary(
        "git_clone_wall_s_lower_is_better",
        seconds(ours_clone),
        seconds(peer_clone),
        "s",
    );
}

/// `git ls-remote` (ls-refs over v2) of a repository with 10,000 refs.
fn ls_refs(ours: &mut Ours, peer: &Daemon, source: &Path, work: &Path) {
    let refs = work.join("refs");
    git(
        work,
        &[
            "clone",
            "-q",
            "--bare",
            source.to_str().unwrap(),
            refs.to_str().unwrap(),
        ],
    );
    let head = String::from_utf8(
        Command::new("git")
            .current_dir(&refs)
            .args(["rev-parse", "main"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut stdin = String::new();
    for i in 0..10_000 {
        let _ = write!(stdin, "create refs/tags/t{i:05} {head}");
    }
    let mut update = Command::new("git")
        .current_dir(&refs)
        .args(["update-ref", "--stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    update
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    assert!(update.wait().unwrap().success());
    let ours_url = ours.create("refs");
    let peer_url = peer.create("refs.git");
    ours.git(&refs, &["push", "-q", &ours_url, "--all"]);
    ours.git(&refs, &["push", "-q", &ours_url, "--tags"]);
    git(&refs, &["push", "-q", &peer_url, "--all"]);
    git(&refs, &["push", "-q", &peer_url, "--tags"]);
    let ours_time = median_time(5, || ours.git(work, &["ls-remote", "-q", &ours_url]));
    let peer_time = median_time(5, || git(work, &["ls-remote", "-q", &peer_url]));
    summary(
        "git_ls_refs_10k_refs_wall_ms_lower_is_better",
        seconds(ours_time) * 1e3,
        seconds(peer_time) * 1e3,
        "ms",
    );
}

/// 16 clones at once of a repository a tenth the size: total megabytes cloned per second.
fn concurrent_clones(ours: &mut Ours, peer: &Daemon, work: &Path, scale: f64) {
    let source = work.join("small");
    generate(&source, &Shape::scaled(scale / 10.0));
    let ours_url = ours.create("small");
    let peer_url = peer.create("small.git");
    ours.git(&source, &["push", "-q", &ours_url, "main"]);
    git(&source, &["push", "-q", &peer_url, "main"]);
    let pack_bytes: u64 = std::fs::read_dir(source.join(".git/objects/pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let run = |url: &str, with_ours: Option<&Ours>| {
        let start = Instant::now();
        std::thread::scope(|s| {
            for i in 0..16 {
                let dest = work.join(format!("c{i}"));
                s.spawn(move || {
                    let args = ["clone", "-q", "--bare", url, dest.to_str().unwrap()];
                    match with_ours {
                        Some(o) => o.git(work, &args),
                        None => git(work, &args),
                    }
                    std::fs::remove_dir_all(&dest).unwrap();
                });
            }
        });
        start.elapsed()
    };
    let ours_time = run(&ours_url, Some(ours));
    let peer_time = run(&peer_url, None);
    let mb = 16.0 * pack_bytes as f64 / 1e6;
    summary(
        "git_16_concurrent_clones_mb_per_s",
        mb / seconds(ours_time),
        mb / seconds(peer_time),
        "MB/s",
    );
}

/// `git push` sending the big blobs stored, without a delta search (the same for both sides).
const STORED_PUSH: &[&str] = &[
    "-c",
    "pack.compression=0",
    "-c",
    "core.bigFileThreshold=1m",
    "push",
];

/// Incompressible bytes.
fn noise(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The server's peak resident memory during a 2 GB push (40 objects of 50 MB), against git's
/// receive-pack (and its index-pack) receiving the same push.
fn big_push_memory(ours: &mut Ours, work: &Path) {
    let big = work.join("big");
    git(work, &["init", "-q", "-b", "main", big.to_str().unwrap()]);
    let mut rng = Rng(42);
    for i in 0..40 {
        std::fs::write(
            big.join(format!("blob{i:02}.bin")),
            noise(&mut rng, 50 << 20),
        )
        .unwrap();
    }
    // Stored, not deflated, and no delta search across 50 MB blobs of noise (bigFileThreshold):
    // the client's time is not what is measured.
    git(
        &big,
        &[
            "-c",
            "core.compression=0",
            "-c",
            "core.bigFileThreshold=1m",
            "add",
            ".",
        ],
    );
    git(
        &big,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@e",
            "commit",
            "-qm",
            "big",
        ],
    );
    let url = ours.create("big");
    assert_eq!(ours.ask("reset-peak"), "ok", "cannot reset the peak RSS");
    // VmHWM counts the pages of memory-mapped files too (gix maps the pack it indexes), so
    // anonymous memory is sampled on the side: that is what the server allocates.
    let pid = ours.child.id();
    let done = std::sync::atomic::AtomicBool::new(false);
    let anon_kb = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kb(pid, "RssAnon:"));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        ours.git(&big, &[STORED_PUSH, &["-q", &url, "main"]].concat());
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let ours_kb: u64 = ours.ask("peak").parse().unwrap();
    // git: receive-pack into a bare repository, its peak (with index-pack's) read by
    // `peak_rss.py` through getrusage.
    let bare = work.join("big-peer.git");
    git(work, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let report = work.join("peer-rss");
    let wrapper = work.join("receive-pack-rss");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peak_rss.py");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec python3 '{}' '{}' git-receive-pack \"$@\"\n",
            script.display(),
            report.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).unwrap();
    git(
        &big,
        &[
            STORED_PUSH,
            &[
                "-q",
                &format!("--receive-pack={}", wrapper.display()),
                bare.to_str().unwrap(),
                "main",
            ],
        ]
        .concat(),
    );
    let peer_kb: u64 = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    summary(
        "git_2gb_push_server_peak_rss_mb_lower_is_better",
        ours_kb as f64 / 1024.0,
        peer_kb as f64 / 1024.0,
        "MB",
    );
    summary(
        "git_2gb_push_server_peak_anon_rss_mb_vs_goal_lower_is_better",
        anon_kb as f64 / 1024.0,
        300.0,
        "MB",
    );
}
