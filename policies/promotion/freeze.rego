# METADATA
# title: Change freezes
# description: >-
#   No check passes inside a freeze window from policies/data.yaml (dated, or weekly in UTC), or inside
#   an event of a change calendar (data.yaml's freeze_calendars, which promoter expands around each
#   check's time into input.calendar_windows). Each
#   check (before the PR, on each approval, before the merge) is judged at its own evaluation time,
#   and promoter refuses a merge after the next moment a window starts or ends (it asks again), so a
#   promotion started before a freeze cannot merge inside it. A window that cannot be read is a
#   denial naming it and its field, never a window silently ignored.
# custom:
#   severity: high
#   remediation: Wait for the window to end, or ask the owners of policies/data.yaml for an exception.
package promotion.freeze

import data.lib.dates
import rego.v1

default freeze_windows := []

freeze_windows := data.freeze_windows

# the windows judged (a freeze_windows that is not a list is a denial below)
default windows := []

windows := freeze_windows if is_array(freeze_windows)

# The change calendars' events around this check, expanded by promoter (promoter/calendars.py) from the
# .ics files data.yaml's freeze_calendars names: {name (the event's SUMMARY), environments, start, end
# (RFC 3339, UTC), calendar (its file)}. A list promoter did not build this way is a denial below.
default calendar_windows := []

calendar_windows := input.calendar_windows if is_array(input.calendar_windows)

# The moment judged: this check's own evaluation time (the workflow's clock at the check), never the
# wall clock. The promotion's start time only for an input that carries no evaluation time.
checked_at := input.promotion.evaluated_at if object.get(input.promotion, "evaluated_at", null) != null

checked_at := input.promotion.started_at if object.get(input.promotion, "evaluated_at", null) == null

# METADATA
# title: Outside freeze windows
# description: >-
#   Checked at the evaluation time of each check from the input (input.promotion.evaluated_at; the
#   start time only when there is none), never the wall clock.
# custom:
#   severity: high
#   remediation: Promote after the freeze window ends.
deny_freeze_window contains {"msg": msg, "object": null, "details": {"window": w.name, "until": until(w)}} if {
	some i, w in windows
	not i in broken
	applies(w)
	t := time.parse_rfc3339_ns(checked_at)
	in_window(w, t)
	msg := sprintf("%s is frozen by '%s' at %s, until %s", [input.environment.name, w.name, checked_at, until(w)])
}

deny_freeze_window contains {"msg": msg, "object": null, "details": {"window": w.name, "until": w.end, "calendar": w.calendar}} if {
	some w in calendar_windows
	calendar_window(w)
	applies(w)
	t := time.parse_rfc3339_ns(checked_at)
	t >= dates.ns(w.start)
	t < dates.ns(w.end)
	msg := sprintf("%s is frozen by '%s' (%s) at %s, until %s", [input.environment.name, w.name, w.calendar, checked_at, w.end])
}

# METADATA
# title: Readable freeze windows
# description: >-
#   Every window of data.freeze_windows is a name, optional environments, and either start and end (a
#   date or an RFC 3339 time each, end after start) or weekly days (weekdays, any case) from and to
#   (HH:MM, UTC, to after from). Anything else denies every promotion, naming the window and the
#   field: a window that cannot be read must not pass for no freeze.
# custom:
#   severity: critical
#   remediation: Fix the window named in policies/data.yaml (freeze_windows).
deny_malformed_window contains {"msg": p.msg, "object": null, "details": {"window": p.window, "field": p.field}} if {
	some p in problems
}

deny_malformed_window contains {"msg": msg, "object": null, "details": {"window": sprintf("#%d", [i + 1]), "field": "calendar_windows"}} if {
	some i, w in calendar_windows
	not calendar_window(w)
	msg := sprintf("calendar window #%d of input.calendar_windows is not {name, environments, start, end (RFC 3339, after start), calendar}", [i + 1])
}

deny_malformed_window contains {"msg": "input.calendar_windows is not a list of calendar windows", "object": null, "details": {"window": "", "field": "calendar_windows"}} if {
	"calendar_windows" in object.keys(input)
	not is_array(input.calendar_windows)
}

calendar_window(w) if {
	is_object(w)
	is_string(w.name)
	is_string(w.calendar)
	dates.is_rfc3339(w.start)
	dates.is_rfc3339(w.end)
	dates.ns(w.start) < dates.ns(w.end)
	not bad_environments(w)
}

bad_environments(w) if {
	has(w, "environments")
	not environment_names(w.environments)
}

# a dated window's end: an RFC 3339 time, or the end of a date (inclusive, UTC)
end_ns(w) := dates.ns(w.end) + dates.day_ns if dates.is_date(w.end)

end_ns(w) := dates.ns(w.end) if dates.is_rfc3339(w.end)

until(w) := sprintf("the end of %s (UTC)", [w.end]) if dates.is_date(w.end)

until(w) := w.end if dates.is_rfc3339(w.end)

until(w) := sprintf("%s UTC that day", [w.weekly.to]) if w.weekly

applies(w) if not w.environments

applies(w) if input.environment.name in w.environments

in_window(w, t) if {
	w.start
	t >= dates.ns(w.start)
	t < end_ns(w)
}

