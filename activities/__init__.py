"""Temporal activities: thin, idempotent wrappers around the adapters.

Each class receives its adapters in its constructor; the worker is the one place that builds them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import ActivityInboundInterceptor, ActivityOutboundInterceptor, ExecuteActivityInput, Interceptor

from promoter.errors import PermanentError, TemporaryError
from promoter.secrets import redact

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def classified_errors() -> Iterator[None]:
    """Permanent errors become non-retryable `ApplicationError`s named after their type; temporary
    ones retry under the caller's RetryPolicy; anything unexpected retries too. Every message that
    leaves here (into workflow history, the status and the logs) has its secrets masked."""
    try:
        yield
    except PermanentError as e:
        raise ApplicationError(redact(str(e)), type=type(e).__name__, non_retryable=True) from None
    except TemporaryError as e:
        raise ApplicationError(redact(str(e)), type="TemporaryError") from None
    except (ApplicationError, CancelledError):
        raise
    except Exception as e:  # noqa: BLE001 - unexpected: retried, under its own type name, its text masked
        raise ApplicationError(redact(f"{type(e).__name__}: {e}"), type=type(e).__name__) from None


def classified(fn: Callable[P, R]) -> Callable[P, R]:
    """`classified_errors` around a (synchronous) activity."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with classified_errors():
            return fn(*args, **kwargs)

    return wrapper


HEARTBEAT_EVERY = 1.0  # seconds between the ticker's heartbeats (the worker's throttle sends fewer)
SHUTDOWN_CHECK_EVERY = 0.2  # seconds between its looks at whether the worker cancelled the activity


FORWARD_EVERY = 0.5  # seconds: an activity's own heartbeats reach the SDK at most this often


class _Recorder(ActivityOutboundInterceptor):
    """Remembers the details of the activity's own last heartbeat, which the ticker sends again, and
    hands them to the SDK at most every `FORWARD_EVERY` seconds: each one it takes is a task, an
    encoding and a call into its core (a drift check of 5,000 apps heartbeats once per app: a second of
    CPU), while at most one per throttle interval reaches the server anyway."""

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        super().__init__(next)
        self.details: tuple[Any, ...] = ()
        self._forwarded = 0.0

    def heartbeat(self, *details: Any) -> None:
        self.details = details
        now = time.monotonic()
        if now - self._forwarded >= FORWARD_EVERY:
            self._forwarded = now
            super().heartbeat(*details)


class _Ticking(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self.recorder = _Recorder(outbound)
        super().init(self.recorder)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.is_local:
            return await super().execute_activity(input)
        if inspect.iscoroutinefunction(input.fn):  # it heartbeats itself; its task is cancelled at shutdown
            try:
                return await super().execute_activity(input)
            except (asyncio.CancelledError, CancelledError):
                if _shutting_down():
                    raise _handed_back() from None
                raise
        ticker = asyncio.create_task(self._tick(bool(info.heartbeat_timeout)), name=f"{info.activity_type} ticker")
        work = asyncio.ensure_future(super().execute_activity(input))
        try:
            await asyncio.wait({work, ticker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ticker.cancel()
        if not work.done():  # the worker shuts down and its graceful period is over: hand the work back now
            work.add_done_callback(_dropped)  # the thread ends as the SDK's cancel reaches it, or with the process
            raise _handed_back()
        try:
            return work.result()
        except (asyncio.CancelledError, CancelledError):
            if _shutting_down():
                raise _handed_back() from None
            raise

    async def _tick(self, heartbeats: bool) -> None:
        """Heartbeat from the event loop while the activity's thread works (when it has a heartbeat
        timeout): a thread blocked on git's push lock, a slow forge or a loaded thread pool still
        shows the worker alive, and a dead worker's activity times out after its short heartbeat
        timeout. Ends when the worker cancels the activity because it shuts down: a thread may not
        notice the cancel for a long time (blocked in a system call), and its work is handed back
        without waiting for it."""
        beat = time.monotonic()
        while not _shutting_down():
            await asyncio.sleep(SHUTDOWN_CHECK_EVERY)
            if heartbeats and time.monotonic() - beat >= HEARTBEAT_EVERY:
                beat = time.monotonic()
                self.recorder.heartbeat(*self.recorder.details)


def _shutting_down() -> bool:
    """Whether the activity was cancelled because its worker shuts down (not by its workflow)."""
    why = activity.cancellation_details()
    return activity.is_cancelled() and why is not None and why.worker_shutdown and not why.cancel_requested


def _dropped(work: asyncio.Future[Any]) -> None:
    if not work.cancelled():
        work.exception()  # retrieved: the work was handed back, its outcome goes nowhere


def _handed_back() -> ApplicationError:
    return ApplicationError(
        "the worker shut down before this activity ended; handed back to another worker", type="WorkerShutdown"
    )


class Heartbeats(Interceptor):
    """The worker's interceptor for ordinary activities: a thread activity with a heartbeat timeout
    heartbeats every `HEARTBEAT_EVERY` seconds from the event loop, not from the thread pool, so its
    timeout can be short without false alarms; and an activity cancelled because its worker shuts
    down (SIGTERM, after the graceful period) fails with a retryable `WorkerShutdown` error, so the
    server hands it to another worker at once instead of recording it cancelled."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Ticking(next)
