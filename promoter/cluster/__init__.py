"""The Kubernetes adapter, with the official client over HTTP, as a real cluster expects.

Sync is server-side apply (field manager `promoter`) through the dynamic client and discovery, so
custom resources work like built-ins: CustomResourceDefinitions first, then namespaces (created when
missing), then everything else, applied concurrently (`APPLY_CONCURRENCY` at a time). Every object is
labelled with its app and annotated with the promotion that applied it and the hash of what was
applied (`promoter.dev/applied`).

What the cluster has is read with one list per kind (by the app's label), never a read per object.
An object is skipped, not applied, when the live one carries the hash of exactly what would be
applied *and* still holds every field of it (so an unchanged re-sync writes nothing, while an object
someone edited by hand, say `kubectl scale`, is applied again).

Each app owns what its inventory lists: a ConfigMap `promoter-inventory-<app>` in the environment's
namespace holding the references (group, version, kind, namespace, name) of every object it applied,
its kinds, and the promoted commit, rewritten only when they change. Prune deletes only inventory
entries the new revision no longer has, never by label alone. An object another app owns (its
inventory lists it, its label names that app, or a field manager `promoter/<that app>` wrote it) is
never applied over: sync refuses it (the policy gate denies it before the PR, through `claims`). An
object that exists and that no app owns is adopted only with `adopt`. A cluster synced before
inventories listed objects gets its inventory built from the app's labels, once. Health judges workloads
as `kubectl rollout status` does, polling from 50 ms and backing off to 2 s. The promotion's ID (the
workflow ID `promote-<app>`, a valid label value) is both a label and an annotation.
"""

from __future__ import annotations

from promoter.cluster.drift import HIDDEN, Drift, masked
from promoter.cluster.health import Health
from promoter.cluster.objects import (
    APP_LABEL,
    APPLIED_ANNOTATION,
    INVENTORY,
    INVENTORY_LABEL,
    MANAGER,
    PROMOTION_ANNOTATION,
    PROMOTION_LABEL,
    applied_hash,
    first_error,
)
from promoter.cluster.ownership import Claim, reserved
from promoter.cluster.reconcilers import RECONCILERS, Reconcilers, reconcile_verdict
from promoter.cluster.sync import Syncing, SyncOutcome

__all__ = [
    "APPLIED_ANNOTATION",
    "APP_LABEL",
    "HIDDEN",
    "INVENTORY",
    "INVENTORY_LABEL",
    "MANAGER",
    "PROMOTION_ANNOTATION",
    "PROMOTION_LABEL",
    "RECONCILERS",
    "Claim",
    "KubeCluster",
    "SyncOutcome",
    "applied_hash",
    "first_error",
    "masked",
    "reconcile_verdict",
    "reserved",
]


class KubeCluster(Syncing, Drift, Health, Reconcilers):
    """One cluster, as the activities use it: sync and claims (promoter.cluster.sync), drift
    (promoter.cluster.drift), health (promoter.cluster.health) and Argo CD or Flux
    (promoter.cluster.reconcilers), all over one dynamic client and its discovery
    (promoter.cluster.resources) and the inventories (promoter.cluster.inventory)."""
