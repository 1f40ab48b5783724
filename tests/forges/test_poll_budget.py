"""The forge polling budget of the PR watchers (promoter.forges.http.PollBudget, activities/forge.py):
the pause between a watcher's polls grows with the number of watchers and with a low remaining limit
the forge's headers state, never below the poll setting; watchers sharing a budget stay within it on a
loopback GitHub (pytest-httpserver, its answers GitHub's own objects) over a short window; a watcher
heartbeats less often when many wait (1,000 waiting gates: 8 heartbeats a second, each well within the
heartbeat timeout); a watcher hands its watch back at once when its worker shuts down; and the worker's
workflow cache setting. The budget's own arithmetic is driven by a simulated clock; the watchers run for
real."""

from __future__ import annotations

import asyncio
import heapq
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from werkzeug import Request, Response

from activities.forge import ForgeActivities
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient, PollBudget, RateLimit, rate_limit
from promoter.models import WatchInput
from tests.support.openapi import github_objects as gh

TOKEN = "tok_0123456789abcdef"
SHA = "a" * 40


def periods(watchers: int, per_hour: float, floor_s: float, cost: int = 2, rounds: int = 6) -> list[float]:
    """Each watcher's seconds between its polls, simulated: it waits `floor_s` after a poll, then for
    its turn (the budget's clock is the simulation's)."""
    now = [0.0]
    budget = PollBudget(per_hour, floor_s, clock=lambda: now[0])
    ready = [(0.0, w, "ready") for w in range(watchers)]
    polls: dict[int, list[float]] = defaultdict(list)
    while ready:
        now[0], w, what = heapq.heappop(ready)
        if what == "ready":
            at, _ = budget.turn()
            heapq.heappush(ready, (at, w, "poll"))
        else:
            polls[w].append(now[0])
            budget.spent(cost)
            if len(polls[w]) < rounds:
                heapq.heappush(ready, (now[0] + floor_s, w, "ready"))
    return [b - a for times in polls.values() for a, b in zip(times[2:], times[3:], strict=False)]


def test_the_pause_grows_with_the_watchers_and_never_below_the_poll_setting() -> None:
    # GitHub's default: 4,000 requests an hour for the watchers, a poll of 2 requests every 15 s at most
    assert min(periods(1, 4000, 15)) >= 15 - 1e-9 and max(periods(1, 4000, 15)) == pytest.approx(15)
    assert min(periods(8, 4000, 15)) >= 15 - 1e-9  # 8 gates: 3,840 requests an hour, within the budget
    for watchers in (50, 200, 1000):
        seen = periods(watchers, 4000, 15, rounds=4)
        expected = watchers * 2 * 3600 / 4000  # 1,000 gates: each polls every 30 minutes
        assert min(seen) >= 15 - 1e-9 and sum(seen) / len(seen) == pytest.approx(expected, rel=0.05), watchers


def test_a_low_remaining_limit_slows_the_polls_until_the_window_resets() -> None:
    wall = [1_000_000_000.0]
    said: list[RateLimit | None] = [None]
    budget = PollBudget(36000, 1.0, rate=lambda: said[0], wall=lambda: wall[0])
    assert budget.spacing() == pytest.approx(0.1)  # the budget's pace: 10 requests a second
    said[0] = RateLimit(remaining=4999, reset_at=wall[0] + 3600, limit=5000)
    plenty = budget.spacing()  # GitHub's hour, a tenth of it kept for the promotions' own requests
    assert plenty == pytest.approx(3600 / 4499)
    said[0] = RateLimit(remaining=600, reset_at=wall[0] + 3600, limit=5000)
    assert budget.spacing() == pytest.approx(3600 / 100)  # 100 left above the tenth kept, for the hour
    _, epoch = budget.turn()
    said[0] = RateLimit(remaining=0, reset_at=wall[0] + 600, limit=5000)
    assert budget.spacing() == pytest.approx(600)  # spent: one request when the window resets
    wall[0] += 601  # the window reset: the pace is the budget's again, and the long turns are void
    assert budget.spacing() == pytest.approx(0.1) and budget.epoch != epoch


