# METADATA
# title: Replicas
# description: Environments listed in data min_replicas run at least that many replicas of each workload.
# custom:
#   severity: medium
#   remediation: Raise spec.replicas, or move the per-environment count to a local file.
package kubernetes.replicas

import data.lib.k8s
import rego.v1

default min_replicas := {}

min_replicas := data.min_replicas

# METADATA
# title: Minimum replicas
# description: A single replica makes every rollout or node loss an outage.
# custom:
#   severity: medium
#   remediation: Set spec.replicas to at least the environment's minimum from policies/data.yaml.
deny_too_few_replicas contains k8s.result(o, msg, {"replicas": n, "minimum": minimum}) if {
	minimum := object.get(min_replicas, input.environment.name, 1)
	some o in input.objects
	o.kind in {"Deployment", "StatefulSet"}
	n := object.get(o.spec, "replicas", 1)
	n < minimum
	msg := sprintf("%s %s runs %d replica(s); %s needs at least %d", [o.kind, o.metadata.name, n, input.environment.name, minimum])
}
