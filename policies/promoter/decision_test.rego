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

test_data_may_lower_max_exception_days if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"month": exception({"expires": "2026-12-20"})}
		with data.max_exception_days as 14
	not d.allow
	some v in d.deny
	v.rule == "promoter.exception_too_long"
	v.message == "exception month (policies/exceptions/demo.yaml) expires 2026-12-20, more than 14 days ahead"
}

test_data_may_not_raise_max_exception_days if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"long": exception({"expires": "2027-06-01"})}
		with data.max_exception_days as 100000
	not d.allow
	rules := {v.rule | some v in d.deny}
	rules == {"promoter.max_exception_days", "promoter.exception_too_long", "kubernetes.images.deny_unpinned_image"}
	some v in d.deny
	v.rule == "promoter.max_exception_days"
	v.message == "data.max_exception_days 100000 is not a whole number of days from 0 to 90 (its ceiling: data may lower it, never raise it)"
}

test_an_exception_until_2099_runs_too_long if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"forever": exception({"expires": "2099-12-31"})}
	not d.allow
	{v.rule | some v in d.deny} == {"promoter.exception_too_long", "kubernetes.images.deny_unpinned_image"}
	d.excepted == []
}

test_an_exception_may_expire_at_an_rfc3339_time if {
	# the fixture evaluates at 2026-11-25T10:00:00Z
	live := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"x": exception({"expires": "2026-11-25T11:00:00Z"})}
	live.allow
	gone := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"x": exception({"expires": "2026-11-25T09:00:00+00:00"})}
	not gone.allow
	some v in gone.deny
	v.exception == "exception x by alice expired on 2026-11-25T09:00:00+00:00: debug build until the fix lands"
}

test_deny_an_exception_whose_expiry_is_not_a_date if {
	every bad in ["2026-12-20 junk", "2026-13-01", "2026-02-30", "tomorrow", "2026-12-20T00:00:00", 20261220, null] {
		d := promoter.decision with input as f.objects_input([latest], "staging")
			with data.exceptions as {"junk": exception({"expires": bad})}
		not d.allow
		d.excepted == []
		some v in d.deny
		v.rule == "promoter.exception_refused"
		v.message == sprintf("exception junk (policies/exceptions/demo.yaml): expires %s is not a date (YYYY-MM-DD) or an RFC 3339 time", [json.marshal(bad)])
	}
}

# what a developer could push to waive the gates: none of these ever excepts a finding
promotion_exceptions := [
	"promotion.approvals.deny_author_approval", "promotion.approvals", "promotion.order",
	"promotion.order.deny_skipped_environment", "promotion.freeze", "promotion.soak", "promotion",
	"promoter.exception_too_long", "lib.k8s",
]

skipped_staging := object.union(f.objects_input([f.good], "prod"), {"promotion": {"history": []}})

test_an_exception_never_waives_a_promotion_rule if {
	every rule in promotion_exceptions {
		d := promoter.decision with input as skipped_staging
			with data.exceptions as {"skip": exception({"rule": rule, "env": "prod"})}
		not d.allow
		d.excepted == []
		rules := {v.rule | some v in d.deny}
		rules == {"promotion.order.deny_skipped_environment", "promoter.exception_refused"}
		some v in d.deny
		v.rule == "promoter.exception_refused"
		v.message == sprintf(
			"exception skip (policies/exceptions/demo.yaml): rule \"%s\" cannot be excepted: only rules of the kubernetes and schemas concerns can be (the promotion rules always hold)",
			[rule],
		)
	}
}

test_an_exception_never_lets_an_author_approve_prod if {
	inp := object.union(f.objects_input([f.good], "prod"), {
		"promotion": {"phase": "approval", "author": "Alice Liddell <alice@example.com>"},
		"approvals": [{"approver": "alice", "at": "2026-11-25T10:00:00Z", "via": "cli"}],
	})
	d := promoter.decision with input as inp
		with data.exceptions as {"self": exception({"rule": "promotion.approvals.deny_author_approval"})}
	not d.allow
	some v in d.deny
	v.rule == "promotion.approvals.deny_author_approval"
}

