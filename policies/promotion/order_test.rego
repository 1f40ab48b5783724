package promotion.order_test

import data.lib.fixtures_test as f
import data.promotion.order
import rego.v1

input_with(target, history, phase) := {
	"environment": f.environment(target), "objects": [], "approvals": [],
	"promotion": object.union(f.promotion(target, phase), {"history": history}),
}

test_deny_skipping_staging if {
	inp := input_with("prod", [{"env": "dev", "state": "healthy", "healthy_since": "2026-11-25T09:00:00Z", "soak_seconds": 0}], "pre_pr")
	some v in order.deny_skipped_environment with input as inp
	v.details.previous == "staging"
}

test_deny_when_previous_failed if {
	inp := input_with("staging", [{"env": "dev", "state": "failed", "healthy_since": null, "soak_seconds": 0}], "merge")
	count(order.deny_skipped_environment) == 1 with input as inp
}

test_allow_in_order if {
	count(order.deny_skipped_environment) == 0 with input as input_with("prod", f.promotion("prod", "pre_pr").history, "pre_pr")
}

test_allow_previous_skipped if {
	inp := input_with("prod", [{"env": "staging", "state": "skipped", "healthy_since": null, "soak_seconds": 0}], "pre_pr")
	count(order.deny_skipped_environment) == 0 with input as inp
}

test_allow_source_environment if {
	count(order.deny_skipped_environment) == 0 with input as input_with("dev", [], "pre_pr")
}

test_allow_shift_left_check if {
	count(order.deny_skipped_environment) == 0 with input as input_with("prod", [], "check")
}
