# METADATA
# title: Pod security
# description: No privileged containers, privilege escalation, host namespaces or host paths; non-root only.
# custom:
#   severity: critical
#   remediation: Follow the Kubernetes restricted pod security standard.
package kubernetes.security

import data.lib.k8s
import rego.v1

default allowed_host_paths := {}

allowed_host_paths := data.allowed_host_paths

default host_network_apps := {}

host_network_apps := data.host_network_apps

# METADATA
# title: Not privileged
# description: A privileged container is root on the node.
# custom:
#   severity: critical
#   remediation: Remove securityContext.privileged or set it to false.
deny_privileged contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, _] in k8s.containers
	c.securityContext.privileged == true
	msg := sprintf("container %s is privileged", [c.name])
}

# METADATA
# title: No privilege escalation
# description: allowPrivilegeEscalation must be false explicitly.
# custom:
#   severity: high
#   remediation: Set securityContext.allowPrivilegeEscalation to false on every container.
deny_privilege_escalation contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, _] in k8s.containers
	not c.securityContext.allowPrivilegeEscalation == false
	msg := sprintf("container %s does not set allowPrivilegeEscalation: false", [c.name])
}

# METADATA
# title: No host namespaces
# description: hostNetwork, hostPID and hostIPC share the node's namespaces.
# custom:
#   severity: critical
#   remediation: Remove hostNetwork, hostPID and hostIPC from the pod spec.
deny_host_namespace contains k8s.result(o, msg, {"field": field}) if {
	some o in k8s.workloads
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	k8s.pod_spec(o)[field] == true
	not host_network_allowed(field)
	msg := sprintf("the pod sets %s: true", [field])
}

# data.host_network_apps names the apps whose pods may use hostNetwork, per environment
host_network_allowed("hostNetwork") if input.promotion.app in k8s.for_env(host_network_apps)

# METADATA
# title: No hostPath volumes
# description: A hostPath volume reaches into the node's filesystem.
# custom:
#   severity: critical
#   remediation: Use a persistentVolumeClaim, configMap, secret or emptyDir volume instead.
deny_host_path contains k8s.result(o, msg, {"volume": v.name}) if {
	some o in k8s.workloads
	some v in object.get(k8s.pod_spec(o), "volumes", [])
	v.hostPath
	not host_path_allowed(o, v)
	msg := sprintf("volume %s is a hostPath (%s)", [v.name, v.hostPath.path])
}

# a hostPath under a prefix that data.allowed_host_paths allows (on path boundaries), and mounted
# read-only by every container that mounts it
host_path_allowed(o, v) if {
	some prefix in k8s.for_env(allowed_host_paths)
	under(v.hostPath.path, prefix)
	not writable_mount(o, v.name)
}

under(path, prefix) if path == trim_suffix(prefix, "/")

under(path, prefix) if startswith(path, concat("", [trim_suffix(prefix, "/"), "/"]))

writable_mount(o, volume) if {
	some [obj, c, _] in k8s.containers
	obj == o
	some m in object.get(c, "volumeMounts", [])
	m.name == volume
	not m.readOnly == true
}

# METADATA
# title: Non-root
# description: runAsNonRoot must be true on the pod or on every container.
# custom:
#   severity: high
#   remediation: Set securityContext.runAsNonRoot to true in the pod spec.
deny_run_as_root contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, _] in k8s.containers
	not k8s.pod_spec(o).securityContext.runAsNonRoot == true
	not c.securityContext.runAsNonRoot == true
	msg := sprintf("container %s may run as root: set runAsNonRoot: true", [c.name])
}
