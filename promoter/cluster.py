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

import concurrent.futures
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

from promoter.errors import BadInput, PermanentError, TemporaryError
from promoter.models import ClusterConfig, FieldDrift
from promoter.secrets import _SECRET_NAME as SECRET_NAME
from promoter.secrets import _USERINFO, redact

APP_LABEL = "promoter.dev/app"
PROMOTION_LABEL = PROMOTION_ANNOTATION = "promoter.dev/promotion"
APPLIED_ANNOTATION = "promoter.dev/applied"  # the hash of what promoter applied to the object
MANAGER = "promoter"
INVENTORY = "promoter-inventory-{app}"
INVENTORY_LABEL = APP_LABEL + "-inventory"  # on an inventory: the app it belongs to
APPLY_CONCURRENCY = 8
MISSING_FOR_S = 30.0  # how long a kind the cluster did not serve after a fresh discovery is taken as missing
HIDDEN = "<hidden>"  # what a drift report shows in place of a secret's value
Ident = tuple[str, str, str, str]


def _plain(_client: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The dynamic client's answer as the plain JSON it was (its ResourceInstance is slow to build)."""
    return data


def applied_hash(obj: dict[str, Any]) -> str:
    """The hash of an object as promoter applies it (its own annotation left out)."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_ANNOTATION}
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def holds(live: Any, want: Any) -> bool:
    """Whether `live` holds every field of `want` with the same value (a list: item by item)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and holds(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(holds, live, want))
    return bool(live == want)


def differences(want: Any, live: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Where `live` does not hold `want`: (the field's path, Git's value, the live value), field by
    field (a list is one value, as server-side apply treats most lists)."""
    if isinstance(want, dict) and isinstance(live, dict):
        found: list[tuple[tuple[str, ...], Any, Any]] = []
        for key, value in want.items():
            here = (*path, key)
            found += differences(value, live[key], here) if key in live else [(here, value, None)]
        return found
    return [] if holds(live, want) else [(path, want, live)]


def masked(kind: str, path: tuple[str, ...], value: Any) -> Any:
    """`value`, the field at `path` of a `kind` object (Git's or the live one), as a drift report may
    show it. A report lands in workflow history, the memo, webhooks and terminals, so it names where
    a secret differs, never the secret: a Secret's `data`/`stringData` (its keys stay, their values
    go), a name/value pair whose name says it holds a secret (an env var `DB_PASSWORD`), and any field
    so named (promoter.secrets' names: TOKEN, SECRET, PASSWORD, API_KEY, WEBHOOK...) become `<hidden>`
    at any depth. Every other value stays (replicas, an image): that is what people need to see."""
    if value is None:  # absent on this side: saying so reveals nothing
        return None
    if kind == "Secret" and path[:1] in (("data",), ("stringData",)):
        return {key: HIDDEN for key in value} if isinstance(value, dict) and len(path) == 1 else HIDDEN
    if any(SECRET_NAME.search(part) for part in path):
        return HIDDEN
    return _masked(value)


def _masked(value: Any) -> Any:
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        name = value.get("name")
        pair = isinstance(name, str) and SECRET_NAME.search(name) is not None  # env: [{name, value}]
        return {
            key: HIDDEN
            if (pair and key == "value") or (SECRET_NAME.search(key) and not isinstance(v, dict))
            else _masked(v)
            for key, v in value.items()
        }
    if isinstance(value, str) and _USERINFO.search(value):  # a URL with a password in it (DATABASE_URL)
        return HIDDEN
    return redact(value) if isinstance(value, str) else value  # a token the worker knows, wherever it is


def at(obj: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in `obj`, or None."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def changed_since(live: dict[str, Any], path: tuple[str, ...]) -> datetime | None:
    """When a field manager other than promoter last wrote the field at `path` (its `managedFields`
    entry's time), or None when none owns it (a field removed by hand, or a cluster that keeps none)."""
    times: list[datetime] = []
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        manager = str(entry.get("manager"))
        if manager == MANAGER or manager.startswith(MANAGER + "/") or not entry.get("time"):
            continue
        owned = entry.get("fieldsV1") or {}
        for key in path:
            owned = owned.get(f"f:{key}") if isinstance(owned, dict) else None
        when = _timestamp(entry["time"]) if owned is not None else None
        if when is not None:
            times.append(when)
    return max(times, default=None)


def _timestamp(value: Any) -> datetime | None:
    """An API server's RFC 3339 time (`2026-11-27T22:12:47Z`); None when it is not one."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


# what promoter asks a GitOps controller to do, and where it reads its answer
RECONCILERS = {
    "argocd": ("argoproj.io/v1alpha1", "Application", "argocd.argoproj.io/refresh"),
    "flux": ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "reconcile.fluxcd.io/requestedAt"),
}


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    """A Flux object's `Ready` condition ({} when it has none yet)."""
    found: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return found


def _poll(
    check: Callable[[], tuple[bool | None, str]],
    timeout_s: float,
    failing: str,
    progress: Callable[[str], None],
    interval_s: float = 0.05,
    max_interval_s: float = 2.0,
) -> tuple[bool, str]:
    """Ask `check` until it has a verdict or `timeout_s` has passed (then `failing`, and what it said
    last): first after `interval_s`, then half as long again each time, up to `max_interval_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        verdict, said = check()
        if verdict is not None:
            return verdict, said
        progress(said)
        if time.monotonic() >= deadline:
            return False, f"{failing} within {timeout_s:g}s: {said}"
        time.sleep(min(interval_s, max(deadline - time.monotonic(), 0.0)))
        interval_s = min(interval_s * 1.5, max_interval_s)


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


@dataclass
class SyncOutcome:
    applied: int
    unchanged: int
    pruned: int
    note: str = ""  # said once: the inventory was built from the labels (a cluster synced before inventories)


@dataclass(frozen=True)
class Claim:
    """Why an app may not apply one of its objects: another app owns it, or no app does (and the
    environment does not adopt)."""

    rule: str  # promoter.owned_by_another_app | promoter.unowned_object
    object: str  # Kind/namespace/name
    message: str
    remediation: str


Ref = tuple[str, str, str, str]  # (group, kind, namespace, name): what an inventory lists, version aside


def _ref(obj: dict[str, Any]) -> Ref:
    meta = obj.get("metadata") or {}
    group = obj["apiVersion"].rpartition("/")[0]
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def _shown(ref: Ref) -> str:
    return "/".join(p for p in (ref[1], ref[2], ref[3]) if p)


def _managers(live: dict[str, Any]) -> set[str]:
    """The apps whose promoter field manager (`promoter/<app>`) wrote part of `live`."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return {
        str(e.get("manager"))[len(MANAGER) + 1 :] for e in entries if str(e.get("manager")).startswith(MANAGER + "/")
    }


def _genuine(inventory: dict[str, Any]) -> bool:
    """Whether a ConfigMap with the inventory label is an inventory promoter wrote (not one planted)."""
    meta = inventory.get("metadata") or {}
    app = (meta.get("labels") or {}).get(INVENTORY_LABEL)
    managers = {e.get("manager") for e in meta.get("managedFields") or []}
    return bool(app) and meta.get("name") == INVENTORY.format(app=app) and managers <= {MANAGER}


def reserved(app: str, obj: dict[str, Any]) -> Claim | None:
    """An object no app's folder may ship: an inventory (by its name or its label) is promoter's record
    of who owns what, and one an app wrote could make another app prune or give up objects."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name") or "")
    if INVENTORY_LABEL in labels or (obj.get("kind") == "ConfigMap" and name.startswith(INVENTORY.format(app=""))):
        shown = "/".join(p for p in (str(obj.get("kind", "?")), str(meta.get("namespace") or ""), name) if p)
        return Claim(
            rule="promoter.reserved_object",
            object=shown,
            message=f"{shown} is promoter's own record of what an app owns ({INVENTORY_LABEL}, "
            f"{INVENTORY.format(app='<app>')}); app {app} may not ship one",
            remediation=f"Remove it from {app}'s folder; promoter writes inventories itself.",
        )
    return None


def _legacy(live: dict[str, Any]) -> bool:
    """Whether the field manager `promoter` (before per-app managers) applied part of `live`."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == MANAGER and entry.get("operation") == "Apply":
            owned = dict(entry.get("fieldsV1") or {})
            meta = {k for k in owned.pop("f:metadata", None) or {} if k not in ("f:name", "f:namespace")}
            if owned or meta:  # more than the name its release left it
                return True
    return False


def _owner(app: str, ref: Ref, live: dict[str, Any] | None, listed: dict[Ref, str]) -> tuple[str, str] | None:
    """(another app that owns the object, how it does), or None when none does."""
    other = listed.get(ref)
    if other is not None and other != app:
        return other, f"{other}'s inventory lists it"
    if live is None:
        return None
    label = ((live.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
    if label and label != app:
        return label, f"it is labelled {APP_LABEL}={label}"
    for manager in sorted(_managers(live) - {app}):
        return manager, f"field manager {MANAGER}/{manager} wrote it"
    return None


def _claim(
    app: str, ref: Ref, live: dict[str, Any] | None, listed: dict[Ref, str], mine: set[Ref], adopt: bool
) -> Claim | None:
    """Whether `app` may apply the object at `ref` (live as `live`): None when it may."""
    owner = _owner(app, ref, live, listed)
    if owner is not None:
        return Claim(
            rule="promoter.owned_by_another_app",
            object=_shown(ref),
            message=f"{_shown(ref)} belongs to app {owner[0]} ({owner[1]}); app {app} may not take it over",
            remediation=f"Rename {app}'s object, or hand it over: remove it from {owner[0]} first, then promote {app}.",
        )
    if live is None or adopt or ref in mine:
        return None
    labels = (live.get("metadata") or {}).get("labels") or {}
    if labels.get(APP_LABEL) == app:  # this app's by label: a cluster synced before inventories listed objects
        return None
    return Claim(
        rule="promoter.unowned_object",
        object=_shown(ref),
        message=f"{_shown(ref)} exists and no app owns it; app {app} would take it over",
        remediation="Set cluster.adopt: true in the environment's environment.yaml to adopt it, or delete the object.",
    )


def _where(obj: dict[str, Any]) -> str:
    """Kind/namespace/name, as a person reads an object."""
    meta = obj["metadata"]
    return "/".join(p for p in (obj["kind"], meta.get("namespace", ""), meta["name"]) if p)


def _ident(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


def first_error(errors: list[BaseException]) -> BaseException:
    """Of the errors of concurrent applies, the one to raise: a permanent one (the manifests' fault,
    which no retry mends) before a temporary one, else the first."""
    return next((e for e in errors if isinstance(e, PermanentError)), errors[0])


def _api_error(e: Exception, what: str) -> Exception:
    """Sort an API failure: 5xx, 429 and transport errors retry; the rest is the manifests' fault."""
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None) or type(e).__name__
    if status is None or status >= 500 or status == 429:
        return TemporaryError(f"{what}: the API server answered {status or reason}; retrying")
    body = getattr(e, "body", "") or ""
    try:  # a Status: its message says what the server refused (an invalid object names each field)
        message = str(json.loads(body).get("message") or "")
    except (ValueError, TypeError, AttributeError):
        message = ""
    return PermanentError(
        f"{what}: {status} {reason}: {message[:400]}"
        if message
        else f"{what}: {status} {reason} {str(body)[:200]}".strip()
    )


class KubeCluster:
    def __init__(self, api: client.ApiClient, default_namespace: str = "default") -> None:
        self.api = api
        self.default_namespace = default_namespace
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self._discovery = threading.Lock()  # the discoverer's cache: a lookup or a refresh at a time
        self._missing: dict[tuple[str, str], float] = {}  # a kind not served after a refresh, and when

    @classmethod
    def from_config(cls, cfg: ClusterConfig, timeout_s: float = 10.0) -> KubeCluster:
        path = cfg.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        configuration = client.Configuration()
        if Path(path).is_file():
            try:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=path, context=cfg.context, client_configuration=configuration
                )
            except config.ConfigException as e:
                raise BadInput(f"kubeconfig {path}, context {cfg.context!r}: {e}") from None
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            raise BadInput(f"no kubeconfig at {path} and not in a cluster; set cluster.kubeconfig or KUBECONFIG")
        configuration.retries = 0  # retries are Temporal's, with backoff and a deadline
        api = client.ApiClient(configuration)
        api.rest_client.pool_manager.connection_pool_kw["timeout"] = timeout_s
        return cls(api, cfg.namespace)

    def _unreachable(self, e: Exception, what: str) -> TemporaryError:
        reason = getattr(e, "reason", None) or e
        return TemporaryError(
            f"{what}: cannot reach the Kubernetes API at {self.api.configuration.host} ({type(reason).__name__})"
        )

    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = DynamicClient(self.api)  # type: ignore[no-untyped-call]
                except (DynamicApiError, ApiException) as e:
                    raise _api_error(e, "discovery") from None
                except Exception as e:  # noqa: BLE001 - transport
                    raise self._unreachable(e, "discovery") from None
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        """The dynamic client's resource for a kind, discovered again once when the cluster does not
        serve it (a CRD applied a moment ago). A kind found missing after a fresh discovery is not
        looked for again for `MISSING_FOR_S` unless a CRD is applied meanwhile: one Service polled for
        its EndpointSlices on a cluster without them must not rediscover the whole API at each poll.
        The discoverer's cache is one dict that a refresh replaces, so lookups and refreshes take turns
        (concurrent activities share this cluster)."""
        dynamic = self.dynamic
        key = (api_version, kind)
        missing = PermanentError(f"the cluster does not serve {kind} ({api_version}); is its CRD installed?")
        with self._discovery:
            if time.monotonic() - self._missing.get(key, -MISSING_FOR_S) < MISSING_FOR_S:
                raise missing
            try:
                return dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                pass
            dynamic.resources.invalidate_cache()
            try:
                return dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                self._missing[key] = time.monotonic()
                raise missing from None

    def _apply(self, obj: dict[str, Any], dry_run: bool = False, manager: str | None = None) -> dict[str, Any]:
        """Server-side apply `obj` as its app's field manager (`promoter/<app>`, from its app label;
        `promoter` for what no app owns: a namespace, an inventory) unless `manager` is given; with
        `dry_run`, what it would leave (nothing written)."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        if manager is None:
            app = ((obj["metadata"].get("labels") or {}).get(APP_LABEL)) or ""
            manager = f"{MANAGER}/{app}" if app else MANAGER
        try:
            result: dict[str, Any] = resource.server_side_apply(
                body=obj,
                name=obj["metadata"]["name"],
                namespace=namespace,
                field_manager=manager,
                force_conflicts=True,
                serializer=_plain,
                query_params=[("fieldValidation", "Strict")],  # an unknown field fails the sync, never dropped
                **({"dry_run": "All"} if dry_run else {}),
            )
        except (DynamicApiError, ApiException) as e:
            raise _api_error(e, f"apply {obj['kind']}/{obj['metadata']['name']}") from None
        except Exception as e:  # noqa: BLE001 - transport (connection refused, timeout)
            raise self._unreachable(e, f"apply {obj['kind']}/{obj['metadata']['name']}") from None
        return result

    def _label(self, raw: dict[str, Any], app: str, promotion: str) -> dict[str, Any]:
        if not raw.get("apiVersion") or not (raw.get("metadata") or {}).get("name"):
            raise PermanentError(
                f"a {raw.get('kind', 'manifest')} without apiVersion or metadata.name cannot be applied"
            )
        obj = {**raw, "metadata": dict(raw.get("metadata") or {})}
        meta = obj["metadata"]
        if self._resource(obj["apiVersion"], obj["kind"]).namespaced:
            meta["namespace"] = meta.get("namespace") or self.default_namespace  # "" and null mean the default
        meta["labels"] = {**(meta.get("labels") or {}), APP_LABEL: app, PROMOTION_LABEL: promotion}
        meta["annotations"] = {**(meta.get("annotations") or {}), PROMOTION_ANNOTATION: promotion}
        meta["annotations"][APPLIED_ANNOTATION] = applied_hash(obj)
        return obj

    def sync(
        self,
        app: str,
        promotion: str,
        objects: list[dict[str, Any]],
        progress: Callable[[str], None] = lambda _: None,
        revision: str = "",
        adopt: bool = False,
    ) -> SyncOutcome:
        """Apply `objects` as `app`'s (at `revision`, the promoted commit the inventory records), prune
        what its inventory lists and they no longer have, and record the new inventory. An object
        another app owns, or an existing one no app owns without `adopt`, is refused before anything
        is written (the policy gate denies it before the PR; this is the second line)."""
        inventories = self._inventories()
        inventory = self._own_inventory(app, inventories)
        listed = self._listed(app, inventories)
        recorded = self._kinds(inventory)
        entries = self._entries(inventory)  # None: no inventory lists objects yet (a label-only sync's cluster)
        mine = set(entries or {})
        # CRDs first (cluster-scoped), so discovery knows their kinds; then namespaces; then the rest
        crds = [self._label(o, app, promotion) for o in objects if o["kind"] == "CustomResourceDefinition"]
        crd_kinds = {(o["apiVersion"], o["kind"]) for o in crds}
        live = self._live(app, crd_kinds)
        self._refuse(app, crds, live, listed, mine, adopt)
        applied = self._apply_all(crds, live, progress)
        if crds:
            self._missing.clear()  # their kinds are served now
        rest = [self._label(o, app, promotion) for o in objects if o["kind"] != "CustomResourceDefinition"]
        live.update(self._live(app, (recorded | {(o["apiVersion"], o["kind"]) for o in rest}) - crd_kinds))
        self._refuse(app, rest, live, listed, mine, adopt)
        for ns in sorted(
            {o["metadata"]["namespace"] for o in rest if o["metadata"].get("namespace")} | {self.default_namespace}
        ):
            self._ensure_namespace(ns)  # created when missing; an existing one is left as it is
        namespaces = [o for o in rest if o["kind"] == "Namespace"]
        applied += self._apply_all(namespaces, live, progress)
        applied += self._apply_all([o for o in rest if o["kind"] != "Namespace"], live, progress)
        desired = crds + rest
        note = ""
        if entries is None:  # migrate once: what the app's label marks (as label-only sync pruned by) is its
            entries = {_ref(o): o["apiVersion"] for o in live.values()}
            if entries:
                note = f"inventory of {app} built from its {APP_LABEL} labels ({len(entries)} objects), once"
                progress(note)
        pruned = self._prune(app, desired, live, entries, listed)
        self._write_inventory(app, desired, revision, inventory)
        return SyncOutcome(applied=applied, unchanged=len(desired) - applied, pruned=pruned, note=note)

    def claims(self, app: str, objects: list[dict[str, Any]], adopt: bool) -> list[Claim]:
        """Why `app` may not apply some of `objects` (rendered, as Git has them) to this cluster: each
        one another app owns, and each existing one no app owns unless `adopt`. One read per object
        and one list of the inventories; a kind the cluster does not serve yet has nothing to claim."""
        inventories = self._inventories()
        listed = self._listed(app, inventories)
        mine = set(self._entries(self._own_inventory(app, inventories)) or {})
        found: list[Claim] = []
        for raw in objects:
            meta = dict(raw.get("metadata") or {})
            if not raw.get("apiVersion") or not raw.get("kind") or not meta.get("name"):
                continue  # not an object the cluster could hold: the schema gate names it
            try:
                namespaced = self._resource(raw["apiVersion"], raw["kind"]).namespaced
            except PermanentError:
                continue
            if namespaced:
                meta["namespace"] = meta.get("namespace") or self.default_namespace  # "" and null mean the default
            else:
                meta.pop("namespace", None)
            obj = {**raw, "metadata": meta}
            claim = reserved(app, obj) or _claim(app, _ref(obj), self._get(obj), listed, mine, adopt)
            if claim is not None:
                found.append(claim)
        return found

    def _refuse(
        self,
        app: str,
        objects: list[dict[str, Any]],
        live: dict[Ident, dict[str, Any]],
        listed: dict[Ref, str],
        mine: set[Ref],
        adopt: bool,
    ) -> None:
        """Raise, naming them, when `app` may not apply some of `objects` (never force-applied over
        another app's). An object the app's label already marks is read from `live`; any other is read."""
        found = []
        for obj in objects:
            there = live.get(_ident(obj))
            claim = reserved(app, obj) or _claim(
                app, _ref(obj), there if there is not None else self._get(obj), listed, mine, adopt
            )
            if claim is not None:
                found.append(claim)
        if found:
            raise PermanentError(f"sync of {app} refused, nothing applied: " + "; ".join(c.message for c in found))

    def _apply_all(
        self, objects: list[dict[str, Any]], live: dict[Ident, dict[str, Any]], progress: Callable[[str], None]
    ) -> int:
        """Apply each object that the cluster does not hold as it is, `APPLY_CONCURRENCY` at a time;
        returns how many changed. The first error (a permanent one before a temporary one) is raised
        once every apply in flight has ended."""
        todo = [o for o in objects if not self._holds(live.get(_ident(o)), o)]
        if not todo:
            return 0

        def one(obj: dict[str, Any]) -> bool:
            before = live.get(_ident(obj))
            after = self._apply(obj)
            if before is not None and _legacy(before):
                after = self._release_legacy(obj)
            return before is None or before["metadata"].get("resourceVersion") != after["metadata"].get(
                "resourceVersion"
            )

        if len(todo) == 1:
            progress(f"applying {todo[0]['kind']}/{todo[0]['metadata']['name']}")
            return int(one(todo[0]))
        with concurrent.futures.ThreadPoolExecutor(min(APPLY_CONCURRENCY, len(todo))) as pool:
            futures = [pool.submit(one, o) for o in todo]
            for done, _ in enumerate(concurrent.futures.as_completed(futures), 1):
                progress(f"{done} of {len(todo)} applied")  # on this thread: an activity heartbeats only here
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise first_error(errors)
        return sum(f.result() for f in futures)

    def _release_legacy(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Release what the field manager `promoter` (one for every app, before per-app managers) still
        owns of `obj`, by applying nothing as it: its fields stay where `promoter/<app>` now owns them
        and go where Git no longer has them, as a real API server's server-side apply decides."""
        meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace")}
        return self._apply({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}, manager=MANAGER)

    @staticmethod
    def _holds(live: dict[str, Any] | None, obj: dict[str, Any]) -> bool:
        """Whether the live object is exactly what applying `obj` would leave: it carries the hash of
        `obj` (so no field promoter applied before was dropped since) and every field of `obj`."""
        if live is None:
            return False
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        return bool(
            annotations.get(APPLIED_ANNOTATION) == obj["metadata"]["annotations"][APPLIED_ANNOTATION]
        ) and holds(live, obj)

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
            raise _api_error(e, f"annotate {kind} {namespace}/{name}") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, f"annotate {kind} {namespace}/{name}") from None

    def _reconciler(self, engine: str, name: str, namespace: str) -> dict[str, Any]:
        """The app's Argo CD Application or Flux Kustomization, as the cluster has it."""
        api_version, kind, _ = RECONCILERS[engine]
        try:
            found: dict[str, Any] = self._resource(api_version, kind).get(
                name=name, namespace=namespace, serializer=_plain
            )
            return found
        except (DynamicApiError, ApiException) as e:
            raise _api_error(e, f"read {kind} {namespace}/{name}") from None
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
        return _poll(
            lambda: reconcile_verdict(engine, self._reconciler(engine, name, namespace), revision),
            timeout_s,
            "not applied and healthy",
            progress,
        )

    def drift(self, app: str, objects: list[dict[str, Any]]) -> list[FieldDrift]:
        """How the live objects of `app` differ from `objects` (Git's), for every field promoter
        manages: a field that differs, an object that is gone, and an object the app's inventory lists
        (its label, before inventories) that Git no longer has: what a sync would prune. Metadata is
        left out: the cluster and promoter itself write there.

        A field that looks different is confirmed by a server-side apply dry run, so what the server
        only normalises (`cpu: 0.5` stored as `500m`) is not drift; `since` is when another field
        manager last wrote the field (from `managedFields`). Values are shown as `masked` leaves them:
        a secret's is `<hidden>`, on both sides."""
        wanted = [self._label(o, app, "drift") for o in objects]
        inventory = self._inventory(app)
        kinds = {(o["apiVersion"], o["kind"]) for o in wanted} | self._kinds(inventory)
        live = self._live(app, kinds)
        entries = self._entries(inventory)  # None: a label-only sync's cluster, whose labels a sync prunes by
        found: list[FieldDrift] = []
        for obj in wanted:
            there = live.pop(_ident(obj), None)
            if there is None:
                found.append(FieldDrift(object=_where(obj), path="", git="present", live=None))
                continue
            body = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
            suspects = differences(body, there)
            if suspects:
                applied = self._apply(obj, dry_run=True)
                found += [
                    FieldDrift(
                        object=_where(obj),
                        path=".".join(path),
                        git=masked(obj["kind"], path, want),
                        live=masked(obj["kind"], path, have),
                        since=changed_since(there, path),
                    )
                    for path, want, have in suspects
                    if at(there, path) != at(applied, path)
                ]
        found += [  # a sync would prune these (never a namespace: it may hold more)
            FieldDrift(
                object=_where(extra),
                path="",
                git=None,
                live="present",
                since=_timestamp(extra["metadata"].get("creationTimestamp")),
            )
            for extra in live.values()
            if extra["kind"] != "Namespace" and (entries is None or _ref(extra) in entries)
        ]
        return found

    def crds(self) -> list[dict[str, Any]]:
        """The cluster's CustomResourceDefinitions (for the schema gate's custom resources)."""
        try:
            answer = self._resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").get(serializer=_plain)
        except (DynamicApiError, ApiException) as e:
            raise _api_error(e, "list CustomResourceDefinitions") from None
        except PermanentError:
            raise
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, "list CustomResourceDefinitions") from None
        return list(answer.get("items") or [])

    def _live(self, app: str, kinds: set[tuple[str, str]]) -> dict[Ident, dict[str, Any]]:
        """This app's objects in the cluster, of these kinds: one list per kind."""
        found: dict[Ident, dict[str, Any]] = {}
        for api_version, kind in sorted(kinds):
            try:
                resource = self._resource(api_version, kind)
            except PermanentError:
                continue  # the kind is gone from the cluster (or not yet there: a CRD applied next)
            try:
                answer = resource.get(label_selector=f"{APP_LABEL}={app}", serializer=_plain)
            except (DynamicApiError, ApiException) as e:
                raise _api_error(e, f"list {kind}") from None
            except Exception as e:  # noqa: BLE001 - transport
                raise self._unreachable(e, f"list {kind}") from None
            for item in answer.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                found[_ident(item)] = item
        return found

    def _ensure_namespace(self, name: str) -> None:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if self._get(ns) is None:
            self._apply(ns)

    def _get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        resource = self._resource(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        try:
            found: dict[str, Any] = resource.get(name=obj["metadata"]["name"], namespace=namespace, serializer=_plain)
            return found
        except NotFoundError:
            return None
        except (DynamicApiError, ApiException) as e:
            raise _api_error(e, f"read {obj['kind']}/{obj['metadata']['name']}") from None
        except Exception as e:  # noqa: BLE001
            raise self._unreachable(e, f"read {obj['kind']}/{obj['metadata']['name']}") from None

    def _inventory_ref(self, app: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": INVENTORY.format(app=app), "namespace": self.default_namespace},
        }

    def _inventory(self, app: str) -> dict[str, Any] | None:
        return self._get(self._inventory_ref(app))

    def _inventories(self) -> list[dict[str, Any]]:
        """Every app's inventory in the cluster, in any namespace: one list. Only a genuine one counts:
        named `promoter-inventory-<app>` for the app its label names, and written by no field manager
        but promoter's own (an app's folder can never ship one: `reserved` refuses it)."""
        try:
            answer = self._resource("v1", "ConfigMap").get(label_selector=INVENTORY_LABEL, serializer=_plain)
        except (DynamicApiError, ApiException) as e:
            raise _api_error(e, "list the inventories") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, "list the inventories") from None
        return [item for item in answer.get("items") or [] if _genuine(item)]

    def _own_inventory(self, app: str, inventories: list[dict[str, Any]]) -> dict[str, Any] | None:
        name = INVENTORY.format(app=app)
        for item in inventories:
            meta = item.get("metadata") or {}
            if meta.get("name") == name and meta.get("namespace") == self.default_namespace:
                return item
        return None

    @classmethod
    def _listed(cls, app: str, inventories: list[dict[str, Any]]) -> dict[Ref, str]:
        """The objects other apps' inventories list, and the app each belongs to."""
        found: dict[Ref, str] = {}
        for item in inventories:
            other = ((item.get("metadata") or {}).get("labels") or {}).get(INVENTORY_LABEL)
            if other and other != app:
                found.update(dict.fromkeys(cls._entries(item) or {}, other))
        return found

    @staticmethod
    def _kinds(inventory: dict[str, Any] | None) -> set[tuple[str, str]]:
        recorded = ((inventory or {}).get("data") or {}).get("kinds", "").split()
        return {(k.split("|", 1)[0], k.split("|", 1)[1]) for k in recorded if "|" in k}

    @staticmethod
    def _entries(inventory: dict[str, Any] | None) -> dict[Ref, str] | None:
        """The objects the inventory lists (each with the apiVersion it was applied as); None when it
        lists none, as before inventories listed objects."""
        text = ((inventory or {}).get("data") or {}).get("objects")
        if text is None:
            return None
        found: dict[Ref, str] = {}
        for e in json.loads(text):
            version = f"{e['group']}/{e['version']}" if e["group"] else e["version"]
            found[(e["group"], e["kind"], e["namespace"], e["name"])] = version
        return found

    def _write_inventory(
        self, app: str, desired: list[dict[str, Any]], revision: str, before: dict[str, Any] | None
    ) -> None:
        """Record what `app` now owns and the commit promoted (written only when that changed)."""
        rows = sorted({(*_ref(o)[:2], o["apiVersion"].rpartition("/")[2], *_ref(o)[2:]) for o in desired})
        objects = [dict(zip(("group", "kind", "version", "namespace", "name"), row, strict=True)) for row in rows]
        data = {
            "app": app,
            "commit": revision or ((before or {}).get("data") or {}).get("commit", ""),
            "kinds": " ".join(sorted({f"{o['apiVersion']}|{o['kind']}" for o in desired})),
            "objects": "[\n" + ",\n".join(json.dumps(o, sort_keys=True) for o in objects) + "\n]" if objects else "[]",
        }
        if before is not None and (before.get("data") or {}) == data:
            return
        inventory = self._inventory_ref(app)
        inventory["data"] = data
        inventory["metadata"]["labels"] = {INVENTORY_LABEL: app}
        self._apply(inventory)

    def _prune(
        self,
        app: str,
        desired: list[dict[str, Any]],
        live: dict[Ident, dict[str, Any]],
        entries: dict[Ref, str],
        listed: dict[Ref, str],
    ) -> int:
        """Delete what the app's inventory lists and `desired` no longer has: never an object by its
        label alone, never one another app now owns, never a namespace (it may hold more)."""
        wanted = {_ref(o) for o in desired}
        by_ref = {_ref(o): o for o in live.values()}
        pruned = 0
        for ref, api_version in sorted(entries.items()):
            if ref in wanted or ref[1] == "Namespace" or ref in listed:
                continue
            item = by_ref.get(ref)
            if item is None:
                try:
                    item = self._get(
                        {"apiVersion": api_version, "kind": ref[1], "metadata": {"namespace": ref[2], "name": ref[3]}}
                    )
                except PermanentError:
                    continue  # its kind is gone (its CRD pruned): so is it
                if item is None:
                    continue
            label = ((item.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
            if label and label != app:
                continue  # another app's now
            resource = self._resource(api_version, ref[1])
            try:
                resource.delete(name=ref[3], namespace=ref[2] or None)
                pruned += 1
            except NotFoundError:
                pass
            except (DynamicApiError, ApiException) as e:
                raise _api_error(e, f"delete {_shown(ref)}") from None
        return pruned

    # ------------------------------------------------------------------ health

    def rollout_verdict(self, obj: dict[str, Any]) -> tuple[bool | None, str]:
        """(True healthy | False failed for good | None not yet, why) — `kubectl rollout status`'s rules."""
        live = self._get(obj)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if live is None:
            return None, f"{name} does not exist yet"
        spec, status = live.get("spec") or {}, live.get("status") or {}
        generation = live["metadata"].get("generation", 0)
        kind = obj["kind"]
        if kind == "Job":
            for c in status.get("conditions") or []:
                if c.get("type") == "Failed" and c.get("status") == "True":
                    return False, f"{name} failed: {c.get('reason')}: {c.get('message', '')}"
            # complete once as many pods succeeded as it asks for (no `completions`: one is enough)
            want = spec.get("completions") or 1
            succeeded = status.get("succeeded") or 0
            if succeeded >= want:
                return True, f"{name} complete"
            return None, f"{name} is running: {succeeded} of {want} completions"
        if kind == "PersistentVolumeClaim":
            phase = status.get("phase") or "Pending"
            if phase == "Bound":
                return True, f"{name} bound"
            if phase == "Lost":  # its volume is gone: it never binds again by itself
                return False, f"{name} lost its volume"
            return None, f"{name} is {phase}, not yet bound"
        if kind == "Service":
            return self._service_verdict(live, name)
        if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            return True, f"{name} exists"  # a kind without readiness (its controller, if any, reports none)
        observed = status.get("observedGeneration") or 0
        if observed < generation:
            return None, f"{name}: waiting for the controller to observe generation {generation}"
        if kind == "Deployment":
            for c in status.get("conditions") or []:
                if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                    return (
                        False,
                        f"{name}: condition Progressing=False, ProgressDeadlineExceeded: {c.get('message', '')}",
                    )
            want = spec.get("replicas", 1)
            updated = status.get("updatedReplicas") or 0
            available = status.get("availableReplicas") or 0
            total = status.get("replicas") or 0
            if updated < want:
                return None, f"{name}: {updated} of {want} replicas updated"
            if total > updated:
                return None, f"{name}: {total - updated} old replicas pending termination"
            if available < updated:
                return None, f"{name}: {available} of {updated} updated replicas available"
            return True, f"{name} successfully rolled out"
        if kind == "StatefulSet":
            want = spec.get("replicas", 1)
            ready = status.get("readyReplicas") or 0
            updated = status.get("updatedReplicas") or 0
            if ready < want or updated < want:
                return None, f"{name}: {ready} of {want} ready, {updated} updated"
            return True, f"{name} rolled out"
        # a DaemonSet
        want = status.get("desiredNumberScheduled") or 0
        updated = status.get("updatedNumberScheduled") or 0
        available = status.get("numberAvailable") or 0
        if updated < want or available < want:
            return None, f"{name}: {updated} of {want} updated, {available} available"
        return True, f"{name} rolled out"

    def _service_verdict(self, live: dict[str, Any], name: str) -> tuple[bool | None, str]:
        """A Service that selects pods is ready once it has a ready endpoint (its EndpointSlices, else
        its Endpoints); one without a selector (ExternalName, endpoints kept by hand) once it exists."""
        spec = live.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return True, f"{name} exists"
        namespace, service = live["metadata"].get("namespace"), live["metadata"]["name"]
        try:
            slices = self._resource("discovery.k8s.io/v1", "EndpointSlice")
            found = slices.get(
                namespace=namespace, label_selector=f"kubernetes.io/service-name={service}", serializer=_plain
            )
            ready = [
                e
                for item in found.get("items") or []
                for e in item.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") is not False
            ]
        except PermanentError:  # a cluster without EndpointSlices (before 1.21): the Endpoints object
            try:
                endpoints = self._get({"apiVersion": "v1", "kind": "Endpoints", "metadata": live["metadata"]})
            except PermanentError:
                # Not a real API server (every one serves both): nothing to read the endpoints from, said
                return True, f"{name} exists (the cluster serves no Endpoints to check it has any)"
            subsets = (endpoints or {}).get("subsets") or []
            ready = [a for subset in subsets for a in subset.get("addresses") or []]
        except (DynamicApiError, ApiException) as e:
            raise _api_error(e, f"read the endpoints of {name}") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, f"read the endpoints of {name}") from None
        if ready:
            return True, f"{name} has {len(ready)} ready endpoint(s)"
        return None, f"{name} has no ready endpoints yet"

    def wait_healthy(
        self,
        objects: list[dict[str, Any]],
        timeout_s: float,
        progress: Callable[[str], None] = lambda _: None,
        interval_s: float = 0.05,
        max_interval_s: float = 2.0,
    ) -> tuple[bool, str]:
        """Poll every applied object until each exists and holds its kind's readiness (a workload
        rolled out, a Job complete, a PVC bound, a Service with endpoints; any other kind: it exists),
        one fails for good, or the deadline passes: first after `interval_s`, then half as long again
        each time, up to `max_interval_s`. An app without workloads is not healthy at once: its
        objects must be there and ready too. A workload is asked again at every poll (a rollout can
        still fail); any other object, once ready, is not asked again."""
        workloads = ("Deployment", "StatefulSet", "DaemonSet", "Job")
        for o in objects:
            if self._resource(o["apiVersion"], o["kind"]).namespaced:
                o.setdefault("metadata", {}).setdefault("namespace", self.default_namespace)
        waiting = list(objects)
        count = sum(o["kind"] in workloads for o in objects)

        def all_of_them() -> tuple[bool | None, str]:
            nonlocal waiting
            pending, still = [], []
            for obj in waiting:
                verdict, why = self.rollout_verdict(obj)
                if verdict is False:
                    return False, why
                if verdict is None:
                    pending.append(why)
                if verdict is None or obj["kind"] in workloads:
                    still.append(obj)
            waiting = still
            if pending:
                return None, "; ".join(pending)
            if count:
                return True, f"{count} workload(s) healthy"
            return True, f"no workloads; {len(objects)} object(s) in place and ready"

        return _poll(all_of_them, timeout_s, "not healthy", progress, interval_s, max_interval_s)
