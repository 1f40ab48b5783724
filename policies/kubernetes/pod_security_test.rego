# METADATA
# title: Pod Security Standards tests
# description: >-
#   Every control of the Pod Security Standards (v1.31), baseline and restricted: fixtures written
#   from the standard's text, each a restricted pod with one field changed, judged as a Pod and as a
#   Deployment's template, at the control's level, above it and below it. Its package is outside the
#   kubernetes root on purpose: the decision reads data.kubernetes whole, and with the tests loaded
#   (promoter policy test) every decision a test makes would evaluate these tests too.
# custom:
#   severity: info
#   remediation: Not a rule.
package pod_security_test

import data.kubernetes.security
import data.lib.fixtures_test as f
import rego.v1

image := "ghcr.io/promoter-dev/demo:1.0.0"

# the restricted pod: what the standard's restricted level requires, and nothing more
restricted_pod_sc := {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}

restricted_sc := {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}

# a pod spec: the restricted one with a fixture's changes: `pod_sc` and `sc` merged into the pod's and
# the container's securityContext, `unset_pod_sc` and `unset_sc` removed from them, `c` merged into
# the container and `spec` into the pod spec
spec_of(p) := object.union(
	{
		"securityContext": object.union(object.remove(restricted_pod_sc, object.get(p, "unset_pod_sc", [])), object.get(p, "pod_sc", {})),
		"containers": [object.union(
			{"name": "app", "image": image, "securityContext": object.union(object.remove(restricted_sc, object.get(p, "unset_sc", [])), object.get(p, "sc", {}))},
			object.get(p, "c", {}),
		)],
	},
	object.get(p, "spec", {}),
)

meta_of(p) := object.union({"name": "demo", "namespace": "apps"}, object.get(p, "meta", {}))

as_kind("Pod", p) := {"apiVersion": "v1", "kind": "Pod", "metadata": meta_of(p), "spec": spec_of(p)}

as_kind("Deployment", p) := {
	"apiVersion": "apps/v1", "kind": "Deployment",
	"metadata": {"name": "demo", "namespace": "apps"},
	"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}}, "template": {
		"metadata": object.union({"labels": {"app": "demo"}}, object.get(p, "meta", {})),
		"spec": spec_of(p),
	}},
}

env_input(level, objects) := {
	"objects": objects,
	"environment": {"name": "staging", "policy": {"enforce": ["kubernetes", "promotion"], "warn_only": [], "pod_security": level}},
	"promotion": {"app": "demo"},
}

# every rule of the package, by name (what OPA's type checker lets a test index by a variable)
results := {
	"deny_added_capabilities": security.deny_added_capabilities,
	"deny_apparmor": security.deny_apparmor,
	"deny_capabilities_not_dropped": security.deny_capabilities_not_dropped,
	"deny_host_namespace": security.deny_host_namespace,
	"deny_host_path": security.deny_host_path,
	"deny_host_ports": security.deny_host_ports,
	"deny_host_process": security.deny_host_process,
	"deny_privilege_escalation": security.deny_privilege_escalation,
	"deny_privileged": security.deny_privileged,
	"deny_proc_mount": security.deny_proc_mount,
	"deny_run_as_root": security.deny_run_as_root,
	"deny_run_as_user_root": security.deny_run_as_user_root,
	"deny_seccomp_unset": security.deny_seccomp_unset,
	"deny_selinux": security.deny_selinux,
	"deny_unconfined_seccomp": security.deny_unconfined_seccomp,
	"deny_unsafe_sysctls": security.deny_unsafe_sysctls,
	"deny_volume_types": security.deny_volume_types,
}

found(rule, p, kind, level) := rules[rule] if {
	rules := results with input as env_input(level, [as_kind(kind, p)])
}

kinds := ["Pod", "Deployment"]

below := {"baseline": "privileged", "restricted": "baseline"}

