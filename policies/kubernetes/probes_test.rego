package kubernetes.probes_test

import data.kubernetes.probes
import data.lib.fixtures_test as f
import rego.v1

test_deny_missing_readiness if {
	obj := f.deployment_with({"containers": [object.remove(f.container, ["readinessProbe"])]})
	count(probes.deny_missing_readiness) == 1 with input as f.objects_input([obj], "staging")
}

test_deny_missing_liveness if {
	obj := f.deployment_with({"containers": [object.remove(f.container, ["livenessProbe"])]})
	count(probes.deny_missing_liveness) == 1 with input as f.objects_input([obj], "staging")
}

test_allow_probes if {
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 0 with input as f.objects_input([f.good], "staging")
}

test_allow_job_without_probes if {
	job := {"kind": "Job", "metadata": {"name": "migrate", "labels": f.labels}, "spec": {"template": {"spec": {"containers": [object.remove(f.container, ["readinessProbe", "livenessProbe"])]}}}}
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 0 with input as f.objects_input([job], "staging")
}
