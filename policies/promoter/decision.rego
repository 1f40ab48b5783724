# METADATA
# title: The decision
# description: Gathers every deny_* rule of the concerns the environment names into one decision document.
# custom:
#   severity: info
#   remediation: Not a rule.
package promoter

import data.lib.dates
import rego.v1

# The promotion rules (order, soak, freeze, approvals) are the gates: they hold in every environment,
# whatever its environment.yaml says. policy.enforce and policy.warn_only choose among the other
# concerns (kubernetes, schemas) only; naming promotion in warn_only does not demote it, and leaving
# it out of enforce does not drop it. (promoter's input says the same; this holds for any caller.)
always_enforced := {"promotion"}

default env_policy := {}

env_policy := input.environment.policy if is_object(input.environment.policy)

warned := {c | some c in object.get(env_policy, "warn_only", [])} - always_enforced

enforced := ({c | some c in object.get(env_policy, "enforce", [])} - warned) | always_enforced

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
#   allow, deny (enforced concerns, always promotion, less what a live exception excepts; plus
#   exceptions that run too long or are refused, and a max_exception_days above its ceiling), warn
#   (warn_only concerns, warn_* rules, and exceptions that match no finding) and excepted (the
#   denials live exceptions except).
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

deny := array.concat(
	array.concat([noted(f) | some f in enforced_findings; not live_exception(f); not glass(f)], too_long),
	array.concat(refused, bad_days),
)

warn := array.concat(array.concat([f | some f in findings; advisory(f)], unmatched), glass_refused)

advisory(f) if f.concern in warned

advisory(f) if f.advisory

excepted := array.concat(
	[object.union(f, {"exception": describe(id, "until")}) |
		some f in enforced_findings
		id := live_exception(f)
	],
	[object.union(f, {"exception": glass_describe(id)}) |
		some f in enforced_findings
		not live_exception(f)
		id := glass(f)
	],
)

# ------------------------------------------------------------------ break-glass
# trust/break-glass/*.yaml, loaded at data.break_glass: {id: {app, env, reason, requested_by, until,
# approved_at, approved_by, file}}, read only at the trusted rules revision (promoter writes and signs
# them after the break-glass PR's own approvals; promoter/breakglass.py). One lets a freeze denial of
# its app in its environment through, and nothing else, from its approval until its end, judged at
# this check's own evaluation time; one that runs more than 24 hours after its approval is refused.

default break_glass := {}

break_glass := data.break_glass if is_object(data.break_glass)

break_glass_rule := "promotion.freeze.deny_freeze_window"

break_glass_max_ns := 24 * ((60 * 60) * 1000000000)

glass_fits(g) if {
	is_object(g)
	g.app == input.promotion.app
	g.env == input.environment.name
	dates.is_rfc3339(g.until)
	dates.is_rfc3339(g.approved_at)
}

glass_live(g) if {
	glass_fits(g)
	now_ns >= dates.ns(g.approved_at)
	now_ns < dates.ns(g.until)
	not glass_overlong(g)
}

glass_overlong(g) if dates.ns(g.until) - dates.ns(g.approved_at) > break_glass_max_ns

# the first (by ID) live break-glass that lets finding f through
glass(f) := min(ids) if {
	f.rule == break_glass_rule
	ids := {id | some id, g in break_glass; glass_live(g)}
	count(ids) > 0
}

glass_describe(id) := sprintf("break-glass %s by %s until %s: %s", [
	id, break_glass[id].requested_by, break_glass[id].until,
	break_glass[id].reason,
])

# a break-glass of this app and environment that runs too long: never honoured, and said so
glass_refused := [f |
	some id, g in break_glass
	glass_fits(g)
	glass_overlong(g)
	f := {
		"concern": "promoter", "rule": "promoter.break_glass_refused",
		"message": sprintf("break-glass %s (%s) runs from %s until %s, more than 24 hours: it is not honoured", [
			id, object.get(g, "file", "data.break_glass"),
			g.approved_at, g.until,
		]),
		"object": null, "path": null, "advisory": true, "severity": "high",
		"remediation": "Ask again with `promoter break-glass --until` at most 24 hours ahead.",
	}
]

