# METADATA
# title: Soak time
# description: A version must stay healthy in an environment for that environment's soak before the next takes it (in a graph, in every environment the next one comes after).
# custom:
#   severity: high
#   remediation: Wait until the previous environment's soak has passed; the workflow waits by itself.
package promotion.soak

import rego.v1

# METADATA
# title: Soaked in the previous environment
# description: healthy_since + soak of the previous environment (in a graph, of each one the target's `after` names) must lie before the evaluation time.
# custom:
#   severity: high
#   remediation: Let the version soak in the previous environment for its full soak time.
deny_not_soaked contains {"msg": msg, "object": null, "details": {"previous": prev, "ready_at": ready_at}} if {
	input.promotion.phase in {"pre_pr", "merge"}
	some prev in upstreams
	some h in input.promotion.history
	h.env == prev
	h.state == "healthy"
	ready := time.parse_rfc3339_ns(h.healthy_since) + (h.soak_seconds * 1000000000)
	time.parse_rfc3339_ns(input.promotion.evaluated_at) < ready
	ready_at := time.format(ready)
	msg := sprintf("%s has been healthy since %s; its soak of %ds ends at %s", [prev, h.healthy_since, h.soak_seconds, ready_at])
}

# the environments the target comes after: its `after` in a graph (none for the source), else the one
# before it in the promotion's environments (as promotion.order reads them)
upstreams := after if {
	after := input.environment.after
	is_array(after)
} else := [prev] if {
	envs := input.promotion.environments
	some i, target in envs
	target == input.promotion.target_env
	i > 0
	prev := envs[i - 1]
} else := []
