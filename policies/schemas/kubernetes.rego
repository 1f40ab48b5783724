# METADATA
# title: Kubernetes schemas
# description: >-
#   Every object against the official schemas of the target environment's Kubernetes version
#   (cluster.version), strictly: promoter validates them before the policies run and hands the
#   findings over as input.schemas, so that enforce, warn_only and the exceptions apply as to any rule.
# custom:
#   severity: high
#   remediation: Fix the field the finding names; the path is the object's JSON path.
package schemas.kubernetes

import rego.v1

default found := []

found := input.schemas.findings

# METADATA
# title: Finding
# description: One schema finding as a rule's result, with its object and path.
# custom:
#   severity: info
#   remediation: Not a rule.
result(f) := {"msg": message(f), "object": f.object, "path": f.path}

message(f) := f.message if f.path == ""

message(f) := sprintf("%s: %s", [f.path, f.message]) if f.path != ""

# METADATA
# title: Invalid object
# description: >-
#   An unknown field, a wrong type, a missing required field, an unsupported value or an unknown kind:
#   a real API server would refuse the object at sync, after the approval.
# custom:
#   severity: high
#   remediation: Fix the field at the path named (a typo, a quoted number, a field the kind does not have).
deny_invalid contains result(f) if {
	some f in found
	f.kind == "invalid"
}

# METADATA
# title: Removed API version
# description: The target's Kubernetes version no longer serves the object's apiVersion.
# custom:
#   severity: high
#   remediation: Move the object to the apiVersion the finding names (its fields may differ there).
deny_removed_api contains result(f) if {
	some f in found
	f.kind == "removed"
}

# METADATA
# title: Deprecated API version
# description: The apiVersion is served now but not by a newer Kubernetes version; an upgrade breaks it.
# custom:
#   severity: medium
#   remediation: Move the object to the apiVersion the finding names before the cluster is upgraded.
warn_deprecated_api contains result(f) if {
	some f in found
	f.kind == "deprecated"
}

# METADATA
# title: Custom resource not validated
# description: >-
#   No CustomResourceDefinition for the kind in the repository or the cluster: nothing can check the
#   object, and a cluster without the CRD refuses it at sync, after the approval. Denied, never passed
#   on a warning (fail closed); under warn_only: [schemas] it is a warning like every rule here.
# custom:
#   severity: high
#   remediation: >-
#     Add the CRD to the environment's folder (or install it in the target cluster) so that its schema
#     checks the object; fix the apiVersion or kind if it names no CRD by mistake.
deny_not_validated contains result(f) if {
	some f in found
	f.kind == "unvalidated"
}
