package promotion.freeze_test

import data.lib.fixtures_test as f
import data.promotion.freeze
import rego.v1

started(env, at) := {
	"environment": f.environment(env), "objects": [], "approvals": [],
	"promotion": object.union(f.promotion(env, "pre_pr"), {"started_at": at}),
}

year_end := [{"name": "year-end", "environments": ["prod"], "start": "2026-12-24T00:00:00Z", "end": "2027-01-02T00:00:00Z"}]

fridays := [{"name": "friday evenings", "weekly": {"days": ["Friday"], "from": "16:00", "to": "23:59"}}]

test_deny_inside_dated_window if {
	some v in freeze.deny_freeze_window with input as started("prod", "2026-12-25T12:00:00Z") with data.freeze_windows as year_end
	v.details.window == "year-end"
	v.details.until == "2027-01-02T00:00:00Z"
	endswith(v.msg, ", until 2027-01-02T00:00:00Z")
}

test_allow_after_dated_window if {
	count(freeze.deny_freeze_window) == 0 with input as started("prod", "2027-01-02T00:00:00Z") with data.freeze_windows as year_end
}

test_allow_other_environment if {
	count(freeze.deny_freeze_window) == 0 with input as started("staging", "2026-12-25T12:00:00Z") with data.freeze_windows as year_end
}

test_deny_inside_weekly_window if {
	# 2026-11-27 is a Friday
	count(freeze.deny_freeze_window) == 1 with input as started("staging", "2026-11-27T17:30:00Z") with data.freeze_windows as fridays
	some v in freeze.deny_freeze_window with input as started("staging", "2026-11-27T17:30:00Z") with data.freeze_windows as fridays
	v.details.until == "23:59 UTC that day"
}

test_allow_before_weekly_window if {
	count(freeze.deny_freeze_window) == 0 with input as started("staging", "2026-11-27T15:59:00Z") with data.freeze_windows as fridays
}

test_allow_other_day if {
	count(freeze.deny_freeze_window) == 0 with input as started("staging", "2026-11-26T17:30:00Z") with data.freeze_windows as fridays
}
