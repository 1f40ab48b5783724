"""Change calendars: freeze windows from iCalendar files in the repository.

`policies/data.yaml` names them beside `freeze_windows`:

    freeze_calendars:
      - {file: calendars/change-freeze.ics, environments: [prod]}

`file` is a path under `policies/`, so the calendar is read with the policies, at the trusted rules
revision (a calendar pushed unsigned to main changes nothing while a trust root is set). Each check
expands every calendar's events (RRULE, RDATE, EXDATE, RECURRENCE-ID, time zones; the rules by
dateutil's `rrule`, which icalendar brings) over a bounded horizon around its own evaluation time,
and hands them to the policies as dated windows (`input.calendar_windows`: name = the event's
SUMMARY, start and end in UTC, the calendar's file): `policies/promotion/freeze.rego` judges them as
it judges `freeze_windows`. A calendar that cannot be read fails closed, with one line naming its file and the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from promoter import errors
from promoter.errors import BadInput

BEFORE = timedelta(days=1)  # the horizon expanded around a check's time: a day before it
AFTER = timedelta(days=7)  # and a week after (what `policy check` shows as coming)
MAX_WINDOWS = 2000  # events a calendar may have in that horizon: more is refused, not cut
MAX_BYTES = 1_000_000
MAX_STEPS = 50_000  # recurrences a calendar may step through from DTSTART (a minutely rule of years is refused)
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
    except errors.PASS_THROUGH:
        raise
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
    """The events of one calendar that overlap the horizon around `at`, as windows."""
    lo, hi = at - BEFORE, at + AFTER
    try:
        budget = [MAX_STEPS]
        found = []
        for start, end, event in _occurrences(cal.calendar, lo, hi, budget, cal.file):
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
            if len(found) > MAX_WINDOWS:
                raise BadInput(
                    f"{cal.file} has more than {MAX_WINDOWS} events within {(BEFORE + AFTER).days} days; "
                    "merge them into longer events"
                )
        return found
    except BadInput:
        raise
    except errors.PASS_THROUGH:
        raise
    except Exception as e:  # noqa: BLE001 - a broken property surfaces as the events are expanded
        raise BadInput(f"{cal.file} cannot be read as an iCalendar file: {_line(e)}") from None


def _occurrences(calendar: Any, lo: datetime, hi: datetime, budget: list[int], file: str) -> Iterator[Any]:
    """(start, end in UTC, event) of every occurrence overlapping [lo, hi), of positive length and not
    cancelled: each VEVENT's own and its recurrences', where an event with a RECURRENCE-ID stands for
    the occurrence of its UID that it names (RFC 5545 3.8.4.4)."""
    events = list(calendar.walk("VEVENT"))
    moved = {(str(e.get("UID", "")), _utc(e.decoded("RECURRENCE-ID"))) for e in events if "RECURRENCE-ID" in e}
    for event in events:
        _check(event, file)
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        length = _length(event)
        one = "RECURRENCE-ID" in event
        starts = [event.decoded("DTSTART")] if one else _starts(event, lo - length, hi, budget, file)
        uid = str(event.get("UID", ""))
        for start in starts:
            if "RECURRENCE-ID" not in event and (uid, _utc(start)) in moved:
                continue  # this occurrence was moved or changed by its own event
            begin = _utc(start)
            end = _utc(start + length) if isinstance(start, datetime) else begin + length
            if end > begin and end > lo and begin < hi:
                yield begin, end, event


def _length(event: Any) -> timedelta:
    """An event's length: DTEND - DTSTART, else its DURATION, else a day for a date and none for a time."""
    start = event.decoded("DTSTART")
    if "DTEND" in event:
        end = event.decoded("DTEND")
        return _utc(end) - _utc(start) if isinstance(start, datetime) or isinstance(end, datetime) else end - start
    if "DURATION" in event:
        duration = event.decoded("DURATION")
        if not isinstance(duration, timedelta):
            raise ValueError(f"DURATION {duration!r} is not a duration")
        return duration
    return timedelta(0) if isinstance(start, datetime) else timedelta(days=1)


