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

job := {"kind": "Job", "metadata": {"name": "migrate", "labels": f.labels}, "spec": {"template": {"spec": {"containers": [object.remove(f.container, ["readinessProbe", "livenessProbe"])]}}}}

bare_pod := {"kind": "Pod", "metadata": {"name": "debug", "labels": f.labels}, "spec": {"securityContext": {"runAsNonRoot": true}, "containers": [object.remove(f.container, ["readinessProbe", "livenessProbe"])]}}

cron_job := {"kind": "CronJob", "metadata": {"name": "nightly", "labels": f.labels}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [object.remove(f.container, ["livenessProbe"])]}}}}}}

test_deny_job_without_probes if {
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 2 with input as f.objects_input([job], "staging")
}

test_deny_bare_pod_without_probes if {
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 2 with input as f.objects_input([bare_pod], "staging")
}

test_deny_cron_job_without_liveness if {
	count(probes.deny_missing_liveness) == 1 with input as f.objects_input([cron_job], "staging")
}

test_allow_job_without_probes_where_jobs_are_exempt if {
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 0 with input as f.objects_input([job], "staging")
		with data.probes_exempt_kinds as {"staging": ["Job"]}
}

test_deny_job_without_probes_where_only_another_environment_exempts_jobs if {
	count(probes.deny_missing_readiness) == 1 with input as f.objects_input([job], "prod")
		with data.probes_exempt_kinds as {"staging": ["Job"]}
}

test_deny_null_liveness_probe if {
	obj := f.replacing({"livenessProbe": null})
	count(probes.deny_missing_liveness) == 1 with input as f.objects_input([obj], "staging")
}

test_deny_empty_readiness_probe if {
	obj := f.replacing({"readinessProbe": {}})
	count(probes.deny_missing_readiness) == 1 with input as f.objects_input([obj], "staging")
}

test_deny_probe_with_only_timings if {
	obj := f.replacing({"readinessProbe": {"periodSeconds": 5}})
	count(probes.deny_missing_readiness) == 1 with input as f.objects_input([obj], "staging")
}

test_allow_grpc_and_tcp_probes if {
	obj := f.replacing({"readinessProbe": {"grpc": {"port": 9000}}, "livenessProbe": {"tcpSocket": {"port": 9000}}})
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 0 with input as f.objects_input([obj], "staging")
}

test_allow_init_and_ephemeral_containers_without_probes if {
	helper := object.remove(f.container, ["readinessProbe", "livenessProbe"])
	obj := f.deployment_with({"initContainers": [helper], "ephemeralContainers": [helper]})
	count(probes.deny_missing_readiness | probes.deny_missing_liveness) == 0 with input as f.objects_input([obj], "staging")
}
