# METADATA
# title: Secrets
# description: Secret values never live in Git.
# custom:
#   severity: critical
#   remediation: Use an external secret manager (ExternalSecret, SealedSecret, CSI driver).
package kubernetes.secrets

import data.lib.k8s
import rego.v1

# METADATA
# title: No literal Secret data
# description: A Secret with data or stringData puts the secret itself in the repository.
# custom:
#   severity: critical
#   remediation: Remove the Secret and reference one managed outside Git (e.g. an ExternalSecret).
deny_literal_secret contains k8s.result(o, msg, {"keys": keys}) if {
	some o in input.objects
	o.kind == "Secret"
	keys := sort([k | some field in ["data", "stringData"]; some k, _ in object.get(o, field, {})])
	count(keys) > 0
	msg := sprintf("Secret %s carries literal values in Git (%s)", [o.metadata.name, concat(", ", keys)])
}