# each of c.deny is found by c.rule, as a Pod and as a Deployment, at c.level and at restricted,
# and not in an environment of the level below
denied(c) if {
	misses := [[i, kind, level] |
		some i, p in c.deny
		some kind in kinds
		some level in {c.level, "restricted"}
		count(found(c.rule, p, kind, level)) == 0
	]
	misses == []
	judged_below := [[i, kind] |
		some i, p in c.deny
		some kind in kinds
		count(found(c.rule, p, kind, below[c.level])) > 0
	]
	judged_below == []
}

# none of c.allow is found by c.rule, as a Pod or a Deployment, even at restricted
allowed(c) if {
	hits := [[i, kind] |
		some i, p in c.allow
		some kind in kinds
		count(found(c.rule, p, kind, "restricted")) > 0
	]
	hits == []
}

windows := {"spec": {"os": {"name": "windows"}}}

ephemeral(sc) := {"spec": {"ephemeralContainers": [{"name": "debug", "image": image, "securityContext": object.union(restricted_sc, sc)}]}}

init(sc) := {"spec": {"initContainers": [{"name": "setup", "image": image, "securityContext": object.union(restricted_sc, sc)}]}}

volume(source) := {"spec": {"volumes": [object.union({"name": "v"}, source)]}}

# ------------------------------------------------------------------ baseline

host_process := {"rule": "deny_host_process", "level": "baseline", "deny": [
	object.union(windows, {"pod_sc": {"windowsOptions": {"hostProcess": true}}}),
	object.union(windows, {"sc": {"windowsOptions": {"hostProcess": true}}}),
], "allow": [
	object.union(windows, {"sc": {"windowsOptions": {"hostProcess": false}}}),
	object.union(windows, {"pod_sc": {"windowsOptions": {"runAsUserName": "ContainerUser"}}}),
]}

test_host_process_denied if denied(host_process)

test_host_process_allowed if allowed(host_process)

host_namespaces := {"rule": "deny_host_namespace", "level": "baseline", "deny": [
	{"spec": {"hostNetwork": true}},
	{"spec": {"hostPID": true}},
	{"spec": {"hostIPC": true}},
], "allow": [{"spec": {"hostNetwork": false, "hostPID": false, "hostIPC": false}}]}

test_host_namespaces_denied if denied(host_namespaces)

test_host_namespaces_allowed if allowed(host_namespaces)

privileged := {"rule": "deny_privileged", "level": "baseline", "deny": [
	{"sc": {"privileged": true}},
	init({"privileged": true}),
	ephemeral({"privileged": true}),
], "allow": [{"sc": {"privileged": false}}, init({"privileged": false})]}

test_privileged_denied if denied(privileged)

test_privileged_allowed if allowed(privileged)

added_capabilities := {"rule": "deny_added_capabilities", "level": "baseline", "deny": [
	{"sc": {"capabilities": {"add": ["SYS_ADMIN"]}}},
	{"sc": {"capabilities": {"add": ["NET_RAW"]}}},
	init({"capabilities": {"add": ["CHOWN", "SYS_PTRACE"]}}),
], "allow": [
	{"sc": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}},
	{"sc": {"capabilities": {"add": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]}}},
]}

test_added_capabilities_denied if denied(added_capabilities)

test_added_capabilities_allowed if allowed(added_capabilities)

host_path := {"rule": "deny_host_path", "level": "baseline", "deny": [
	volume({"hostPath": {"path": "/var/lib"}}),
	volume({"hostPath": {"path": "/", "type": "Directory"}}),
], "allow": [volume({"emptyDir": {}}), volume({"persistentVolumeClaim": {"claimName": "data"}})]}

test_host_path_denied if denied(host_path)

test_host_path_allowed if allowed(host_path)

