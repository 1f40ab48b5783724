# METADATA
# title: Pod security
# description: >-
#   The Kubernetes Pod Security Standards (policy version v1.31), baseline and restricted levels, for
#   Linux and Windows pods. Each environment chooses its level in environment.yaml,
#   policy.pod_security (privileged, baseline or restricted; restricted when unset): privileged
#   judges nothing, baseline its controls, restricted the baseline ones and its own.
# custom:
#   severity: critical
#   remediation: Follow the Pod Security Standard of the environment's level (policy.pod_security).
package kubernetes.security

import data.lib.k8s
import rego.v1

default allowed_host_paths := {}

allowed_host_paths := data.allowed_host_paths

default host_network_apps := {}

host_network_apps := data.host_network_apps

# ------------------------------------------------------------------ helpers

# a container's securityContext, and its pod's (either may be absent or null)
sc(c) := s if {
	s := object.get(c, "securityContext", {})
	is_object(s)
} else := {}

pod_sc(o) := s if {
	s := object.get(k8s.pod_spec(o), "securityContext", {})
	is_object(s)
} else := {}

# a field of an object, or null when the object is not one or lacks it (every helper here is total:
# a function that is undefined under `not` reads differently on the two engines)
val(x, name) := object.get(x, name, null) if is_object(x)
else := null

# a field of an object that is itself an object, or {}
sub(x, name) := val(x, name) if is_object(val(x, name))
else := {}

# a pod that declares itself Windows: the restricted controls for Linux only do not judge it
windows(o) if k8s.pod_spec(o).os.name == "windows"

# what a container runs with: its own setting, else its pod's (the standard's overriding)
effective(o, c, name) := val(sc(c), name) if val(sc(c), name) != null
else := val(pod_sc(o), name)

# ------------------------------------------------------------------ baseline

# METADATA
# title: HostProcess (baseline)
# description: >-
#   Windows pods may not run HostProcess containers, which have privileged access to the Windows
#   node. spec.securityContext.windowsOptions.hostProcess and
#   containers[*].securityContext.windowsOptions.hostProcess must be unset or false.
# custom:
#   severity: critical
#   remediation: Remove windowsOptions.hostProcess (or set it to false) from the pod and every container.
deny_host_process contains k8s.result(o, msg, {"field": "spec.securityContext.windowsOptions.hostProcess"}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	sub(pod_sc(o), "windowsOptions").hostProcess == true
	msg := "baseline: HostProcess containers are not allowed: the pod sets windowsOptions.hostProcess: true"
}

deny_host_process contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	sub(sc(c), "windowsOptions").hostProcess == true
	msg := sprintf("baseline: HostProcess containers are not allowed: container %s sets windowsOptions.hostProcess: true", [c.name])
}

# METADATA
# title: Host Namespaces (baseline)
# description: >-
#   Sharing the host's namespaces is not allowed: spec.hostNetwork, spec.hostPID and spec.hostIPC
#   must be unset or false (hostNetwork may be allowed for the apps data.host_network_apps names).
# custom:
#   severity: critical
#   remediation: Remove hostNetwork, hostPID and hostIPC from the pod spec.
deny_host_namespace contains k8s.result(o, msg, {"field": name}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	some name in ["hostNetwork", "hostPID", "hostIPC"]
	k8s.pod_spec(o)[name] == true
	not host_network_allowed(name)
	msg := sprintf("baseline: host namespaces are not allowed: the pod sets %s: true", [name])
}

# data.host_network_apps names the apps whose pods may use hostNetwork, per environment
host_network_allowed("hostNetwork") if input.promotion.app in k8s.for_env(host_network_apps)

# METADATA
# title: Privileged Containers (baseline)
# description: >-
#   Privileged containers disable most security mechanisms (root on the node):
#   containers[*].securityContext.privileged must be unset or false.
# custom:
#   severity: critical
#   remediation: Remove securityContext.privileged or set it to false.
deny_privileged contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	val(sc(c), "privileged") == true
	msg := sprintf("baseline: privileged containers are not allowed: container %s is privileged", [c.name])
}

# the capabilities a baseline container may add
baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

added(c) := object.get(sub(sc(c), "capabilities"), "add", [])

