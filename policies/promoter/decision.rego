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
# title: Rule packages
# description: >-
#   The packages of each concern, named explicitly. OPA compiles a decision only over explicit
#   roots: walking data[concern] would reach this package and the tests too (a recursion OPA
#   rejects). A new package of rules is added here, under its concern.
# custom:
#   severity: info
#   remediation: Not a rule.
packages := {
	"kubernetes": {
		"images": data.kubernetes.images,
		"labels": data.kubernetes.labels,
		"probes": data.kubernetes.probes,
		"replicas": data.kubernetes.replicas,
		"resources": data.kubernetes.resources,
		"secrets": data.kubernetes.secrets,
		"security": data.kubernetes.security,
	},
	"promotion": {
		"approvals": data.promotion.approvals,
		"freeze": data.promotion.freeze,
		"order": data.promotion.order,
		"soak": data.promotion.soak,
	},
}

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
	some pkg, rules in packages[concern]
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
	not packages[concern]
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