host_ports := {"rule": "deny_host_ports", "level": "baseline", "deny": [
	{"c": {"ports": [{"containerPort": 8080, "hostPort": 8080}]}},
	{"spec": {"initContainers": [{"name": "setup", "image": image, "securityContext": restricted_sc, "ports": [{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}]}]}},
], "allow": [
	{"c": {"ports": [{"containerPort": 8080}]}},
	{"c": {"ports": [{"containerPort": 8080, "hostPort": 0}]}},
]}

test_host_ports_denied if denied(host_ports)

test_host_ports_allowed if allowed(host_ports)

apparmor := {"rule": "deny_apparmor", "level": "baseline", "deny": [
	{"pod_sc": {"appArmorProfile": {"type": "Unconfined"}}},
	{"sc": {"appArmorProfile": {"type": "Unconfined"}}},
	{"meta": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}},
], "allow": [
	{"pod_sc": {"appArmorProfile": {"type": "RuntimeDefault"}}},
	{"sc": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-apparmor-example"}}},
	{"meta": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}}},
	{"meta": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-apparmor-example"}}},
]}

test_apparmor_denied if denied(apparmor)

test_apparmor_allowed if allowed(apparmor)

selinux := {"rule": "deny_selinux", "level": "baseline", "deny": [
	{"pod_sc": {"seLinuxOptions": {"type": "spc_t"}}},
	{"sc": {"seLinuxOptions": {"type": "unconfined_t"}}},
	{"sc": {"seLinuxOptions": {"user": "system_u"}}},
	{"pod_sc": {"seLinuxOptions": {"role": "system_r"}}},
], "allow": [
	{"pod_sc": {"seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"}}},
	{"sc": {"seLinuxOptions": {"type": "container_init_t"}}},
	{"sc": {"seLinuxOptions": {"type": "container_kvm_t", "user": "", "role": ""}}},
	{"sc": {"seLinuxOptions": {"type": "container_engine_t"}}},
	{"sc": {"seLinuxOptions": {"level": "s0:c1,c2"}}},
]}

test_selinux_denied if denied(selinux)

test_selinux_allowed if allowed(selinux)

proc_mount := {"rule": "deny_proc_mount", "level": "baseline", "deny": [
	{"sc": {"procMount": "Unmasked"}},
	ephemeral({"procMount": "Unmasked"}),
], "allow": [{"sc": {"procMount": "Default"}}]}

test_proc_mount_denied if denied(proc_mount)

test_proc_mount_allowed if allowed(proc_mount)

unconfined_seccomp := {"rule": "deny_unconfined_seccomp", "level": "baseline", "deny": [
	{"pod_sc": {"seccompProfile": {"type": "Unconfined"}}},
	{"sc": {"seccompProfile": {"type": "Unconfined"}}},
], "allow": [
	{"sc": {"seccompProfile": {"type": "RuntimeDefault"}}},
	{"pod_sc": {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}},
	{"unset_pod_sc": ["seccompProfile"]},
]}

test_unconfined_seccomp_denied if denied(unconfined_seccomp)

test_unconfined_seccomp_allowed if allowed(unconfined_seccomp)

