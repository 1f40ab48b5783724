"""Stand-ins for Argo CD's and Flux's controllers, inside a simulated API server, for the syncer
tests: the `Application` and `Kustomization` kinds (their CRDs, with the fields promoter reads), and a
controller thread that answers a refresh (`argocd.argoproj.io/refresh`) or a reconcile request
(`reconcile.fluxcd.io/requestedAt`) the way their documentation describes the status.

Where they differ from the real controllers:
- they do not apply the app's folder to the cluster. They read the revision that origin's main is at
  and report it as synced (Argo CD: `status.sync.revision`, `Synced`; Flux: `lastAppliedRevision`
  `main@sha1:<sha>`, `Ready=True`). promoter only reads that status, which is what is under test;
- health is whatever the test says: `fail` answers that many reconciles `Degraded` (Argo CD) or
  `Ready=False` with reason `HealthCheckFailed` (Flux), then healthy ones;
- no polling of Git by themselves, no sync waves, hooks or dependencies.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import git

from promoter.sim.kube import KubeSim

ARGO = ("argoproj.io", "v1alpha1", "applications", "Application", "argocd", "argocd.argoproj.io/refresh")
FLUX = (
    "kustomize.toolkit.fluxcd.io",
    "v1",
    "kustomizations",
    "Kustomization",
    "flux-system",
    "reconcile.fluxcd.io/requestedAt",
)


class Controller:
    def __init__(self, sim: KubeSim, origin: Path, engine: str, names: list[str], fail: int = 0) -> None:
        self.sim, self.origin, self.fail = sim, origin, fail
        self.group, self.version, self.plural, self.kind, self.namespace, self.annotation = (
            ARGO if engine == "argocd" else FLUX
        )
        self.engine = engine
        self.reconciled: list[str] = []  # the revisions it reported, in order
        self._stop = threading.Event()
        self._install(names)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Controller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _install(self, names: list[str]) -> None:
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{self.plural}.{self.group}"},
            "spec": {
                "group": self.group,
                "scope": "Namespaced",
                "names": {"plural": self.plural, "kind": self.kind},
                "versions": [{"name": self.version, "served": True, "storage": True}],
            },
        }
        with self.sim.lock:
            kinds = self.sim.kinds
            self.sim.create(kinds[("apiextensions.k8s.io", "v1", "customresourcedefinitions")], "", crd)
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            if ("", "namespaces", "", self.namespace) not in self.sim.objects:
                self.sim.create(kinds[("", "v1", "namespaces")], "", namespace)
            for name in names:
                body = {"apiVersion": f"{self.group}/{self.version}", "kind": self.kind, "metadata": {"name": name}}
                self.sim.create(kinds[(self.group, self.version, self.plural)], self.namespace, body)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with self.sim.lock:
                asked = [
                    obj
                    for (group, plural, _, _), obj in self.sim.objects.items()
                    if (group, plural) == (self.group, self.plural)
                    and self.annotation in ((obj.get("metadata") or {}).get("annotations") or {})
                ]
            if not asked:
                continue
            revision = git.Repo(self.origin).git.rev_parse("main")
            with self.sim.lock:
                for obj in asked:
                    del obj["metadata"]["annotations"][self.annotation]
                    healthy = self.fail <= 0
                    self.fail -= 1
                    obj["status"] = self._status(revision, healthy)
                    self.reconciled.append(revision)

    def _status(self, revision: str, healthy: bool) -> dict[str, Any]:
        if self.engine == "argocd":
            health = {"status": "Healthy"} if healthy else {"status": "Degraded", "message": "Deployment demo failed"}
            return {"sync": {"status": "Synced", "revision": revision}, "health": health}
        ready = (
            {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied"}
            if healthy
            else {"type": "Ready", "status": "False", "reason": "HealthCheckFailed", "message": "demo not ready"}
        )
        flux_revision = f"main@sha1:{revision}"
        return {"lastAppliedRevision": flux_revision, "lastAttemptedRevision": flux_revision, "conditions": [ready]}
