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

# a graph: dev -> staging-eu, staging-us -> prod (prod's environment.yaml: after: [staging-eu, staging-us])
graph_input(target, after, history) := {
	"environment": object.union(f.environment(target), {"after": after}), "objects": [], "approvals": [],
	"promotion": object.union(f.promotion(target, "pre_pr"), {
		"environments": ["dev", "staging-eu", "staging-us", "prod"], "history": history,
	}),
}

healthy(env) := {"env": env, "state": "healthy", "healthy_since": "2026-11-25T09:00:00Z", "soak_seconds": 0}

test_graph_deny_fan_in_with_one_branch_failed if {
	failed := {"env": "staging-us", "state": "reverted", "healthy_since": null, "soak_seconds": 0}
	inp := graph_input("prod", ["staging-eu", "staging-us"], [healthy("dev"), healthy("staging-eu"), failed])
	denials := order.deny_skipped_environment with input as inp
	count(denials) == 1
	some v in denials
	v.details.previous == "staging-us"
	contains(v.msg, "it comes after staging-eu, staging-us")
}

test_graph_deny_fan_in_judges_every_upstream_not_the_one_before if {
	# the environment before prod in the list (staging-us) is healthy; staging-eu, which prod also comes after, is not
	inp := graph_input("prod", ["staging-eu", "staging-us"], [healthy("dev"), healthy("staging-us")])
	some v in order.deny_skipped_environment with input as inp
	v.details.previous == "staging-eu"
}

test_graph_allow_fan_in_when_every_upstream_healthy if {
	inp := graph_input("prod", ["staging-eu", "staging-us"], [healthy("dev"), healthy("staging-eu"), healthy("staging-us")])
	count(order.deny_skipped_environment) == 0 with input as inp
}

test_graph_allow_branch_beside_a_pending_one if {
	# staging-us comes after dev alone: staging-eu (before it in the list) need not have the version
	inp := graph_input("staging-us", ["dev"], [healthy("dev"), {"env": "staging-eu", "state": "awaiting_approval", "healthy_since": null, "soak_seconds": 0}])
	count(order.deny_skipped_environment) == 0 with input as inp
}

test_graph_allow_source if {
	count(order.deny_skipped_environment) == 0 with input as graph_input("dev", [], [])
}
