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

# a graph: prod comes after staging-eu (600 s soak) and staging-us (no soak), both healthy since 09:00
graph_at(evaluated_at) := {
	"environment": object.union(f.environment("prod"), {"after": ["staging-eu", "staging-us"]}),
	"objects": [], "approvals": [],
	"promotion": object.union(f.promotion("prod", "pre_pr"), {
		"evaluated_at": evaluated_at,
		"environments": ["dev", "staging-eu", "staging-us", "prod"],
		"history": [
			{"env": "dev", "state": "healthy", "healthy_since": "2026-11-25T08:00:00Z", "soak_seconds": 0},
			{"env": "staging-eu", "state": "healthy", "healthy_since": "2026-11-25T09:00:00Z", "soak_seconds": 600},
			{"env": "staging-us", "state": "healthy", "healthy_since": "2026-11-25T09:00:00Z", "soak_seconds": 0},
		],
	}),
}

test_graph_deny_fan_in_until_every_upstream_soaked if {
	# staging-us (the one before prod in the list) has soaked; staging-eu has not
	denials := soak.deny_not_soaked with input as graph_at("2026-11-25T09:05:00Z")
	count(denials) == 1
	some v in denials
	v.details.previous == "staging-eu"
}

test_graph_allow_fan_in_once_soaked if {
	count(soak.deny_not_soaked) == 0 with input as graph_at("2026-11-25T09:10:00Z")
}
