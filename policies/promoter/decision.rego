# METADATA
# title: The decision
# description: Gathers every deny_* rule of the concerns the environment names into one decision document.
# custom:
#   severity: info
#   remediation: Not a rule.
package promoter

import rego.v1

warned := {c | some c in object.get(input.environment.policy, "warn_only", [])}

enforced := {c | some c in object.get(input.environment.policy, "enforce", [])} - warned

concerns := enforced | warned

# METADATA
# title: Concern roots
# description: >-
#   Each concern's packages, from an explicit root. OPA compiles a decision only over explicit
#   roots: walking data[concern] would reach this package and its tests (a recursion OPA rejects).
#   Every package under a root takes part; a new concern is one more line here.
# custom:
#   severity: info
#   remediation: Not a rule.
roots["kubernetes"] := data.kubernetes

roots["promotion"] := data.promotion

roots["schemas"] := data.schemas

default policy_metadata := {}

policy_metadata := data.policy_metadata

# METADATA
# title: Findings
# description: >-
#   One finding per result of a deny_* or warn_* rule of a checked concern, with its severity and
#   remediation. A warn_* rule only ever warns, even in an enforced concern.
# custom:
#   severity: info
#   remediation: Not a rule.
findings contains f if {
	some concern in concerns
	some pkg, rules in roots[concern]
	not endswith(pkg, "_test")
	some name, results in rules
	checked(name)
	some r in results
	id := sprintf("%s.%s.%s", [concern, pkg, name])
	meta := object.get(policy_metadata, id, {})
	f := {
		"concern": concern,
		"rule": id,
		"message": r.msg,
		"object": object.get(r, "object", null),
		"path": object.get(r, "path", null),
		"advisory": startswith(name, "warn_"),
		"severity": object.get(meta, "severity", "high"),
		"remediation": object.get(meta, "remediation", ""),
	}
}

checked(name) if startswith(name, "deny_")

checked(name) if startswith(name, "warn_")

# a concern named in environment.yaml with no policies behind it is a mistake, and fails closed
findings contains f if {
	some concern in enforced
	not roots[concern]
	f := {
		"concern": concern, "rule": "promoter.unknown_concern",
		"message": sprintf("policy.enforce names '%s' but policies/%s/ has no policy", [concern, concern]),
		"object": null, "path": null, "advisory": false, "severity": "critical",
		"remediation": "Fix policy.enforce in environment.yaml, or add the policies.",
	}
}

# METADATA
# title: Decision
# description: >-
#   allow, deny (enforced concerns, less what a live exception excepts, plus exceptions that run
#   too long), warn (warn_only concerns) and excepted (the denials live exceptions except).
# custom:
#   severity: info
#   remediation: Not a rule.
decision := {
	"allow": count(deny) == 0,
	"deny": deny,
	"warn": warn,
	"excepted": excepted,
	"approvers": approvers,
}

# who may decide the environment's gate: its approvers, with group:NAME expanded from data.groups (the
# one place groups are expanded; the workflow's validator takes this list)
approvers := sort([u | some u in data.promotion.approvals.allowed])

enforced_findings := [f | some f in findings; f.concern in enforced; not f.advisory]

deny := array.concat([noted(f) | some f in enforced_findings; not live_exception(f)], too_long)

warn := [f | some f in findings; advisory(f)]

advisory(f) if f.concern in warned

advisory(f) if f.advisory

excepted := [object.union(f, {"exception": describe(id, "until")}) |
	some f in enforced_findings
	id := live_exception(f)
]

# ------------------------------------------------------------------ exceptions
# policies/exceptions/*.yaml, loaded (and checked for owner, reason and expiry) at data.exceptions:
# {id: {rule, app, env, object, reason, owner, expires}}. `rule` names a rule or a whole package.

default exceptions := {}

exceptions := data.exceptions

default max_exception_days := 90

max_exception_days := data.max_exception_days

day_ns := ((24 * 60) * 60) * 1000000000

now_ns := time.parse_rfc3339_ns(input.promotion.evaluated_at)

# an exception holds until the end of its expiry date (UTC)
expires_ns(e) := time.parse_rfc3339_ns(sprintf("%sT00:00:00Z", [substring(e.expires, 0, 10)])) + day_ns

applies(e, f) if {
	e.app == input.promotion.app
	object.get(e, "env", null) in {null, input.environment.name}
	object.get(e, "object", null) in {null, f.object}
	object.get(e, "path", null) in {null, f.path}
	covers(e.rule, f.rule)
}

covers(rule, id) if rule == id

covers(rule, id) if startswith(id, concat("", [rule, "."]))

live(e) if now_ns < expires_ns(e)

overlong(e) if expires_ns(e) - now_ns > max_exception_days * day_ns

# the first (by ID) live exception that excepts finding f
live_exception(f) := min(ids) if {
	ids := {id | some id, e in exceptions; applies(e, f); live(e); not overlong(e)}
	count(ids) > 0
}

expired_exception(f) := min(ids) if {
	ids := {id | some id, e in exceptions; applies(e, f); not live(e)}
	count(ids) > 0
}

noted(f) := object.union(f, {"exception": describe(id, "expired on")}) if id := expired_exception(f)

noted(f) := f if not expired_exception(f)

describe(id, state) := sprintf("exception %s by %s %s %s: %s", [
	id, exceptions[id].owner, state,
	substring(exceptions[id].expires, 0, 10), exceptions[id].reason,
])

# an exception of this app that runs longer than data.max_exception_days fails closed
too_long := [f |
	some id, e in exceptions
	e.app == input.promotion.app
	overlong(e)
	f := {
		"concern": "promoter", "rule": "promoter.exception_too_long",
		"message": sprintf("exception %s (%s) expires %s, more than %d days ahead", [
			id, e.file, substring(e.expires, 0, 10),
			max_exception_days,
		]),
		"object": null, "path": null, "advisory": false, "severity": "critical",
		"remediation": "Give the exception an earlier expires date, or raise data.max_exception_days.",
	}
]
