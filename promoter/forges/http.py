"""The HTTP side of the hosted forges: one client that sorts every error once, retries what is worth
retrying with backoff that honours the forge's own hints, follows pagination, and revalidates GETs
with ETags so that polling a waiting gate costs (almost) nothing of the API budget.

The token is only ever put in the Authorization header, and only of requests to the API's origin
(scheme, host and port of `base_url`): a next page elsewhere is refused. It is never part of a URL, a log line or an
exception: messages name the method, the path and the forge's own message.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3

from promoter.errors import BadInput, Conflict, NotFound, PermanentError, TemporaryError

log = logging.getLogger("promoter.forges.http")
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
_SENT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("promoter_forge_requests", default=None)
# what each request runs under, its answer read whole: the worker holds the SDK's thread cancel back
# (as promoter.cluster.resources.CALL_GUARD: one raised inside urllib3's pool lock leaves it taken)
REQUEST_GUARD: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext


_BEFORE: contextvars.ContextVar[float | None] = contextvars.ContextVar("promoter_forge_send_before", default=None)


class PastDeadline(TemporaryError):
    """A request this context did not send: its deadline (`sent_before`) had passed, or would pass
    during the wait the forge asked for first."""


@contextlib.contextmanager
def sent_before(seconds: float | None) -> Iterator[None]:
    """No request of this context (a thread, a task) is sent, or sent again after a wait, once `seconds`
    from now have passed: `PastDeadline` instead (None: no deadline). A merge judged by a decision that
    stands until a freeze begins must not land inside it after a `Retry-After` or a "checking" wait."""
    token = _BEFORE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _BEFORE.reset(token)


def _before(label: str, wait: float = 0.0) -> None:
    """`PastDeadline` when this context's deadline has passed, or will have after `wait` seconds."""
    before = _BEFORE.get()
    if before is not None and time.monotonic() + wait >= before:
        raise PastDeadline(f"{label}: not sent, its deadline passes first")


class Unauthorized(PermanentError):
    """401/403 that no retry will fix: a bad token or a missing scope or permission."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status  # the forge's answer, 401 or 403 (a caller may know better what it means)


class Blocked(TemporaryError):
    """A merge that branch protection or a required check holds back: retried until it passes or the
    merge step's deadline ends the stage with this message."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any
    cached: bool = False  # a 304: the body and headers are the ones cached with the ETag

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@contextlib.contextmanager
def counting() -> Iterator[list[int]]:
    """Count the requests this context (a thread, a task) sends: `with counting() as sent: ...; sent[0]`."""
    sent = [0]
    token = _SENT.set(sent)
    try:
        yield sent
    finally:
        _SENT.reset(token)


@dataclass(frozen=True)
class RateLimit:
    """What a forge's last answer said of the token's rate limit: GitHub's `X-RateLimit-Remaining`,
    `-Reset` (epoch seconds) and `-Limit`, GitLab's `RateLimit-Remaining`, `-Reset` (epoch) and `-Limit`."""

    remaining: int
    reset_at: float  # epoch seconds
    limit: int = 0  # 0: not said


def rate_limit(headers: dict[str, str]) -> RateLimit | None:
    """The rate limit an answer's headers (lower-cased names) state; None when they state none."""
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining, reset = headers.get(prefix + "remaining", ""), headers.get(prefix + "reset", "")
        if remaining.isdigit() and reset.isdigit():
            value = float(reset)
            limit = headers.get(prefix + "limit", "")
            at = value if value > 1e9 else time.time() + value  # epoch (GitHub, GitLab), or seconds from now
            return RateLimit(int(remaining), at, int(limit) if limit.isdigit() else 0)
    return None


