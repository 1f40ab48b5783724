# METADATA
# title: Approvals
# description: Who may approve, that no author of the promoted change approves protected environments, one person once.
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

# Everyone who touched the change: the authors, committers and signers of every commit of the
# promoted range that touched the app's folders, and the forge's logins for those commits (promoter
# reads them; docs/policies.md). Lower-cased here too, whoever built the input.
range_authors contains lower(a) if {
	some a in object.get(input.promotion, "authors", [])
}

is_author(who) if lower(who) in author_names

is_author(who) if lower(who) in range_authors

# Why `who` is an author, as a denial says it: the promoted commit's author wrote it; anyone else
# by the first role the range gives them (promotion.authorship: "committed 1a2b3c4").
why_author(who) := sprintf("%s wrote commit %s", [who, substring(input.promotion.commit, 0, 7)]) if {
	lower(who) in author_names
} else := sprintf("%s %s in the promoted range", [who, role]) if {
	role := object.get(object.get(input.promotion, "authorship", {}), lower(who), "")
	role != ""
} else := sprintf("%s touched the promoted range", [who])

# Why the range's authors are not all known ("" when they are): then nobody may approve here.
default authors_unknown := ""

authors_unknown := object.get(input.promotion, "authors_unknown", "")

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
		names(sort(allowed)),
	])
}

# METADATA
# title: Authors do not approve their own change
# description: >-
#   No author of the change (the promoted commit's author, or anyone who authored, committed or
#   signed a commit of the promoted range that touched the app's folders) approves an environment
#   listed in data author_cannot_approve.
# custom:
#   severity: critical
#   remediation: Ask another approver; four eyes are required here.
deny_author_approval contains {"msg": msg, "object": null, "details": {"approver": a.approver}} if {
	protected
	some a in input.approvals
	is_author(a.approver)
	msg := sprintf("%s and may not approve it for %s", [why_author(a.approver), input.environment.name])
}

# METADATA
# title: The change's authors are known
# description: >-
#   Where authors may not approve, an approval counts only when every author of the promoted range
#   is known (fail closed: a range too long to read, or a commit whose signer cannot be read).
# custom:
#   severity: critical
#   remediation: Promote a range promoter can read (e.g. promote an older commit first), or fix what the message names.
deny_unknown_authors contains {"msg": msg, "object": null, "details": {"approver": a.approver}} if {
	protected
	authors_unknown != ""
	some a in input.approvals
	msg := sprintf("%s may not approve %s: the authors of the promoted range are not known (%s)", [
		a.approver, input.environment.name,
		authors_unknown,
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

author_blocked(_) if {
	protected
	authors_unknown != ""
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
	msg := sprintf("%s needs %d more approval(s) from %s", [
		input.environment.name, need - count(valid),
		names(yet_to_approve),
	])
}

# Who may still approve, as the gate's phrase names them everywhere (promoter.report.needs): the
# allowed approvers, groups expanded, less those whose approval counts and those the rules screen out.
yet_to_approve := [u |
	some u in sort(allowed)
	not u in valid
	not author_blocked(u)
]

# A list of people as every message names them: "alice, bob", or "nobody".
names(people) := concat(", ", people) if count(people) > 0

else := "nobody"
