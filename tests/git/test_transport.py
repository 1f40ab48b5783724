"""Git transport to a hosted forge's remote, as production uses it.

HTTPS with a token: git's own smart-HTTP server (`git http-backend`, the CGI program hosted forges
run or imitate) behind a loopback HTTP server that demands `Authorization: Basic` with the token, as
GitHub, GitLab and Gitea do for `https://` remotes. The token travels in git's environment only: it
is never written to `.git/config`, never part of the remote URL, and never in an error message.
(Plain HTTP on loopback stands in for TLS; git sends the same header over both.)

SSH: no sshd runs here, so the test puts a recording `ssh` first on PATH and checks that git is told
to use the configured key, non-interactively.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from promoter.errors import TemporaryError
from promoter.gitrepo import GitClone, auth_env
from promoter.models import PrepareInput, PromotionRequest
from tests.support.gitops import Origin

TOKEN = "glpat-PLANTED-0123456789abcdef"


@pytest.fixture
def https_remote(origin: Origin) -> Iterator[str]:
    """`http://127.0.0.1:PORT/origin.git`, served by git http-backend, for `TOKEN` only."""
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    root = origin.path.parent

    class Handler(BaseHTTPRequestHandler):
        def _backend(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            url = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                **os.environ,
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": url.path,
                "QUERY_STRING": url.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "x-access-token",
                "REMOTE_ADDR": "127.0.0.1",
            }
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(": ")
                if name.lower() == "status":
                    status = int(value.split()[0])
                else:
                    headers.append((name, value))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _backend  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{origin.path.name}"
    server.shutdown()
    server.server_close()


def test_https_with_a_token_fetches_and_pushes_and_writes_the_token_nowhere(
    origin: Origin, https_remote: str, tmp_path: Path
) -> None:
    commit = origin.bump(tag="5.5.5")
    clone = GitClone(https_remote, tmp_path / "cache", auth_env=auth_env(TOKEN))
    plan = clone.resolve(PromotionRequest(app="demo"))  # clone + fetch over HTTP with the token
    assert plan.commit == commit
    pushed = clone.push_branch(PrepareInput(app="demo", commit=commit, source_env="dev", target_env="staging"))
    assert pushed.branch and origin.repo.git.ls_remote(origin.url, pushed.branch).startswith(pushed.head or "-")
    config = (clone.path / ".git" / "config").read_text()
    assert TOKEN not in config and base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() not in config
    assert f"url = {https_remote}\n" in config  # the remote URL carries no credentials


def test_https_without_the_token_is_refused_with_a_clear_error(
    origin: Origin, https_remote: str, tmp_path: Path
) -> None:
    clone = GitClone(https_remote, tmp_path / "cache", auth_env=auth_env("wrong-token"))
    with pytest.raises(TemporaryError) as err:
        clone.resolve(PromotionRequest(app="demo"))
    assert f"cannot clone {https_remote}" in str(err.value) and "wrong-token" not in str(err.value)


def test_ssh_remotes_use_the_configured_key_non_interactively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, record = tmp_path / "bin", tmp_path / "ssh-args"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\necho "$@" > {record}\nexit 255\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    clone = GitClone(
        "ssh://git@forge.example/acme/gitops.git", tmp_path / "cache", auth_env=auth_env(ssh_key="/secrets/deploy key")
    )
    with pytest.raises(TemporaryError, match="cannot clone ssh://git@forge.example/acme/gitops.git"):
        clone.resolve(PromotionRequest(app="demo"))
    args = record.read_text()
    assert "-i /secrets/deploy key -o IdentitiesOnly=yes -o BatchMode=yes" in args
    assert "git@forge.example" in args and "acme/gitops.git" in args