class PollBudget:
    """The requests an hour the PR watchers of one worker may spend on one forge token, shared by them.

    A watcher waits `floor_s` (PROMOTER_REVIEW_POLL) after its last poll, then for its turn: turns are
    handed out first come, first served, spaced so that the polls stay within `per_hour` requests (each
    poll's cost learnt from the requests it sent), and further apart while the forge's rate-limit headers
    say that less remains before the limit resets than that pace would spend (a tenth of the limit is
    kept for the promotions' own requests: opening, merging). So N waiting watchers each poll about every
    max(floor_s, N x cost x 3600 / per_hour) seconds, never faster than floor_s. When the forge's window
    resets, the turns handed out while it was short are handed out again (`epoch` changes). `per_hour`
    None: no budget (the local forge), each watcher polls every floor_s."""

    BURST = 10  # requests that may go at once after a quiet spell (a few gates starting to wait)

    def __init__(
        self,
        per_hour: float | None,
        floor_s: float,
        rate: Callable[[], RateLimit | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.per_hour = per_hour
        self.floor_s = floor_s
        self.rate = rate
        self.clock, self.wall = clock, wall
        self.cost = 2.0  # requests per poll (a PR read and a reviews read), learnt from the polls
        self.epoch = 0  # changes when the turns handed out are void (the forge's limit reset)
        self._next = 0.0  # the clock's time from which the next turn may begin
        self._short = False  # the last pace was the headers' (less remained than the budget's pace would spend)
        self._lock = threading.Lock()

    def spacing(self) -> float:
        """Seconds of the budget one request takes: the budget's pace, or the headers' when slower."""
        with self._lock:
            return self._spacing()

    def _spacing(self) -> float:
        pace = 3600.0 / self.per_hour if self.per_hour else 0.0
        seen, now = self.rate(), self.wall()
        short = False
        if seen is not None and seen.reset_at > now:
            kept = max(100, seen.limit // 10)  # left for the promotions' own requests
            hint = (seen.reset_at - now) / max(seen.remaining - kept, 1)
            pace, short = max(pace, hint), hint > pace
        if self._short and not short:  # the window reset (or more remains): the long turns are void
            self._next = min(self._next, self.clock())
            self.epoch += 1
        self._short = short
        return pace

    def refresh(self) -> int:
        """The epoch, once the forge's latest headers are taken in (a reset window voids the turns)."""
        with self._lock:
            self._spacing()
            return self.epoch

    def turn(self) -> tuple[float, int]:
        """Take the next turn to poll: the clock's time it begins (now, or later when the budget is
        spent), and the epoch it belongs to (a turn of an older epoch is taken again)."""
        with self._lock:
            spacing = self._spacing()
            now = self.clock()
            burst = self.BURST * 3600.0 / self.per_hour if self.per_hour else 0.0  # at the budget's pace
            at = max(now, self._next - burst)
            self._next = max(self._next, at) + self.cost * spacing
            return at, self.epoch

    def spent(self, requests: int) -> None:
        """A poll sent `requests`: the turns after it make up for what it cost beyond the estimate, and
        the estimate follows."""
        with self._lock:
            self._next += (requests - self.cost) * self._spacing()
            self.cost = max(1.0, 0.8 * self.cost + 0.2 * requests)


@dataclass
class ApiClient:
    """A JSON API at `base_url` with `auth_header` as its credentials (e.g. `Bearer <token>`)."""

    name: str  # "GitHub", "GitLab", "Gitea": for messages
    base_url: str
    auth_header: str = field(repr=False)
    attempts: int = 5
    max_wait_s: float = 60.0  # a hint to wait longer than this is left to the activity's retry policy
    sleep: Callable[[float], None] = time.sleep
    timeout_s: float = 30.0
    scope_hint: str = ""  # what the token needs, for 401/403 messages
    _pool: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False), repr=False)
    _etags: dict[str, tuple[str, Any, dict[str, str]]] = field(default_factory=dict, repr=False)
    calls: int = 0  # requests sent (tests and metrics read it)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (e.g. an API version)
    page_size_param: str = "per_page"  # the forge's name for a page's size (GitHub, GitLab; Gitea: limit)
    rate: RateLimit | None = None  # the token's rate limit as the latest answer that stated it said

    def url(self, path: str) -> str:
        """The URL of an API path; an absolute URL (a `Link` header's next page) only on the forge's
        own origin, else `BadInput`: the request would carry the token to whoever the answer named."""
        if not path.startswith(("http://", "https://")):
            return self.base_url.rstrip("/") + path
        there, home = _origin(path), _origin(self.base_url)
        # the host the request would be sent to (urllib3 parses it, not urlsplit) must be the one
        # compared, and a URL the two parsers may read differently (userinfo, `\`, spaces) is refused
        sent = urllib3.util.parse_url(path)
        if (there, _origin(f"{sent.scheme}://{sent.netloc}")) != (home, home) or any(c in path for c in "\\@ \t\r\n"):
            raise BadInput(
                f"{self.name} named a URL on {there} (a next page), not on its API's origin {home}: "
                "refused, the token is sent to the forge alone"
            )
        return path

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None, what: str = ""
    ) -> Response:
        """Send once or a few times; returns a 2xx (or a 304 turned into the cached 200) or raises
        a sorted error: Unauthorized, NotFound, Conflict, Blocked, BadInput or TemporaryError."""
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(
                {k: v for k, v in params.items() if v is not None}
            )
        headers = {
            "Authorization": self.auth_header,
            "Accept": "application/json",
            "User-Agent": "promoter",
            "Content-Type": "application/json",
            **self.headers,
        }
        cached = self._etags.get(url) if method == "GET" else None
        if cached:
            headers["If-None-Match"] = cached[0]
        data = json.dumps(body).encode() if body is not None else None
        label = f"{self.name} {method} {urllib3.util.parse_url(url).path}"
        last = ""
        for attempt in range(1, self.attempts + 1):
            _before(label)
            try:
                with REQUEST_GUARD():
                    raw = self._pool.request(
                        method, url, body=data, headers=headers, timeout=self.timeout_s, redirect=False
                    )
            except urllib3.exceptions.HTTPError as e:  # refused, reset, timed out: the network
                last = f"{label}: {type(e).__name__}"
                self._pause(attempt, None, label)
                continue
            finally:
                self.calls += 1
                if (sent := _SENT.get()) is not None:
                    sent[0] += 1
            resp = Response(raw.status, {k.lower(): v for k, v in raw.headers.items()}, _json(raw.data))
            self.rate = rate_limit(resp.headers) or self.rate  # a 304's own headers: the cached ones are old
            if resp.status == 304 and cached:
                return Response(200, cached[2], cached[1], cached=True)
            if 200 <= resp.status < 300:
                if method == "GET" and resp.header("etag"):
                    self._etags[url] = (resp.header("etag"), resp.body, resp.headers)
                return resp
            limited = self._limited(resp)
            if limited or resp.status in (500, 502, 503, 504):  # wait as told (or back off), then again
                last = f"{label} answered {resp.status}{_message(resp)}"
                wait = self._retry_after(resp, limited)
                if wait is not None and wait > self.max_wait_s:
                    raise TemporaryError(f"{last}; the forge asks to wait {wait:.0f}s, retrying later")
                self._pause(attempt, wait, label)
                continue
            raise self._sorted(resp, label, what)
        raise TemporaryError(f"{last} (gave up after {self.attempts} attempts)")

    def paginate(self, path: str, params: dict[str, Any] | None = None, what: str = "") -> Iterator[Any]:
        """Every item of a paginated list, following `Link: <…>; rel="next"` (GitHub, Gitea, GitLab), only
        to the forge's own origin (`url` refuses any other before a request is made).

        A page answered `304 Not Modified` comes with the `Link` cached beside it, which is as old as
        the page: a last page that was full then names no next page even when items were added after
        it since (a forge's ETag covers the body, not the `Link`). So after a non-empty last page that
        came from the cache, the next page is asked for too: empty (itself a 304 from then on, which
        GitHub does not count against the rate limit), or the items added since."""
        url: str | None = path
        query: dict[str, Any] = {self.page_size_param: 100, **(params or {})}
        while url:
            resp = self.request("GET", url, params=query, what=what)
            items = resp.body or []
            yield from items
            match = _NEXT.search(resp.header("link"))
            if match:
                url, query = match.group(1), {}
            elif resp.cached and items:
                url, query = _page_after(url, query), {}
            else:
                url = None

    # ---------------------------------------------------------------- sorting

    @staticmethod
    def _limited(resp: Response) -> bool:
        """A primary or secondary rate limit (429, or GitHub's 403 with the limit spent or named)."""
        return resp.status == 429 or (
            resp.status == 403
            and (resp.header("x-ratelimit-remaining") == "0" or "rate limit" in _message(resp).lower())
        )

    @staticmethod
    def _retry_after(resp: Response, limited: bool) -> float | None:
        """Seconds the forge asks to wait before trying again; None: no hint, back off."""
        hint = resp.header("retry-after")
        if hint:
            try:
                return max(0.0, float(hint))
            except ValueError:
                try:
                    return max(0.0, parsedate_to_datetime(hint).timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
        reset = resp.header("x-ratelimit-reset") or resp.header("ratelimit-reset")
        if limited and reset.isdigit():
            value = float(reset)
            return max(0.0, value - time.time()) if value > 1e9 else value  # epoch (GitHub) or seconds
        return 60.0 if limited else None  # a secondary limit with no hint: GitHub asks for a minute

    def _pause(self, attempt: int, hint: float | None, label: str) -> None:
        if attempt >= self.attempts:
            return
        wait = hint or min(8.0, 0.25 * 2 ** (attempt - 1))  # no (or a zero) hint: exponential backoff
        log.info("%s: retrying in %.2fs (attempt %d of %d)", label, wait, attempt + 1, self.attempts)
        self.wait(wait, label)

    def wait(self, seconds: float, label: str) -> None:
        """Wait before asking again; `PastDeadline` at once when the wait would end past this context's
        deadline (`sent_before`)."""
        _before(label, seconds)
        self.sleep(seconds)

    def _sorted(self, resp: Response, label: str, what: str) -> PermanentError:
        message = _message(resp)
        subject = f" ({what})" if what else ""
        if resp.status == 401:
            return Unauthorized(
                f"{label}{subject} answered 401{message}: the token is missing, invalid or "
                f"expired; set PROMOTER_FORGE_TOKEN (or _FILE) to a valid token{self._needs()}",
                401,
            )
        if resp.status == 403:
            return Unauthorized(
                f"{label}{subject} answered 403{message}: the token lacks a permission{_scopes(resp)}{self._needs()}",
                403,
            )
        if resp.status == 404:
            return NotFound(
                f"{label} answered 404: {what or 'the resource'} was not found (or the token cannot see it){message}"
            )
        if resp.status in (405, 406, 409, 422):  # 405: "not mergeable" (GitHub, GitLab), 406: GitLab conflicts
            return Conflict(f"{label}{subject} answered {resp.status}{message}")
        return BadInput(f"{label}{subject} answered {resp.status}{message}")

    def _needs(self) -> str:
        return f"; it needs {self.scope_hint}" if self.scope_hint else ""


def _origin(url: str) -> str:
    """A URL's origin, `scheme://host:port` (the scheme's default port when none is written), as
    browsers compare origins; a port that is not a number is `?`."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port: int | str | None = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = "?"
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _page_after(url: str, query: dict[str, Any]) -> str | None:
    """The URL of the page after the one `url` and `query` asked for (`page`, 1 when unnamed); None
    when the list is not paged by number."""
    parts = urllib.parse.urlsplit(url)
    merged = {**dict(urllib.parse.parse_qsl(parts.query)), **{k: str(v) for k, v in query.items() if v is not None}}
    page = merged.get("page", "1")
    if not page.isdigit():
        return None
    merged["page"] = str(int(page) + 1)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(merged)))


def _json(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")[:500]


def _message(resp: Response) -> str:
    body = resp.body
    text = ""
    if isinstance(body, dict):
        text = str(body.get("message") or body.get("error") or "")
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            details = [e.get("message") or e.get("code") or "" if isinstance(e, dict) else str(e) for e in errors]
            text += " (" + "; ".join(d for d in details if d) + ")"
    elif isinstance(body, str):
        text = body.strip().splitlines()[0] if body.strip() else ""
    return f": {text}" if text else ""


def _scopes(resp: Response) -> str:
    """GitHub says what was needed: classic tokens in X-Accepted-OAuth-Scopes, fine-grained tokens and
    Apps in X-Accepted-GitHub-Permissions."""
    needed = resp.header("x-accepted-github-permissions") or resp.header("x-accepted-oauth-scopes")
    has = resp.header("x-oauth-scopes")
    out = f" (needs {needed}" if needed else ""
    if has:
        out += ("; " if out else " (") + f"the token has {has}"
    return out + ")" if out else ""