# ------------------------------------------------------------------ exceptions
# policies/exceptions/*.yaml, loaded (and checked) at data.exceptions: {id: {rule, app, env, object,
# path, reason, owner, expires, file}}. `rule` names a rule or a whole package. promoter refuses a bad
# exception file as it loads it; the checks here hold whatever puts the data there (OPA's own data).

default exceptions := {}

exceptions := data.exceptions

# An exception may waive the hygiene of what is deployed (the kubernetes and schemas concerns), never
# a gate of the promotion itself (approvals, order, soak, freeze): those hold for everyone.
exceptable_concerns := {"kubernetes", "schemas"}

# The longest an exception may run, in days: data.max_exception_days may lower it, never raise it.
max_exception_days_ceiling := 90

default days_in_data := null

days_in_data := data.max_exception_days

default max_exception_days := 90

max_exception_days := days_in_data if days_allowed(days_in_data)

days_allowed(d) if {
	is_number(d)
	round(d) == d
	d >= 0
	d <= max_exception_days_ceiling
}

now_ns := time.parse_rfc3339_ns(input.promotion.evaluated_at)

# an exception expiring on a date holds until the end of that day (UTC); on an RFC 3339 time, until then
expires_ns(e) := dates.ns(e.expires) + dates.day_ns if dates.is_date(e.expires)

expires_ns(e) := dates.ns(e.expires) if dates.is_rfc3339(e.expires)

exceptable(rule) if {
	is_string(rule)
	some concern in exceptable_concerns
	startswith(rule, concat("", [concern, "."]))
}

# [id, why] of each exception that is refused: it never applies, and it denies every promotion
refusals contains [id, "is not a mapping of rule, app, reason, owner and expires"] if {
	some id, e in exceptions
	not is_object(e)
}

refusals contains [id, why] if {
	some id, e in exceptions
	is_object(e)
	not exceptable(object.get(e, "rule", null))
	why := sprintf(
		"rule %s cannot be excepted: only rules of the kubernetes and schemas concerns can be (the promotion rules always hold)",
		[json.marshal(object.get(e, "rule", null))],
	)
}

refusals contains [id, why] if {
	some id, e in exceptions
	is_object(e)
	not dates.is_time(object.get(e, "expires", null))
	why := sprintf("expires %s is not a date (YYYY-MM-DD) or an RFC 3339 time", [json.marshal(object.get(e, "expires", null))])
}

refused_ids := {r[0] | some r in refusals}

# the exceptions that may apply: every one that is not refused
usable[id] := e if {
	some id, e in exceptions
	not id in refused_ids
}

applies(e, f) if {
	f.concern in exceptable_concerns
	e.app == input.promotion.app
	object.get(e, "env", null) in {null, input.environment.name}
	names_object(object.get(e, "object", null), f.object)
	object.get(e, "path", null) in {null, f.path}
	covers(e.rule, f.rule)
}

# An exception names an object as Kind/namespace/name. A finding names an object without a namespace
# Kind/-/name: sync applies it in the environment's cluster.namespace, so there it is named either way.
names_object(named, _) if named == null

names_object(named, found) if named == found

names_object(named, found) if {
	is_string(found)
	parts := split(found, "/")
	count(parts) == 3
	parts[1] == "-"
	named == sprintf("%s/%s/%s", [parts[0], cluster_namespace, parts[2]])
}

default cluster_namespace := ""

cluster_namespace := input.environment.cluster.namespace if is_string(input.environment.cluster.namespace)

covers(rule, id) if rule == id

covers(rule, id) if startswith(id, concat("", [rule, "."]))

live(e) if now_ns < expires_ns(e)