def test_the_rate_limit_headers_are_read_as_github_and_gitlab_send_them() -> None:
    github = rate_limit({"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1900000000", "x-ratelimit-limit": "5000"})
    assert github == RateLimit(12, 1900000000.0, 5000)
    gitlab = rate_limit({"ratelimit-remaining": "7", "ratelimit-reset": "1900000000", "ratelimit-limit": "2000"})
    assert gitlab == RateLimit(7, 1900000000.0, 2000)
    assert rate_limit({"x-ratelimit-remaining": "12"}) is None  # no reset: nothing to pace by


class GitHubPulls:
    """A loopback GitHub answering `GET /pulls/N` (an open PR at SHA) and its reviews (none), with the
    `X-RateLimit-*` headers GitHub sends; it records when each request of each PR came."""

    def __init__(self, httpserver: HTTPServer, remaining: int = 4999, reset_in: int = 3600) -> None:
        self.seen: dict[int, list[float]] = defaultdict(list)
        self.headers = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(time.time()) + reset_in),
            "X-RateLimit-Used": str(5000 - remaining),
            "X-RateLimit-Resource": "core",
        }
        httpserver.expect_request(re.compile(r"/repos/acme/gitops/pulls/\d+$"), "GET").respond_with_handler(self.pull)
        httpserver.expect_request(re.compile(r"/repos/acme/gitops/pulls/\d+/reviews$"), "GET").respond_with_handler(
            self.reviews
        )
        self.url = httpserver.url_for("/").rstrip("/")

    def pull(self, request: Request) -> Response:
        number = int(request.path.rsplit("/", 1)[1])
        self.seen[number].append(time.monotonic())
        return self._json(gh.pull_request(number, f"promote/app-{number}/prod/abc1234", SHA, body="b"))

    def reviews(self, request: Request) -> Response:
        return self._json([])

    def _json(self, payload: Any) -> Response:
        import json

        return Response(json.dumps(payload), 200, {**self.headers, "Content-Type": "application/json"})

    @property
    def requests(self) -> int:
        return 2 * sum(len(v) for v in self.seen.values())  # each poll: the PR, then its reviews

    def watcher(self, poll_s: float, per_hour: float | None) -> ForgeActivities:
        api = ApiClient("GitHub", self.url, f"Bearer {TOKEN}", scope_hint="repo")
        return ForgeActivities(
            GitHubForge("acme/gitops", TOKEN, client=api), repo=None, poll_seconds=poll_s, poll_budget=per_hour
        )  # type: ignore[arg-type]


async def watch_for(watcher: ForgeActivities, numbers: list[int], seconds: float) -> list[ActivityEnvironment]:
    """Run a watcher of each PR for `seconds` (none of them changes), then cancel them all."""
    envs = [ActivityEnvironment() for _ in numbers]
    tasks = [
        asyncio.create_task(env.run(watcher.watch_pull_request, WatchInput(number=n, head_sha=SHA)))
        for env, n in zip(envs, numbers, strict=True)
    ]
    done, _ = await asyncio.wait(tasks, timeout=seconds)
    assert not done, [t.exception() for t in done]  # nothing changed: every watcher still watches
    for env in envs:
        env.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return envs


def test_watchers_sharing_a_budget_stay_within_it(httpserver: HTTPServer) -> None:
    forge = GitHubPulls(httpserver, reset_in=1)  # GitHub's headers allow plenty: the budget binds
    per_hour = 14400.0  # 4 requests a second, shared by 20 watchers that would each poll every 0.05 s
    start = time.monotonic()
    asyncio.run(watch_for(forge.watcher(0.05, per_hour), list(range(1, 21)), 3.0))
    elapsed = time.monotonic() - start
    # a burst, then 2 requests per turn at the budget's pace (without it: thousands)
    assert forge.requests <= PollBudget.BURST + 4 + elapsed * per_hour / 3600, forge.requests
    assert len(forge.seen) >= 5  # first come, first served: the turns went round


def test_a_low_remaining_limit_slows_the_watchers(httpserver: HTTPServer) -> None:
    forge = GitHubPulls(httpserver, remaining=560)  # 60 left above the tenth kept: one request a minute
    asyncio.run(watch_for(forge.watcher(0.05, 36000.0), [1, 2, 3], 2.0))
    # the first turns went at the budget's pace before an answer said so; then one more, and a minute's pause
    # (the budget alone, 10 requests a second, would have let them send some 30)
    assert forge.requests <= 2 * 4, forge.requests