# METADATA
# title: Capabilities (baseline)
# description: >-
#   Adding capabilities beyond the default set is not allowed: containers[*].securityContext.capabilities.add
#   may list only AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE,
#   SETFCAP, SETGID, SETPCAP, SETUID and SYS_CHROOT.
# custom:
#   severity: high
#   remediation: Remove the other capabilities from securityContext.capabilities.add.
deny_added_capabilities contains k8s.result(o, msg, {"container": c.name, "capability": cap}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	some cap in added(c)
	not cap in baseline_capabilities
	msg := sprintf("baseline: capabilities beyond the default set are not allowed: container %s adds %v", [c.name, cap])
}

# METADATA
# title: HostPath Volumes (baseline)
# description: >-
#   HostPath volumes reach into the node's filesystem: spec.volumes[*].hostPath must be unset
#   (allowed under data.allowed_host_paths prefixes when every mount is read-only).
# custom:
#   severity: critical
#   remediation: Use a persistentVolumeClaim, configMap, secret or emptyDir volume instead.
deny_host_path contains k8s.result(o, msg, {"volume": v.name}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	some v in object.get(k8s.pod_spec(o), "volumes", [])
	v.hostPath
	not host_path_allowed(o, v)
	msg := sprintf("baseline: hostPath volumes are not allowed: volume %s is a hostPath (%s)", [v.name, v.hostPath.path])
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
# title: Host Ports (baseline)
# description: >-
#   Host ports should be disallowed entirely: containers[*].ports[*].hostPort must be unset or 0.
# custom:
#   severity: high
#   remediation: Remove hostPort from the container's ports; expose the port through a Service.
deny_host_ports contains k8s.result(o, msg, {"container": c.name, "hostPort": p.hostPort}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	some p in object.get(c, "ports", [])
	is_object(p)
	not val(p, "hostPort") in {null, 0}
	msg := sprintf("baseline: host ports are not allowed: container %s uses hostPort %v", [c.name, p.hostPort])
}

apparmor_allowed := {"RuntimeDefault", "Localhost"}

apparmor_annotation := "container.apparmor.security.beta.kubernetes.io/"

# METADATA
# title: AppArmor (baseline)
# description: >-
#   The default AppArmor profile may not be overridden or disabled:
#   spec.securityContext.appArmorProfile.type and containers[*].securityContext.appArmorProfile.type
#   must be unset, RuntimeDefault or Localhost, and the pod's
#   container.apparmor.security.beta.kubernetes.io/* annotations runtime/default or localhost/*.
# custom:
#   severity: high
#   remediation: Remove the AppArmor profile, or set its type to RuntimeDefault or Localhost.
deny_apparmor contains k8s.result(o, msg, {"field": "spec.securityContext.appArmorProfile.type"}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	val(pod_sc(o), "appArmorProfile") != null
	profile := object.get(sub(pod_sc(o), "appArmorProfile"), "type", null)
	not profile in apparmor_allowed
	msg := sprintf("baseline: AppArmor profile must be RuntimeDefault or Localhost: the pod sets %v", [profile])
}

deny_apparmor contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	val(sc(c), "appArmorProfile") != null
	profile := object.get(sub(sc(c), "appArmorProfile"), "type", null)
	not profile in apparmor_allowed
	msg := sprintf("baseline: AppArmor profile must be RuntimeDefault or Localhost: container %s sets %v", [c.name, profile])
}

deny_apparmor contains k8s.result(o, msg, {"annotation": key}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	some key, value in object.get(k8s.pod_metadata(o), "annotations", {})
	startswith(key, apparmor_annotation)
	not apparmor_annotation_allowed(value)
	msg := sprintf("baseline: AppArmor profile must be runtime/default or localhost/*: annotation %s is %v", [key, value])
}

apparmor_annotation_allowed(value) if value == "runtime/default"

apparmor_annotation_allowed(value) if startswith(value, "localhost/")

selinux_types := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

# what is wrong with a seLinuxOptions: a type outside the allowed ones, or a user or role set
selinux_faults(opts) := {sprintf("%s %v", [key, value]) |
	some key in ["type", "user", "role"]
	value := opts[key]
	not selinux_allowed(key, value)
}

selinux_allowed(_, value) if value == null

selinux_allowed("type", value) if value in selinux_types

selinux_allowed(key, value) if {
	key in {"user", "role"}
	value == ""
}

# METADATA
# title: SELinux (baseline)
# description: >-
#   Setting a custom SELinux user or role, or a type other than container_t, container_init_t,
#   container_kvm_t or container_engine_t, is not allowed, in spec.securityContext.seLinuxOptions and
#   containers[*].securityContext.seLinuxOptions (type, user, role).
# custom:
#   severity: high
#   remediation: Remove seLinuxOptions.user and .role, and leave .type unset or one of the container types.
deny_selinux contains k8s.result(o, msg, {"field": "spec.securityContext.seLinuxOptions"}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	opts := val(pod_sc(o), "seLinuxOptions")
	is_object(opts)
	some fault in selinux_faults(opts)
	msg := sprintf("baseline: SELinux options must not set a custom user, role or type: the pod sets %s", [fault])
}

