# METADATA
# title: Probes
# description: Long-running containers declare readiness and liveness probes.
# custom:
#   severity: medium
#   remediation: Add readinessProbe and livenessProbe to every container.
package kubernetes.probes

import data.lib.k8s
import rego.v1

long_running(o) if o.kind in {"Deployment", "StatefulSet", "DaemonSet"}

# METADATA
# title: Readiness probe
# description: Without one, traffic reaches a pod before it can serve it, and rollouts cannot judge health.
# custom:
#   severity: medium
#   remediation: Add a readinessProbe (httpGet, tcpSocket or exec) to the container.
deny_missing_readiness contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, false] in k8s.containers
	long_running(o)
	not c.readinessProbe
	msg := sprintf("container %s has no readinessProbe", [c.name])
}

# METADATA
# title: Liveness probe
# description: Without one, a hung container is never restarted.
# custom:
#   severity: low
#   remediation: Add a livenessProbe to the container.
deny_missing_liveness contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, false] in k8s.containers
	long_running(o)
	not c.livenessProbe
	msg := sprintf("container %s has no livenessProbe", [c.name])
}
