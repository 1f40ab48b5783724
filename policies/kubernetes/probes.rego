# METADATA
# title: Probes
# description: Main containers of every pod-running kind declare readiness and liveness probes with a handler.
# custom:
#   severity: medium
#   remediation: Add readinessProbe and livenessProbe to every container.
package kubernetes.probes

import data.lib.k8s
import rego.v1

default probes_exempt_kinds := {}

probes_exempt_kinds := data.probes_exempt_kinds

# every pod-running kind (bare Pods, Jobs and CronJobs too), unless data.probes_exempt_kinds exempts it
judged(o) if not o.kind in k8s.for_env(probes_exempt_kinds)

# a probe needs a handler: an empty or null probe checks nothing
valid(probe) if {
	some handler in ["httpGet", "tcpSocket", "exec", "grpc"]
	probe[handler]
}

# METADATA
# title: Readiness probe
# description: Without one, traffic reaches a pod before it can serve it, and rollouts cannot judge health.
# custom:
#   severity: medium
#   remediation: Add a readinessProbe (httpGet, tcpSocket or exec) to the container.
deny_missing_readiness contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, false] in k8s.containers
	judged(o)
	not valid(object.get(c, "readinessProbe", null))
	msg := sprintf("container %s has no readinessProbe with a handler (httpGet, tcpSocket, exec or grpc)", [c.name])
}

# METADATA
# title: Liveness probe
# description: Without one, a hung container is never restarted.
# custom:
#   severity: low
#   remediation: Add a livenessProbe to the container.
deny_missing_liveness contains k8s.result(o, msg, {"container": c.name}) if {
	some [o, c, false] in k8s.containers
	judged(o)
	not valid(object.get(c, "livenessProbe", null))
	msg := sprintf("container %s has no livenessProbe with a handler (httpGet, tcpSocket, exec or grpc)", [c.name])
}