test_the_promotion_rules_hold_whatever_the_environment_enforces if {
	every policy in [
		{"enforce": [], "warn_only": []},
		{"enforce": ["kubernetes"], "warn_only": ["promotion"]},
		{"enforce": [], "warn_only": ["promotion", "kubernetes"]},
		null,
	] {
		inp := object.union(skipped_staging, {"environment": {"policy": policy}})
		d := promoter.decision with input as inp
		not d.allow
		some v in d.deny
		v.rule == "promotion.order.deny_skipped_environment"
		v.concern == "promotion"
		every w in d.warn {
			w.concern != "promotion"
		}
	}
}

test_kubernetes_stays_configurable if {
	inp := object.union(f.objects_input([latest], "staging"), {"environment": {"policy": {"enforce": [], "warn_only": []}}})
	d := promoter.decision with input as inp
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

# a manifest without a namespace: the finding names Deployment/-/demo, sync puts it in cluster.namespace
in_apps := object.union(f.objects_input([json.patch(latest, [{"op": "remove", "path": "/metadata/namespace"}])], "staging"), {"environment": {"cluster": {"namespace": "apps"}}})

test_an_exception_names_an_object_without_a_namespace_by_the_cluster_namespace if {
	some denied in promoter.decision.deny with input as in_apps
	denied.object == "Deployment/-/demo"
	every named in ["Deployment/apps/demo", "Deployment/-/demo"] {
		d := promoter.decision with input as in_apps with data.exceptions as {"x": exception({"object": named})}
		d.allow
		[e.object | some e in d.excepted] == ["Deployment/-/demo"]
	}
	every named in ["Deployment/other/demo", "Deployment/apps/other", "Service/apps/demo", "Deployment/apps"] {
		d := promoter.decision with input as in_apps with data.exceptions as {"x": exception({"object": named})}
		not d.allow
	}
}

test_an_exception_matching_no_finding_warns if {
	d := promoter.decision with input as f.objects_input([f.good], "staging")
		with data.exceptions as {"stale": exception({"object": "Deployment/apps/demo"})}
	d.allow
	[v] := d.warn
	v.rule == "promoter.exception_unmatched"
	v.severity == "low"
	v.message == "exception stale (policies/exceptions/demo.yaml) matches no finding of demo in staging (rule kubernetes.images.deny_unpinned_image, object Deployment/apps/demo)"
}

test_a_path_on_a_finding_without_one_matches_nothing if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"p": exception({"path": "spec.replicas"})}
	not d.allow
	[v.rule | some v in d.warn] == ["promoter.exception_unmatched"]
}

test_an_exception_that_matches_or_is_elsewhere_does_not_warn if {
	d := promoter.decision with input as f.objects_input([latest], "staging")
		with data.exceptions as {"x": exception({}), "other": exception({"app": "other"}), "prod": exception({"env": "prod"})}
	d.allow
	d.warn == []
}

test_an_exception_matching_a_warned_finding_does_not_warn if {
	inp := object.union(f.objects_input([latest], "dev"), {"environment": {"policy": {"enforce": ["promotion"], "warn_only": ["kubernetes"]}}})
	d := promoter.decision with input as inp with data.exceptions as {"x": exception({})}
	[v.rule | some v in d.warn] == ["kubernetes.images.deny_unpinned_image"]
}

test_no_unmatched_warning_without_objects if {
	inp := object.union(f.objects_input([], "staging"), {"promotion": {"phase": "approval"}})
	d := promoter.decision with input as inp with data.exceptions as {"stale": exception({})}
	d.warn == []
}

test_approvers_are_the_environment_s_with_groups_expanded if {
	d := promoter.decision with input as f.objects_input([f.good], "staging")
		with data.groups as {"release-managers": ["bob", "carol"]}
	d.approvers == ["alice", "bob", "carol"]
}

