package kubernetes.secrets_test

import data.kubernetes.secrets
import data.lib.fixtures_test as f
import rego.v1

test_deny_literal_secret if {
	s := {"kind": "Secret", "metadata": {"name": "db", "labels": f.labels}, "stringData": {"password": "hunter2"}}
	some v in secrets.deny_literal_secret with input as f.objects_input([s], "staging")
	v.details.keys == ["password"]
	not contains(v.msg, "hunter2")
}

test_allow_secret_reference if {
	es := {"kind": "ExternalSecret", "metadata": {"name": "db", "labels": f.labels}, "spec": {"secretStoreRef": {"name": "vault"}}}
	count(secrets.deny_literal_secret) == 0 with input as f.objects_input([es], "staging")
}

test_allow_empty_secret if {
	s := {"kind": "Secret", "metadata": {"name": "filled-by-operator", "labels": f.labels}}
	count(secrets.deny_literal_secret) == 0 with input as f.objects_input([s], "staging")
}
