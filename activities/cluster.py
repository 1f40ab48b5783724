"""Cluster activities: sync an environment's app folder at a revision, and judge its rollout (with
heartbeats); compare an environment with Git (drift), in every one of its clusters. Each is
idempotent: a sync of the same revision changes nothing."""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity

from activities import classified
from activities.promoted import PromotedFolders
from promoter.cluster import KubeCluster
from promoter.cluster.drift import Seen
from promoter.errors import BadInput
from promoter.git.clone import Clone
from promoter.git.reading import GitOpsReader
from promoter.git.rules import TrustedRules
from promoter.models import (
    AppDrift,
    ClusterConfig,
    DriftInput,
    DriftReport,
    EnvironmentConfig,
    FieldDrift,
    HealthInput,
    HealthResult,
    HttpProbe,
    PromotedFolder,
    SyncInput,
    SyncResult,
)
from promoter.names import app_folder
from promoter.render import render_files


def probe_http(probes: list[HttpProbe], deadline: float, progress: Callable[[str], None]) -> tuple[bool, str]:
    """Each probe must answer its expected status before the deadline (polled, each try 5 s at most)."""
    for probe in probes:
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(probe.url, timeout=5) as answer:
                    status = answer.status
            except urllib.error.HTTPError as e:
                status = e.code
            except (urllib.error.URLError, OSError) as e:
                status, last = 0, f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if status == probe.expect_status:
                break
            last = f"status {status}" if status else last
            progress(f"{probe.url}: {last}")
            if time.monotonic() >= deadline:
                return False, f"HTTP probe {probe.url} answered {last}, expected {probe.expect_status}"
            time.sleep(0.2)
    return True, f"{len(probes)} HTTP probe(s) answered as expected"


# An app a drift check of many found matching its revision is not rendered and compared again while the
# cluster holds what it held then (the resourceVersions of its objects and inventory: any write, by
# promoter or a person, changes one) and its revision is the same; at least this often it is, whatever.
IN_SYNC_FOR_S = 3600.0
InSync = tuple[str, tuple[tuple[str, ...], ...], set[tuple[str, str]], float]


class ClusterGit(Protocol):
    """What the cluster activities need of the git side (promoter.git.ports): an environment's apps,
    a folder's files, a tree to render, and the revision an app's folder was promoted at (drift), for
    one app or, through the clone's plumbing, rules and reader, for all of an environment's at once."""

    def environment_apps(self, env: str) -> tuple[str, EnvironmentConfig, list[str]]: ...
    def folder_files(self, rev: str, folder: str) -> dict[str, bytes]: ...
    def export_tree(self, rev: str, dest: Path) -> None: ...
    def promoted_folder(self, env: str, app: str) -> PromotedFolder: ...

    # what activities.promoted walks main with, for every app of an environment at once
    plumbing: Clone
    trusted: TrustedRules
    reading: GitOpsReader


