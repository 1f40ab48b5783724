"""Until when a policy decision stands: the first moment after its check at which a rule that reads the
clock could judge the same change otherwise. The merge that follows a decision is refused from then
on, and the workflow asks the policies again (workflows/promotion.py): a merge retried while the forge
blocks it, or made long after its check, cannot cross into a freeze the check did not see coming.

The policies stay the judge: this only says when to ask them again. Every moment a time-based rule
turns at counts (a freeze window's start and end, a weekly window's next start and end, a calendar
event's, an exception's expiry, a break-glass's start and end), whatever the environment or app, and
so does the edge of the horizon the calendars were expanded over: asking too early costs one more
check, asking too late would be the hole. A value that does not read as a time is skipped here; the
policies deny a window they cannot read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_AGE = timedelta(minutes=2)  # a decision is asked again at the latest this long after its check


def valid_until(
    data: dict[str, Any],
    calendar_windows: Iterable[Any],
    at: datetime,
    horizon: datetime | None,
    decided_at: datetime | None = None,
) -> datetime:
    """The first moment after `at` (the check's evaluation time) that a time-based rule of `data`
    (policies/data.yaml with its exceptions and break-glasses) or of `calendar_windows` turns at; MAX_AGE
    after the decision was made (`decided_at`, when later than `at`: a check that waited in a queue) at
    the latest: rules changed on main since, such as a freeze declared now, are read at the next check."""
    bound = max(at, decided_at or at) + MAX_AGE
    moments = [bound, *([horizon] if horizon is not None else [])]
    moments += _windows(data.get("freeze_windows"), at)
    moments += _windows(list(calendar_windows), at)
    exceptions = data.get("exceptions")
    for entry in exceptions.values() if isinstance(exceptions, dict) else ():
        if isinstance(entry, dict):
            moments += _times([entry.get("expires")])
    glasses = data.get("break_glass")
    for entry in glasses.values() if isinstance(glasses, dict) else ():
        if isinstance(entry, dict):
            moments += _times([entry.get("approved_at"), entry.get("until")])
    return min(m for m in moments if m > at)  # `bound` is one


def _windows(windows: Any, at: datetime) -> Iterator[datetime]:
    for w in windows if isinstance(windows, list) else ():
        if not isinstance(w, dict):
            continue
        weekly = w.get("weekly")
        if isinstance(weekly, dict):
            yield from _weekly(weekly, at)
        else:
            yield from _times([w.get("start"), w.get("end")])


def _weekly(weekly: dict[str, Any], at: datetime) -> Iterator[datetime]:
    """The next start and end (UTC) of a weekly window `{days, from, to}` after `at`."""
    from promoter.policy import WEEKDAYS

    days = weekly.get("days")
    wanted = {str(d).lower() for d in days} if isinstance(days, list) else set()
    for key in ("from", "to"):
        clock = _clock(weekly.get(key))
        if clock is None:
            continue
        for ahead in range(8):
            day = (at + timedelta(days=ahead)).date()
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + clock
            if WEEKDAYS[day.weekday()] in wanted and moment > at:
                yield moment
                break


def _clock(value: Any) -> timedelta | None:
    """`HH:MM` as the time of day it names."""
    text = str(value) if isinstance(value, str | int) else ""
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit()):
        return None
    return timedelta(hours=int(hours), minutes=int(minutes))


def _times(values: Iterable[Any]) -> Iterator[datetime]:
    """Each value that reads as a time; a date as both its first instant and the next day's (a rule may
    read it as either: both are asked at)."""
    from promoter.policy import _instant, _is_day, strict_time

    for value in values:
        text = strict_time(value)
        if text is not None:
            yield _instant(text)
            if _is_day(text):
                yield _instant(text, end=True)