deny_selinux contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	opts := val(sc(c), "seLinuxOptions")
	is_object(opts)
	some fault in selinux_faults(opts)
	msg := sprintf("baseline: SELinux options must not set a custom user, role or type: container %s sets %s", [c.name, fault])
}

# METADATA
# title: /proc Mount Type (baseline)
# description: >-
#   The default /proc masks are required: containers[*].securityContext.procMount must be unset or Default.
# custom:
#   severity: high
#   remediation: Remove securityContext.procMount or set it to Default.
deny_proc_mount contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	mount := val(sc(c), "procMount")
	not mount in {null, "Default"}
	msg := sprintf("baseline: procMount must be Default: container %s sets %v", [c.name, mount])
}

# METADATA
# title: Seccomp (baseline)
# description: >-
#   The seccomp profile must not be explicitly set to Unconfined: spec.securityContext.seccompProfile.type
#   and containers[*].securityContext.seccompProfile.type must be unset, RuntimeDefault or Localhost.
# custom:
#   severity: high
#   remediation: Set seccompProfile.type to RuntimeDefault (or Localhost), or remove it.
deny_unconfined_seccomp contains k8s.result(o, msg, {"field": "spec.securityContext.seccompProfile.type"}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	sub(pod_sc(o), "seccompProfile").type == "Unconfined"
	msg := "baseline: seccomp profile must not be Unconfined: the pod sets Unconfined"
}

deny_unconfined_seccomp contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("baseline")
	some [o, c, _] in k8s.containers
	sub(sc(c), "seccompProfile").type == "Unconfined"
	msg := sprintf("baseline: seccomp profile must not be Unconfined: container %s sets Unconfined", [c.name])
}

# the sysctls of the standard's safe set (v1.31)
safe_sysctls := {
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
}

# METADATA
# title: Sysctls (baseline)
# description: >-
#   Sysctls that can reach the node are not allowed: spec.securityContext.sysctls[*].name must be
#   one of the safe set (kernel.shm_rmid_forced, net.ipv4.ip_local_port_range,
#   net.ipv4.ip_unprivileged_port_start, net.ipv4.tcp_syncookies, net.ipv4.ping_group_range,
#   net.ipv4.ip_local_reserved_ports, net.ipv4.tcp_keepalive_time, net.ipv4.tcp_fin_timeout,
#   net.ipv4.tcp_keepalive_intvl, net.ipv4.tcp_keepalive_probes).
# custom:
#   severity: high
#   remediation: Remove the unsafe sysctl from spec.securityContext.sysctls.
deny_unsafe_sysctls contains k8s.result(o, msg, {"sysctl": name}) if {
	k8s.enforces("baseline")
	some o in k8s.workloads
	some s in object.get(pod_sc(o), "sysctls", [])
	name := object.get(s, "name", "")
	not name in safe_sysctls
	msg := sprintf("baseline: unsafe sysctls are not allowed: the pod sets %v", [name])
}

# ------------------------------------------------------------------ restricted

# the volume types a restricted pod may use (hostPath is judged by deny_host_path, with its exemptions)
restricted_volumes := {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

# METADATA
# title: Volume Types (restricted)
# description: >-
#   Only non-core volume types are allowed: every spec.volumes[*] must be a configMap, csi,
#   downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected or secret volume.
# custom:
#   severity: high
#   remediation: Use a configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected or secret volume.
deny_volume_types contains k8s.result(o, msg, {"volume": v.name, "type": kind}) if {
	k8s.enforces("restricted")
	some o in k8s.workloads
	some v in object.get(k8s.pod_spec(o), "volumes", [])
	some kind, source in v
	not kind in {"name", "hostPath"}
	source != null
	not kind in restricted_volumes
	msg := sprintf("restricted: volume types must be configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected or secret: volume %s is a %s", [v.name, kind])
}

# METADATA
# title: Privilege Escalation (restricted)
# description: >-
#   Privilege escalation (such as via set-user-ID or set-group-ID file mode) must not be allowed:
#   containers[*].securityContext.allowPrivilegeEscalation must be false (Linux pods only).
# custom:
#   severity: high
#   remediation: Set securityContext.allowPrivilegeEscalation to false on every container.
deny_privilege_escalation contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("restricted")
	some [o, c, _] in k8s.containers
	not windows(o)
	val(sc(c), "allowPrivilegeEscalation") != false
	msg := sprintf("restricted: privilege escalation must be disallowed: container %s does not set allowPrivilegeEscalation: false", [c.name])
}

