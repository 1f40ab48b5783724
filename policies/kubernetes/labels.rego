# METADATA
# title: Labels
# description: Every object carries the labels listed in data required_labels.
# custom:
#   severity: low
#   remediation: Add the missing labels to metadata.labels.
package kubernetes.labels

import data.lib.k8s
import rego.v1

default required_labels := []

required_labels := data.required_labels

# METADATA
# title: Required labels
# description: Ownership and selection rely on these labels.
# custom:
#   severity: low
#   remediation: Add each label named in policies/data.yaml required_labels to metadata.labels.
deny_missing_label contains k8s.result(o, msg, {"label": label}) if {
	some o in input.objects
	some label in required_labels
	not o.metadata.labels[label]
	msg := sprintf("%s has no label %s", [o.kind, label])
}
