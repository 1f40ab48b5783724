# METADATA
# title: Soak time
# description: A version must stay healthy in an environment for that environment's soak before the next takes it.
# custom:
#   severity: high
#   remediation: Wait until the previous environment's soak has passed; the workflow waits by itself.
package promotion.soak

import rego.v1

# METADATA
# title: Soaked in the previous environment
# description: healthy_since + soak of the previous environment must lie before the evaluation time.
# custom:
#   severity: high
#   remediation: Let the version soak in the previous environment for its full soak time.
deny_not_soaked contains {"msg": msg, "object": null, "details": {"previous": prev, "ready_at": ready_at}} if {
	input.promotion.phase in {"pre_pr", "merge"}
	envs := input.promotion.environments
	some i, target in envs
	target == input.promotion.target_env
	i > 0
	prev := envs[i - 1]
	some h in input.promotion.history
	h.env == prev
	h.state == "healthy"
	ready := time.parse_rfc3339_ns(h.healthy_since) + (h.soak_seconds * 1000000000)
	time.parse_rfc3339_ns(input.promotion.evaluated_at) < ready
	ready_at := time.format(ready)
	msg := sprintf("%s has been healthy since %s; its soak of %ds ends at %s", [prev, h.healthy_since, h.soak_seconds, ready_at])
}