# METADATA
# title: Running as Non-root (restricted)
# description: >-
#   Containers must run as non-root users: containers[*].securityContext.runAsNonRoot must be true,
#   or unset when spec.securityContext.runAsNonRoot is true; neither may be false.
# custom:
#   severity: high
#   remediation: Set securityContext.runAsNonRoot to true in the pod spec (and false nowhere).
deny_run_as_root contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("restricted")
	some [o, c, _] in k8s.containers
	effective(o, c, "runAsNonRoot") != true
	msg := sprintf("restricted: containers must run as non-root: container %s may run as root: set runAsNonRoot: true", [c.name])
}

deny_run_as_root contains k8s.result(o, msg, {"field": "spec.securityContext.runAsNonRoot"}) if {
	k8s.enforces("restricted")
	some o in k8s.workloads
	val(pod_sc(o), "runAsNonRoot") == false
	msg := "restricted: containers must run as non-root: the pod sets runAsNonRoot: false"
}

# METADATA
# title: Running as Non-root user (restricted)
# description: >-
#   Containers must not set runAsUser to 0: spec.securityContext.runAsUser and
#   containers[*].securityContext.runAsUser must be unset or non-zero.
# custom:
#   severity: high
#   remediation: Set runAsUser to a non-zero user ID, or remove it.
deny_run_as_user_root contains k8s.result(o, msg, {"field": "spec.securityContext.runAsUser"}) if {
	k8s.enforces("restricted")
	some o in k8s.workloads
	val(pod_sc(o), "runAsUser") == 0
	msg := "restricted: runAsUser must not be 0: the pod sets runAsUser: 0"
}

deny_run_as_user_root contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("restricted")
	some [o, c, _] in k8s.containers
	val(sc(c), "runAsUser") == 0
	msg := sprintf("restricted: runAsUser must not be 0: container %s sets runAsUser: 0", [c.name])
}

# METADATA
# title: Seccomp (restricted)
# description: >-
#   The seccomp profile must be set to RuntimeDefault or Localhost: containers[*].securityContext.seccompProfile.type,
#   or spec.securityContext.seccompProfile.type for the containers that leave it unset (Linux pods only).
# custom:
#   severity: high
#   remediation: Set spec.securityContext.seccompProfile.type to RuntimeDefault.
deny_seccomp_unset contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("restricted")
	some [o, c, _] in k8s.containers
	not windows(o)
	profile := seccomp_type(o, c)
	not profile in {"RuntimeDefault", "Localhost"}
	msg := sprintf("restricted: seccomp profile must be RuntimeDefault or Localhost: container %s has %v", [c.name, profile])
}

# METADATA
# title: Capabilities (restricted)
# description: >-
#   Containers must drop ALL capabilities, and may add back only NET_BIND_SERVICE:
#   containers[*].securityContext.capabilities.drop must include ALL, and .add list nothing else
#   (Linux pods only).
# custom:
#   severity: high
#   remediation: Set securityContext.capabilities.drop to [ALL]; add back NET_BIND_SERVICE only.
deny_capabilities_not_dropped contains k8s.result(o, msg, {"container": c.name}) if {
	k8s.enforces("restricted")
	some [o, c, _] in k8s.containers
	not windows(o)
	not drops_all(c)
	msg := sprintf("restricted: capabilities must drop ALL: container %s does not drop ALL", [c.name])
}

deny_capabilities_not_dropped contains k8s.result(o, msg, {"container": c.name, "capability": cap}) if {
	k8s.enforces("restricted")
	some [o, c, _] in k8s.containers
	not windows(o)
	some cap in added(c)
	cap != "NET_BIND_SERVICE"
	msg := sprintf("restricted: capabilities may only add NET_BIND_SERVICE: container %s adds %v", [c.name, cap])
}

drops_all(c) if "ALL" in object.get(sub(sc(c), "capabilities"), "drop", [])

# the seccomp profile type a container runs with (its own, else its pod's), or null
seccomp_type(o, c) := object.get(profile, "type", null) if {
	profile := effective(o, c, "seccompProfile")
	is_object(profile)
}
else := null
