package kubernetes.labels_test

import data.kubernetes.labels
import data.lib.fixtures_test as f
import rego.v1

test_deny_missing_label if {
	svc := {"kind": "Service", "metadata": {"name": "demo", "labels": {"app.kubernetes.io/name": "demo"}}}
	some v in labels.deny_missing_label with input as f.objects_input([svc], "staging")
		with data.required_labels as ["app.kubernetes.io/name", "app.kubernetes.io/part-of"]
	v.details.label == "app.kubernetes.io/part-of"
}

test_allow_labels if {
	count(labels.deny_missing_label) == 0 with input as f.objects_input([f.good], "staging")
		with data.required_labels as ["app.kubernetes.io/name", "app.kubernetes.io/part-of"]
}
