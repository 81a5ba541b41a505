"""Events from Python: a Python callable as the keep's Lambda function (exceptions are failed
deliveries, retried), webhooks over HTTP and HTTPS to receivers in this process, checked with
codekeep.verify_webhook and with `standardwebhooks` (an independent implementation of the
scheme from PyPI), and a keep closed while its delivery thread wants the GIL."""

import http.server
import json
import ssl
import subprocess
import threading
import time

import pytest

import codekeep

standardwebhooks = pytest.importorskip("standardwebhooks")


def wait_until(what, done, timeout=20):
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def keep():
    with codekeep.Keep.memory() as k:
        yield k


def account_and_events(keep):
    account = keep.create_account("py-events")["Id"]
    return account, keep.client("events", account=account)


def rule(events, name, pattern, targets):
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=targets)


def test_a_python_function_gets_events_and_its_exceptions_are_retried(keep):
    account, events = account_and_events(keep)
    seen = []

    def on_event(event):
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("first call fails")

    keep.register_function(account, "on-deploy", on_event)
    rule(events, "deploys", {"source": ["py.app"], "detail": {"env": ["prod"]}},
         [{"Id": "fn", "Arn": f"arn:aws:lambda:us-east-1:{account}:function:on-deploy"}])
    out = events.put_events(Entries=[
        {"Source": "py.app", "DetailType": "Deploy", "Detail": json.dumps({"env": "prod"})},
        {"Source": "py.app", "DetailType": "Deploy", "Detail": json.dumps({"env": "dev"})},
    ])
    assert out["FailedEntryCount"] == 0
    wait_until("the retry", lambda: len(seen) >= 2)
    time.sleep(0.3)
    assert len(seen) == 2, "the failed call is retried once, the dev event matches nothing"
    assert seen[0] == seen[1]
    assert seen[1]["id"] == out["Entries"][0]["EventId"]
    assert seen[1]["detail"] == {"env": "prod"}
    assert keep.remove_function(account, "on-deploy")
    assert not keep.remove_function(account, "on-deploy")
    with pytest.raises(codekeep.InvalidArgument):
        keep.register_function(account, "not a name", on_event)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first request, 200 after; records each request."""
    received = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(503 if len(type(self).received) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler, tls=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 made by openssl, and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_webhooks_are_signed_and_retried(keep, tmp_path, scheme):
    account, events = account_and_events(keep)

    class Handler(Recorder):
        received = []

    tls = self_signed(tmp_path) if scheme == "https" else None
    server = serve(Handler, tls)
    try:
        keep.configure_webhooks(hosts=["127.0.0.1"], networks=["127.0.0.0/8"], timeout_ms=5000,
                                ca_file=tls[0] if tls else None)
        url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hook"
        created = events.create_api_destination(Name="receiver", InvocationEndpoint=url,
                                                HttpMethod="POST")
        secret = created["SigningSecret"]
        rule(events, "deleted", {"detail-type": ["Branch deleted"]},
             [{"Id": "hook", "Arn": created["ApiDestinationArn"]}])
        out = events.put_events(Entries=[{"Source": "py.app", "DetailType": "Branch deleted",
                                          "Detail": json.dumps({"branch": "old"})}])
        wait_until("the retried webhook", lambda: len(Handler.received) >= 2, timeout=30)
        for headers, body in Handler.received:
            codekeep.verify_webhook(secret, headers, body)
            # The independent implementation agrees.
            standardwebhooks.Webhook(secret).verify(body, headers)
            assert json.loads(body)["id"] == out["Entries"][0]["EventId"]
        first, second = (h for h, _ in Handler.received[:2])
        assert first["webhook-id"] == second["webhook-id"]
        headers, body = Handler.received[0]
        with pytest.raises(codekeep.AccessDenied):
            codekeep.verify_webhook(secret, headers, body + b" ")
        with pytest.raises(codekeep.AccessDenied):
            codekeep.verify_webhook(secret, headers, body, now=int(time.time()) + 3600)
        with pytest.raises(codekeep.InvalidArgument):
            codekeep.verify_webhook(secret, {}, body)
    finally:
        server.shutdown()
        server.server_close()


def test_https_needs_a_trusted_certificate(keep, tmp_path):
    account, events = account_and_events(keep)

    class Handler(Recorder):
        received = []

    server = serve(Handler, self_signed(tmp_path))
    try:
        # The receiver's certificate is not trusted: no request gets through TLS.
        keep.configure_webhooks(hosts=["127.0.0.1"], networks=["127.0.0.0/8"], timeout_ms=2000)
        queue = f"arn:aws:sqs:us-east-1:{account}:dlq"
        created = events.create_api_destination(
            Name="untrusted", HttpMethod="POST",
            InvocationEndpoint=f"https://127.0.0.1:{server.server_address[1]}/")
        rule(events, "r", {"source": ["py.app"]},
             [{"Id": "hook", "Arn": created["ApiDestinationArn"],
               "RetryPolicy": {"MaximumRetryAttempts": 0}, "DeadLetterConfig": {"Arn": queue}}])
        events.put_events(Entries=[{"Source": "py.app", "DetailType": "x", "Detail": "{}"}])
        wait_until("the dead letter", lambda: keep.dead_letters(queue))
        assert "TLS" in keep.dead_letters(queue)[0]["Error"] or "certificate" in keep.dead_letters(queue)[0]["Error"]
        assert Handler.received == []
    finally:
        server.shutdown()
        server.server_close()


def test_closing_the_keep_while_a_python_function_runs_does_not_hang():
    keep = codekeep.Keep.memory()
    account, events = account_and_events(keep)
    started = threading.Event()

    def slow(event):
        started.set()
        time.sleep(0.2)

    keep.register_function(account, "slow", slow)
    rule(events, "r", {"source": ["py.app"]},
         [{"Id": "fn", "Arn": f"arn:aws:lambda:us-east-1:{account}:function:slow"}])
    events.put_events(Entries=[{"Source": "py.app", "DetailType": "x", "Detail": "{}"}])
    assert started.wait(10)
    del events
    keep.close()  # waits for the delivery thread with the GIL released
    assert keep.closed


def test_topics_fill_application_queues_and_dead_letters_redrive(keep):
    account, events = account_and_events(keep)
    sns = keep.client("sns", account=account)
    topic = sns.create_topic(Name="builds")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="application", Endpoint="ci-log",
                  Attributes={"FilterPolicy": json.dumps({"status": ["failed"]})})
    sns.publish(TopicArn=topic, Message="build 7 failed",
                MessageAttributes={"status": {"DataType": "String", "StringValue": "failed"}})
    sns.publish(TopicArn=topic, Message="build 8 passed",
                MessageAttributes={"status": {"DataType": "String", "StringValue": "passed"}})
    wait_until("the queued message", lambda: keep.application_messages(account, "ci-log"))
    time.sleep(0.2)
    messages = keep.application_messages(account, "ci-log")
    assert [json.loads(m["Body"])["Message"] for m in messages] == ["build 7 failed"]
    assert keep.delete_application_message(account, "ci-log", messages[0]["ReceiptHandle"])
    assert keep.application_messages(account, "ci-log") == []

    # A failing function's event lands in its dead-letter queue, readable and re-drivable
    # through the sqs API.
    calls = []

    def failing(event):
        raise RuntimeError("not today")

    keep.register_function(account, "fn", failing)
    queue = f"arn:aws:sqs:us-east-1:{account}:dlq"
    rule(events, "r", {"source": ["py.app"]},
         [{"Id": "fn", "Arn": f"arn:aws:lambda:us-east-1:{account}:function:fn",
           "RetryPolicy": {"MaximumRetryAttempts": 0}, "DeadLetterConfig": {"Arn": queue}}])
    events.put_events(Entries=[{"Source": "py.app", "DetailType": "x", "Detail": "{}"}])
    wait_until("the dead letter", lambda: keep.dead_letters(queue))
    sqs = keep.client("sqs", account=account)
    url = sqs.get_queue_url(QueueName="dlq")["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 1
    assert "not today" in received[0]["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]
    keep.register_function(account, "fn", calls.append)
    assert sqs.start_message_move_task(SourceArn=queue)["ApproximateNumberOfMessagesMoved"] == 1
    wait_until("the re-driven call", lambda: calls)
    assert calls[0]["id"] == json.loads(received[0]["Body"])["id"]
