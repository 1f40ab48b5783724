"""Change calendars: freeze windows from iCalendar files in the repository.

`policies/data.yaml` names them beside `freeze_windows`:

    freeze_calendars:
      - {file: calendars/change-freeze.ics, environments: [prod]}

`file` is a path under `policies/`, so the calendar is read with the policies, at the trusted rules
revision (a calendar pushed unsigned to main changes nothing while a trust root is set). Each check
expands every calendar's events (RRULE, RDATE, EXDATE, time zones, by `recurring-ical-events`) over a
bounded horizon around its own evaluation time, and hands them to the policies as dated windows
(`input.calendar_windows`: name = the event's SUMMARY, start and end in UTC, the calendar's file):
`policies/promotion/freeze.rego` judges them as it judges `freeze_windows`. A calendar that cannot be
read fails closed, with one line naming its file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from promoter.errors import BadInput

BEFORE = timedelta(days=1)  # the horizon expanded around a check's time: a day before it
AFTER = timedelta(days=7)  # and a week after (what `policy check` shows as coming)
MAX_WINDOWS = 2000  # events a calendar may have in that horizon: more is refused, not cut
MAX_BYTES = 1_000_000
_FIELDS = ("file", "environments")


@dataclass(frozen=True)
class Calendar:
    """One `freeze_calendars` entry: its file (as `policies/...`), the environments it freezes (None:
    every one), and the parsed calendar."""

    file: str
    environments: tuple[str, ...] | None
    calendar: Any  # icalendar.Calendar


def load(entries: Any, files: dict[str, str], where: str) -> tuple[Calendar, ...]:
    """`freeze_calendars` of a data file, each calendar read from `files` (paths under policies/ →
    text); bad input naming the entry or the file and the problem."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise BadInput(f"{where}: freeze_calendars is not a list of {{file, environments}} entries")
    found = []
    for i, entry in enumerate(entries):
        at = f"{where}: freeze_calendars[{i}]"
        if not isinstance(entry, dict):
            raise BadInput(f"{at} is not a mapping of file and environments")
        for key in entry:
            if key not in _FIELDS:
                raise BadInput(f"{at}: {key!r} is not a field of a calendar (file, environments)")
        path = entry.get("file")
        if not isinstance(path, str) or not path.strip():
            raise BadInput(f"{at}: file is required (an .ics file under policies/, e.g. calendars/freeze.ics)")
        if path.startswith("/") or ".." in path.split("/") or not path.endswith(".ics"):
            raise BadInput(f"{at}: file {path!r} is not an .ics path under policies/ (e.g. calendars/freeze.ics)")
        envs = entry.get("environments")
        if envs is not None and not (isinstance(envs, list) and all(isinstance(e, str) for e in envs)):
            raise BadInput(f"{at}: environments is not a list of environment names")
        if path not in files:
            raise BadInput(f"policies/{path} (named by {at}) does not exist at this revision; add it or fix the path")
        found.append(Calendar(f"policies/{path}", None if envs is None else tuple(envs), parse(files[path], path)))
    return tuple(found)


def parse(text: str, path: str) -> Any:
    """An iCalendar file's text, parsed; bad input naming it and the problem."""
    import icalendar

    if len(text.encode()) > MAX_BYTES:
        raise BadInput(f"policies/{path} is larger than {MAX_BYTES} bytes; keep a calendar smaller")
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as e:  # noqa: BLE001 - the library's errors vary; each is the file's problem
        raise BadInput(f"policies/{path} cannot be read as an iCalendar file: {_line(e)}") from None
    if not isinstance(cal, icalendar.Calendar):
        raise BadInput(f"policies/{path} cannot be read as an iCalendar file: it holds no VCALENDAR")
    return cal


def windows(calendars: tuple[Calendar, ...], at: datetime) -> list[dict[str, Any]]:
    """Every event of `calendars` that overlaps [at - BEFORE, at + AFTER], as a dated window: {name
    (its SUMMARY), environments (absent: every one), start, end (RFC 3339, UTC), calendar (its file)},
    in order of start. Bad input naming the file when an event cannot be expanded."""
    found: list[dict[str, Any]] = []
    for cal in calendars:
        found += _expand(cal, at)
    return sorted(found, key=lambda w: (w["start"], w["name"]))


def _expand(cal: Calendar, at: datetime) -> list[dict[str, Any]]:
    import recurring_ical_events

    try:
        events = list(recurring_ical_events.of(cal.calendar).between(at - BEFORE, at + AFTER))
        if len(events) > MAX_WINDOWS:
            raise BadInput(
                f"{cal.file} has more than {MAX_WINDOWS} events within {(BEFORE + AFTER).days} days; "
                "merge them into longer events"
            )
        found = []
        for event in events:
            start, end = _utc(event.start), _utc(event.end)
            if end <= start:
                continue  # an event of no length freezes no moment
            summary = str(event.get("SUMMARY") or "").strip()
            window: dict[str, Any] = {
                "name": " ".join(summary.split())[:200] or f"event {event.get('UID', '?')}",
                "start": _rfc3339(start),
                "end": _rfc3339(end),
                "calendar": cal.file,
            }
            if cal.environments is not None:
                window["environments"] = list(cal.environments)
            found.append(window)
        return found
    except BadInput:
        raise
    except Exception as e:  # noqa: BLE001 - a broken property surfaces as the events are expanded
        raise BadInput(f"{cal.file} cannot be read as an iCalendar file: {_line(e)}") from None


def _utc(value: Any) -> datetime:
    """An event's start or end in UTC: a date is its first instant, and a floating time is UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"{value!r} is not a date or a time")


def _rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text or type(e).__name__)[:300]
