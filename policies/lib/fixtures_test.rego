# METADATA
# title: Test fixtures
# description: Objects and inputs shared by the policy unit tests.
# custom:
#   severity: info
#   remediation: Not a rule.
package lib.fixtures_test

import rego.v1

labels := {"app.kubernetes.io/name": "demo", "app.kubernetes.io/part-of": "demo"}

container := {
	"name": "web",
	"image": "ghcr.io/promoter-dev/demo:1.0.0",
	"resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
	"securityContext": {"allowPrivilegeEscalation": false, "privileged": false, "capabilities": {"drop": ["ALL"]}},
	"readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
	"livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
}

# restricted by the Pod Security Standards: non-root, RuntimeDefault seccomp, no escalation, ALL dropped
pod_spec := {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [container]}

deployment_with(spec_patch) := {
	"apiVersion": "apps/v1", "kind": "Deployment",
	"metadata": {"name": "demo", "namespace": "apps", "labels": labels},
	"spec": {"replicas": 2, "template": {"metadata": {"labels": labels}, "spec": object.union(pod_spec, spec_patch)}},
}

good := deployment_with({})

# a Deployment whose one container is the good one with `patch` merged in
with_container(patch) := deployment_with({"containers": [object.union(container, patch)]})

# a Deployment whose one container is the good one with top-level `fields` replaced (not merged)
replacing(fields) := deployment_with({"containers": [object.union(object.remove(container, object.keys(fields)), fields)]})

# a Deployment whose pod spec has top-level `fields` replaced (not merged)
pod_replacing(fields) := {
	"apiVersion": "apps/v1", "kind": "Deployment",
	"metadata": {"name": "demo", "namespace": "apps", "labels": labels},
	"spec": {"replicas": 2, "template": {"metadata": {"labels": labels}, "spec": object.union(object.remove(pod_spec, object.keys(fields)), fields)}},
}

environment(name) := {
	"name": name,
	"policy": {"enforce": ["kubernetes", "promotion"], "warn_only": []},
	"approval": {"required": 1, "approvers": ["alice", "group:release-managers"]},
	"soak": 600,
}

promotion(target, phase) := {
	"id": "promote-demo", "app": "demo", "commit": "0123456789abcdef", "author": "dana <dana@example.com>",
	"source_env": "dev", "target_env": target, "environments": ["dev", "staging", "prod"],
	"started_at": "2026-11-25T10:00:00Z", "evaluated_at": "2026-11-25T10:00:00Z", "phase": phase,
	"history": [
		{"env": "dev", "state": "healthy", "healthy_since": "2026-11-25T09:00:00Z", "soak_seconds": 0},
		{"env": "staging", "state": "healthy", "healthy_since": "2026-11-25T09:00:00Z", "soak_seconds": 600},
	],
}

objects_input(objects, env) := {"objects": objects, "environment": environment(env), "promotion": promotion(env, "pre_pr"), "approvals": []}
