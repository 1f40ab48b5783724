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

ephemeral(patch) := f.deployment_with({"ephemeralContainers": [object.union(f.container, object.union({"name": "debugger"}, patch))]})

test_deny_privileged_ephemeral_container if {
	obj := ephemeral({"securityContext": {"privileged": true, "allowPrivilegeEscalation": false}})
	some v in security.deny_privileged with input as f.objects_input([obj], "staging")
	v.details.container == "debugger"
}

test_deny_ephemeral_container_escalation_and_root if {
	main := object.union(f.container, {"securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false}})
	debugger := object.union(object.remove(f.container, ["securityContext"]), {"name": "debugger"})
	obj := f.pod_replacing({"securityContext": {}, "containers": [main], "ephemeralContainers": [debugger]})
	inp := f.objects_input([obj], "staging")
	some v in security.deny_privilege_escalation with input as inp
	v.details.container == "debugger"
	some w in security.deny_run_as_root with input as inp
	w.details.container == "debugger"
}

test_allow_host_network_for_a_named_app if {
	obj := f.deployment_with({"hostNetwork": true})
	count(security.deny_host_namespace) == 0 with input as f.objects_input([obj], "staging")
		with data.host_network_apps as {"staging": ["demo"]}
}

test_deny_host_network_for_another_app if {
	obj := f.deployment_with({"hostNetwork": true})
	count(security.deny_host_namespace) == 1 with input as f.objects_input([obj], "staging")
		with data.host_network_apps as {"*": ["node-exporter"]}
}

test_deny_host_pid_even_for_a_host_network_app if {
	obj := f.deployment_with({"hostPID": true})
	count(security.deny_host_namespace) == 1 with input as f.objects_input([obj], "staging")
		with data.host_network_apps as {"*": ["demo"]}
}

logs(mount) := f.deployment_with({
	"volumes": [{"name": "logs", "hostPath": {"path": "/var/log/pods"}}],
	"containers": [object.union(f.container, {"volumeMounts": [object.union({"name": "logs", "mountPath": "/logs"}, mount)]})],
})

test_allow_read_only_host_path_under_an_allowed_prefix if {
	count(security.deny_host_path) == 0 with input as f.objects_input([logs({"readOnly": true})], "staging")
		with data.allowed_host_paths as {"*": ["/var/log"]}
}

test_deny_writable_host_path_under_an_allowed_prefix if {
	count(security.deny_host_path) == 1 with input as f.objects_input([logs({})], "staging")
		with data.allowed_host_paths as {"*": ["/var/log"]}
}

test_deny_host_path_that_only_shares_a_prefix_string if {
	count(security.deny_host_path) == 1 with input as f.objects_input([logs({"readOnly": true})], "staging")
		with data.allowed_host_paths as {"*": ["/var/lo"]}
}
