package schemas.kubernetes_test

import data.schemas.kubernetes
import rego.v1

finding(kind, path) := {"kind": kind, "object": "Deployment/-/demo", "path": path, "message": "m"}

with_findings(fs) := {"schemas": {"version": "1.31", "findings": fs}}

test_an_invalid_field_is_denied_with_its_path if {
	some r in kubernetes.deny_invalid with input as with_findings([finding("invalid", "spec.replicsa")])
	r == {"msg": "spec.replicsa: m", "object": "Deployment/-/demo", "path": "spec.replicsa"}
}

test_a_removed_api_is_denied if {
	count(kubernetes.deny_removed_api) == 1 with input as with_findings([finding("removed", "apiVersion")])
}

test_deprecated_only_warns if {
	fs := [finding("deprecated", "apiVersion")]
	count(kubernetes.warn_deprecated_api) == 1 with input as with_findings(fs)
	count(kubernetes.deny_invalid) == 0 with input as with_findings(fs)
	count(kubernetes.deny_removed_api) == 0 with input as with_findings(fs)
	count(kubernetes.deny_not_validated) == 0 with input as with_findings(fs)
}

test_a_custom_resource_without_a_crd_is_denied if {
	fs := [{"kind": "unvalidated", "object": "Widget/-/w", "path": "", "message": "not validated: no CRD"}]
	some r in kubernetes.deny_not_validated with input as with_findings(fs)
	r == {"msg": "not validated: no CRD", "object": "Widget/-/w", "path": ""}
	count(kubernetes.deny_invalid) == 0 with input as with_findings(fs)
}

test_no_schemas_input_no_finding if {
	count(kubernetes.deny_invalid) == 0 with input as {}
}