def test_a_watcher_polls_again_soon_after_the_forges_window_resets(httpserver: HTTPServer) -> None:
    forge = GitHubPulls(httpserver, remaining=0, reset_in=5)  # spent for 4 to 5 s: a turn then is 7 s or more away
    asyncio.run(watch_for(forge.watcher(0.05, 36000.0), [1], 6.0))
    assert len(forge.seen[1]) >= 3, forge.seen  # the turn taken while spent was voided when the window reset


def test_a_watcher_never_polls_faster_than_the_poll_setting(httpserver: HTTPServer) -> None:
    forge = GitHubPulls(httpserver, remaining=4999, reset_in=1)  # the headers' window ends at once
    asyncio.run(watch_for(forge.watcher(0.3, 3_600_000.0), [1], 2.0))  # a budget that never binds
    times = forge.seen[1]
    assert len(times) >= 3 and min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.29


def heartbeats_in(watcher: ForgeActivities, seconds: float) -> int:
    beats: list[Any] = []

    async def run() -> None:
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: beats.append(details)
        task = asyncio.create_task(env.run(watcher.watch_pull_request, WatchInput(number=1, head_sha=SHA)))
        await asyncio.wait([task], timeout=seconds)
        env.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    return len(beats)


def test_a_watcher_heartbeats_less_often_when_many_wait(httpserver: HTTPServer) -> None:
    forge = GitHubPulls(httpserver)
    alone = forge.watcher(60, None)
    many = forge.watcher(60, None)
    many.watching = 599  # with this one, 600 gates wait on this worker: one heartbeat per 75 s each
    assert heartbeats_in(alone, 2.5) >= 3  # after its poll, then every second while it waits
    assert heartbeats_in(many, 2.5) == 1  # after its poll only


def test_a_watcher_that_polls_often_heartbeats_only_when_due(httpserver: HTTPServer) -> None:
    """Its polls do not each send a heartbeat: 1,000 gates polled every 15 s sent 66 a second."""
    forge = GitHubPulls(httpserver)
    many = forge.watcher(0.1, None)  # polls every 0.1 s
    many.watching = 599  # with this one, 600 gates wait on this worker: one heartbeat per 75 s each
    assert heartbeats_in(many, 2.5) == 1  # after its first poll only
    assert len(forge.seen[1]) >= 5  # while it polled on


def test_a_forge_error_whose_text_changes_at_each_poll_is_news_once(httpserver: HTTPServer) -> None:
    """A rate-limited forge names another wait at each answer ("asks to wait 121s", "122s", ...): the
    error is news once, not at every poll."""
    asked = iter(range(121, 10_000))
    httpserver.expect_request(re.compile(r"/repos/acme/gitops/pulls/\d+$"), "GET").respond_with_handler(
        lambda request: Response(
            '{"message": "busy"}', 503, {"Retry-After": str(next(asked)), "Content-Type": "application/json"}
        )
    )
    many = GitHubPulls(httpserver).watcher(0.1, None)  # polls every 0.1 s, each answered 503
    many.watching = 599  # one heartbeat per 75 s each is due
    assert heartbeats_in(many, 2.5) == 1  # the error, once
    assert next(asked) > 125  # while it polled on, told another wait each time


class SlowPulls(GitHubPulls):
    """A GitHub whose every PR read takes `slow_s`; `begun` records when each read arrived."""

    def __init__(self, httpserver: HTTPServer, slow_s: float = 3.0) -> None:
        self.slow_s = slow_s
        self.begun: list[float] = []
        super().__init__(httpserver)

    def pull(self, request: Request) -> Response:
        self.begun.append(time.monotonic())
        time.sleep(self.slow_s)
        return super().pull(request)


def shut_down_once(watcher: ForgeActivities, ready: Callable[[], bool]) -> tuple[BaseException | None, float]:
    """Run `watcher`'s watch until `ready()`, shut its worker down: how the watch ended (None: it had not
    within 10 s) and the seconds it took after the shutdown."""

    async def run() -> tuple[BaseException | None, float]:
        env = ActivityEnvironment()
        task = asyncio.create_task(env.run(watcher.watch_pull_request, WatchInput(number=1, head_sha=SHA)))
        deadline = time.monotonic() + 10
        while not ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        env.worker_shutdown()
        asked = time.monotonic()
        done, _ = await asyncio.wait([task], timeout=10)
        took = time.monotonic() - asked
        env.cancel()
        return (task.exception() if done else None), took

    return asyncio.run(run())


