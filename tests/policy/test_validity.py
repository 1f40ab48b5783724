"""Until when a policy decision stands (promoter.policy.validity): the first moment after its check at
which a clock-reading rule of policies/ could turn, which the workflow refuses a merge after. Proven
against the judge itself, on both engines: over a week of checks, the freeze rules give the same
verdict at the check and one second before its `valid_until`, and they do turn at some of them (the
moments are not just the two-minute bound)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from promoter.policy import PolicyBundle, PolicyEngine, decide
from promoter.policy.validity import MAX_AGE, valid_until
from tests.support.policy import POLICIES, make_input

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//promoter tests//EN
BEGIN:VEVENT
UID:weekly@promoter.test
SUMMARY:Tuesday release review
DTSTART;TZID=Europe/Berlin:20261201T090000
DTEND;TZID=Europe/Berlin:20261201T103000
RRULE:FREQ=WEEKLY;BYDAY=TU
END:VEVENT
END:VCALENDAR
"""
WINDOWS = [
    {"name": "year-end", "environments": ["prod"], "start": "2026-12-04T15:30:00Z", "end": "2026-12-05"},
    {"name": "friday nights", "environments": ["prod"], "weekly": {"days": ["Friday"], "from": "20:00", "to": "23:45"}},
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bundle() -> PolicyBundle:
    files = {
        str(p.relative_to(POLICIES)): p.read_text()
        for p in sorted(Path(POLICIES).rglob("*"))
        if p.is_file() and p.suffix in (".rego", ".yaml")
    }
    data = {"freeze_windows": WINDOWS, "freeze_calendars": [{"file": "calendars/f.ics", "environments": ["prod"]}]}
    files["data.yaml"] += "\n" + yaml.safe_dump(data)
    files["calendars/f.ics"] = ICS
    return PolicyBundle.from_files(files)


def checked(engine: PolicyEngine, b: PolicyBundle, when: datetime) -> tuple[set[str], datetime | None]:
    doc = make_input("prod")
    doc["promotion"]["evaluated_at"] = f"{when:%Y-%m-%dT%H:%M:%SZ}"
    decision = decide(engine, b, doc)
    names = {m.group(1) for v in decision.deny if (m := re.search(r"frozen by '([^']+)'", v.message))}
    return names, decision.valid_until


# each window's edges (UTC): the dated one's start and, its end a date, the day after; Friday's 20:00 and
# 23:45; the calendar's 09:00-10:30 Berlin, 08:00-09:30 UTC
EDGES = ["2026-12-04T15:30:00Z", "2026-12-06T00:00:00Z", "2026-12-04T20:00:00Z", "2026-12-04T23:45:00Z"]
EDGES += ["2026-12-01T08:00:00Z", "2026-12-01T09:30:00Z"]


def test_the_freeze_rules_turn_no_earlier_than_the_decision_s_valid_until(engines: list[PolicyEngine]) -> None:
    b = bundle()
    grid = [utc("2026-11-30T00:07:00Z") + timedelta(minutes=97 * i) for i in range(104)]  # a week of checks
    near = [utc(e) - timedelta(seconds=s) for e in EDGES for s in (100, 1)]  # and checks just before each edge
    turned = 0
    for when in grid + near:
        for engine in engines:
            frozen, until = checked(engine, b, when)
            # MAX_AGE after the check, or after the decision was made when that is later (here, now)
            assert until is not None and when < until <= max(when, datetime.now(UTC)) + MAX_AGE, (when, until)
            before, _ = checked(engine, b, until - timedelta(seconds=1))
            assert before == frozen, (engine.name, when, until, frozen, before)
            turned += checked(engine, b, until)[0] != frozen
    assert turned >= 2 * 2 * len(EDGES), turned  # each edge is met exactly by the checks before it


def test_every_clock_reading_value_is_a_moment() -> None:
    at = utc("2026-12-02T23:59:00Z")  # a Wednesday, a minute before midnight
    assert valid_until({}, [], at, None) == at + MAX_AGE  # nothing turns: asked again after MAX_AGE
    weekly = {"days": ["thursday"], "from": "00:00", "to": "23:59"}
    glass = {"approved_at": "2026-12-02T09:00:00Z", "until": "2026-12-03T00:00:10Z"}
    cases: list[tuple[dict[str, Any], list[Any], str]] = [
        ({"freeze_windows": [{"name": "w", "weekly": weekly}]}, [], "2026-12-03T00:00:00Z"),
        ({"freeze_windows": [{"name": "d", "start": "2026-11-02", "end": "2026-12-02"}]}, [], "2026-12-03T00:00:00Z"),
        ({"exceptions": {"e": {"expires": "2026-12-02T23:59:30Z"}}}, [], "2026-12-02T23:59:30Z"),
        ({"break_glass": {"g": glass}}, [], "2026-12-03T00:00:10Z"),
        ({}, [{"name": "c", "start": "2026-12-02T23:59:50Z", "end": "2026-12-03T11:00:00Z"}], "2026-12-02T23:59:50Z"),
        ({"freeze_windows": [{"name": "broken", "start": "soon"}, "no", {"weekly": "x"}]}, [], "2026-12-03T00:01:00Z"),
    ]
    for data, calendar, expected in cases:
        assert valid_until(data, calendar, at, None) == utc(expected), data
    assert valid_until({}, [], at, at + timedelta(seconds=5)) == at + timedelta(seconds=5)  # the calendars' horizon
    assert valid_until({}, [], at, None).tzinfo == UTC
    queued = at + timedelta(minutes=5)  # the check waited in a queue: MAX_AGE counts from its decision
    assert valid_until({}, [], at, None, queued) == queued + MAX_AGE
