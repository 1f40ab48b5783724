# METADATA
# title: Approvals
# description: Who may approve, that the commit's author never approves protected environments, one person once.
# custom:
#   severity: critical
#   remediation: Ask an approver named in the environment's approval.approvers.
package promotion.approvals

import rego.v1

default groups := {}

groups := data.groups

default author_cannot_approve := ["prod"]

author_cannot_approve := data.author_cannot_approve

# METADATA
# title: Allowed approvers
# description: Users in approval.approvers, and members of each group:NAME in data groups.
# custom:
#   severity: info
#   remediation: Not a rule.
allowed contains u if {
	some u in input.environment.approval.approvers
	not startswith(u, "group:")
}

allowed contains u if {
	some a in input.environment.approval.approvers
	startswith(a, "group:")
	some u in object.get(groups, substring(a, 6, -1), [])
}

author_names contains lower(trim_space(split(input.promotion.author, "<")[0]))

author_names contains lower(email) if {
	contains(input.promotion.author, "<")
	email := trim_suffix(trim_space(split(input.promotion.author, "<")[1]), ">")
}

author_names contains lower(split(email, "@")[0]) if {
	contains(input.promotion.author, "<")
	email := trim_suffix(trim_space(split(input.promotion.author, "<")[1]), ">")
}

is_author(who) if lower(who) in author_names

protected if input.environment.name in author_cannot_approve

# METADATA
# title: Approver is allowed
# description: Only the environment's approvers, directly or through a group, may approve it.
# custom:
#   severity: critical
#   remediation: Ask one of the environment's approvers, or add the person to approval.approvers or a group.
deny_unlisted_approver contains {"msg": msg, "object": null, "details": {"approver": a.approver}} if {
	some a in input.approvals
	not a.approver in allowed
	msg := sprintf("%s may not approve %s; its approvers are: %s", [
		a.approver, input.environment.name,
		concat(", ", input.environment.approval.approvers),
	])
}

# METADATA
# title: Authors do not approve their own change
# description: The commit's author never approves an environment listed in data author_cannot_approve.
# custom:
#   severity: critical
#   remediation: Ask another approver; four eyes are required here.
deny_author_approval contains {"msg": msg, "object": null, "details": {"approver": a.approver}} if {
	protected
	some a in input.approvals
	is_author(a.approver)
	msg := sprintf("%s wrote commit %s and may not approve it for %s", [
		a.approver, substring(input.promotion.commit, 0, 7),
		input.environment.name,
	])
}

# METADATA
# title: One person counts once
# description: Two approvals by the same person are one approval.
# custom:
#   severity: high
#   remediation: Ask a second, different approver.
deny_duplicate_approval contains {"msg": msg, "object": null, "details": {"approver": a.approver}} if {
	some i, a in input.approvals
	some j, b in input.approvals
	i < j
	a.approver == b.approver
	msg := sprintf("%s has already approved %s; one person counts once", [a.approver, input.environment.name])
}

valid := {a.approver |
	some a in input.approvals
	a.approver in allowed
	not author_blocked(a.approver)
}

author_blocked(who) if {
	protected
	is_author(who)
}

# METADATA
# title: Enough approvals
# description: Before the merge, the gate has approval.required distinct valid approvals.
# custom:
#   severity: critical
#   remediation: Collect the missing approvals before merging.
deny_missing_approvals contains {"msg": msg, "object": null, "details": {"have": count(valid), "need": need}} if {
	input.promotion.phase == "merge"
	need := input.environment.approval.required
	count(valid) < need
	msg := sprintf("%s needs %d approval(s) from %s; it has %d", [
		input.environment.name, need,
		concat(", ", input.environment.approval.approvers), count(valid),
	])
}
