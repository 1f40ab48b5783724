package promoter_test

import data.lib.fixtures_test as f
import data.promoter
import rego.v1

latest := f.with_container({"image": "ghcr.io/promoter-dev/demo:latest"})

meta := {"kubernetes.images.deny_unpinned_image": {"severity": "high", "remediation": "Pin it."}}

test_allow_clean_objects if {
	object.remove(promoter.decision, ["approvers"]) == {"allow": true, "deny": [], "warn": [], "excepted": []} with input as f.objects_input([f.good], "staging")
}

test_deny_carries_rule_severity_and_remediation if {
	d := promoter.decision with input as f.objects_input([latest], "staging") with data.policy_metadata as meta
	not d.allow
	some v in d.deny
	v.rule == "kubernetes.images.deny_unpinned_image"
	v.severity == "high"
	v.remediation == "Pin it."
	v.object == "Deployment/apps/demo"
}

test_warn_only_concern_warns_instead if {
	inp := object.union(f.objects_input([latest], "staging"), {"environment": {"policy": {"enforce": ["promotion"], "warn_only": ["kubernetes"]}}})
	d := promoter.decision with input as inp
	d.allow
	count(d.warn) > 0
}

test_deny_unknown_concern if {
	inp := object.union(f.objects_input([f.good], "staging"), {"environment": {"policy": {"enforce": ["kubernetes", "typo"], "warn_only": []}}})
	d := promoter.decision with input as inp
	not d.allow
	some v in d.deny
	v.rule == "promoter.unknown_concern"
}

exception(patch) := object.union({
	"rule": "kubernetes.images.deny_unpinned_image", "app": "demo", "env": null, "object": null,
	"reason": "debug build until the fix lands", "owner": "alice", "expires": "2026-12-01",
	"file": "policies/exceptions/demo.yaml",
}, patch)

test_allow_with_an_unexpired_exception_recorded_as_excepted if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"demo-debug": exception({})}
	d.allow
	some v in d.excepted
	v.rule == "kubernetes.images.deny_unpinned_image"
	v.exception == "exception demo-debug by alice until 2026-12-01: debug build until the fix lands"
}

test_allow_with_an_exception_for_a_whole_package if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"images": exception({"rule": "kubernetes.images", "env": "staging"})}
	d.allow
	count(d.excepted) > 0
}

test_deny_with_an_expired_exception_saying_it_expired if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"demo-debug": exception({"expires": "2026-11-24"})}
	not d.allow
	some v in d.deny
	v.rule == "kubernetes.images.deny_unpinned_image"
	v.exception == "exception demo-debug by alice expired on 2026-11-24: debug build until the fix lands"
	d.excepted == []
}

test_exception_holds_through_its_expiry_date if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"demo-debug": exception({"expires": "2026-11-25"})}
	d.allow
}

test_deny_an_exception_that_runs_too_long if {
	d := promoter.decision with input as f.objects_input([f.good], "staging")
		with data.exceptions as {"forever": exception({"expires": "2027-06-01"})}
	not d.allow
	some v in d.deny
	v.rule == "promoter.exception_too_long"
	v.message == "exception forever (policies/exceptions/demo.yaml) expires 2027-06-01, more than 90 days ahead"
}

test_allow_a_longer_exception_when_the_data_allows_it if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"long": exception({"expires": "2027-06-01"})}
		with data.max_exception_days as 365
	d.allow
}

test_an_exception_of_another_app_environment_or_object_does_not_apply if {
	every patch in [{"app": "other"}, {"env": "prod"}, {"object": "Deployment/apps/other"}] {
		d := promoter.decision with input as f.objects_input([latest], "staging")
			with data.exceptions as {"x": exception(patch)}
		not d.allow
	}
}

test_an_exception_naming_the_object_applies if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"x": exception({"object": "Deployment/apps/demo"})}
	d.allow
}

test_approvers_are_the_environment_s_with_groups_expanded if {
	d := promoter.decision with input as f.objects_input([f.good], "staging")
		with data.groups as {"release-managers": ["bob", "carol"]}
	d.approvers == ["alice", "bob", "carol"]
}
