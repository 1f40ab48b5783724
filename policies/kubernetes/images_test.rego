package kubernetes.images_test

import data.kubernetes.images
import data.lib.fixtures_test as f
import rego.v1

test_deny_latest_tag if {
	some v in images.deny_unpinned_image with input as f.objects_input([f.with_container({"image": "ghcr.io/promoter-dev/demo:latest"})], "staging")
	contains(v.msg, ":latest")
	v.object == "Deployment/apps/demo"
}

test_deny_missing_tag if {
	count(images.deny_unpinned_image) == 1 with input as f.objects_input([f.with_container({"image": "ghcr.io/promoter-dev/demo"})], "staging")
}

test_deny_missing_tag_with_registry_port if {
	count(images.deny_unpinned_image) == 1 with input as f.objects_input([f.with_container({"image": "localhost:5000/demo"})], "staging")
}

test_allow_pinned_tag if {
	count(images.deny_unpinned_image) == 0 with input as f.objects_input([f.good], "staging")
}

test_allow_digest if {
	count(images.deny_unpinned_image) == 0 with input as f.objects_input([f.with_container({"image": "ghcr.io/promoter-dev/demo@sha256:abc"})], "staging")
}

test_deny_missing_digest_where_required if {
	count(images.deny_missing_digest) == 1 with input as f.objects_input([f.good], "prod") with data.require_digest as ["prod"]
}

test_allow_digest_where_required if {
	count(images.deny_missing_digest) == 0 with input as f.objects_input([f.with_container({"image": "ghcr.io/promoter-dev/demo@sha256:abc"})], "prod")
		with data.require_digest as ["prod"]
}

test_allow_tag_where_digest_not_required if {
	count(images.deny_missing_digest) == 0 with input as f.objects_input([f.good], "staging") with data.require_digest as ["prod"]
}

test_deny_registry if {
	some v in images.deny_registry with input as f.objects_input([f.with_container({"image": "docker.io/evil/miner:1.0"})], "staging")
		with data.allowed_registries as ["ghcr.io/promoter-dev/"]
	contains(v.msg, "docker.io/evil/miner:1.0")
}

test_deny_registry_of_init_container if {
	obj := f.deployment_with({"initContainers": [object.union(f.container, {"name": "init", "image": "quay.io/x/y:1"})]})
	count(images.deny_registry) == 1 with input as f.objects_input([obj], "staging")
		with data.allowed_registries as ["ghcr.io/promoter-dev/"]
}

test_allow_registry if {
	count(images.deny_registry) == 0 with input as f.objects_input([f.good], "staging")
		with data.allowed_registries as ["ghcr.io/promoter-dev/"]
}