unsafe_sysctls := {"rule": "deny_unsafe_sysctls", "level": "baseline", "deny": [
	{"pod_sc": {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}},
	{"pod_sc": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "vm.swappiness", "value": "10"}]}},
], "allow": [{"pod_sc": {"sysctls": [
	{"name": "kernel.shm_rmid_forced", "value": "0"},
	{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"},
	{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
	{"name": "net.ipv4.tcp_syncookies", "value": "1"},
	{"name": "net.ipv4.ping_group_range", "value": "0 2147483647"},
	{"name": "net.ipv4.ip_local_reserved_ports", "value": "8080"},
	{"name": "net.ipv4.tcp_keepalive_time", "value": "600"},
	{"name": "net.ipv4.tcp_fin_timeout", "value": "30"},
	{"name": "net.ipv4.tcp_keepalive_intvl", "value": "60"},
	{"name": "net.ipv4.tcp_keepalive_probes", "value": "5"},
]}}]}

test_unsafe_sysctls_denied if denied(unsafe_sysctls)

test_unsafe_sysctls_allowed if allowed(unsafe_sysctls)

# ------------------------------------------------------------------ restricted

volume_types := {"rule": "deny_volume_types", "level": "restricted", "deny": [
	volume({"nfs": {"server": "nfs.example.com", "path": "/exports"}}),
	volume({"gcePersistentDisk": {"pdName": "data"}}),
	volume({"iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": "iqn.2001-04.com.example:storage", "lun": 0}}),
	volume({"rbd": {"monitors": ["10.0.0.1:6789"], "image": "data"}}),
], "allow": [
	volume({"configMap": {"name": "settings"}}),
	volume({"csi": {"driver": "inline.storage.kubernetes.io"}}),
	volume({"downwardAPI": {"items": []}}),
	volume({"emptyDir": {}}),
	volume({"ephemeral": {"volumeClaimTemplate": {"spec": {}}}}),
	volume({"persistentVolumeClaim": {"claimName": "data"}}),
	volume({"projected": {"sources": []}}),
	volume({"secret": {"secretName": "tls"}}),
]}

test_volume_types_denied if denied(volume_types)

test_volume_types_allowed if allowed(volume_types)

privilege_escalation := {"rule": "deny_privilege_escalation", "level": "restricted", "deny": [
	{"sc": {"allowPrivilegeEscalation": true}},
	{"unset_sc": ["allowPrivilegeEscalation"]},
	ephemeral({"allowPrivilegeEscalation": true}),
], "allow": [
	{"sc": {"allowPrivilegeEscalation": false}},
	object.union(windows, {"unset_sc": ["allowPrivilegeEscalation"]}),
]}

test_privilege_escalation_denied if denied(privilege_escalation)

test_privilege_escalation_allowed if allowed(privilege_escalation)

run_as_non_root := {"rule": "deny_run_as_root", "level": "restricted", "deny": [
	{"unset_pod_sc": ["runAsNonRoot"]},
	{"pod_sc": {"runAsNonRoot": false}},
	{"pod_sc": {"runAsNonRoot": false}, "sc": {"runAsNonRoot": true}},
	{"sc": {"runAsNonRoot": false}},
	init({"runAsNonRoot": false}),
], "allow": [
	{"pod_sc": {"runAsNonRoot": true}},
	{"unset_pod_sc": ["runAsNonRoot"], "sc": {"runAsNonRoot": true}},
	{"sc": {"runAsNonRoot": true}},
]}

test_run_as_non_root_denied if denied(run_as_non_root)

test_run_as_non_root_allowed if allowed(run_as_non_root)

run_as_user := {"rule": "deny_run_as_user_root", "level": "restricted", "deny": [
	{"pod_sc": {"runAsUser": 0}},
	{"sc": {"runAsUser": 0}},
	{"pod_sc": {"runAsUser": 1000}, "sc": {"runAsUser": 0}},
], "allow": [{"pod_sc": {"runAsUser": 1000}}, {"sc": {"runAsUser": 65534}}, {}]}

test_run_as_user_denied if denied(run_as_user)

test_run_as_user_allowed if allowed(run_as_user)

seccomp := {"rule": "deny_seccomp_unset", "level": "restricted", "deny": [
	{"unset_pod_sc": ["seccompProfile"]},
	{"sc": {"seccompProfile": {"type": "Unconfined"}}},
	object.union({"unset_pod_sc": ["seccompProfile"], "sc": {"seccompProfile": {"type": "RuntimeDefault"}}}, init({})),
], "allow": [
	{"pod_sc": {"seccompProfile": {"type": "RuntimeDefault"}}},
	{"unset_pod_sc": ["seccompProfile"], "sc": {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}},
	object.union(windows, {"unset_pod_sc": ["seccompProfile"]}),
]}

test_seccomp_denied if denied(seccomp)

