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

test_deny_registry_that_only_shares_a_prefix_string if {
	obj := f.with_container({"image": "registry.example.com/postgresmalicious:1.0"})
	count(images.deny_registry) == 1 with input as f.objects_input([obj], "staging")
		with data.allowed_registries as ["registry.example.com/postgres"]
}

test_allow_registry_repository_exactly_and_below if {
	objs := [
		f.with_container({"image": "registry.example.com/postgres:16.1"}),
		f.with_container({"image": "registry.example.com/postgres@sha256:abc"}),
		f.with_container({"image": "registry.example.com/postgres/exporter:0.15"}),
	]
	count(images.deny_registry) == 0 with input as f.objects_input(objs, "staging")
		with data.allowed_registries as ["registry.example.com/postgres"]
}

test_deny_registry_host_prefix_without_boundary if {
	obj := f.with_container({"image": "ghcr.io.evil.example/promoter-dev/demo:1.0"})
	count(images.deny_registry) == 1 with input as f.objects_input([obj], "staging")
		with data.allowed_registries as ["ghcr.io/"]
}

test_deny_latest_in_an_ephemeral_container if {
	obj := f.deployment_with({"ephemeralContainers": [object.union(f.container, {"name": "debugger", "image": "ghcr.io/promoter-dev/debug:latest"})]})
	some v in images.deny_unpinned_image with input as f.objects_input([obj], "staging")
	v.details.container == "debugger"
}

test_allow_an_exempt_image_anywhere_it_is_exempt if {
	obj := f.with_container({"image": "docker.io/istio/proxyv2:latest"})
	inp := f.objects_input([obj], "staging")
	count(images.deny_unpinned_image | images.deny_registry) == 0 with input as inp
		with data.exempt_images as {"*": ["docker.io/istio/"]}
}

test_deny_an_image_exempt_only_in_another_environment if {
	obj := f.with_container({"image": "docker.io/istio/proxyv2:latest"})
	count(images.deny_registry) == 1 with input as f.objects_input([obj], "prod")
		with data.exempt_images as {"dev": ["docker.io/istio/"]}
}
