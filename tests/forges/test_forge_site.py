"""The local forge's web pages over real HTTP: the list, a PR's page (its body as markdown with every
untrusted field escaped, its diff), and the review form, which records a review exactly as the
forge's API does (on the PR's head) and refuses a wrong form with one line and nothing recorded.
A review is taken only as a browser sends it from the PR's own page: with that page's token and the
site's own Origin and Host; anything else (another site's form, a framed page, an old or forged
token, a foreign Host) is refused with 403 and records nothing. The clock the tokens are issued by is
the test's, so an expired token is an hour of the test's time, not of waiting.
Chromium opens these pages from the Temporal Web UI in tests/ui/test_web_ui.py."""

from __future__ import annotations

import concurrent.futures
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from promoter.forges.local import LocalForge
from promoter.forges.site import TOKEN_TTL_S, serve
from promoter.gitrepo import GitClone
from promoter.stack import free_port
from tests.support.gitops import Origin, branch_for
from tests.support.loopback import serving

HOSTILE = '<script>alert("pwned")</script> <img src=x onerror=alert(1)> [link](javascript:alert(1))'


class Clock:
    """The site's clock, which a test moves."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(origin: Origin, clock: Clock) -> Iterator[str]:
    port = free_port()
    server = serve(
        origin.path.parent / "forge.sqlite", origin.path, port, web_url=f"http://127.0.0.1:{port}", clock=clock
    )
    with serving(server):
        yield f"http://127.0.0.1:{port}"


SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


def get_full(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """(status, page, headers): urllib follows a redirect as a browser does."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def get(url: str) -> tuple[int, str]:
    status, page, _ = get_full(url)
    return status, page


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, page, where it was redirected): urllib follows a 303 with a GET, as a browser does.
    The form and headers are sent as given: no token, no Origin unless the test adds them."""
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), answer.url
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), url


def token_on(site: str, number: int) -> str:
    """The review form's token on PR `number`'s page, as a browser holds it."""
    status, page = get(f"{site}/pulls/{number}")
    assert status == 200
    match = re.search(r'<input type="hidden" name="token" value="([^"]+)">', page)
    assert match, "the PR's page has no review form with a token"
    return match.group(1)


def post_from_page(site: str, number: int, form: dict[str, str], token: str | None = None) -> tuple[int, str, str]:
    """The review form sent as a browser sends it from the PR's page: with that page's token (or the
    one given), the site's Origin and the page as Referer."""
    page = f"{site}/pulls/{number}"
    headers = {"Origin": origin_of(site), "Referer": page}
    return post(f"{page}/reviews", {**form, "token": token or token_on(site, number)}, headers)


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
    # beside the form: the local forge does not authenticate, and says what is recorded
    form_part = page.split("<h2>Review</h2>", 1)[1]
    assert "The local forge does not authenticate" in form_part.split("<form", 1)[0]
    assert "the name typed below is recorded as the reviewer" in form_part and "marked unauthenticated" in form_part


