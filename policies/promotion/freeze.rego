# METADATA
# title: Change freezes
# description: No promotion starts inside a freeze window from policies/data.yaml (dated, or weekly in UTC).
# custom:
#   severity: high
#   remediation: Wait for the window to end, or ask the owners of policies/data.yaml for an exception.
package promotion.freeze

import rego.v1

default freeze_windows := []

freeze_windows := data.freeze_windows

# METADATA
# title: Outside freeze windows
# description: Checked against the promotion's start time from the input, never the wall clock.
# custom:
#   severity: high
#   remediation: Start the promotion after the freeze window ends.
deny_freeze_window contains {"msg": msg, "object": null, "details": {"window": w.name, "until": until(w)}} if {
	some w in freeze_windows
	applies(w)
	t := time.parse_rfc3339_ns(input.promotion.started_at)
	in_window(w, t)
	msg := sprintf("%s is frozen by '%s' at %s, until %s", [input.environment.name, w.name, input.promotion.started_at, until(w)])
}

# when the window that holds the start ends: a dated one at its end, a weekly one at `to` that day (UTC)
until(w) := w.end if w.start

until(w) := sprintf("%s UTC that day", [w.weekly.to]) if w.weekly

applies(w) if not w.environments

applies(w) if input.environment.name in w.environments

in_window(w, t) if {
	w.start
	t >= time.parse_rfc3339_ns(w.start)
	t < time.parse_rfc3339_ns(w.end)
}

in_window(w, t) if {
	w.weekly
	time.weekday(t) in w.weekly.days
	clock := time.clock(t)
	minutes := (clock[0] * 60) + clock[1]
	minutes >= hm(w.weekly.from)
	minutes < hm(w.weekly.to)
}

hm(s) := (number(split(s, ":")[0]) * 60) + number(split(s, ":")[1])

# "08" and "00" as numbers (leading zeros are not JSON numbers, which some engines insist on)
number(digits) := to_number(trim_left(digits, "0")) if trim_left(digits, "0") != ""

number(digits) := 0 if trim_left(digits, "0") == ""
