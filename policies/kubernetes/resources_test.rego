package kubernetes.resources_test

import data.kubernetes.resources
import data.lib.fixtures_test as f
import rego.v1

test_deny_missing_requests if {
	obj := f.replacing({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})
	count(resources.deny_missing_requests) == 2 with input as f.objects_input([obj], "staging")
}

test_deny_missing_limits if {
	obj := f.replacing({"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1"}}})
	some v in resources.deny_missing_limits with input as f.objects_input([obj], "staging")
	v.msg == "container web has no memory limit"
}

test_allow_requests_and_limits if {
	count(resources.deny_missing_requests | resources.deny_missing_limits) == 0 with input as f.objects_input([f.good], "staging")
}

test_allow_memory_only_limits_where_cpu_limits_are_not_required if {
	obj := f.replacing({"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}})
	count(resources.deny_missing_limits) == 0 with input as f.objects_input([obj], "staging")
		with data.required_limits as {"*": ["memory"]}
}

test_deny_missing_cpu_limit_where_an_environment_still_requires_it if {
	obj := f.replacing({"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}})
	some v in resources.deny_missing_limits with input as f.objects_input([obj], "prod")
		with data.required_limits as {"*": ["memory"], "prod": ["cpu", "memory"]}
	v.details.resource == "cpu"
}