test_seccomp_allowed if allowed(seccomp)

capabilities := {"rule": "deny_capabilities_not_dropped", "level": "restricted", "deny": [
	{"unset_sc": ["capabilities"]},
	{"sc": {"capabilities": {"drop": ["NET_RAW"]}}},
	{"sc": {"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}},
	init({"capabilities": {"drop": []}}),
], "allow": [
	{"sc": {"capabilities": {"drop": ["ALL"]}}},
	{"sc": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}},
	object.union(windows, {"unset_sc": ["capabilities"]}),
]}

test_capabilities_denied if denied(capabilities)

test_capabilities_allowed if allowed(capabilities)

# ------------------------------------------------------------------ levels, kinds and exemptions

all_findings(objects, level) := [v | some rule in rules; some v in rule] if {
	rules := results with input as env_input(level, objects)
}

test_the_restricted_fixture_passes_every_control if {
	all_findings([as_kind("Pod", {}), as_kind("Deployment", {})], "restricted") == []
}

# root, with no seccomp profile, escalation or dropped capabilities: what baseline admits
baseline_only := {"unset_pod_sc": ["runAsNonRoot", "seccompProfile"], "unset_sc": ["allowPrivilegeEscalation", "capabilities"]}

test_a_baseline_pod_is_allowed_in_baseline_and_denied_in_restricted if {
	some kind in kinds
	all_findings([as_kind(kind, baseline_only)], "baseline") == []
	denials := {v.msg | some v in all_findings([as_kind(kind, baseline_only)], "restricted")}
	denials == {
		"restricted: containers must run as non-root: container app may run as root: set runAsNonRoot: true",
		"restricted: seccomp profile must be RuntimeDefault or Localhost: container app has null",
		"restricted: privilege escalation must be disallowed: container app does not set allowPrivilegeEscalation: false",
		"restricted: capabilities must drop ALL: container app does not drop ALL",
	}
}

test_privileged_judges_nothing if {
	worst := {"spec": {"hostPID": true}, "sc": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}}, "unset_pod_sc": ["runAsNonRoot"]}
	all_findings([as_kind("Pod", worst)], "privileged") == []
	count(all_findings([as_kind("Pod", worst)], "baseline")) == 3
}

test_an_unset_or_unknown_level_is_restricted if {
	no_level := json.remove(env_input("baseline", [as_kind("Pod", baseline_only)]), ["environment/policy/pod_security"])
	count(security.deny_run_as_root) == 1 with input as no_level
	count(security.deny_run_as_root) == 1 with input as env_input("Baseline", [as_kind("Pod", baseline_only)])
}

test_every_pod_running_kind_is_judged if {
	pod := as_kind("Pod", {"sc": {"privileged": true}})
	template := {"metadata": {"labels": {"app": "demo"}}, "spec": pod.spec}
	objects := [
		pod,
		{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": template}},
		{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"template": template}},
		{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"template": template}},
		{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"}, "spec": {"template": template}},
		{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": template}},
		{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}},
	]
	kinds_found := {split(v.object, "/")[0] | some v in security.deny_privileged} with input as env_input("baseline", objects)
	kinds_found == {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
}

test_exempt_images_are_not_judged_by_container_controls if {
	obj := as_kind("Deployment", {"sc": {"privileged": true, "runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}}})
	all_findings([obj], "restricted") == [] with data.exempt_images as {"staging": ["ghcr.io/promoter-dev/demo"]}
	count(all_findings([obj], "restricted")) > 0 with data.exempt_images as {"prod": ["ghcr.io/promoter-dev/demo"]}
}

test_a_finding_names_its_control_and_level if {
	some v in found("deny_capabilities_not_dropped", {"unset_sc": ["capabilities"]}, "Deployment", "restricted")
	startswith(v.msg, "restricted: capabilities must drop ALL")
	v.object == "Deployment/apps/demo"
	v.details.container == "app"
}
