"""The git story in Python: an account; a user with git credentials and an SSH key; a policy
that allows pushing but denies pushes to main; a repository encrypted under the account's own
KMS key; the real `git` (a subprocess) pushing a feature branch (accepted), pushing to main
(refused, with the reason) and cloning over SSH; then the events and audit records of it.
Run by `make test` (as a pytest test) and directly."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import codekeep

POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"},
    # Repositories under a customer managed key: the key is usable through CodeCommit.
    {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:ViaService": "codecommit.us-east-1.amazonaws.com"}}},
    {"Effect": "Deny", "Action": "codecommit:GitPush", "Resource": "*",
     "Condition": {"StringEqualsIfExists": {"codecommit:References": ["refs/heads/main"]},
                   "Null": {"codecommit:References": "false"}}}]}


def story(base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    with codekeep.Keep.open(base / "keep") as keep:
        account = keep.create_account("git-story")["Id"]
        iam = keep.client("iam", account=account)
        iam.create_user(UserName="dev")
        iam.put_user_policy(UserName="dev", PolicyName="no-push-to-main", PolicyDocument=json.dumps(POLICY))
        cred = iam.create_service_specific_credential(
            UserName="dev", ServiceName="codecommit.amazonaws.com")["ServiceSpecificCredential"]
        key_file = base / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f", str(key_file)], check=True)
        ssh_key_id = iam.upload_ssh_public_key(
            UserName="dev", SSHPublicKeyBody=key_file.with_suffix(".pub").read_text())["SSHPublicKey"]["SSHPublicKeyId"]
        print(f"account {account}; user dev with git credentials and SSH key {ssh_key_id}")

        key = keep.client("kms", account=account).create_key(Description="repositories")["KeyMetadata"]["Arn"]
        cc = keep.client("codecommit", account=account)
        cc.create_repository(repositoryName="web", kmsKeyId=key)
        with keep.serve(ssh="127.0.0.1:0") as server:
            meta = cc.get_repository(repositoryName="web")["repositoryMetadata"]
            http_url = meta["cloneUrlHttp"]
            ssh_url = meta["cloneUrlSsh"].replace("ssh://", f"ssh://{ssh_key_id}@")
            print(f"repository web (encrypted under {key})\n  {http_url}\n  {ssh_url}")
            known_hosts = base / "known_hosts"
            port = server.ssh_address.rsplit(":", 1)[1]
            known_hosts.write_text(f"[127.0.0.1]:{port} {server.ssh_host_key}\n")
            env = dict(os.environ, GIT_TERMINAL_PROMPT="0", DEMO_USER=cred["ServiceUserName"],
                       DEMO_PASS=cred["ServicePassword"],
                       GIT_SSH_COMMAND=f"ssh -F /dev/null -i {key_file} -o IdentitiesOnly=yes "
                                       f"-o BatchMode=yes -o UserKnownHostsFile={known_hosts}")
            env.pop("GIT_PROTOCOL", None)

            def git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
                return subprocess.run(
                    ["git", "-c", "credential.helper=",
                     "-c", "credential.helper=!f() { echo username=$DEMO_USER; echo password=$DEMO_PASS; }; f",
                     "-c", "user.name=Dev", "-c", "user.email=dev@example.com",
                     "-c", "init.defaultBranch=main", *args],
                    cwd=cwd, env=env, capture_output=True, text=True)

            app = base / "app"
            app.mkdir()
            git(app, "init", "-q")
            (app / "README.md").write_text("# app\n")
            git(app, "add", "README.md")
            git(app, "commit", "-q", "-m", "first")
            git(app, "checkout", "-q", "-b", "feature")
            pushed = git(app, "push", http_url, "feature")
            assert pushed.returncode == 0, pushed.stderr
            print(f"$ git push {http_url} feature\n  accepted")
            refused = git(app, "push", http_url, "feature:main")
            assert refused.returncode != 0
            reason = [line.strip() for line in refused.stderr.splitlines() if "rejected" in line]
            print(f"$ git push {http_url} feature:main\n  " + "\n  ".join(reason))
            assert reason and "denied" in reason[0]
            cloned = git(base, "clone", "-q", ssh_url, "clone")
            assert cloned.returncode == 0, cloned.stderr
            print(f"$ git clone {ssh_url}\n  README.md = {(base / 'clone' / 'README.md').read_text()!r}")

        print("events (the outbox, EventBridge envelopes):")
        events = keep.read_events("git-story")
        # Ref changes; the outbox also holds the write calls' "AWS API Call via CloudTrail" events.
        changes = [e["Event"] for e in events if e["Event"]["detail-type"] == "CodeCommit Repository State Change"]
        for event in changes:
            print(f"  {event['detail-type']} {event['detail']['event']} {event['detail']['referenceFullName']}")
        assert [e["detail"]["referenceFullName"] for e in changes] == ["refs/heads/feature"]
        keep.ack_events("git-story", events[-1]["Seq"])
        assert keep.read_events("git-story") == []

        print("audit records (CloudTrail, newest first):")
        trail = keep.client("cloudtrail", account=account)
        records = trail.lookup_events(MaxResults=12)["Events"]
        for record in records:
            detail = json.loads(record["CloudTrailEvent"])
            print(f"  {record['EventName']:<26} {record.get('Username', '-'):<8} {detail.get('errorCode', 'ok')}")
        pushes = [json.loads(r["CloudTrailEvent"]) for r in records if r["EventName"] == "GitPush"]
        assert any("main" in json.dumps(p) and "denied" in json.dumps(p) for p in pushes), pushes


def test_git_story(tmp_path: Path) -> None:
    story(tmp_path / "story")


if __name__ == "__main__":
    story(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "story")