overlong(e) if expires_ns(e) - now_ns > max_exception_days * dates.day_ns

# the first (by ID) live exception that excepts finding f
live_exception(f) := min(ids) if {
	ids := {id | some id, e in usable; applies(e, f); live(e); not overlong(e)}
	count(ids) > 0
}

expired_exception(f) := min(ids) if {
	ids := {id | some id, e in usable; applies(e, f); not live(e)}
	count(ids) > 0
}

noted(f) := object.union(f, {"exception": describe(id, "expired on")}) if id := expired_exception(f)

noted(f) := f if not expired_exception(f)

describe(id, state) := sprintf("exception %s by %s %s %s: %s", [
	id, exceptions[id].owner, state,
	exceptions[id].expires, exceptions[id].reason,
])

# where an exception came from (promoter names its file; OPA's own data does not)
source(id) := object.get(exceptions[id], "file", "data.exceptions") if is_object(exceptions[id])

source(id) := "data.exceptions" if not is_object(exceptions[id])

# an exception of this app and environment that matches no finding of the objects judged (a rule,
# object or path that names nothing, or a finding fixed since): a warning, never a denial. Judged only
# when there are objects (the approval checks render none).
unmatched := [f |
	count(object.get(input, "objects", [])) > 0
	some id, e in usable
	e.app == input.promotion.app
	object.get(e, "env", null) in {null, input.environment.name}
	not matches_any(e)
	f := {
		"concern": "promoter", "rule": "promoter.exception_unmatched",
		"message": sprintf("exception %s (%s) matches no finding of %s in %s (%s)", [
			id, source(id), e.app,
			input.environment.name, scope(e),
		]),
		"object": null, "path": null, "advisory": true, "severity": "low",
		"remediation": "Make its rule, object (Kind/namespace/name) and path name a finding that promoter policy check reports, or remove it: nothing needs it.",
	}
]

matches_any(e) if {
	some f in findings
	applies(e, f)
}

scope(e) := concat(", ", array.concat(
	[sprintf("rule %s", [e.rule])],
	[sprintf("%s %s", [k, e[k]]) | some k in ["object", "path"]; is_string(object.get(e, k, null))],
))

# an exception of this app that runs longer than max_exception_days fails closed
too_long := [f |
	some id, e in usable
	e.app == input.promotion.app
	overlong(e)
	f := {
		"concern": "promoter", "rule": "promoter.exception_too_long",
		"message": sprintf("exception %s (%s) expires %s, more than %d days ahead", [
			id, source(id), e.expires,
			max_exception_days,
		]),
		"object": null, "path": null, "advisory": false, "severity": "critical",
		"remediation": sprintf("Give the exception an earlier expires date: at most %d days ahead.", [max_exception_days]),
	}
]

# a refused exception denies every promotion until it is fixed, as promoter's own loading does
refused := [f |
	some r in refusals
	f := {
		"concern": "promoter", "rule": "promoter.exception_refused",
		"message": sprintf("exception %v (%s): %s", [r[0], source(r[0]), r[1]]),
		"object": null, "path": null, "advisory": false, "severity": "critical",
		"remediation": "Fix or remove the exception: only kubernetes and schemas rules can be excepted, until a date.",
	}
]

# data.max_exception_days above the ceiling (or not a number of days) denies every promotion
bad_days := [f |
	days_in_data != null
	not days_allowed(days_in_data)
	f := {
		"concern": "promoter", "rule": "promoter.max_exception_days",
		"message": sprintf(
			"data.max_exception_days %s is not a whole number of days from 0 to %d (its ceiling: data may lower it, never raise it)",
			[json.marshal(days_in_data), max_exception_days_ceiling],
		),
		"object": null, "path": null, "advisory": false, "severity": "critical",
		"remediation": sprintf("Set max_exception_days in policies/data.yaml to %d or less, or remove it.", [max_exception_days_ceiling]),
	}
]
