package kubernetes.security_test

import data.kubernetes.security
import data.lib.fixtures_test as f
import rego.v1

test_deny_privileged if {
	count(security.deny_privileged) == 1 with input as f.objects_input([f.with_container({"securityContext": {"privileged": true, "allowPrivilegeEscalation": false}})], "staging")
}

test_allow_unprivileged if {
	count(security.deny_privileged) == 0 with input as f.objects_input([f.good], "staging")
}

test_deny_privilege_escalation_unset if {
	count(security.deny_privilege_escalation) == 1 with input as f.objects_input([f.replacing({"securityContext": {}})], "staging")
}

test_allow_no_privilege_escalation if {
	count(security.deny_privilege_escalation) == 0 with input as f.objects_input([f.good], "staging")
}

test_deny_host_network if {
	some v in security.deny_host_namespace with input as f.objects_input([f.deployment_with({"hostNetwork": true})], "staging")
	v.details.field == "hostNetwork"
}

test_deny_host_pid if {
	count(security.deny_host_namespace) == 1 with input as f.objects_input([f.deployment_with({"hostPID": true})], "staging")
}

test_allow_no_host_namespaces if {
	count(security.deny_host_namespace) == 0 with input as f.objects_input([f.good], "staging")
}

test_deny_host_path if {
	obj := f.deployment_with({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]})
	count(security.deny_host_path) == 1 with input as f.objects_input([obj], "staging")
}

test_allow_empty_dir if {
	obj := f.deployment_with({"volumes": [{"name": "tmp", "emptyDir": {}}]})
	count(security.deny_host_path) == 0 with input as f.objects_input([obj], "staging")
}

test_deny_run_as_root if {
	count(security.deny_run_as_root) == 1 with input as f.objects_input([f.pod_replacing({"securityContext": {}})], "staging")
}

test_allow_non_root_on_container if {
	obj := f.pod_replacing({"securityContext": {}, "containers": [object.union(f.container, {"securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false}})]})
	count(security.deny_run_as_root) == 0 with input as f.objects_input([obj], "staging")
}

test_allow_non_root_on_pod if {
	count(security.deny_run_as_root) == 0 with input as f.objects_input([f.good], "staging")
}
