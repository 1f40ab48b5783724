# METADATA
# title: Resources
# description: Every container declares CPU and memory requests and limits.
# custom:
#   severity: medium
#   remediation: Set resources.requests and resources.limits for cpu and memory.
package kubernetes.resources

import data.lib.k8s
import rego.v1

default required_limits := {}

required_limits := data.required_limits

# METADATA
# title: Requests
# description: CPU and memory requests let the scheduler place the pod.
# custom:
#   severity: medium
#   remediation: Set resources.requests.cpu and resources.requests.memory on every container.
deny_missing_requests contains k8s.result(o, msg, {"container": c.name, "resource": r}) if {
	some [o, c, _] in k8s.containers
	some r in ["cpu", "memory"]
	not c.resources.requests[r]
	msg := sprintf("container %s has no %s request", [c.name, r])
}

# data.required_limits says which limits each environment requires (default cpu and memory): e.g.
# {"*": ["memory"]} for teams that run without CPU limits (Gatekeeper's cpu: "-1")

# METADATA
# title: Limits
# description: CPU and memory limits keep one workload from starving its neighbours.
# custom:
#   severity: medium
#   remediation: Set resources.limits.cpu and resources.limits.memory on every container.
deny_missing_limits contains k8s.result(o, msg, {"container": c.name, "resource": r}) if {
	some [o, c, _] in k8s.containers
	some r in k8s.setting(required_limits, ["cpu", "memory"])
	not c.resources.limits[r]
	msg := sprintf("container %s has no %s limit", [c.name, r])
}
