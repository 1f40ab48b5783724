# METADATA
# title: Pod security level in the decision
# description: >-
#   The whole decision for a pod that satisfies baseline and breaks restricted, every other concern
#   satisfied: the environment's policy.pod_security decides. (Here, not beside the rules: a test
#   under the kubernetes root that reads the decision would make it recursive for OPA.)
# custom:
#   severity: info
#   remediation: Not a rule.
package promoter.pod_security_test

import data.lib.fixtures_test as f
import data.promoter
import rego.v1

# the whole decision, with every other concern satisfied: the environment's level decides
hygienic_baseline_pod := f.pod_replacing({
	"securityContext": {},
	"containers": [object.union(object.remove(f.container, ["securityContext"]), {"securityContext": {"privileged": false}})],
})

at_level(level) := object.union(f.objects_input([hygienic_baseline_pod], "staging"), {"environment": {"policy": {"pod_security": level}}})

decision_at(level) := d if {
	d := promoter.decision with input as at_level(level)
}

test_the_decision_allows_a_baseline_pod_in_baseline_and_denies_it_in_restricted if {
	decision_at("baseline").allow
	d := decision_at("restricted")
	not d.allow
	{v.rule | some v in d.deny} == {
		"kubernetes.security.deny_run_as_root",
		"kubernetes.security.deny_seccomp_unset",
		"kubernetes.security.deny_privilege_escalation",
		"kubernetes.security.deny_capabilities_not_dropped",
	}
}
