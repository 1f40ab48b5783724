package promotion.freeze_test

import data.lib.fixtures_test as f
import data.promotion.freeze
import rego.v1

# a check evaluated `at` (the promotion started before, at the fixture's 2026-11-25T10:00:00Z)
checked(env, phase, at) := {
	"environment": f.environment(env), "objects": [], "approvals": [],
	"promotion": object.union(f.promotion(env, phase), {"evaluated_at": at}),
}

year_end := [{"name": "year-end", "environments": ["prod"], "start": "2026-12-24T00:00:00Z", "end": "2027-01-02T00:00:00Z"}]

fridays := [{"name": "friday evenings", "weekly": {"days": ["Friday"], "from": "16:00", "to": "23:59"}}]

test_deny_inside_dated_window if {
	some v in freeze.deny_freeze_window with input as checked("prod", "pre_pr", "2026-12-25T12:00:00Z") with data.freeze_windows as year_end
	v.details.window == "year-end"
	v.details.until == "2027-01-02T00:00:00Z"
	v.msg == "prod is frozen by 'year-end' at 2026-12-25T12:00:00Z, until 2027-01-02T00:00:00Z"
}

test_allow_after_dated_window if {
	count(freeze.deny_freeze_window) == 0 with input as checked("prod", "pre_pr", "2027-01-02T00:00:00Z") with data.freeze_windows as year_end
}

test_allow_other_environment if {
	count(freeze.deny_freeze_window) == 0 with input as checked("staging", "pre_pr", "2026-12-25T12:00:00Z") with data.freeze_windows as year_end
}

# the start time does not matter: a promotion started a minute before the freeze is judged at each check
test_deny_at_merge_a_promotion_started_before_the_window if {
	inp := object.union(checked("prod", "merge", "2026-12-24T09:00:00Z"), {"promotion": {"started_at": "2026-12-23T23:59:00Z"}})
	some v in freeze.deny_freeze_window with input as inp with data.freeze_windows as year_end
	v.msg == "prod is frozen by 'year-end' at 2026-12-24T09:00:00Z, until 2027-01-02T00:00:00Z"
}

test_allow_a_check_before_the_window_of_a_promotion_that_merges_later if {
	inp := object.union(checked("prod", "pre_pr", "2026-12-23T23:59:00Z"), {"promotion": {"started_at": "2026-12-23T23:59:00Z"}})
	count(freeze.deny_freeze_window) == 0 with input as inp with data.freeze_windows as year_end
}

test_the_start_time_judges_only_an_input_without_an_evaluation_time if {
	inp := {
		"environment": f.environment("prod"), "objects": [], "approvals": [],
		"promotion": object.union(object.remove(f.promotion("prod", "pre_pr"), ["evaluated_at"]), {"started_at": "2026-12-25T12:00:00Z"}),
	}
	count(freeze.deny_freeze_window) == 1 with input as inp with data.freeze_windows as year_end
}

test_deny_inside_weekly_window if {
	# 2026-11-27 is a Friday
	count(freeze.deny_freeze_window) == 1 with input as checked("staging", "approval", "2026-11-27T17:30:00Z") with data.freeze_windows as fridays
	some v in freeze.deny_freeze_window with input as checked("staging", "approval", "2026-11-27T17:30:00Z") with data.freeze_windows as fridays
	v.details.until == "23:59 UTC that day"
}

test_allow_before_weekly_window if {
	count(freeze.deny_freeze_window) == 0 with input as checked("staging", "pre_pr", "2026-11-27T15:59:00Z") with data.freeze_windows as fridays
}

test_allow_other_day if {
	count(freeze.deny_freeze_window) == 0 with input as checked("staging", "pre_pr", "2026-11-26T17:30:00Z") with data.freeze_windows as fridays
}