def test_the_review_form_records_a_review_as_the_api_does(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.7.1"), "title", "body")
    status, page, where = post_from_page(site, pr.number, {"reviewer": " sue ", "state": "approved", "body": "ship it"})
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
    status, page, _ = post_from_page(site, pr.number, form)
    assert status == 400 and said in page and 'role="alert"' in page
    assert forge.reviews(pr.number) == []


def test_closed_and_unknown_pull_requests_take_no_review(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.7.3"), "title", "body")
    token = token_on(site, pr.number)  # the page was open in a browser when the PR was closed
    forge.close(pr.number, "Rejected by bob via cli: no")
    status, page, _ = post_from_page(site, pr.number, {"reviewer": "sue", "state": "approved"}, token)
    assert status == 409 and "is no longer open" in page and forge.reviews(pr.number) == []
    assert "Rejected by bob via cli: no" in page and 'name="reviewer"' not in page  # closed: no form
    # no page of #999 ever gave a form: whatever token is sent, it is not that page's
    assert post_from_page(site, 999, {"reviewer": "sue", "state": "approved"}, token)[0] == 403
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
            pool.map(lambda i: post_from_page(site, pr.number, {"reviewer": f"r{i}", "state": "commented"}), range(20))
        )
    assert [a[0] for a in answers] == [200] * 20
    assert sorted(r.author for r in forge.reviews(pr.number)) == sorted(f"r{i}" for i in range(20))


def test_a_review_from_the_page_is_taken_within_the_hour_and_by_its_referer_when_no_origin_is_sent(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str, clock: Clock
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.8.0"), "title", "body")
    token = token_on(site, pr.number)
    clock.now += TOKEN_TTL_S - 1  # the page stayed open most of an hour
    page = f"{site}/pulls/{pr.number}"
    form = {"reviewer": "sue", "state": "approved", "token": token}
    status, _, where = post(f"{page}/reviews", form, {"Referer": page})  # a browser that sent no Origin
    assert status == 200 and where.endswith(f"/pulls/{pr.number}#reviews")
    # the same machine by its other loopback name is the same site
    local = site.replace("127.0.0.1", "localhost")
    form = {"reviewer": "tom", "state": "commented", "token": token_on(local, pr.number)}
    assert post(f"{local}/pulls/{pr.number}/reviews", form, {"Origin": origin_of(local)})[0] == 200
    assert [r.author for r in forge.reviews(pr.number)] == ["sue", "tom"]


@pytest.mark.parametrize(
    "attack",
    [
        "no token",
        "another PR's token",
        "a tampered token",
        "a token with a later issue time",
        "an expired token",
        "another site's Origin",
        "an Origin of null",
        "another site's Referer and no Origin",
        "neither Origin nor Referer",
        "a foreign Host",
    ],
)
def test_a_review_not_sent_from_the_prs_own_page_is_refused_and_records_nothing(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str, clock: Clock, attack: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.8.1"), "title", "body")
    other = forge.open_pull_request(branch_for(origin, clone, tag="2.8.2"), "other", "body")
    token = token_on(site, pr.number)
    issued, mac = token.split(".")
    url = f"{site}/pulls/{pr.number}/reviews"
    form = {"reviewer": "mallory", "state": "approved", "token": token}
    own = {"Origin": origin_of(site), "Referer": f"{site}/pulls/{pr.number}"}
    assert post(url, form, own)[0] == 200  # unspoiled, this request is taken: each case spoils one thing
    if attack == "no token":
        del form["token"]
        headers = own
    elif attack == "another PR's token":
        form["token"] = token_on(site, other.number)
        headers = own
    elif attack == "a tampered token":
        form["token"] = f"{issued}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}"
        headers = own
    elif attack == "a token with a later issue time":  # its life stretched: its MAC no longer matches
        form["token"] = f"{int(issued) + TOKEN_TTL_S}.{mac}"
        headers = own
    elif attack == "an expired token":
        clock.now += TOKEN_TTL_S + 1
        headers = own
    elif attack == "another site's Origin":
        headers = {"Origin": "http://evil.example", "Referer": "http://evil.example/form.html"}
    elif attack == "an Origin of null":  # a sandboxed frame or a file:// page
        headers = {"Origin": "null"}
    elif attack == "another site's Referer and no Origin":
        headers = {"Referer": "http://evil.example/form.html"}
    elif attack == "neither Origin nor Referer":
        headers = {}
    elif attack == "a foreign Host":  # DNS rebinding: evil.example resolves to 127.0.0.1, and is its own origin
        port = urllib.parse.urlsplit(site).port
        headers = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    else:
        raise AssertionError(attack)
    before = [(r.author, r.at) for r in forge.reviews(pr.number)]
    status, text, _ = post(url, form, headers)
    assert status == 403, (attack, status, text)
    assert len(text.strip().splitlines()) == 1 and text.startswith(("refused", "this page's review form"))
    if "token" in attack:
        assert "reload the page" in text
    assert [(r.author, r.at) for r in forge.reviews(pr.number)] == before  # nothing recorded
    assert forge.reviews(other.number) == []


def test_a_review_naming_two_origins_is_refused(origin: Origin, clone: GitClone, forge: LocalForge, site: str) -> None:
    """Which of two Origin headers would count is ambiguous, so neither does (urllib sends a header
    once: the request is written by hand)."""
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.8.4"), "title", "body")
    host = urllib.parse.urlsplit(site).netloc
    body = urllib.parse.urlencode({"reviewer": "mallory", "state": "approved", "token": token_on(site, pr.number)})
    head = [f"POST /pulls/{pr.number}/reviews HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += ["Origin: http://evil.example", f"Origin: {origin_of(site)}"]
    status, _ = raw(site, "\r\n".join(head) + "\r\n\r\n" + body)
    assert status.startswith("HTTP/1.0 403") and forge.reviews(pr.number) == []


def raw(site: str, request: str) -> tuple[str, str]:
    """(status line and headers, body) of a request written by hand, read to the end (HTTP/1.0 closes)."""
    hostname, port = urllib.parse.urlsplit(site).netloc.split(":")
    with socket.create_connection((hostname, int(port)), timeout=10) as conn:
        conn.sendall(request.encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    return head, body


def test_every_response_forbids_framing_and_sniffing(
    origin: Origin, clone: GitClone, forge: LocalForge, site: str
) -> None:
    pr = forge.open_pull_request(branch_for(origin, clone, tag="2.8.3"), "title", "body")
    port = urllib.parse.urlsplit(site).port
    answers = {
        "the list": get_full(f"{site}/pulls"),
        "a PR's page": get_full(f"{site}/pulls/{pr.number}"),
        "an unknown PR": get_full(f"{site}/pulls/999"),
        "no such page": get_full(f"{site}/nothing"),
        "a foreign Host": get_full(f"{site}/pulls/{pr.number}", {"Host": f"evil.example:{port}"}),
    }
    assert [status for status, _, _ in answers.values()] == [200, 200, 404, 404, 403]
    assert "title" not in answers["a foreign Host"][1]  # a rebound name reads no page (nor its token)
    for what, (_, _, headers) in answers.items():
        csp = headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, what
        assert "default-src 'none'" in csp and "form-action 'self'" in csp and "script-src" not in csp, what
        assert {k: headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, what
    # a refused POST, a wrong form, the redirect after a review, and the stdlib's own error page
    own = urllib.parse.urlsplit(site).netloc
    review = urllib.parse.urlencode({"reviewer": "sue", "state": "commented", "token": token_on(site, pr.number)})
    checks = [
        (f"POST /pulls/{pr.number}/reviews HTTP/1.1\r\nHost: {own}\r\nContent-Length: 0\r\n\r\n", 403),
        (f"POST /pulls/{pr.number}/reviews HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (
            f"POST /pulls/{pr.number}/reviews HTTP/1.1\r\nHost: {own}\r\nOrigin: {site}\r\n"
            f"Content-Length: {len(review)}\r\n\r\n{review}",
            303,
        ),
        (f"PUT /pulls HTTP/1.1\r\nHost: {own}\r\nContent-Length: 0\r\n\r\n", 501),
    ]
    for request, status in checks:
        head, _ = raw(site, request)
        assert head.split("\r\n")[0].split()[1] == str(status), request
        assert "frame-ancestors 'none'" in head and "X-Frame-Options: DENY" in head, request
        assert "X-Content-Type-Options: nosniff" in head, request
    assert [r.author for r in forge.reviews(pr.number)] == ["sue"]  # the one review sent from the page