# ------------------------------------------------------------------ break-glass

frozen := [{"name": "year-end", "environments": ["prod"], "start": "2026-11-20T00:00:00Z", "end": "2026-12-01T00:00:00Z"}]

glass(patch) := object.union({
	"app": "demo", "env": "prod", "reason": "fix for incident 4711", "requested_by": "alice",
	"until": "2026-11-25T12:00:00Z", "approved_at": "2026-11-25T09:00:00Z", "approved_by": ["bob"],
	"file": "trust/break-glass/demo-prod-20261125085500.yaml",
}, patch)

# prod, checked at `at` (the fixture's promotion is otherwise clean: staging soaked, no objects)
prod_at(at) := object.union(f.objects_input([f.good], "prod"), {"promotion": {"evaluated_at": at}})

test_a_live_break_glass_lets_a_freeze_through_and_says_so if {
	d := promoter.decision with input as prod_at("2026-11-25T10:00:00Z") with data.freeze_windows as frozen
		with data.break_glass as {"demo-prod-1": glass({})}
	d.allow
	some v in d.excepted
	v.rule == "promotion.freeze.deny_freeze_window"
	v.exception == "break-glass demo-prod-1 by alice until 2026-11-25T12:00:00Z: fix for incident 4711"
}

test_a_break_glass_stops_counting_at_its_end if {
	d := promoter.decision with input as prod_at("2026-11-25T12:01:00Z") with data.freeze_windows as frozen
		with data.break_glass as {"demo-prod-1": glass({})}
	not d.allow
	d.excepted == []
	some v in d.deny
	v.rule == "promotion.freeze.deny_freeze_window"
	# nor before its approval
	not promoter.decision.allow with input as prod_at("2026-11-25T08:59:00Z") with data.freeze_windows as frozen
		with data.break_glass as {"demo-prod-1": glass({})}
}

test_a_break_glass_counts_only_for_its_app_and_environment if {
	every g in [glass({"app": "other"}), glass({"env": "staging"})] {
		not promoter.decision.allow with input as prod_at("2026-11-25T10:00:00Z") with data.freeze_windows as frozen
			with data.break_glass as {"g": g}
	}
}

test_a_break_glass_never_lets_another_rule_through if {
	inp := object.union(skipped_staging, {"promotion": {"evaluated_at": "2026-11-25T10:00:00Z"}})
	d := promoter.decision with input as inp with data.freeze_windows as frozen with data.break_glass as {"g": glass({})}
	not d.allow
	rules := {v.rule | some v in d.deny}
	rules == {"promotion.order.deny_skipped_environment"}
	some v in d.excepted
	v.rule == "promotion.freeze.deny_freeze_window"
	# an approval rule holds too: the author may not approve prod
	appr := object.union(prod_at("2026-11-25T10:00:00Z"), {
		"promotion": {"phase": "approval", "author": "Alice Liddell <alice@example.com>"},
		"approvals": [{"approver": "alice", "at": "2026-11-25T10:00:00Z", "via": "cli"}],
	})
	d2 := promoter.decision with input as appr with data.freeze_windows as frozen with data.break_glass as {"g": glass({})}
	some w in d2.deny
	w.rule == "promotion.approvals.deny_author_approval"
}

test_a_break_glass_of_a_week_is_refused_and_said_so if {
	long := glass({"until": "2026-12-02T09:00:00Z"})
	d := promoter.decision with input as prod_at("2026-11-25T10:00:00Z") with data.freeze_windows as frozen
		with data.break_glass as {"week": long}
	not d.allow
	d.excepted == []
	some w in d.warn
	w.rule == "promoter.break_glass_refused"
	w.message == "break-glass week (trust/break-glass/demo-prod-20261125085500.yaml) runs from 2026-11-25T09:00:00Z until 2026-12-02T09:00:00Z, more than 24 hours: it is not honoured"
}