def _starts(event: Any, lo: datetime, hi: datetime, budget: list[int], file: str) -> Iterator[Any]:
    """The starts of an event's occurrences from `lo` to before `hi`: DTSTART, its RRULE's, its RDATEs,
    less its EXDATEs (dateutil's rrule keeps the wall-clock time of a zoned DTSTART across daylight
    saving changes, as RFC 5545 asks). Every step from DTSTART counts against `budget`."""
    first = event.decoded("DTSTART")
    if "RRULE" not in event and "RDATE" not in event:
        yield first
        return
    from dateutil import rrule

    base = _like(first, first)
    series = rrule.rruleset()
    for recur in _each(event.get("RRULE")):
        _feasible(recur, _utc(first), hi, f"{file}: event {_name(event)!r}")
        parts = {k: v for k, v in recur.items() if k != "UNTIL"}
        rule = rrule.rrulestr(type(recur)(parts).to_ical().decode(), dtstart=base)
        if "UNTIL" in recur:
            rule = rule.replace(until=_like(recur["UNTIL"][0], base))
        series.rrule(rule)
    series.rdate(base)
    for value in _dates(event, "RDATE"):
        series.rdate(_like(value, base))
    for value in _dates(event, "EXDATE"):
        series.exdate(_like(value, base))
    lo_, hi_ = _like(lo, base), _like(hi, base)
    for start in series:
        budget[0] -= 1
        if budget[0] < 0:
            raise BadInput(
                f"{file}: event {_name(event)!r} repeats more than {MAX_STEPS} times before {_rfc3339(lo)}; "
                "move its DTSTART closer"
            )
        if start >= hi_:
            return
        if start >= lo_:
            yield start if isinstance(first, datetime) else start.date()


def _name(event: Any) -> str:
    return str(event.get("SUMMARY", event.get("UID", "?")))[:80]


# the longest a period of each frequency can be, and the days of each month at most (for what can occur)
_PERIOD = {"HOURLY": 3600, "DAILY": 86400, "WEEKLY": 7 * 86400, "MONTHLY": 31 * 86400, "YEARLY": 366 * 86400}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _feasible(recur: Any, start: datetime, hi: datetime, what: str) -> None:
    """Refuse a rule that dateutil would step through for long before answering: one finer than hourly,
    one whose periods from DTSTART to the horizon are more than MAX_STEPS, and one whose BYMONTHDAY no
    month of its BYMONTH has (dateutil looks for it until the year 9999: seconds of CPU a check)."""
    freq = str(_first(recur.get("FREQ")) or "").upper()
    if freq not in _PERIOD:
        raise BadInput(f"{what} repeats with FREQ={freq or '?'}; a change calendar's events repeat at most hourly")
    interval = int(_first(recur.get("INTERVAL")) or 1)
    periods = (hi - start).total_seconds() / (_PERIOD[freq] * max(interval, 1))
    if freq in ("HOURLY", "DAILY") and periods > MAX_STEPS:
        raise BadInput(
            f"{what} repeats over more than {MAX_STEPS} periods before {_rfc3339(hi)}; move its DTSTART closer"
        )
    days = [int(d) for d in recur.get("BYMONTHDAY") or []]
    months = [int(m) for m in recur.get("BYMONTH") or []] or list(range(1, 13))
    if days and not any(abs(d) <= _MONTH_DAYS[m - 1] for d in days for m in months if 1 <= m <= 12):
        raise BadInput(f"{what} never occurs: no month of its BYMONTH has its BYMONTHDAY")


def _first(values: Any) -> Any:
    return values[0] if isinstance(values, list) and values else values or None


def _check(event: Any, file: str) -> None:
    """Refuse what would freeze less than the calendar says, rather than guess: a time zone this machine
    does not know (its times would be read as UTC), an end before the start, an RDATE period (its own
    length is not the event's)."""
    what = f"{file}: event {_name(event)!r}"
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE"):
        for line in _each(event.get(name)):
            zone = getattr(line, "params", {}).get("TZID")
            values = [i.dt for i in line.dts] if hasattr(line, "dts") else [line.dt]
            if zone and any(isinstance(v, datetime) and v.tzinfo is None for v in values):
                raise BadInput(f"{what}: its {name} names the time zone {str(zone)[:60]!r}, which is not known here")
            if name == "RDATE" and any(isinstance(v, tuple) for v in values):
                raise BadInput(f"{what}: an RDATE period is not supported; give that occurrence a VEVENT of its own")
    if "DTSTART" not in event:
        raise BadInput(f"{what} has no DTSTART")
    if _length(event) < timedelta(0):
        raise BadInput(f"{what} ends before it starts; fix its DTEND or DURATION")


def _each(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _dates(event: Any, name: str) -> Iterator[Any]:
    """The dates or times of an event's RDATE or EXDATE lines (`_check` refused RDATE periods)."""
    for line in _each(event.get(name)):
        for item in line.dts:
            yield item.dt


def _like(value: date, base: date) -> datetime:
    """`value` (a date or a time) as a time comparable with `base`'s: zoned when DTSTART is zoned (a
    floating time or a date taken as UTC), else naive in UTC; a date is its first instant."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    assert isinstance(value, datetime)
    if isinstance(base, datetime) and base.tzinfo is not None:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


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
