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

default policy_metadata := {}

policy_metadata := data.policy_metadata

# METADATA
# title: Findings
# description: One finding per result of a deny_* rule of a checked concern, with its severity and remediation.
# custom:
#   severity: info
#   remediation: Not a rule.
findings contains f if {
	some concern in concerns
	some pkg, rules in roots[concern]
	not endswith(pkg, "_test")
	some name, results in rules
	startswith(name, "deny_")
	some r in results
	id := sprintf("%s.%s.%s", [concern, pkg, name])
	meta := object.get(policy_metadata, id, {})
	f := {
		"concern": concern,
		"rule": id,
		"message": r.msg,
		"object": object.get(r, "object", null),
		"severity": object.get(meta, "severity", "high"),
		"remediation": object.get(meta, "remediation", ""),
	}
}

# a concern named in environment.yaml with no policies behind it is a mistake, and fails closed
findings contains f if {
	some concern in enforced
	not roots[concern]
	f := {
		"concern": concern, "rule": "promoter.unknown_concern",
		"message": sprintf("policy.enforce names '%s' but policies/%s/ has no policy", [concern, concern]),
		"object": null, "severity": "critical",
		"remediation": "Fix policy.enforce in environment.yaml, or add the policies.",
	}
}

# METADATA
# title: Decision
# description: allow, deny (enforced concerns) and warn (warn_only concerns).
# custom:
#   severity: info
#   remediation: Not a rule.
decision := {
	"allow": count(deny) == 0,
	"deny": deny,
	"warn": warn,
}

deny := [f | some f in findings; f.concern in enforced]

warn := [f | some f in findings; f.concern in warned]
