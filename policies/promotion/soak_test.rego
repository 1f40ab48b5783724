package promotion.soak_test

import data.lib.fixtures_test as f
import data.promotion.soak
import rego.v1

at(target, evaluated_at) := {
	"environment": f.environment(target), "objects": [], "approvals": [],
	"promotion": object.union(f.promotion(target, "pre_pr"), {"evaluated_at": evaluated_at}),
}

test_deny_before_soak_ends if {
	# staging healthy since 09:00 with a 600 s soak: not before 09:10
	some v in soak.deny_not_soaked with input as at("prod", "2026-11-25T09:05:00Z")
	v.details.previous == "staging"
	v.details.ready_at == "2026-11-25T09:10:00Z"
}

test_allow_after_soak if {
	count(soak.deny_not_soaked) == 0 with input as at("prod", "2026-11-25T09:10:00Z")
}

test_allow_zero_soak if {
	count(soak.deny_not_soaked) == 0 with input as at("staging", "2026-11-25T09:00:00Z")
}
