# METADATA
# title: Kubernetes helpers
# description: Shared helpers to reach pod specs and containers of any workload kind.
# custom:
#   severity: info
#   remediation: Not a rule; nothing to remediate.
package lib.k8s

import rego.v1

# METADATA
# title: Object identity
# description: Kind/namespace/name of an object, as reports name it.
# custom:
#   severity: info
#   remediation: Not a rule.
ident(o) := sprintf("%s/%s/%s", [o.kind, object.get(o.metadata, "namespace", "-"), o.metadata.name])

# METADATA
# title: Pod spec
# description: The pod spec of a Pod, a workload with a template, or a CronJob.
# custom:
#   severity: info
#   remediation: Not a rule.
pod_spec(o) := o.spec if o.kind == "Pod"

pod_spec(o) := o.spec.template.spec if o.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec(o) := o.spec.jobTemplate.spec.template.spec if o.kind == "CronJob"

# METADATA
# title: Workloads
# description: Objects that run pods.
# custom:
#   severity: info
#   remediation: Not a rule.
workloads contains o if {
	some o in input.objects
	pod_spec(o)
}

# METADATA
# title: Containers
# description: Every container and init container of every workload, with its object.
# custom:
#   severity: info
#   remediation: Not a rule.
containers contains [o, c, init] if {
	some o in workloads
	some field in ["containers", "initContainers"]
	some c in object.get(pod_spec(o), field, [])
	init := field == "initContainers"
}

# METADATA
# title: Result
# description: A structured result.
# custom:
#   severity: info
#   remediation: Not a rule.
result(o, msg, details) := {"msg": msg, "object": ident(o), "details": details}
