//! What the git tests share: a keep on disk with a user who has git credentials and an SSH key,
//! a repository, the server on free ports, and the real `git` driven against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use codekeep::server::{Server, ServerConfig, TlsFiles};
use codekeep::{Caller, Keep};
use serde_json::json;

/// A marker written into pushed files; it must never appear in the keep's data directory.
pub const MARKER: &str = "CODEKEEP-PLAINTEXT-MARKER-5d1e";

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub work: PathBuf,
    pub keep: Keep,
    pub account: String,
    pub server: Option<Server>,
    pub user: String,
    pub password: String,
    /// The user's SSH private key file and its IAM key id.
    pub ssh_key: PathBuf,
    pub ssh_key_id: String,
    /// With TLS: the CA file git must trust.
    pub ca: Option<PathBuf>,
}

impl Fixture {
    /// A keep on disk with an account, a user `dev` with git credentials, an SSH key and
    /// `policy`, and a repository `web`; HTTP and SSH servers started on free ports.
    pub fn new(policy: &serde_json::Value) -> Fixture {
        Fixture::with_tls(policy, false)
    }

    /// As [`Fixture::new`]; with `tls`, smart HTTP is HTTPS with a certificate for 127.0.0.1
    /// from a test CA.
    pub fn with_tls(policy: &serde_json::Value, tls: bool) -> Fixture {
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
        let ssh_key = dir.path().join("id_ed25519");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f"])
                .arg(&ssh_key),
        );
        let public = std::fs::read_to_string(ssh_key.with_extension("pub")).unwrap();
        let ssh_key_id = iam
            .call(
                "UploadSSHPublicKey",
                json!({"UserName": "dev", "SSHPublicKeyBody": public}),
            )
            .unwrap()["SSHPublicKey"]["SSHPublicKeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        let cc = keep.client("codecommit", root).unwrap();
        cc.call("CreateRepository", json!({"repositoryName": "web"}))
            .unwrap();
        let (tls_files, ca) = match tls.then(|| test_certificates(dir.path())) {
            Some((files, ca)) => (Some(files), Some(ca)),
            None => (None, None),
        };
        let config = ServerConfig {
            ssh: Some(([127, 0, 0, 1], 0).into()),
            tls: tls_files.clone(),
            ..ServerConfig::default()
        };
        let server = Server::start(&keep, &config).unwrap();
        let known_hosts = format!(
            "[127.0.0.1]:{} {}\n",
            server.ssh_addr().unwrap().port(),
            server.ssh_host_key().unwrap()
        );
        std::fs::write(dir.path().join("known_hosts"), known_hosts).unwrap();
        Fixture {
            data,
            work,
            keep,
            account,
            server: Some(server),
            user: cred["ServiceUserName"].as_str().unwrap().to_owned(),
            password: cred["ServicePassword"].as_str().unwrap().to_owned(),
            ssh_key,
            ssh_key_id,
            ca,
            _dir: dir,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        let addr = self.server.as_ref().unwrap().http_addr().unwrap();
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}/v1/repos/{repo}")
    }

    /// The SSH URL of `repo` with `ssh_user` (a key id or the IAM user name).
    pub fn ssh_url(&self, ssh_user: &str, repo: &str) -> String {
        let addr = self.server.as_ref().unwrap().ssh_addr().unwrap();
        format!("ssh://{ssh_user}@{addr}/v1/repos/{repo}")
    }

    /// The root of the fixture's account.
    pub fn root(&self) -> Caller {
        Caller::account_root(self.account.parse().unwrap())
    }

    /// The `ssh` command git runs: this fixture's key and known host, nothing from `~/.ssh`.
    pub fn ssh_command(&self) -> String {
        let known = self.ssh_key.with_file_name("known_hosts");
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
            self.ssh_key.display(),
            known.display()
        )
    }

    /// Runs git in `dir` with the fixture's credentials supplied by a credential helper.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        git_with(self, dir, args, &self.user, &self.password)
    }

    pub fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
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
    pub fn local_repo(&self, name: &str) -> PathBuf {
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

/// Runs git with `user` and `password` from a credential helper, the fixture's SSH command and
/// CA, and nothing from the environment's git or ssh configuration.
pub fn git_with(f: &Fixture, dir: &Path, args: &[&str], user: &str, password: &str) -> Output {
    let mut command = Command::new("git");
    // The environment may name a CA bundle for git (GIT_SSL_CAINFO beats http.sslCAInfo).
    match &f.ca {
        Some(ca) => command.env("GIT_SSL_CAINFO", ca),
        None => command.env_remove("GIT_SSL_CAINFO"),
    };
    command
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
        .env("GIT_SSH_COMMAND", f.ssh_command())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_PROTOCOL")
        .output()
        .unwrap()
}

fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 it signed, made by `openssl`. Returns the
/// server's files and the CA certificate git must trust.
fn test_certificates(dir: &Path) -> (TlsFiles, PathBuf) {
    let files = TlsFiles {
        certificate_chain: dir.join("cert.pem"),
        private_key: dir.join("key.pem"),
    };
    let (ca, ca_key, csr, ext) = (
        dir.join("ca.pem"),
        dir.join("ca.key"),
        dir.join("leaf.csr"),
        dir.join("leaf.ext"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=codekeep test CA",
            ])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(&files.private_key)
            .arg("-out")
            .arg(&csr),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(["-CAcreateserial", "-extfile"])
            .arg(&ext)
            .arg("-out")
            .arg(&files.certificate_chain),
    );
    (files, ca)
}

pub fn commit_file(f: &Fixture, dir: &Path, file: &str, content: &str, message: &str) {
    std::fs::write(dir.join(file), content).unwrap();
    f.git_ok(dir, &["add", file]);
    f.git_ok(dir, &["commit", "-q", "-m", message]);
}

/// Pull and push allowed, with AWS's documented "deny pushes to main" statement.
pub fn deny_push_to_main() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codecommit:GitPull", "codecommit:GitPush"], "Resource": "*"},
        {"Effect": "Deny", "Action": "codecommit:GitPush", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]},
                       "Null": {"codecommit:References": "false"}}}
    ]})
}

pub fn allow_all() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}
    ]})
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
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
