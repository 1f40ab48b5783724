"""Change calendars (issue 33, part 2): freeze windows from an iCalendar file of policies/, named by
data.yaml's `freeze_calendars`, expanded by promoter (icalendar + dateutil's rrule) around each
check's evaluation time and judged by policies/promotion/freeze.rego, on both engines:

- a weekly RRULE in Europe/Berlin with an EXDATE, across the change to summer time (2026-03-29): the
  event keeps 18:00 local, so 17:00 UTC before the change and 16:00 UTC after it, and the excluded
  Monday freezes nothing;
- a promotion inside an event is denied naming the event (its SUMMARY), its calendar and its end; one
  in another environment, or after the end, is not;
- a calendar that cannot be read (no such file, not iCalendar, a broken DTSTART) fails closed with one
  line naming its file and the problem; a bad `freeze_calendars` entry is refused as it loads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from promoter import calendars
from promoter.errors import BadInput
from promoter.policy import PolicyBundle, PolicyEngine, decide
from tests.support.policy import POLICIES, make_input

ICS = "calendars/change-freeze.ics"
BERLIN = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//promoter tests//EN
BEGIN:VEVENT
UID:weekly-freeze@promoter.test
SUMMARY:Monday evening change freeze
DTSTART;TZID=Europe/Berlin:20260316T180000
DTEND;TZID=Europe/Berlin:20260316T200000
RRULE:FREQ=WEEKLY;BYDAY=MO
EXDATE;TZID=Europe/Berlin:20260323T180000
END:VEVENT
BEGIN:VEVENT
UID:quarter-close@promoter.test
SUMMARY:Quarter close
DTSTART;VALUE=DATE:20260331
DTEND;VALUE=DATE:20260401
END:VEVENT
END:VCALENDAR
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def bundle(ics: str = BERLIN, entry: dict[str, Any] | None = None) -> PolicyBundle:
    """Our policies/, with data.yaml naming the calendar (prod only) and the calendar file beside them."""
    files = {
        str(p.relative_to(POLICIES)): p.read_text()
        for p in sorted(POLICIES.rglob("*"))
        if p.is_file() and p.suffix in (".rego", ".yaml")
    }
    named = entry or {"file": ICS, "environments": ["prod"]}
    files["data.yaml"] += "\n" + yaml.safe_dump({"freeze_calendars": [named]})
    files[ICS] = ics
    return PolicyBundle.from_files(files)


def at(env: str, when: str) -> dict[str, Any]:
    doc = make_input(env)
    doc["promotion"]["evaluated_at"] = when
    return doc


def judged(engines: list[PolicyEngine], b: PolicyBundle, doc: dict[str, Any]) -> Any:
    found = [decide(e, b, doc).model_copy(update={"engine": ""}) for e in engines]
    assert all(d == found[0] for d in found), [d.model_dump() for d in found]
    return found[0]


def freezes(decision: Any) -> list[str]:
    return [v.message for v in decision.deny if v.rule == "promotion.freeze.deny_freeze_window"]


def test_a_weekly_event_with_an_exception_date_across_summer_time() -> None:
    cal = calendars.load([{"file": ICS}], {ICS: BERLIN}, "policies/data.yaml")
    windows = calendars.windows(cal, utc("2026-03-23T17:30:00Z"))  # a day before to a week after
    weekly = [(w["start"], w["end"]) for w in windows if w["name"] == "Monday evening change freeze"]
    # 2026-03-23 is excluded (EXDATE); 2026-03-30 is in summer time: 18:00 in Berlin is 16:00 UTC
    assert weekly == [("2026-03-30T16:00:00Z", "2026-03-30T18:00:00Z")]
    before = calendars.windows(cal, utc("2026-03-15T12:00:00Z"))
    assert [(w["start"], w["end"]) for w in before if w["name"].startswith("Monday")] == [
        ("2026-03-16T17:00:00Z", "2026-03-16T19:00:00Z")  # winter time: 18:00 in Berlin is 17:00 UTC
    ]
    quarter = [w for w in calendars.windows(cal, utc("2026-03-30T12:00:00Z")) if w["name"] == "Quarter close"]
    assert quarter == [
        {
            "name": "Quarter close",
            "start": "2026-03-31T00:00:00Z",
            "end": "2026-04-01T00:00:00Z",
            "calendar": f"policies/{ICS}",
        }
    ]


MOVED = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//promoter tests//EN
BEGIN:VEVENT
UID:standup@promoter.test
SUMMARY:Daily release window closed
DTSTART;TZID=America/New_York:20261102T090000
DURATION:PT1H
RRULE:FREQ=DAILY;UNTIL=20261106T140000Z
RDATE;TZID=America/New_York:20261108T090000
END:VEVENT
BEGIN:VEVENT
UID:standup@promoter.test
RECURRENCE-ID;TZID=America/New_York:20261103T090000
SUMMARY:Daily release window closed (moved)
DTSTART;TZID=America/New_York:20261103T130000
DTEND;TZID=America/New_York:20261103T150000
END:VEVENT
BEGIN:VEVENT
UID:standup@promoter.test
RECURRENCE-ID;TZID=America/New_York:20261104T090000
STATUS:CANCELLED
DTSTART;TZID=America/New_York:20261104T090000
DURATION:PT1H
END:VEVENT
BEGIN:VEVENT
UID:cancelled@promoter.test
SUMMARY:Called off
STATUS:CANCELLED
DTSTART:20261103T000000Z
DTEND:20261104T000000Z
END:VEVENT
END:VCALENDAR
"""


