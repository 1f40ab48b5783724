"""The local forge's web pages, served by `promoter up`: the pull requests of the embedded stack, to
open, read and review like ones on a hosted forge.

- `/pulls`: every pull request, newest first: number, title, app, environment, state, labels.
- `/pulls/N`: its title, state, branch and commits, its body (the policy report and the audit, as
  markdown), the diff it makes, its reviews and comments, and a review form while it is open.
- `POST /pulls/N/reviews`: the form records a review exactly as `LocalForge.add_review` does, on the
  PR's current head, so the gate's PR watcher takes it in as it takes in a review on a hosted forge.

Every field is untrusted (PR bodies quote commit messages; names are whatever a person typed): text
is escaped, and markdown is rendered with raw HTML off and only safe link schemes.

The review form is a state change a browser can be tricked into sending, so a review is taken only
from the site's own pages:
- each PR page's form carries a token: an HMAC, keyed by a secret made when the site starts (held in
  memory only), over the PR's number and the time it was issued, valid for `TOKEN_TTL_S`; a review
  without the token of that PR's page, or with a tampered or expired one, is refused;
- a POST's `Origin` (or, without one, its `Referer`) must be the site's own origin: browsers send
  Origin on every form POST, so a request with neither is refused too;
- every request's `Host` must be the address the site is served on (a foreign name that resolves
  here, DNS rebinding, reads no page and posts no review);
- every response forbids framing (no clickjacking of the form) and MIME sniffing.
Refusals are 403 with one line of plain text, and record nothing.

The local forge does not authenticate: the reviewer is the name typed in the form, and the page says so.

    python -m promoter.forges.site --db forge.sqlite --origin origin.git --port 8234
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import re
import secrets
import sys
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import git
from markdown_it import MarkdownIt

from promoter.errors import NotFound
from promoter.forges.local import LocalForge
from promoter.httpserver import Server
from promoter.models import PullRequest

REVIEW_STATES = {"approved": "Approve", "changes_requested": "Request changes", "commented": "Comment only"}
MAX_FORM_BYTES = 64 * 1024
MAX_DIFF_CHARS = 400_000
# No script runs, whatever a body holds; the one inline <style> is the only resource; the form posts
# only here; no page may be framed (a framed form can be clicked through by a page laid over it).
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",  # a one-line text/plain refusal is never read as HTML
    "Referrer-Policy": "same-origin",  # links in PR bodies do not tell other sites the forge's address
}
TOKEN_TTL_S = 3600  # a page's form is good for an hour; after that, reloading the page gives a new one
CLOCK_SKEW_S = 60  # a token issued "in the future" by this much is still taken (the clock stepped back)
RELOAD = "this page's review form has expired or is not this page's: reload the page and send the review again"
_HEAD = re.compile(r"(?:promote|revert)/([a-z0-9-]+)/([a-z0-9-]+)/")
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 16px; color: #1f2328 }
header { border-bottom: 1px solid #d0d7de; padding: 12px 0; margin-bottom: 16px }
header a { color: inherit; text-decoration: none; font-weight: 600 }
table { border-collapse: collapse; width: 100% }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left }
.state { border-radius: 12px; padding: 2px 10px; color: #fff; font-weight: 600 }
.open { background: #1a7f37 } .merged { background: #8250df } .closed { background: #cf222e }
.approved { color: #1a7f37 } .changes_requested { color: #cf222e } .dismissed { color: #656d76 }
pre.diff { background: #f6f8fa; padding: 8px; overflow-x: auto } .add { color: #1a7f37 } .del { color: #cf222e }
.hunk { color: #0969da } .meta { color: #656d76 } .body { border: 1px solid #d0d7de; padding: 0 12px }
form label { display: block; margin: 6px 0 }
"""


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


