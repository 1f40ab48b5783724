"""The cluster's API as promoter reaches it: the kubeconfig, the dynamic client and its discovery
(a kind looked up, rediscovered once when missing), server-side apply, one read, one list per kind.
Every failure is sorted: the API server's answer by `api_error`, a transport one as unreachable."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Self

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from promoter.cluster.objects import (
    APP_LABEL,
    APPLIED_ANNOTATION,
    MANAGER,
    MISSING_FOR_S,
    PROMOTION_ANNOTATION,
    PROMOTION_LABEL,
    Ident,
    api_error,
    applied_hash,
    ident_of,
    plain,
)
from promoter.errors import BadInput, PermanentError, TemporaryError
from promoter.jsonfast import loads
from promoter.models import ClusterConfig

PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"  # a list of metadata alone
# where each client keeps its discovery of the API: this process's own directory, removed at exit. The
# client's default, /tmp/osrcp-<hash of the URL>.json, is shared by every process and kept for good: a
# new client loaded another's (or a past API server's on the same address) and took kinds for served that
# the cluster does not serve
_DISCOVERY = tempfile.TemporaryDirectory(prefix="promoter-discovery-")
# What each request to the API server runs under, its answer read whole (the worker sets it: the SDK's
# cancel of a thread activity held back). The SDK raises that cancel into the activity's thread at any
# point; one raised as urllib3 took its connection pool's lock left the lock taken for good, and every
# later request of the worker waited on it forever: all 16 activity threads of a worker with 1,000
# promotions in flight, its cluster steps stopped.
CALL_GUARD: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext


def load_kubeconfig(path: str, context: str | None, configuration: client.Configuration) -> None:
    """`config.load_kube_config` into `configuration`, without its per-request hook when the token
    cannot expire. With a token, the client calls that hook before every request; it reloads the
    credentials only once they carry an expiry (an exec plugin's or an auth provider's), and otherwise
    just sets the same host and token again, and setting the host reads every environment variable to
    look for a proxy (a few per cent of the worker's CPU while many apps are promoted at once)."""
    loader = kube_config._get_kube_config_loader(  # type: ignore[no-untyped-call]
        filename=path, active_context=context, persist_config=True
    )
    loader.load_and_set(configuration)
    if "expiry" not in vars(loader):  # only the hook itself could set it later, and it runs only with it
        configuration.refresh_api_key_hook = None


def guard_requests(api: client.ApiClient) -> None:
    """Every request `api` sends, and the reading of its answer, run under `CALL_GUARD` (once per client):
    a cancel lands between two requests, never inside one."""
    rest = api.rest_client
    if getattr(rest, "guarded", False):
        return
    send = rest.request

    def request(*args: Any, **kwargs: Any) -> Any:
        with CALL_GUARD():
            answer = send(*args, **kwargs)  # type: ignore[no-untyped-call]
            answer.read()  # the body, and the connection back to its pool (kept by the answer)
            return answer

    rest.request = request  # type: ignore[method-assign]
    rest.guarded = True  # type: ignore[attr-defined]


class Resources:
    """The dynamic client over `api`, with what every concern of `KubeCluster` shares."""

    def __init__(self, api: client.ApiClient, default_namespace: str = "default") -> None:
        self.api = api
        guard_requests(api)
        self.default_namespace = default_namespace
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self._discovery = threading.Lock()  # the discoverer's cache: a lookup or a refresh at a time
        self._missing: dict[tuple[str, str], float] = {}  # a kind not served after a refresh, and when

    @classmethod
    def from_config(cls, cfg: ClusterConfig, timeout_s: float = 10.0) -> Self:
        path = cfg.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        configuration = client.Configuration()
        if Path(path).is_file():
            try:
                load_kubeconfig(path, cfg.context, configuration)
            except config.ConfigException as e:
                raise BadInput(f"kubeconfig {path}, context {cfg.context!r}: {e}") from None
        elif cfg.kubeconfig or cfg.context:  # named, so meant: never some other cluster's credentials
            named = f"context {cfg.context!r}" if cfg.context else f"kubeconfig {cfg.kubeconfig}"
            raise BadInput(f"{named}: no kubeconfig file at {path}; mount it there or set cluster.kubeconfig")
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
                    cache = Path(_DISCOVERY.name) / f"{uuid.uuid4().hex}.json"  # this client's own, new
                    self._dynamic = DynamicClient(self.api, cache_file=str(cache))  # type: ignore[no-untyped-call]
                except (DynamicApiError, ApiException) as e:
                    raise api_error(e, "discovery") from None
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
                serializer=plain,
                query_params=[("fieldValidation", "Strict")],  # an unknown field fails the sync, never dropped
                **({"dry_run": "All"} if dry_run else {}),
            )
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, f"apply {obj['kind']}/{obj['metadata']['name']}") from None
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

    def _get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The object as the cluster holds it; None when it holds none. Read through the API client
        itself: the dynamic client turns a 404 into an exception carrying its formatted traceback (the
        source lines of every frame looked up), which an object's first promotion met for each object."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        try:
            request = self.api.param_serialize(
                "GET",
                resource.path(name=obj["metadata"]["name"], namespace=namespace),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            answer = self.api.call_api(*request)
            answer.read()  # type: ignore[no-untyped-call]
            if answer.status == 404:
                return None
            if not 200 <= answer.status <= 299:
                self.api.response_deserialize(answer, {})  # raises the ApiException that says why
            found: dict[str, Any] = loads(answer.data)
            return found
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, f"read {obj['kind']}/{obj['metadata']['name']}") from None
        except Exception as e:  # noqa: BLE001 - transport (connection refused, timeout)
            raise self._unreachable(e, f"read {obj['kind']}/{obj['metadata']['name']}") from None

    def _live(self, app: str, kinds: set[tuple[str, str]]) -> dict[Ident, dict[str, Any]]:
        """This app's objects in the cluster, of these kinds: one list per kind."""
        found: dict[Ident, dict[str, Any]] = {}
        for api_version, kind in sorted(kinds):
            for item in self._list(api_version, kind, f"{APP_LABEL}={app}") or []:
                found[ident_of(item)] = item
        return found

    def _list(
        self, api_version: str, kind: str, selector: str, namespace: str | None = None, metadata_only: bool = False
    ) -> list[dict[str, Any]] | None:
        """The objects of a kind that `selector` selects (in `namespace`, else in all), each with its
        apiVersion and kind; None when the cluster does not serve the kind (gone, or a CRD not yet
        applied). `metadata_only`: each object's metadata alone (a PartialObjectMetadataList, the
        server's own cut: less to send and decode), or the whole object from a server without it."""
        try:
            resource = self._resource(api_version, kind)
        except PermanentError:
            return None
        headers = {"Accept": f"{PARTIAL_LIST}, application/json"} if metadata_only else {}
        try:
            raw = resource.get(label_selector=selector, namespace=namespace, header_params=headers, serialize=False)
            answer = loads(raw.data)
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, f"list {kind}") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, f"list {kind}") from None
        items: list[dict[str, Any]] = answer.get("items") or []
        for item in items:
            if item.get("kind") == "PartialObjectMetadata":  # its own kind: say which objects these are
                item["apiVersion"], item["kind"] = api_version, kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def _ensure_namespace(self, name: str) -> None:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if self._get(ns) is None:
            self._apply(ns)

    def crds(self) -> list[dict[str, Any]]:
        """The cluster's CustomResourceDefinitions (for the schema gate's custom resources)."""
        try:
            answer = self._resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").get(serializer=plain)
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, "list CustomResourceDefinitions") from None
        except PermanentError:
            raise
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, "list CustomResourceDefinitions") from None
        return list(answer.get("items") or [])