def test_moved_cancelled_added_and_ended_occurrences() -> None:
    """DURATION, UNTIL (in UTC), an RDATE, an occurrence moved by its RECURRENCE-ID, one cancelled by
    it, and a cancelled event: New York's 09:00 is 14:00 UTC until 1 November and 14:00 after it."""
    cal = calendars.load([{"file": ICS}], {ICS: MOVED}, "policies/data.yaml")
    found = [(w["name"], w["start"], w["end"]) for w in calendars.windows(cal, utc("2026-11-02T00:00:00Z"))]
    assert found == [
        ("Daily release window closed", "2026-11-02T14:00:00Z", "2026-11-02T15:00:00Z"),
        ("Daily release window closed (moved)", "2026-11-03T18:00:00Z", "2026-11-03T20:00:00Z"),
        ("Daily release window closed", "2026-11-05T14:00:00Z", "2026-11-05T15:00:00Z"),
        ("Daily release window closed", "2026-11-06T14:00:00Z", "2026-11-06T15:00:00Z"),
        ("Daily release window closed", "2026-11-08T14:00:00Z", "2026-11-08T15:00:00Z"),
    ]


def test_a_rule_that_steps_too_often_is_refused_naming_the_file() -> None:
    weekly_for_ages = BERLIN.replace(";TZID=Europe/Berlin:20260316", ";TZID=Europe/Berlin:10000316")
    cal = calendars.load([{"file": ICS}], {ICS: weekly_for_ages}, "policies/data.yaml")
    with pytest.raises(BadInput) as e:
        calendars.windows(cal, utc("2026-03-23T17:30:00Z"))
    assert str(e.value).startswith(f"policies/{ICS}: event 'Monday evening change freeze' repeats more than 50000")


WEEKLY = "RRULE:FREQ=WEEKLY;BYDAY=MO"
START = ";TZID=Europe/Berlin:20260316T18"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({WEEKLY: "RRULE:FREQ=MINUTELY"}, "repeats with FREQ=MINUTELY; a change calendar's events repeat at most"),
        ({WEEKLY: "RRULE:FREQ=DAILY;BYMONTH=2,4;BYMONTHDAY=31,-31"}, "never occurs: no month of its BYMONTH has"),
        ({WEEKLY: "RRULE:FREQ=HOURLY", START: ";TZID=Europe/Berlin:20000316T18"}, "repeats over more than 50000"),
        ({"DTSTART" + START: "DTSTART;TZID=Europe/Berlni:20260316T18"}, "its DTSTART names the time zone 'Europe/"),
        ({"DTEND;TZID=Europe/Berlin:20260316T200000": "DTEND;TZID=Europe/Berlin:20260316T170000"}, "ends before it"),
        ({"EXDATE;": "RDATE;VALUE=PERIOD:20260324T170000Z/PT8H\nEXDATE;"}, "an RDATE period is not supported"),
    ],
)
def test_a_rule_that_freezes_less_than_it_says_or_never_ends_is_refused(changes: dict[str, str], expected: str) -> None:
    """Each would freeze less than the calendar means (a zone read as UTC, an end before the start, a
    period's own length) or keep dateutil stepping for seconds a check (a minutely rule, a day no month
    has, hourly from 2000): refused, naming the file and the event, so the check fails closed."""
    hostile = BERLIN
    for old, new in changes.items():
        assert old in hostile
        hostile = hostile.replace(old, new)
    cal = calendars.load([{"file": ICS}], {ICS: hostile}, "policies/data.yaml")
    with pytest.raises(BadInput) as e:
        calendars.windows(cal, utc("2026-03-23T17:30:00Z"))
    assert str(e.value).startswith(f"policies/{ICS}: event 'Monday evening change freeze'"), e.value
    assert expected in str(e.value), e.value


