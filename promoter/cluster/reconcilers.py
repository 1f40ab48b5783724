"""Argo CD and Flux as the syncer: promoter asks them to reconcile (an annotation), reads their word on a
revision from their documented status fields, and takes their drift as they report it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError

from promoter.cluster.health import poll
from promoter.cluster.objects import (
    api_error,
    plain,
)
from promoter.cluster.resources import Resources
from promoter.models import FieldDrift

RECONCILERS = {
    "argocd": ("argoproj.io/v1alpha1", "Application", "argocd.argoproj.io/refresh"),
    "flux": ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "reconcile.fluxcd.io/requestedAt"),
}


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    """A Flux object's `Ready` condition ({} when it has none yet)."""
    found: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return found


def reconcile_verdict(engine: str, obj: dict[str, Any], revision: str) -> tuple[bool | None, str]:
    """Argo CD's or Flux's word on `revision`: True (applied and healthy), False (failed or degraded,
    with why), None (not there yet), as their documented status fields say."""
    status = obj.get("status") or {}
    if engine == "argocd":
        sync, health = status.get("sync") or {}, status.get("health") or {}
        operation = status.get("operationState") or {}
        at, synced, healthy = sync.get("revision", ""), sync.get("status", "Unknown"), health.get("status", "Unknown")
        if operation.get("phase") in ("Failed", "Error") and (operation.get("syncResult") or {}).get("revision") in (
            None,
            revision,
        ):
            return False, f"Argo CD could not sync {revision[:7]}: {operation.get('message') or operation['phase']}"
        if at == revision and healthy == "Degraded":
            return False, f"Argo CD reports {revision[:7]} Degraded: {health.get('message') or 'no message'}"
        if at == revision and synced == "Synced" and healthy == "Healthy":
            return True, f"Argo CD: Synced and Healthy at {revision[:7]}"
        return None, f"Argo CD: {synced} at {at[:7] or 'no revision'}, {healthy}"
    ready = _ready(status)
    applied = status.get("lastAppliedRevision") or ""
    if revision in applied and ready.get("status") == "True":
        return True, f"Flux: Ready at {revision[:7]}"
    if revision in (status.get("lastAttemptedRevision") or "") and ready.get("status") == "False":
        if ready.get("reason") not in ("Progressing", "DependencyNotReady"):
            return False, f"Flux: not Ready at {revision[:7]}: {ready.get('reason')}: {ready.get('message', '')}"
    return None, f"Flux: {ready.get('reason') or 'waiting'} at {applied or 'no revision'}"


class Reconcilers(Resources):
    """The app's Argo CD Application or Flux Kustomization."""

    def request_reconcile(self, engine: str, name: str, namespace: str) -> None:
        """Ask Argo CD (the refresh annotation) or Flux (requestedAt) to reconcile the app now."""
        api_version, kind, annotation = RECONCILERS[engine]
        value = "normal" if engine == "argocd" else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            self._resource(api_version, kind).patch(
                name=name,
                namespace=namespace,
                body={"metadata": {"annotations": {annotation: value}}},
                content_type="application/merge-patch+json",
            )
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, f"annotate {kind} {namespace}/{name}") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, f"annotate {kind} {namespace}/{name}") from None

    def _reconciler(self, engine: str, name: str, namespace: str) -> dict[str, Any]:
        """The app's Argo CD Application or Flux Kustomization, as the cluster has it."""
        api_version, kind, _ = RECONCILERS[engine]
        try:
            found: dict[str, Any] = self._resource(api_version, kind).get(
                name=name, namespace=namespace, serializer=plain
            )
            return found
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, f"read {kind} {namespace}/{name}") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, f"read {kind} {namespace}/{name}") from None

    def reconciler_drift(self, engine: str, name: str, namespace: str) -> list[FieldDrift]:
        """Drift as Argo CD (`OutOfSync`) or Flux (`Ready` not `True`, since its last transition)
        reports it: they compare the cluster with Git themselves, so promoter does not recompute it. Only
        the controller's status words are shown (`OutOfSync`, `False`), never a field's value."""
        status = self._reconciler(engine, name, namespace).get("status") or {}
        where = f"{RECONCILERS[engine][1]}/{namespace}/{name}"
        if engine == "argocd":
            synced = (status.get("sync") or {}).get("status", "Unknown")
            return (
                []
                if synced == "Synced"
                else [FieldDrift(object=where, path="status.sync.status", git="Synced", live=synced)]
            )
        ready = _ready(status)
        if ready.get("status") == "True":
            return []
        return [
            FieldDrift(
                object=where,
                path="status.conditions[Ready]",
                git="True",
                live=ready.get("status"),
                since=ready.get("lastTransitionTime"),
            )
        ]

    def wait_reconciled(
        self,
        engine: str,
        name: str,
        namespace: str,
        revision: str,
        timeout_s: float,
        progress: Callable[[str], None] = lambda _: None,
    ) -> tuple[bool, str]:
        """Until Argo CD or Flux says `revision` is applied and healthy (or failed), or `timeout_s`."""
        return poll(
            lambda: reconcile_verdict(engine, self._reconciler(engine, name, namespace), revision),
            timeout_s,
            "not applied and healthy",
            progress,
        )
