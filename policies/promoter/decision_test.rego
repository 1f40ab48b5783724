package promoter_test

import data.lib.fixtures_test as f
import data.promoter
import rego.v1

latest := f.with_container({"image": "ghcr.io/promoter-dev/demo:latest"})

meta := {"kubernetes.images.deny_unpinned_image": {"severity": "high", "remediation": "Pin it."}}

test_allow_clean_objects if {
	promoter.decision == {"allow": true, "deny": [], "warn": []} with input as f.objects_input([f.good], "staging")
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