class Refused(Exception):
    """A request the site answers with a status and one line (a bad form, an unknown PR)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ForgeSite:
    """The pages, rendered from the forge's records and the origin's commits.

    `url` is the address the site is served on (its origin for the Origin and Host checks); `clock`
    gives the time in seconds, for the forms' tokens (tests move it instead of waiting an hour)."""

    def __init__(self, forge: LocalForge, origin: Path, url: str, clock: Callable[[], float] = time.time) -> None:
        self.forge = forge
        self.origin = origin
        self.clock = clock
        # made afresh at every start and kept only here: never written to disk or logged, so a
        # restart voids the forms of the pages open before it (a reload gives new ones)
        self._secret = secrets.token_bytes(32)
        own = urllib.parse.urlsplit(url)
        self.scheme = own.scheme
        self.url = f"{own.scheme}://{own.netloc.lower()}"
        self.hosts = {own.netloc.lower()}  # the Host values a request for this site carries
        if own.hostname in ("127.0.0.1", "localhost"):
            # the same loopback address by its other usual name: no other site can be behind either
            port = f":{own.port}" if own.port else ""
            self.hosts |= {f"127.0.0.1{port}", f"localhost{port}"}

    # ------------------------------------------------------------------ cross-site checks

    def token(self, number: int) -> str:
        """The review form's token for PR `number`: its issue time and an HMAC over the number and that time."""
        issued = int(self.clock())
        return f"{issued}.{self._mac(number, issued)}"

    def token_refusal(self, number: int, token: str) -> str | None:
        """Why `token` is not a live token of PR `number`'s page, or None when it is."""
        issued_text, _, mac = token.partition(".")
        if not (issued_text.isascii() and issued_text.isdigit()) or len(issued_text) > 12:  # a time, not a huge int
            return RELOAD
        issued = int(issued_text)
        # bytes, compared in constant time (compare_digest refuses str that is not ASCII)
        if not hmac.compare_digest(mac.encode(), self._mac(number, issued).encode()):  # another PR's, or tampered
            return RELOAD
        age = self.clock() - issued
        if age > TOKEN_TTL_S or age < -CLOCK_SKEW_S:
            return RELOAD
        return None

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request with this Host is not for this site, or None when it is."""
        if host is None or host.lower() not in self.hosts:
            return f"refused: this forge answers only at its own address ({self.url}); open the page there"
        return None

    def origin_refusal(self, host: str, origin: str | None, referer: str | None) -> str | None:
        """Why a POST did not come from this site's own pages, or None when it did: its Origin (or,
        without one, its Referer's origin) must be this site's, the one its Host names."""
        if origin is None and referer is None:
            # a browser sends Origin with every form POST: with neither header this is no browser
            # submitting our form, and nothing else is meant to post here
            return "refused: a review is taken only from the forge's own page (no Origin or Referer was sent)"
        if origin is None:
            parts = urllib.parse.urlsplit(referer or "")
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin.lower() != f"{self.scheme}://{host.lower()}":  # "null" (a sandboxed frame, a file) too
            return "refused: a review is taken only from the forge's own page, not from another site's"
        return None

    def _mac(self, number: int, issued: int) -> str:
        return hmac.new(self._secret, f"review-form:{number}:{issued}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ pages

    def pulls_page(self) -> str:
        rows = []
        for pr in sorted(self.forge.list_pull_requests(), key=lambda p: p.number, reverse=True):
            app, env = _app_env(pr)
            labels = ", ".join(self.forge.labels(pr.number))
            rows.append(
                f'<tr><td><a href="/pulls/{pr.number}">#{pr.number}</a></td>'
                f'<td><a href="/pulls/{pr.number}">{escape(pr.title)}</a></td><td>{escape(app)}</td>'
                f'<td>{escape(env)}</td><td><span class="state {escape(pr.state)}">{escape(pr.state)}</span></td>'
                f"<td>{escape(labels)}</td></tr>"
            )
        table = (
            "<table><thead><tr><th>#</th><th>title</th><th>app</th><th>environment</th><th>state</th>"
            f"<th>labels</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            if rows
            else "<p>No pull requests yet: `promoter promote APP` opens them.</p>"
        )
        return self._page("Pull requests", f"<h1>Pull requests</h1>{table}")

    def pull_page(self, number: int, error: str = "") -> str:
        pr = self._pull(number)
        app, env = _app_env(pr)
        commits = f"<code>{escape(pr.head)}</code> → <code>{escape(pr.base)}</code>"
        if pr.head_sha:
            commits += f", head <code>{escape(pr.head_sha[:12])}</code>"
        if pr.merge_commit:
            commits += f", merged as <code>{escape(pr.merge_commit[:12])}</code>"
        labels = ", ".join(self.forge.labels(number))
        parts = [
            f'<h1>{escape(pr.title)} <span class="meta">#{number}</span></h1>',
            f'<p><span class="state {escape(pr.state)}">{escape(pr.state)}</span> {commits}</p>',
            f"<p>app <b>{escape(app)}</b>, environment <b>{escape(env)}</b>"
            + (f", labels {escape(labels)}" if labels else "")
            + "</p>",
            f'<h2>Description</h2><div class="body">{_MARKDOWN.render(pr.body)}</div>',
            f'<h2 id="files">Files changed</h2>{self._diff(pr)}',
            f'<h2 id="reviews">Reviews</h2>{self._reviews(number)}',
        ]
        comments = self.forge.comments(number)
        if comments:
            parts.append(
                "<h2>Comments</h2>" + "".join(f'<div class="body">{_MARKDOWN.render(c)}</div>' for c in comments)
            )
        if pr.state == "open":
            parts.append(self._form(number, error))
        elif error:
            parts.insert(2, _alert(error))
        return self._page(f"#{number} {pr.title}", "".join(parts))

    def review(self, number: int, raw: bytes) -> None:
        """Record the form's review; `Refused` with the line to show when the form is wrong. The
        form's token is checked first: a form that is not from this PR's page is looked at no further."""
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}
        refusal = self.token_refusal(number, form.get("token", ""))
        if refusal:
            raise Refused(HTTPStatus.FORBIDDEN, refusal)
        reviewer = " ".join(form.get("reviewer", "").split())
        state = form.get("state", "")
        body = form.get("body", "").strip()
        if not reviewer or len(reviewer) > 100:
            raise Refused(HTTPStatus.BAD_REQUEST, "a review needs the reviewer's name (at most 100 characters)")
        if state not in REVIEW_STATES:
            raise Refused(HTTPStatus.BAD_REQUEST, f"choose one of: {', '.join(REVIEW_STATES.values())}")
        if state == "changes_requested" and not body:
            raise Refused(HTTPStatus.BAD_REQUEST, "requesting changes needs a comment that says which")
        if self._pull(number).state != "open":
            raise Refused(HTTPStatus.CONFLICT, f"pull request #{number} is no longer open: it takes no reviews")
        self.forge.add_review(number, reviewer, state, body)

    # ------------------------------------------------------------------ parts

    def _pull(self, number: int) -> PullRequest:
        try:
            return self.forge.get_pull_request(number)
        except NotFound:
            raise Refused(HTTPStatus.NOT_FOUND, f"there is no pull request #{number}") from None

    def _diff(self, pr: PullRequest) -> str:
        repo = git.Repo(self.origin)
        try:
            if pr.merge_commit:
                text = repo.git.diff("--no-color", "--no-ext-diff", f"{pr.merge_commit}^1", pr.merge_commit, "--")
            else:
                text = repo.git.diff("--no-color", "--no-ext-diff", f"{pr.base}...{pr.head_sha or pr.head}", "--")
        except git.GitCommandError:
            return "<p>The commits of this pull request are no longer on the origin.</p>"
        finally:
            repo.close()
        if not text:
            return "<p>No changes.</p>"
        cut = len(text) > MAX_DIFF_CHARS
        lines = []
        for line in text[:MAX_DIFF_CHARS].splitlines():
            kind = (
                "meta"
                if line.startswith(("diff ", "index ", "+++ ", "--- "))
                else "hunk"
                if line.startswith("@@")
                else "add"
                if line.startswith("+")
                else "del"
                if line.startswith("-")
                else ""
            )
            lines.append(f'<span class="{kind}">{escape(line)}</span>' if kind else escape(line))
        more = f"<p>The diff is cut at {MAX_DIFF_CHARS:,} characters.</p>" if cut else ""
        return '<pre class="diff">' + "\n".join(lines) + "</pre>" + more

    def _reviews(self, number: int) -> str:
        rows = [
            f'<tr><td>{escape(r.author)}</td><td class="{escape(r.state)}">{escape(r.state)}</td>'
            f"<td>{escape(r.body)}</td><td><code>{escape((r.commit or '')[:12])}</code></td>"
            f"<td>{escape(r.at.strftime('%Y-%m-%d %H:%M:%S'))}Z</td></tr>"
            for r in self.forge.reviews(number)
        ]
        if not rows:
            return "<p>No reviews yet.</p>"
        return (
            "<table><thead><tr><th>reviewer</th><th>state</th><th>comment</th><th>on commit</th><th>at</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )

    def _form(self, number: int, error: str) -> str:
        choices = "".join(
            f'<label><input type="radio" name="state" value="{value}"{" checked" if value == "approved" else ""}>'
            f" {label}</label>"
            for value, label in REVIEW_STATES.items()
        )
        shown = _alert(error) if error else ""
        return (
            f'<h2>Review</h2>{shown}<p id="unauthenticated">The local forge does not authenticate:'
            " there is no sign-in, the name typed below is recorded as the reviewer as it is typed, and the"
            " review is marked unauthenticated.</p>"
            f'<form method="post" action="/pulls/{number}/reviews" aria-describedby="unauthenticated">'
            f'<input type="hidden" name="token" value="{escape(self.token(number))}">'
            '<label>Reviewer <input name="reviewer" required maxlength="100" autocomplete="username"></label>'
            f"{choices}"
            '<label>Comment<br><textarea name="body" rows="3" cols="80"></textarea></label>'
            '<button type="submit">Submit review</button></form>'
        )

    def _page(self, title: str, content: str) -> str:
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · local forge</title>'
            f"<style>{STYLE}</style></head><body><header>"
            f'<a href="/pulls">promoter · local forge</a> <span class="meta">{escape(self.origin)}</span>'
            f"</header>{content}</body></html>"
        )


def _alert(text: str) -> str:
    return f'<p class="changes_requested" role="alert">{escape(text)}</p>'


def _app_env(pr: PullRequest) -> tuple[str, str]:
    match = _HEAD.match(pr.head)
    return (match.group(1), match.group(2)) if match else ("", "")


class SiteHandler(BaseHTTPRequestHandler):
    """The forge site's pages and review form, for `site` (set on the class `handler` makes)."""

    site: ClassVar[ForgeSite]
    server_version = "promoter-forge"

    def do_GET(self) -> None:
        refusal = self.site.host_refusal(self._one("Host"))
        if refusal:
            return self._refuse(refusal)
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if path in ("", "/pulls"):
            return self._answer(self.site.pulls_page) if path else self._redirect("/pulls")
        number = _number(path, "")
        if number is None:
            return self._send(HTTPStatus.NOT_FOUND, self.site._page("Not found", "<p>No such page.</p>"))
        return self._answer(lambda: self.site.pull_page(number))

    def do_POST(self) -> None:
        number = _number(urllib.parse.urlsplit(self.path).path, "/reviews")
        given = (self.headers.get("Content-Length") or "0").strip()
        length = int(given) if given.isdigit() else MAX_FORM_BYTES + 1  # not a length: refused, never read
        if number is None or length > MAX_FORM_BYTES:
            return self._send(HTTPStatus.BAD_REQUEST, self.site._page("Bad request", "<p>Not a review form.</p>"))
        raw = self.rfile.read(length)  # read before any refusal: an unread body can reset the answer
        host = self._one("Host")
        refusal = self.site.host_refusal(host) or self.site.origin_refusal(
            host or "", self._one("Origin"), self._one("Referer")
        )
        if refusal:
            return self._refuse(refusal)
        try:
            self.site.review(number, raw)
        except Refused as e:
            if e.status == HTTPStatus.FORBIDDEN:
                return self._refuse(str(e))
            if e.status == HTTPStatus.NOT_FOUND:
                return self._send(e.status, self.site._page("Not found", f"<p>{escape(e)}</p>"))
            why = str(e)
            return self._answer(lambda: self.site.pull_page(number, why), e.status)
        return self._redirect(f"/pulls/{number}#reviews")

    def _answer(self, render: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        try:
            page = render()
        except Refused as e:
            return self._send(e.status, self.site._page("Not found", f"<p>{escape(e)}</p>"))
        self._send(status, page)

    def _send(self, status: HTTPStatus, page: str) -> None:
        data = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, line: str) -> None:
        """403 and one line of plain text: a cross-site request gets no page (and no new token)."""
        data = f"{line}\n".encode()
        self.send_response(HTTPStatus.FORBIDDEN)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def end_headers(self) -> None:
        # every response, the stdlib's own error pages (send_error) and redirects included
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def _one(self, name: str) -> str | None:
        """The header's value; None when it is missing or sent twice (which of two would count is
        ambiguous, so neither does)."""
        values = self.headers.get_all(name) or []
        return values[0].strip() if len(values) == 1 else None

    def _redirect(self, where: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"forge site: {format % args}\n")


def handler(site: ForgeSite) -> type[BaseHTTPRequestHandler]:
    """A handler class serving `site`: the stdlib server makes one handler per request from a class."""

    class Handler(SiteHandler):
        pass

    Handler.site = site
    return Handler


def _number(path: str, suffix: str) -> int | None:
    match = re.fullmatch(rf"/pulls/(\d{{1,9}}){re.escape(suffix)}", path)
    return int(match.group(1)) if match else None


def serve(
    db: Path,
    origin: Path,
    port: int,
    host: str = "127.0.0.1",
    web_url: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Server:
    """The site on `host:port`; `web_url` is the address browsers use for it (default: `http://host:port`)."""
    forge = LocalForge(None, db, str(origin), web_url=web_url)
    url = web_url or f"http://{f'[{host}]' if ':' in host else host}:{port}"
    return Server((host, port), handler(ForgeSite(forge, origin, url, clock)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m promoter.forges.site", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the local forge's records (forge.sqlite)")
    parser.add_argument("--origin", type=Path, required=True, help="the bare origin repository")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = serve(args.db, args.origin.resolve(), args.port, args.host, f"http://{args.host}:{args.port}")
    print(f"forge site on http://{args.host}:{args.port}/pulls", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
