"""Temporal activities: thin, idempotent wrappers around the adapters.

Each class receives its adapters in its constructor; the worker is the one place that builds them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError, CancelledError

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
