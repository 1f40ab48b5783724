# METADATA
# title: Container images
# description: Images are pinned, digested where the environment demands it, and from allowed registries.
# custom:
#   severity: high
#   remediation: Use a version tag or digest from an allowed registry.
package kubernetes.images

import data.lib.k8s
import rego.v1

default require_digest := []

require_digest := data.require_digest

default allowed_registries := []

allowed_registries := data.allowed_registries

# the part after the registry and repository: a tag is a ':' after the last '/'
tag(image) := t if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	t := split(last, ":")[1]
}

# METADATA
# title: Images are pinned
# description: No image may use the tag latest or omit its tag (which means latest).
# custom:
#   severity: high
#   remediation: Pin the image to a version tag (e.g. :1.4.2) or a digest (@sha256:...).
deny_unpinned_image contains k8s.result(o, msg, {"container": c.name, "image": c.image}) if {
	some [o, c, _] in k8s.containers
	not contains(c.image, "@")
	not tag(c.image)
	msg := sprintf("container %s uses %s without a tag (that is :latest)", [c.name, c.image])
}

deny_unpinned_image contains k8s.result(o, msg, {"container": c.name, "image": c.image}) if {
	some [o, c, _] in k8s.containers
	tag(c.image) == "latest"
	msg := sprintf("container %s uses the tag :latest (%s)", [c.name, c.image])
}

# METADATA
# title: Digests where required
# description: Environments listed in data require_digest run images by digest only.
# custom:
#   severity: high
#   remediation: Reference the image as registry/repo@sha256:<digest>.
deny_missing_digest contains k8s.result(o, msg, {"container": c.name, "image": c.image}) if {
	input.environment.name in require_digest
	some [o, c, _] in k8s.containers
	not contains(c.image, "@sha256:")
	msg := sprintf("%s requires image digests; container %s uses %s", [input.environment.name, c.name, c.image])
}

# METADATA
# title: Allowed registries
# description: Images come only from the registries listed in data allowed_registries.
# custom:
#   severity: critical
#   remediation: Push the image to an allowed registry, or add the registry to policies/data.yaml.
deny_registry contains k8s.result(o, msg, {"container": c.name, "image": c.image}) if {
	some [o, c, _] in k8s.containers
	not allowed(c.image)
	msg := sprintf("container %s uses %s, not from an allowed registry (%s)", [
		c.name, c.image,
		concat(", ", allowed_registries),
	])
}

# on path boundaries (lib.k8s.image_matches), never as a raw string prefix
allowed(image) if {
	some entry in allowed_registries
	k8s.image_matches(image, entry)
}
