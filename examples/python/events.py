"""Events in Python: a rule on pushes to `main` that calls an in-process function (a Python
callable), and a rule on branch deletion that POSTs to a webhook receiver this example starts,
which checks the Standard Webhooks signature (codekeep.verify_webhook) before it believes a word.
The real `git` (a subprocess) makes the push. Run by `make test` (as a pytest test) and
directly: python events.py [WORK_DIR]"""

import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import codekeep

POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}]}
PUSH_TO_MAIN = {
    "source": ["aws.codecommit"],
    "detail-type": ["CodeCommit Repository State Change"],
    "detail": {"referenceType": ["branch"], "referenceName": ["main"],
               "event": ["referenceCreated", "referenceUpdated"]}}
BRANCH_DELETED = {
    "source": ["aws.codecommit"],
    "detail": {"event": ["referenceDeleted"], "referenceType": ["branch"]}}
WAIT_SECONDS = 20


def receiver(hooks: "queue.Queue[tuple[dict[str, str], bytes]]") -> http.server.ThreadingHTTPServer:
    """A webhook receiver on 127.0.0.1: answers 200 to each POST and hands over its headers and
    body. Stop it with shutdown() and server_close()."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            hooks.put((dict(self.headers), body))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def story(base: Path) -> None:
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    with codekeep.Keep.open(base / "keep") as keep:
        account = keep.create_account("events-demo")["Id"]
        iam = keep.client("iam", account=account)
        iam.create_user(UserName="dev")
        iam.put_user_policy(UserName="dev", PolicyName="git", PolicyDocument=json.dumps(POLICY))
        cred = iam.create_service_specific_credential(
            UserName="dev", ServiceName="codecommit.amazonaws.com")["ServiceSpecificCredential"]
        cc = keep.client("codecommit", account=account)
        cc.create_repository(repositoryName="web")
        with keep.serve():
            url = cc.get_repository(repositoryName="web")["repositoryMetadata"]["cloneUrlHttp"]

            # Rule 1: pushes to main call an in-process function.
            pushes: "queue.Queue[dict]" = queue.Queue()
            keep.register_function(account, "on-push-to-main", pushes.put)
            events = keep.client("events", account=account)
            events.put_rule(Name="push-to-main", EventPattern=json.dumps(PUSH_TO_MAIN))
            events.put_targets(Rule="push-to-main", Targets=[
                {"Id": "function", "Arn": f"arn:aws:lambda:us-east-1:{account}:function:on-push-to-main"}])
            print("rule push-to-main -> function on-push-to-main")

            # Rule 2: branch deletions go to a webhook receiver (loopback must be allowed by name).
            hooks: "queue.Queue[tuple[dict[str, str], bytes]]" = queue.Queue()
            server = receiver(hooks)
            try:
                endpoint = f"http://127.0.0.1:{server.server_address[1]}/hooks"
                keep.configure_webhooks(hosts=["127.0.0.1"], networks=["127.0.0.0/8"])
                destination = events.create_api_destination(
                    Name="receiver", HttpMethod="POST", InvocationEndpoint=endpoint)
                secret = destination["SigningSecret"]
                events.put_rule(Name="branch-deleted", EventPattern=json.dumps(BRANCH_DELETED))
                events.put_targets(Rule="branch-deleted", Targets=[
                    {"Id": "webhook", "Arn": destination["ApiDestinationArn"],
                     "RetryPolicy": {"MaximumRetryAttempts": 3}}])
                print(f"rule branch-deleted -> webhook {endpoint} (signed)")

                # The real git pushes main and a feature branch.
                env = dict(os.environ, GIT_TERMINAL_PROMPT="0", DEMO_USER=cred["ServiceUserName"],
                           DEMO_PASS=cred["ServicePassword"])
                env.pop("GIT_PROTOCOL", None)

                def git(cwd: Path, *args: str) -> None:
                    done = subprocess.run(
                        ["git", "-c", "credential.helper=",
                         "-c", "credential.helper=!f() { echo username=$DEMO_USER; echo password=$DEMO_PASS; }; f",
                         "-c", "user.name=Dev", "-c", "user.email=dev@example.com",
                         "-c", "init.defaultBranch=main", *args],
                        cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
                    if done.returncode != 0:
                        raise RuntimeError(f"git {list(args)}: {done.stderr}")

                app = base / "app"
                git(base, "init", "-q", "app")
                (app / "README.md").write_text("# app\n")
                git(app, "add", "README.md")
                git(app, "commit", "-q", "-m", "first")
                git(app, "push", "-q", url, "main", "main:feature")
                print(f"$ git push {url} main main:feature")
                try:
                    event = pushes.get(timeout=WAIT_SECONDS)
                except queue.Empty:
                    raise RuntimeError(f"on-push-to-main was not called within {WAIT_SECONDS} s") from None
                detail = event["detail"]
                print(f"  function on-push-to-main called: {event['detail-type']} {detail['event']} "
                      f"{detail['referenceFullName']} at {detail['commitId']}")
                if detail["referenceFullName"] != "refs/heads/main":
                    raise RuntimeError(f"on-push-to-main got an event of {detail['referenceFullName']}")

                # Deleting the feature branch posts to the receiver.
                cc.delete_branch(repositoryName="web", branchName="feature")
                print("DeleteBranch feature")
                try:
                    headers, body = hooks.get(timeout=WAIT_SECONDS)
                except queue.Empty:
                    raise RuntimeError(f"no webhook arrived within {WAIT_SECONDS} s") from None
            finally:
                server.shutdown()
                server.server_close()
            codekeep.verify_webhook(secret, headers, body)  # raises unless the signature holds
            detail = json.loads(body)["detail"]
            print(f"  webhook received, signature verified: {detail['event']} {detail['referenceFullName']}")
            if (detail["event"], detail["referenceFullName"]) != ("referenceDeleted", "refs/heads/feature"):
                raise RuntimeError(f"the webhook carried {detail['event']} {detail['referenceFullName']}")


def test_events_story(tmp_path: Path) -> None:
    story(tmp_path / "events")


if __name__ == "__main__":
    story(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "events")