def test_a_promotion_inside_an_event_is_denied_naming_it(engines: list[PolicyEngine]) -> None:
    b = bundle()
    summer = judged(engines, b, at("prod", "2026-03-30T16:30:00Z"))
    assert not summer.allow
    assert freezes(summer) == [
        f"prod is frozen by 'Monday evening change freeze' (policies/{ICS}) at 2026-03-30T16:30:00Z, "
        "until 2026-03-30T18:00:00Z"
    ]
    # the same local hour in winter time is an hour later in UTC
    assert freezes(judged(engines, b, at("prod", "2026-03-16T17:30:00Z")))
    assert not freezes(judged(engines, b, at("prod", "2026-03-16T16:30:00Z")))
    # the excluded Monday, the end of an event, and another environment are not frozen
    assert not freezes(judged(engines, b, at("prod", "2026-03-23T17:30:00Z")))
    assert not freezes(judged(engines, b, at("prod", "2026-03-30T18:00:00Z")))
    assert not freezes(judged(engines, b, at("staging", "2026-03-30T16:30:00Z")))
    assert freezes(judged(engines, b, at("prod", "2026-03-31T23:59:00Z"))) == [
        f"prod is frozen by 'Quarter close' (policies/{ICS}) at 2026-03-31T23:59:00Z, until 2026-04-01T00:00:00Z"
    ]


@pytest.mark.parametrize(
    ("ics", "entry", "expected"),
    [
        ("BEGIN:VCALENDAR\nthis is no calendar\n", None, f"policies/{ICS} cannot be read as an iCalendar file: "),
        (BERLIN, {"file": "calendars/missing.ics"}, "policies/calendars/missing.ics (named by policies/data.yaml"),
        (BERLIN, {"file": "../secrets.ics"}, "policies/data.yaml: freeze_calendars[0]: file '../secrets.ics' is not"),
        (BERLIN, {"file": ICS, "enviroments": ["prod"]}, "policies/data.yaml: freeze_calendars[0]: 'enviroments' is"),
        (BERLIN, {"file": ICS, "environments": "prod"}, "policies/data.yaml: freeze_calendars[0]: environments is"),
    ],
)
def test_an_unreadable_calendar_is_refused_as_it_loads(ics: str, entry: dict[str, Any] | None, expected: str) -> None:
    with pytest.raises(BadInput) as e:
        bundle(ics, entry)
    assert str(e.value).startswith(expected), e.value
    assert "\n" not in str(e.value)


def test_a_broken_event_fails_closed_naming_the_file(engines: list[PolicyEngine]) -> None:
    broken = BERLIN.replace("DTSTART;TZID=Europe/Berlin:20260316T180000", "DTSTART:2026XX")
    b = bundle(broken)
    decision = judged(engines, b, at("staging", "2026-03-30T16:30:00Z"))
    assert not decision.allow
    (denial,) = decision.deny
    assert denial.rule == "promoter.engine_error"
    assert f"policies/{ICS} cannot be read as an iCalendar file: " in denial.message
    assert "\n" not in denial.message


def test_the_calendar_is_part_of_the_policy_revision(tmp_path: Path) -> None:
    assert bundle().revision != bundle(BERLIN.replace("Quarter close", "Quarter closing")).revision


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("break_glass", "a break-glass is asked with `promoter break-glass`"),
        ("exceptions", "an exception is a file under policies/exceptions/"),
    ],
)
def test_a_data_file_cannot_set_what_promoter_hands_the_policies_from_elsewhere(key: str, said: str) -> None:
    """A break-glass in data.yaml would skip promoter's seal and its gate, an exception there the
    max_exception_days check: both are refused as data.yaml loads (every check then fails closed)."""
    files = {"data.yaml": yaml.safe_dump({key: {"demo-prod-1": {"app": "demo", "env": "prod"}}})}
    with pytest.raises(BadInput) as e:
        PolicyBundle.from_files(files)
    assert str(e.value).startswith(f"policies/data.yaml: {key} is not set in a data file; {said}"), e.value