class ClusterActivities:
    def __init__(self, repo: ClusterGit) -> None:
        self.repo = repo
        self._clusters: dict[tuple[str | None, str | None, str], KubeCluster] = {}
        # each app a check of many found matching Git: (revision, what the cluster had, its kinds, when)
        self._in_sync: dict[tuple[KubeCluster, str, str], InSync] = {}
        self._lock = threading.Lock()

    def cluster(self, cfg: ClusterConfig) -> KubeCluster:
        key = (cfg.kubeconfig or os.environ.get("KUBECONFIG"), cfg.context, cfg.namespace)
        with self._lock:
            if key not in self._clusters:
                self._clusters[key] = KubeCluster.from_config(cfg)
            return self._clusters[key]

    def objects(self, app: str, env: str, revision: str) -> list[dict[str, Any]]:
        folder = app_folder(env, app)

        def materialize(tmp: Path) -> Path:
            self.repo.export_tree(revision, tmp)
            return tmp / folder

        return render_files(self.repo.folder_files(revision, folder), folder, materialize)

    @activity.defn(name="sync")
    @classified
    def sync(self, req: SyncInput) -> SyncResult:
        if req.cluster.sync != "native":  # Argo CD or Flux applies: ask it to, and apply nothing ourselves
            name, namespace = req.cluster.reconciler(req.app, req.env)
            self.cluster(req.cluster).request_reconcile(req.cluster.sync, name, namespace)
            return SyncResult(applied=0, unchanged=0, pruned=0, engine=req.cluster.sync)
        objects = self.objects(req.app, req.env, req.revision)
        outcome = self.cluster(req.cluster).sync(
            req.app,
            req.promotion_id,
            objects,
            progress=activity.heartbeat,
            revision=req.revision,
            adopt=req.cluster.adopt,
        )
        if outcome.note:  # a cluster synced before inventories listed objects: said once, in the log and the stage
            activity.logger.info("%s in %s: %s", req.app, req.env, outcome.note)
        return SyncResult(
            applied=outcome.applied,
            unchanged=outcome.unchanged,
            pruned=outcome.pruned,
            engine="kubernetes",
            note=outcome.note,
        )

    @activity.defn(name="detect_drift")
    @classified
    def detect_drift(self, req: DriftInput) -> DriftReport:
        """Compare every app of the environment on main (or `req.apps`) with its live objects, field by
        field for what promoter manages, against the app folder's last *promoted* revision (not main's
        folder: ClusterGit.promoted_folder); with healing on, re-apply that revision to the apps that
        drifted (or, with `req.defer_heal`, only mark them for DriftWorkflow to heal under their claim).

        A commit that changed the folder on main without a promotion is reported, never applied; an app
        never promoted into the environment is compared with its folder's seed and never healed."""
        main, config, apps = self.repo.environment_apps(req.env)
        unknown = sorted(set(req.apps) - set(apps))
        if unknown:
            raise BadInput(f"no app {', '.join(unknown)} in {req.env} on main; apps there: {', '.join(apps)}")
        heal = config.drift.self_heal if req.heal is None else req.heal
        report = DriftReport(
            env=req.env,
            revision=main,
            checked_at=datetime.now(UTC),
            notify=[hook.url for hook in config.notify if "drift" in hook.events],  # only when asked for
        )
        targets = [app for app in req.apps or apps if app not in req.paused]
        found: dict[str, AppDrift] = {}
        if len(targets) > 1:  # git walked once and each cluster read once for all the apps, not app by app
            shared: dict[KubeCluster, Seen] = {}
            promoted = self._promoted_folders(req.env, targets)
            for app in targets:
                activity.heartbeat(f"comparing {app}")
                found[app] = self._check(req, config, app, promoted[app], False, shared)
        # what differs by those readings, made before the app's turn (a promotion may have ended since),
        # is read again, for those apps alone, and only then reported or healed
        again = [app for app in targets if app not in found or found[app].drifts]
        promoted = self._promoted_folders(req.env, again) if len(again) > 1 else {}
        for app in again:
            activity.heartbeat(f"comparing {app} again" if app in found else f"comparing {app}")
            folder = promoted[app] if app in promoted else self.repo.promoted_folder(req.env, app)
            found[app] = self._check(req, config, app, folder, heal, None)
        report.apps = [found[app] if app in found else AppDrift(app=app, paused=True) for app in req.apps or apps]
        return report

    def _promoted_folders(self, env: str, apps: list[str]) -> dict[str, PromotedFolder]:
        """`ClusterGit.promoted_folder` of every app of `apps`, from one walk of main (activities.promoted)."""
        return PromotedFolders(self.repo.plumbing, self.repo.trusted, self.repo.reading).of(env, apps)

    def _check(
        self,
        req: DriftInput,
        config: EnvironmentConfig,
        app: str,
        promoted: PromotedFolder,
        heal: bool,
        shared: dict[KubeCluster, Seen] | None,
    ) -> AppDrift:
        """One app compared with `promoted` in every cluster of the environment (through `shared`, the
        readings made once for many apps, when given), healed when `heal` allows it."""
        entry = AppDrift(app=app, revision=promoted.revision, unpromoted=promoted.unpromoted)
        refused = ""  # why what differs must not be healed
        if not promoted.promoted:
            refused = f"never promoted into {req.env}: compared with the commit that created its folder, not healed"
        refused = refused or promoted.unhealable
        engine = next((c.sync for c in config.targets() if c.sync != "native"), None)
        if engine and promoted.unpromoted and not refused:
            # Argo CD or Flux would apply main's folder, unpromoted changes and all
            refused = f"{engine} would apply main's folder, which holds unpromoted changes: not healed"
        healing = heal and not refused and not req.defer_heal
        rendered: list[list[dict[str, Any]]] = []  # the app's objects at its revision, rendered once
        for cluster in config.targets():  # every cluster of the environment (`clusters`), each healed alone
            named = str(cluster.context) if config.clusters else ""
            drifts, healed = self._compare(app, req.env, promoted.revision, cluster, healing, rendered, shared)
            entry.drifts += [d.model_copy(update={"cluster": named}) for d in drifts]
            entry.healed = entry.healed or healed
        if entry.drifts and heal:
            entry.note, entry.to_heal = refused, not refused and req.defer_heal
        return entry

    def _compare(
        self,
        app: str,
        env: str,
        revision: str,
        config: ClusterConfig,
        heal: bool,
        rendered: list[list[dict[str, Any]]],
        shared: dict[KubeCluster, Seen] | None = None,
    ) -> tuple[list[FieldDrift], bool]:
        """How one app differs from `revision` in one cluster, and whether it was healed (when `heal`);
        `rendered` keeps the objects rendered for the first cluster for the others. With `shared`, the
        cluster is read once for every app (its `Seen`), and an app found matching `revision` before,
        whose objects no write has changed since (by their metadata alone), is not rendered nor
        compared again (`IN_SYNC_FOR_S`)."""
        cluster = self.cluster(config)
        if config.sync != "native":  # Argo CD or Flux compares with Git itself: read its word
            name, namespace = config.reconciler(app, env)
            drifts = cluster.reconciler_drift(config.sync, name, namespace)
            if drifts and heal:
                cluster.request_reconcile(config.sync, name, namespace)
            return drifts, bool(drifts) and heal
        seen = None if shared is None else shared.setdefault(cluster, cluster.seen())
        key = (cluster, env, app)
        known = self._in_sync.get(key) if seen is not None else None
        if known and known[0] == revision and time.monotonic() - known[3] < IN_SYNC_FOR_S:
            if seen is not None and seen.fingerprint(app, known[2], whole=False) == known[1]:
                return [], False  # nothing written since it matched `revision`: it still does
        if not rendered:
            rendered.append(self.objects(app, env, revision))
        objects = rendered[0]
        reading = None if seen is None else seen.reading()  # its own, or everyone's once many are compared
        drifts = cluster.drift(app, objects, reading)
        self._in_sync.pop(key, None)
        if reading is not None and not drifts:
            kinds = {(o["apiVersion"], o["kind"]) for o in objects} | cluster._kinds(reading.inventory(app))
            # from the very reading just compared: a later one could hold a write made since
            self._in_sync[key] = (revision, reading.fingerprint(app, kinds, whole=True), kinds, time.monotonic())
        if drifts and heal:
            cluster.sync(app, f"drift-heal-{revision[:7]}", objects, progress=activity.heartbeat)
        return drifts, bool(drifts) and heal

    @activity.defn(name="check_health")
    @classified
    def check_health(self, req: HealthInput) -> HealthResult:
        timeout = req.timeout.total_seconds() if req.timeout else 300.0
        deadline = time.monotonic() + timeout
        cluster = self.cluster(req.cluster)
        if req.cluster.sync != "native":  # its word on the merge commit: applied (synced) and healthy
            name, namespace = req.cluster.reconciler(req.app, req.env)
            healthy, reason = cluster.wait_reconciled(
                req.cluster.sync, name, namespace, req.revision, timeout, progress=activity.heartbeat
            )
        else:
            objects = self.objects(req.app, req.env, req.revision)
            healthy, reason = cluster.wait_healthy(objects, timeout, progress=activity.heartbeat)
        if healthy and req.http:
            healthy, probes = probe_http(req.http, deadline, activity.heartbeat)
            reason = f"{reason}; {probes}"
        engine = "kubernetes" if req.cluster.sync == "native" else req.cluster.sync
        return HealthResult(healthy=healthy, reason=reason, engine=engine)
