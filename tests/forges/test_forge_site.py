"""The local forge's web pages over real HTTP: the list, a PR's page (its body as markdown with every
untrusted field escaped, its diff), and the review form, which records a review exactly as the
forge's API does (on the PR's head) and refuses a wrong form with one line and nothing recorded.
Chromium opens these pages from the Temporal Web UI in tests/ui/test_web_ui.py."""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from promoter.forges.local import LocalForge
from promoter.forges.site import serve
from promoter.gitrepo import GitClone
from promoter.stack import free_port
from tests.forges.test_local_forge import branch_for
from tests.support.gitops import Origin

HOSTILE = '<script>alert("pwned")</script> <img src=x onerror=alert(1)> [link](javascript:alert(1))'


@pytest.fixture
def site(origin: Origin) -> Iterator[str]:
    port = free_port()
    server = serve(origin.path.parent / "forge.sqlite", origin.path, port, web_url=f"http://127.0.0.1:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post(url: str, form: dict[str, str]) -> tuple[int, str, str]:
    """(status, page, where it was redirected): urllib follows a 303 with a GET, as a browser does."""
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=10) as answer:
            return answer.status, answer.read().decode(), answer.url
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), url


def test_a_pr_page_shows_its_body_escaped_its_diff_and_its_reviews(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    branch = branch_for(origin, clone, tag="3.1.4")
    body = f"Promotion of **demo**\n\n| env | state |\n|---|---|\n| staging | open |\n\n{HOSTILE}"
    pr = forge.open_pull_request(branch, f"Promote demo {HOSTILE}", body, labels=["promotion", "env:staging"])
    forge.add_review(pr.number, "<b>eve</b>", "commented", HOSTILE)

    status, listing = get(f"{site}/pulls")
    assert status == 200 and f'href="/pulls/{pr.number}"' in listing and "env:staging" in listing
    assert "<td>staging</td>" in listing and "<td>demo</td>" in listing  # app and env, from the branch

    status, page = get(f"{site}/pulls/{pr.number}")
    assert status == 200
    assert "<strong>demo</strong>" in page and "<td>staging</td>" in page  # markdown, its table drawn
    assert "<script>" not in page.split("</style>", 1)[1] and "<img" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page  # shown, inert
    assert "&lt;b&gt;eve&lt;/b&gt;" in page
    assert '<span class="add">+' in page and "3.1.4" in page  # the diff of the environment folder
    assert "environments/staging/demo/deployment.yaml" in page
    assert 'action="/pulls/' in page and 'name="reviewer"' in page


def test_the_review_form_records_a_review_as_the_api_does(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.7.1"), "title", "body")
    status, page, where = post(
        f"{site}/pulls/{pr.number}/reviews", {"reviewer": " sue ", "state": "approved", "body": "ship it"}
    )
    assert status == 200 and where.endswith(f"/pulls/{pr.number}#reviews")  # after a 303, the PR again
    [review] = forge.reviews(pr.number)
    assert (review.author, review.state, review.body, review.commit) == ("sue", "approved", "ship it", pr.head_sha)
    assert '<td class="approved">approved</td>' in page


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"reviewer": "", "state": "approved"}, "a review needs the reviewer&#x27;s name"),
        ({"reviewer": "x" * 101, "state": "approved"}, "at most 100 characters"),
        ({"reviewer": "sue", "state": "merged"}, "choose one of: Approve, Request changes, Comment only"),
        ({"reviewer": "sue", "state": "changes_requested", "body": " "}, "needs a comment that says which"),
    ],
)
def test_a_wrong_review_form_is_one_line_and_records_nothing(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str, form: dict[str, str], said: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.7.2"), "title", "body")
    status, page, _ = post(f"{site}/pulls/{pr.number}/reviews", form)
    assert status == 400 and said in page and 'role="alert"' in page
    assert forge.reviews(pr.number) == []


def test_closed_and_unknown_pull_requests_take_no_review(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.7.3"), "title", "body")
    forge.close(pr.number, "Rejected by bob via cli: no")
    status, page, _ = post(f"{site}/pulls/{pr.number}/reviews", {"reviewer": "sue", "state": "approved"})
    assert status == 409 and "is no longer open" in page and forge.reviews(pr.number) == []
    assert "Rejected by bob via cli: no" in page and 'name="reviewer"' not in page  # closed: no form
    assert post(f"{site}/pulls/999/reviews", {"reviewer": "sue", "state": "approved"})[0] == 404
    assert get(f"{site}/pulls/999")[0] == 404
    assert get(f"{site}/pulls/x")[0] == 404
    assert get(f"{site}/")[0] == 200  # redirected to the list


def test_hostile_requests_are_refused_and_twenty_reviews_at_once_are_all_recorded(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.7.4"), "title", "body")
    host, port = site.removeprefix("http://").split(":")
    for length in ("-5", "abc", str(10**9)):  # a negative, a word, a gigabyte: refused without reading
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                f"POST /pulls/{pr.number}/reviews HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
            )
            assert conn.recv(64).startswith(b"HTTP/1.0 400"), length
    assert get(f"{site}/pulls/{'9' * 40}")[0] == 404 and get(f"{site}/pulls/../../etc/passwd")[0] == 404
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(
                lambda i: post(f"{site}/pulls/{pr.number}/reviews", {"reviewer": f"r{i}", "state": "commented"}),
                range(20),
            )
        )
    assert [a[0] for a in answers] == [200] * 20
    assert sorted(r.author for r in forge.reviews(pr.number)) == sorted(f"r{i}" for i in range(20))
