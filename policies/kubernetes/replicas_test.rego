package kubernetes.replicas_test

import data.kubernetes.replicas
import data.lib.fixtures_test as f
import rego.v1

one_replica := object.union(f.good, {"spec": {"replicas": 1}})

test_deny_too_few_replicas_in_prod if {
	some v in replicas.deny_too_few_replicas with input as f.objects_input([one_replica], "prod") with data.min_replicas as {"prod": 2}
	v.details == {"replicas": 1, "minimum": 2}
}

test_allow_one_replica_in_dev if {
	count(replicas.deny_too_few_replicas) == 0 with input as f.objects_input([one_replica], "dev") with data.min_replicas as {"prod": 2}
}

test_allow_enough_replicas if {
	count(replicas.deny_too_few_replicas) == 0 with input as f.objects_input([f.good], "prod") with data.min_replicas as {"prod": 2}
}
