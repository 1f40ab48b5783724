# METADATA
# title: Promotion order
# description: A version reaches an environment only through the one before it.
# custom:
#   severity: critical
#   remediation: Promote through every environment in order; never skip one.
package promotion.order

import rego.v1

# METADATA
# title: No skipping
# description: The environment before the target must have this version healthy (or already have had it).
# custom:
#   severity: critical
#   remediation: Promote to the previous environment first and let it become healthy.
deny_skipped_environment contains {"msg": msg, "object": null, "details": {"previous": prev}} if {
	input.promotion.phase in {"pre_pr", "merge"}
	envs := input.promotion.environments
	some i, target in envs
	target == input.promotion.target_env
	i > 0
	prev := envs[i - 1]
	not done(prev)
	msg := sprintf("%s must have this version healthy before %s; the order is %s", [prev, target, concat(" -> ", envs)])
}

done(env) if {
	some h in input.promotion.history
	h.env == env
	h.state in {"healthy", "skipped"}
}
