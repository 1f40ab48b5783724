# METADATA
# title: Kubernetes helpers
# description: Shared helpers to reach pod specs and containers of any workload kind.
# custom:
#   severity: info
#   remediation: Not a rule; nothing to remediate.
package lib.k8s

import rego.v1

# METADATA
# title: Object identity
# description: Kind/namespace/name of an object, as reports name it.
# custom:
#   severity: info
#   remediation: Not a rule.
ident(o) := sprintf("%s/%s/%s", [o.kind, object.get(o.metadata, "namespace", "-"), o.metadata.name])

# METADATA
# title: Pod spec
# description: The pod spec of a Pod, a workload with a template, or a CronJob.
# custom:
#   severity: info
#   remediation: Not a rule.
pod_spec(o) := o.spec if o.kind == "Pod"

pod_spec(o) := o.spec.template.spec if o.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec(o) := o.spec.jobTemplate.spec.template.spec if o.kind == "CronJob"

# METADATA
# title: Per-environment lists
# description: >-
#   A data map from environment name to a list, "*" naming every environment: the list for the
#   environment judged (the "*" entries and its own).
# custom:
#   severity: info
#   remediation: Not a rule.
for_env(m) := array.concat(object.get(m, "*", []), object.get(m, input.environment.name, []))

# METADATA
# title: Per-environment setting
# description: A data map from environment name to a value, "*" for every other environment.
# custom:
#   severity: info
#   remediation: Not a rule.
setting(m, fallback) := object.get(m, input.environment.name, object.get(m, "*", fallback))

# METADATA
# title: Image repository
# description: registry/path/name of an image, without its tag or digest.
# custom:
#   severity: info
#   remediation: Not a rule.
repository(image) := concat("/", array.concat(array.slice(parts, 0, count(parts) - 1), [name])) if {
	parts := split(split(image, "@")[0], "/")
	name := split(parts[count(parts) - 1], ":")[0]
}

# METADATA
# title: Image matches an entry
# description: >-
#   On path boundaries, never as a raw prefix: an entry ending in "/" (a registry or a folder of
#   it) matches the images under it; any other entry names one repository, and matches it and the
#   repositories below it. So "registry.example.com/postgres" never lets
#   "registry.example.com/postgresmalicious" through.
# custom:
#   severity: info
#   remediation: Not a rule.
image_matches(image, entry) if {
	endswith(entry, "/")
	startswith(repository(image), entry)
}

image_matches(image, entry) if {
	not endswith(entry, "/")
	repository(image) == entry
}

image_matches(image, entry) if {
	not endswith(entry, "/")
	startswith(repository(image), concat("", [entry, "/"]))
}

default exempt_images := {}

exempt_images := data.exempt_images

# METADATA
# title: Exempt image
# description: An image that data.exempt_images exempts in this environment; no container rule judges it.
# custom:
#   severity: info
#   remediation: Not a rule.
exempt(image) if {
	some entry in for_env(exempt_images)
	image_matches(image, entry)
}

# METADATA
# title: Workloads
# description: Objects that run pods.
# custom:
#   severity: info
#   remediation: Not a rule.
workloads contains o if {
	some o in input.objects
	pod_spec(o)
}

# METADATA
# title: Containers
# description: >-
#   Every container, init container and ephemeral container of every workload, with its object and
#   whether it is a helper (init or ephemeral) rather than a main container. Images that
#   data.exempt_images exempts are left out.
# custom:
#   severity: info
#   remediation: Not a rule.
containers contains [o, c, helper] if {
	some o in workloads
	some field in ["containers", "initContainers", "ephemeralContainers"]
	some c in object.get(pod_spec(o), field, [])
	not exempt(object.get(c, "image", ""))
	helper := field != "containers"
}

# METADATA
# title: Result
# description: A structured result.
# custom:
#   severity: info
#   remediation: Not a rule.
result(o, msg, details) := {"msg": msg, "object": ident(o), "details": details}

# METADATA
# title: Pod security levels
# description: The Pod Security Standards' levels, from the least to the most restrictive.
# custom:
#   severity: info
#   remediation: Not a rule.
pod_security_levels := {"privileged": 0, "baseline": 1, "restricted": 2}

# METADATA
# title: Pod security level
# description: >-
#   The environment's policy.pod_security (privileged, baseline or restricted, as a Pod Security
#   Admission namespace label sets it); restricted when it is unset or not one of those (fail closed).
# custom:
#   severity: info
#   remediation: Not a rule.
default pod_security := "restricted"

pod_security := input.environment.policy.pod_security if input.environment.policy.pod_security in object.keys(pod_security_levels)

# METADATA
# title: Level enforced
# description: Whether the environment's pod security level includes the controls of `level`.
# custom:
#   severity: info
#   remediation: Not a rule.
enforces(level) if pod_security_levels[pod_security] >= pod_security_levels[level]

# METADATA
# title: Pod metadata
# description: The metadata of a Pod, or of a workload's pod template (where annotations reach the pod).
# custom:
#   severity: info
#   remediation: Not a rule.
pod_metadata(o) := object.get(o, "metadata", {}) if o.kind == "Pod"

pod_metadata(o) := object.get(o.spec.template, "metadata", {}) if o.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_metadata(o) := object.get(o.spec.jobTemplate.spec.template, "metadata", {}) if o.kind == "CronJob"