def test_a_watcher_heartbeats_while_its_poll_is_slow(httpserver: HTTPServer) -> None:
    """A poll can take longer than the watch's heartbeat timeout (retries, a forge's Retry-After): the
    watcher's heartbeats go on meanwhile, as due (one a second, alone), or a live worker's watch would
    be timed out."""
    alone = SlowPulls(httpserver).watcher(60, None)
    assert 2 <= heartbeats_in(alone, 2.8) <= 3  # all within its first poll, which takes 3 s


def test_a_watcher_in_a_slow_poll_hands_its_watch_back_at_once_when_the_worker_shuts_down(
    httpserver: HTTPServer,
) -> None:
    forge = SlowPulls(httpserver, slow_s=8.0)
    ended, took = shut_down_once(forge.watcher(60, None), lambda: bool(forge.begun))  # its poll in the forge's hands
    assert isinstance(ended, ApplicationError) and ended.type == "WorkerShutdown", ended
    assert took < forge.slow_s - 2  # handed back while the poll still waits on the forge, not after it


def test_a_thousand_watchers_send_a_few_heartbeats_a_second_within_their_timeout() -> None:
    """Each heartbeat is a write on the server: 1,000 waiting gates of one worker send 8 a second
    (docs/benchmarks.md, "A thousand waiting gates"), each well within the watch step's heartbeat
    timeout, so a watcher on a loaded worker is not timed out while its worker lives."""
    from activities.forge import HEARTBEAT_EVERY_S, HEARTBEATS_PER_S
    from workflows.steps import WATCH_PULL_REQUEST

    low, high = HEARTBEAT_EVERY_S
    every = min(high, max(low, 1000 / HEARTBEATS_PER_S))
    assert 1000 / every <= 8.5, every
    assert WATCH_PULL_REQUEST.heartbeat is not None and WATCH_PULL_REQUEST.heartbeat.total_seconds() >= 2 * high


def test_a_watcher_hands_its_watch_back_at_once_when_the_worker_shuts_down(httpserver: HTTPServer) -> None:
    forge = GitHubPulls(httpserver)
    watcher = forge.watcher(300, None)  # its next poll is 5 minutes away
    ended, _ = shut_down_once(watcher, lambda: bool(forge.seen[1]))  # it polled once and waits
    assert isinstance(ended, ApplicationError), ended  # within seconds, not at the next poll
    assert ended.type == "WorkerShutdown" and not ended.non_retryable  # retried at once, by another worker


def test_the_budget_setting_reaches_the_watchers_and_a_bad_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from promoter.errors import BadInput
    from promoter.settings import Settings

    base = {"PROMOTER_FORGE": "github", "PROMOTER_FORGE_REPO": "acme/gitops", "PROMOTER_FORGE_TOKEN": TOKEN}
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    state = str(tmp_path)  # no stack here
    github = Settings.load(state).make_forge(None)  # type: ignore[arg-type]
    assert ForgeActivities(github, repo=None).budget.per_hour == 4000  # type: ignore[arg-type]  # the forge's own
    monkeypatch.setenv("PROMOTER_FORGE_POLL_BUDGET", "12000")
    assert ForgeActivities(Settings.load(state).make_forge(None), repo=None).budget.per_hour == 12000  # type: ignore[arg-type]
    for bad in ("0", "lots", "nan", "-5"):
        monkeypatch.setenv("PROMOTER_FORGE_POLL_BUDGET", bad)
        with pytest.raises(BadInput, match="PROMOTER_FORGE_POLL_BUDGET must be a number of requests an hour"):
            Settings.load(state)


def test_the_workflow_cache_setting_is_read_and_a_bad_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from promoter.errors import BadInput
    from promoter.settings import Settings

    assert Settings.load(str(tmp_path)).workflow_cache == 2000  # above the 1,000 gates a worker is sized for
    monkeypatch.setenv("PROMOTER_WORKFLOW_CACHE", "200")
    assert Settings.load(str(tmp_path)).workflow_cache == 200
    for bad in ("0", "lots", "-5", "1.5"):
        monkeypatch.setenv("PROMOTER_WORKFLOW_CACHE", bad)
        with pytest.raises(BadInput, match="PROMOTER_WORKFLOW_CACHE must be a number of workflows"):
            Settings.load(str(tmp_path))