test_weekdays_in_any_case if {
	# 2026-11-25 is a Wednesday
	every day in ["wednesday", "WEDNESDAY", "Wednesday", "wEdNeSdAy"] {
		windows := [{"name": "midweek", "weekly": {"days": [day], "from": "09:00", "to": "11:00"}}]
		count(freeze.deny_freeze_window) == 1 with input as checked("staging", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as windows
		count(freeze.deny_malformed_window) == 0 with input as checked("staging", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as windows
	}
}

test_a_date_window_covers_its_whole_last_day if {
	windows := [{"name": "christmas", "start": "2026-12-24", "end": "2026-12-26"}]
	count(freeze.deny_freeze_window) == 1 with input as checked("prod", "pre_pr", "2026-12-24T00:00:00Z") with data.freeze_windows as windows
	count(freeze.deny_freeze_window) == 1 with input as checked("prod", "pre_pr", "2026-12-26T23:59:00Z") with data.freeze_windows as windows
	count(freeze.deny_freeze_window) == 0 with input as checked("prod", "pre_pr", "2026-12-27T00:00:00Z") with data.freeze_windows as windows
	count(freeze.deny_freeze_window) == 0 with input as checked("prod", "pre_pr", "2026-12-23T23:59:59Z") with data.freeze_windows as windows
	some v in freeze.deny_freeze_window with input as checked("prod", "pre_pr", "2026-12-25T12:00:00Z") with data.freeze_windows as windows
	v.details.until == "the end of 2026-12-26 (UTC)"
	count(freeze.deny_malformed_window) == 0 with input as checked("prod", "pre_pr", "2026-12-25T12:00:00Z") with data.freeze_windows as windows
}

# each unreadable window, with the field its denial names (judged far from any window: a broken one
# denies every check, in every environment)
malformed := [
	[{"name": "w", "weekly": {"days": ["Wensday"], "from": "09:00", "to": "17:00"}}, "weekly.days"],
	[{"name": "w", "weekly": {"days": ["Fri"], "from": "09:00", "to": "17:00"}}, "weekly.days"],
	[{"name": "w", "weekly": {"days": [], "from": "09:00", "to": "17:00"}}, "weekly.days"],
	[{"name": "w", "weekly": {"days": "Friday", "from": "09:00", "to": "17:00"}}, "weekly.days"],
	[{"name": "w", "weekly": {"from": "09:00", "to": "17:00"}}, "weekly.days"],
	[{"name": "w", "weekly": {"days": ["Friday"], "from": "25:00", "to": "23:00"}}, "weekly.from"],
	[{"name": "w", "weekly": {"days": ["Friday"], "from": "9:00", "to": "17:00"}}, "weekly.from"],
	[{"name": "w", "weekly": {"days": ["Friday"], "from": 960, "to": "17:00"}}, "weekly.from"],
	[{"name": "w", "weekly": {"days": ["Friday"], "from": "09:00"}}, "weekly.to"],
	[{"name": "w", "weekly": {"days": ["Friday"], "from": "17:00", "to": "09:00"}}, "weekly.to"],
	[{"name": "w", "weekly": {"day": ["Friday"], "from": "09:00", "to": "17:00"}}, "weekly.day"],
	[{"name": "w", "weekly": ["Friday"]}, "weekly"],
	[{"name": "w", "start": "soon", "end": "2027-01-02T00:00:00Z"}, "start"],
	[{"name": "w", "start": "2026-12-24T00:00:00Z", "end": "2026-13-01"}, "end"],
	[{"name": "w", "start": "2026-12-24T00:00:00Z", "end": "2027-02-30"}, "end"],
	[{"name": "w", "start": "2026-12-24 junk", "end": "2027-01-02"}, "start"],
	[{"name": "w", "start": "2026-12-24T00:00:00", "end": "2027-01-02"}, "start"],
	[{"name": "w", "start": "2027-01-02T00:00:00Z", "end": "2026-12-24T00:00:00Z"}, "end"],
	[{"name": "w", "start": "2026-12-24T00:00:00Z"}, "end"],
	[{"name": "w", "end": "2026-12-24T00:00:00Z"}, "start"],
	[{"name": "w"}, "start"],
	[{"name": "w", "environments": "prod", "start": "2026-12-24", "end": "2026-12-25"}, "environments"],
	[{"name": "w", "enviroments": ["prod"], "start": "2026-12-24", "end": "2026-12-25"}, "enviroments"],
	[{"name": "w", "start": "2026-12-24", "end": "2026-12-25", "weekly": {"days": ["Friday"], "from": "09:00", "to": "17:00"}}, "weekly"],
	[{"start": "2026-12-24", "end": "2026-12-25"}, "name"],
	[{"name": "", "start": "2026-12-24", "end": "2026-12-25"}, "name"],
	["friday", "window"],
	[5, "window"],
	[["Friday"], "window"],
]

test_deny_every_unreadable_window_naming_it_and_its_field if {
	every case in malformed {
		some v in freeze.deny_malformed_window with input as checked("dev", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as [case[0]]
		v.details.field == case[1]
		contains(v.msg, sprintf(": %s ", [case[1]]))
		count(freeze.deny_freeze_window) == 0 with input as checked("dev", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as [case[0]]
	}
}

test_deny_a_misspelt_weekday_by_name if {
	windows := [{"name": "friday evenings", "environments": ["prod"], "weekly": {"days": ["Wensday"], "from": "16:00", "to": "23:59"}}]
	found := freeze.deny_malformed_window with input as checked("staging", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as windows
	count(found) == 1
	some v in found
	v.msg == "freeze window 'friday evenings' in data.freeze_windows: weekly.days \"Wensday\" is not a weekday (Monday to Sunday, in any case)"
	v.details == {"window": "friday evenings", "field": "weekly.days"}
}

test_deny_freeze_windows_that_are_not_a_list if {
	some v in freeze.deny_malformed_window with input as checked("dev", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as {"name": "w"}
	v.msg == "data.freeze_windows is not a list of freeze windows"
}

test_a_good_window_is_no_problem if {
	windows := array.concat(year_end, array.concat(fridays, [{"name": "d", "start": "2026-12-24", "end": "2026-12-24T12:00:00+01:00"}]))
	count(freeze.deny_malformed_window) == 0 with input as checked("dev", "pre_pr", "2026-11-25T10:00:00Z") with data.freeze_windows as windows
}

# ------------------------------------------------------------------ change calendars
# input.calendar_windows as promoter expands them (promoter/calendars.py) from data.yaml's freeze_calendars

berlin := [
	{"name": "Weekly change freeze", "environments": ["prod"], "start": "2026-03-30T16:00:00Z", "end": "2026-03-30T18:00:00Z", "calendar": "policies/calendars/change-freeze.ics"},
	{"name": "Quarter close", "start": "2026-03-31T00:00:00Z", "end": "2026-04-01T00:00:00Z", "calendar": "policies/calendars/change-freeze.ics"},
]

at_with_calendar(env, at, windows) := object.union(checked(env, "pre_pr", at), {"calendar_windows": windows})

test_deny_inside_a_calendar_event_naming_it_and_its_end if {
	found := freeze.deny_freeze_window with input as at_with_calendar("prod", "2026-03-30T17:00:00Z", berlin) with data.freeze_windows as []
	count(found) == 1
	some v in found
	v.msg == "prod is frozen by 'Weekly change freeze' (policies/calendars/change-freeze.ics) at 2026-03-30T17:00:00Z, until 2026-03-30T18:00:00Z"
	v.details == {"window": "Weekly change freeze", "until": "2026-03-30T18:00:00Z", "calendar": "policies/calendars/change-freeze.ics"}
}

test_allow_at_a_calendar_event_end if {
	count(freeze.deny_freeze_window) == 0 with input as at_with_calendar("prod", "2026-03-30T18:00:00Z", berlin) with data.freeze_windows as []
	count(freeze.deny_freeze_window) == 0 with input as at_with_calendar("prod", "2026-03-30T15:59:59Z", berlin) with data.freeze_windows as []
}

test_a_calendar_event_only_in_its_environments if {
	count(freeze.deny_freeze_window) == 0 with input as at_with_calendar("staging", "2026-03-30T17:00:00Z", berlin) with data.freeze_windows as []
	count(freeze.deny_freeze_window) == 1 with input as at_with_calendar("staging", "2026-03-31T12:00:00Z", berlin) with data.freeze_windows as []
}

test_a_calendar_window_promoter_did_not_build_is_a_denial if {
	every bad in [
		{"name": "x", "start": "2026-03-30", "end": "2026-03-31T00:00:00Z", "calendar": "c.ics"},
		{"name": "x", "start": "2026-03-31T00:00:00Z", "end": "2026-03-30T00:00:00Z", "calendar": "c.ics"},
		{"name": "x", "environments": "prod", "start": "2026-03-30T00:00:00Z", "end": "2026-03-31T00:00:00Z", "calendar": "c.ics"},
		{"start": "2026-03-30T00:00:00Z", "end": "2026-03-31T00:00:00Z", "calendar": "c.ics"},
		"Quarter close",
	] {
		some v in freeze.deny_malformed_window with input as at_with_calendar("prod", "2026-03-30T17:00:00Z", [bad]) with data.freeze_windows as []
		v.details.field == "calendar_windows"
	}
	some v in freeze.deny_malformed_window with input as at_with_calendar("prod", "2026-03-30T17:00:00Z", {"a": 1}) with data.freeze_windows as []
	v.msg == "input.calendar_windows is not a list of calendar windows"
	count(freeze.deny_malformed_window) == 0 with input as at_with_calendar("prod", "2026-03-30T17:00:00Z", berlin) with data.freeze_windows as []
}