in_window(w, t) if {
	w.weekly
	lower(time.weekday(t)) in {lower(d) | some d in w.weekly.days}
	clock := time.clock(t)
	minutes := (clock[0] * 60) + clock[1]
	minutes >= dates.minutes(w.weekly.from)
	minutes < dates.minutes(w.weekly.to)
}

# ------------------------------------------------------------------ unreadable windows
# Each problem: {window, field, msg}, and the index of its window (-1: the list itself).

broken := {p.index | some p in problems}

window_fields := {"name", "environments", "start", "end", "weekly"}

weekly_fields := {"days", "from", "to"}

named(w) if {
	is_string(w.name)
	w.name != ""
}

label(_, w) := w.name if named(w)

label(i, w) := sprintf("#%d", [i + 1]) if not named(w)

problem(i, w, field, why) := {
	"index": i, "window": label(i, w), "field": field,
	"msg": sprintf("freeze window '%s' in data.freeze_windows: %s %s", [label(i, w), field, why]),
}

has(w, key) if key in object.keys(w)

problems contains {
	"index": -1, "window": "", "field": "freeze_windows",
	"msg": "data.freeze_windows is not a list of freeze windows",
} if {
	not is_array(freeze_windows)
}

problems contains problem(i, {}, "window", "is not a mapping (name, environments, and start and end or weekly)") if {
	some i, w in windows
	not is_object(w)
}

problems contains problem(i, w, key, "is not a field of a freeze window (name, environments, start, end, weekly)") if {
	some i, w in windows
	is_object(w)
	some key in object.keys(w)
	not key in window_fields
}

problems contains problem(i, w, "name", "is required (a name for the window)") if {
	some i, w in windows
	is_object(w)
	not named(w)
}

problems contains problem(i, w, "environments", "is not a list of environment names") if {
	some i, w in windows
	is_object(w)
	has(w, "environments")
	not environment_names(w.environments)
}

environment_names(x) if {
	is_array(x)
	every e in x {
		is_string(e)
	}
}

problems contains problem(i, w, "weekly", "and start/end are both set: a window is dated or weekly, not both") if {
	some i, w in windows
	is_object(w)
	has(w, "weekly")
	some key in {"start", "end"}
	has(w, key)
}

problems contains problem(i, w, "start", "is missing: a window has start and end, or weekly") if {
	some i, w in windows
	is_object(w)
	not has(w, "weekly")
	not has(w, "start")
}

problems contains problem(i, w, "end", "is missing: a window has start and end, or weekly") if {
	some i, w in windows
	is_object(w)
	not has(w, "weekly")
	has(w, "start")
	not has(w, "end")
}

problems contains problem(i, w, key, sprintf("%s is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-12-24T00:00:00Z)", [json.marshal(w[key])])) if {
	some i, w in windows
	is_object(w)
	some key in {"start", "end"}
	has(w, key)
	not dates.is_time(w[key])
}

problems contains problem(i, w, "end", "is not after start") if {
	some i, w in windows
	is_object(w)
	dates.is_time(w.start)
	dates.is_time(w.end)
	end_ns(w) <= dates.ns(w.start)
}

problems contains problem(i, w, "weekly", "is not a mapping of days, from and to") if {
	some i, w in windows
	is_object(w)
	has(w, "weekly")
	not is_object(w.weekly)
}

problems contains problem(i, w, concat(".", ["weekly", key]), "is not a field of a weekly window (days, from, to)") if {
	some i, w in windows
	is_object(w.weekly)
	some key in object.keys(w.weekly)
	not key in weekly_fields
}

problems contains problem(i, w, "weekly.days", "is missing: a list of weekdays (Monday to Sunday)") if {
	some i, w in windows
	is_object(w.weekly)
	not weekday_list(object.get(w.weekly, "days", null))
}

weekday_list(x) if {
	is_array(x)
	count(x) > 0
}

problems contains problem(i, w, "weekly.days", sprintf("%s is not a weekday (Monday to Sunday, in any case)", [json.marshal(d)])) if {
	some i, w in windows
	is_object(w.weekly)
	weekday_list(object.get(w.weekly, "days", null))
	some d in w.weekly.days
	not dates.is_weekday(d)
}

problems contains problem(i, w, concat(".", ["weekly", key]), "is missing (HH:MM, UTC)") if {
	some i, w in windows
	is_object(w.weekly)
	some key in {"from", "to"}
	not has(w.weekly, key)
}

problems contains problem(i, w, concat(".", ["weekly", key]), sprintf("%s is not a time HH:MM from 00:00 to 23:59 (quote it in YAML)", [json.marshal(w.weekly[key])])) if {
	some i, w in windows
	is_object(w.weekly)
	some key in {"from", "to"}
	has(w.weekly, key)
	not dates.is_hhmm(w.weekly[key])
}

problems contains problem(i, w, "weekly.to", "is not after weekly.from (a weekly window ends the day it starts)") if {
	some i, w in windows
	is_object(w.weekly)
	dates.is_hhmm(w.weekly.from)
	dates.is_hhmm(w.weekly.to)
	dates.minutes(w.weekly.to) <= dates.minutes(w.weekly.from)
}
