# METADATA
# title: Promotion order
# description: A version reaches an environment only through the environments before it (the one before it in a line, every one its `after` names in a graph).
# custom:
#   severity: critical
#   remediation: Promote through every environment in order; never skip one.
package promotion.order

import rego.v1

# METADATA
# title: No skipping
# description: Every environment the target comes after (in a line the one before it; in a graph each one its `after` names) must have this version healthy (or already have had it).
# custom:
#   severity: critical
#   remediation: Promote to the environments before it first and let each become healthy.
deny_skipped_environment contains {"msg": msg, "object": null, "details": {"previous": prev}} if {
	input.promotion.phase in {"pre_pr", "merge"}
	some prev in upstreams
	not done(prev)
	msg := sprintf("%s must have this version healthy before %s; %s", [prev, input.promotion.target_env, route])
}

# the environments the target comes after: its `after` in a graph (none for the source), else the one
# before it in the promotion's environments
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

route := sprintf("it comes after %s", [concat(", ", input.environment.after)]) if {
	is_array(input.environment.after)
} else := sprintf("the order is %s", [concat(" -> ", input.promotion.environments)])

done(env) if {
	some h in input.promotion.history
	h.env == env
	h.state in {"healthy", "skipped"}
}
