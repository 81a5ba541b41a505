"""git hosting from Python: the server started from Python, the real `git` pushing to it, and
dulwich (an independent implementation of the git protocol) cloning, fetching and pushing."""

import io
import json
import os
import subprocess
import urllib.parse

import pytest

import codekeep

dulwich_porcelain = pytest.importorskip("dulwich.porcelain")

MARKER = "PY-CODEKEEP-MARKER-77ab"


def git(cwd, *args, env=None):
    out = subprocess.run(["git", "-c", "user.name=Py", "-c", "user.email=py@example.com",
                          "-c", "init.defaultBranch=main", *args],
                         cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def new_repo(path):
    """An empty local repository at `path`."""
    path.mkdir()
    git(path, "init", "-q")
    return path


def commit_file(repo, name, text, message):
    """Writes `name` and commits it."""
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)


def http_remote(cc, user, password):
    """The repository's HTTP URL, the same with the credentials in it (for git), and an
    environment for git that never prompts and leaves the protocol to git."""
    url = cc.get_repository(repositoryName="web")["repositoryMetadata"]["cloneUrlHttp"]
    authed = url.replace("http://", "http://%s:%s@" % (
        urllib.parse.quote(user, safe=""), urllib.parse.quote(password, safe="")))
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    env.pop("GIT_PROTOCOL", None)
    return url, authed, env


@pytest.fixture
def hosted(tmp_path):
    keep = codekeep.Keep.open(tmp_path / "keep")
    account = keep.create_account("py-git")["Id"]
    iam = keep.client("iam", account=account)
    iam.create_user(UserName="dev")
    iam.put_user_policy(UserName="dev", PolicyName="git", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "codecommit:*", "Resource": "*"}]}))
    cred = iam.create_service_specific_credential(
        UserName="dev", ServiceName="codecommit.amazonaws.com")["ServiceSpecificCredential"]
    cc = keep.client("codecommit", account=account)
    cc.create_repository(repositoryName="web")
    server = keep.serve(ssh="127.0.0.1:0")
    yield keep, cc, server, cred["ServiceUserName"], cred["ServicePassword"], account
    server.stop()
    keep.close()


def test_server_reports_where_it_listens_and_clone_urls_follow(hosted):
    _keep, cc, server, _user, _password, _account = hosted
    assert server.http_url.startswith("http://127.0.0.1:")
    assert server.ssh_url.startswith("ssh://127.0.0.1:")
    assert server.ssh_host_key.startswith("ssh-ed25519 ")
    meta = cc.get_repository(repositoryName="web")["repositoryMetadata"]
    assert meta["cloneUrlHttp"] == server.http_url + "/v1/repos/web"
    assert meta["cloneUrlSsh"] == server.ssh_url + "/v1/repos/web"
    server.stop()
    assert server.stopped
    server.stop()
    meta = cc.get_repository(repositoryName="web")["repositoryMetadata"]
    assert meta["cloneUrlHttp"].startswith("https://git-codecommit.")


def test_git_pushes_and_dulwich_clones_fetches_and_pushes(hosted, tmp_path):
    keep, cc, server, user, password, account = hosted
    url, authed, env = http_remote(cc, user, password)

    local = new_repo(tmp_path / "local")
    commit_file(local, "README.md", f"hello {MARKER}\n", "first")
    git(local, "push", "-q", authed, "main", env=env)
    head = git(local, "rev-parse", "HEAD").strip()

    # dulwich clones what git pushed.
    target = tmp_path / "dulwich-clone"
    repo = dulwich_porcelain.clone(url, str(target), username=user, password=password,
                                   errstream=io.BytesIO())
    assert repo.head().decode() == head
    assert (target / "README.md").read_text() == f"hello {MARKER}\n"

    # ...fetches what git pushes next...
    commit_file(local, "more.txt", "more\n", "second")
    git(local, "push", "-q", authed, "main", env=env)
    second = git(local, "rev-parse", "HEAD").strip()
    result = dulwich_porcelain.fetch(repo, url, username=user, password=password,
                                     errstream=io.BytesIO())
    assert result.refs[b"refs/heads/main"].decode() == second

    # ...and pushes a branch that git then sees.
    dulwich_porcelain.push(repo, url, b"refs/heads/main:refs/heads/from-dulwich",
                           username=user, password=password, errstream=io.BytesIO())
    remote = git(local, "ls-remote", authed, env=env)
    assert f"{head}\trefs/heads/from-dulwich" in remote
    repo.close()

    # Nothing in the keep's directory holds the plaintext.
    for root, _dirs, files in os.walk(tmp_path / "keep"):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert MARKER.encode() not in f.read(), name


def test_compaction_and_limits_from_python(hosted, tmp_path):
    keep, cc, _server, user, password, account = hosted
    url, authed, env = http_remote(cc, user, password)
    local = new_repo(tmp_path / "local")
    for i in range(3):
        commit_file(local, f"f{i}.txt", f"{i}\n", f"c{i}")
        git(local, "push", "-q", authed, "main", env=env)
    report = keep.compact_repository(account, "web", grace_seconds=0, retired_blob_delay_seconds=0)
    assert report["PacksBefore"] == 3 and report["PacksAfter"] == 1, report
    target = tmp_path / "after"
    repo = dulwich_porcelain.clone(url, str(target), username=user, password=password,
                                   errstream=io.BytesIO())
    assert repo.head().decode() == git(local, "rev-parse", "HEAD").strip()
    repo.close()
    with pytest.raises(codekeep.InvalidArgument):
        keep.compact_repository(account, "web", grace_seconds=-1)

    limits = keep.set_codecommit_limits(account, MaxRepositories=1, MaxPushBytes=None)
    assert limits["MaxRepositories"] == 1 and limits["MaxPushBytes"] is None
    with pytest.raises(cc.exceptions.RepositoryLimitExceededException):
        cc.create_repository(repositoryName="two")
    with pytest.raises(codekeep.InvalidArgument):
        keep.set_codecommit_limits(account, Nope=1)
