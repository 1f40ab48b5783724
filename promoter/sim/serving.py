"""The simulator over HTTP: discovery (`/version`, `/api`, `/apis`, the per-group documents), the OpenAPI
documents, routing a path to a kind, namespace and name, faults, dry runs, and the request handler."""

from __future__ import annotations

import copy
import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from promoter import jsonfast
from promoter.sim import openapi
from promoter.sim.metrics import Counters, send_metrics
from promoter.sim.store import (
    SCALABLE,
    SCALE,
    ApiError,
    Kind,
    Query,
    Warnings,
)
from promoter.sim.writes import Writes


def decode(body: bytes, content_type: str) -> Any:
    """A request's body: JSON (which YAML includes, and which clients send) first; None when empty."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        if "yaml" not in content_type:
            raise ApiError(400, "BadRequest", "cannot decode the body: not JSON") from None
        try:
            return yaml.safe_load(body.decode())
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, "BadRequest", f"cannot decode the body: {e}") from None


def metadata_only(answer: dict[str, Any]) -> dict[str, Any]:
    """An object or a list as `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`
    asks (what a real server answers to it: each object's metadata alone, as PartialObjectMetadata)."""

    def partial(obj: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}

    if "items" not in answer:
        return partial(answer)
    items = [partial(o) for o in answer["items"]]
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": answer["metadata"],
        "items": items,
    }


class Serving(Writes):
    """Requests as a real API server answers them."""

    port: int
    counters: Counters  # `GET /metrics` (promoter.sim.metrics)
    requests: list[tuple[str, str]]
    authorizations: dict[str, int]
    _faults: list[tuple[str, float, str]]
    _documents: dict[str, Any]

    def _discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-promoter-sim", "platform": "linux/amd64"}
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            }
        if path == "/apis":
            return self._groups()
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            return self._resources(group, version)
        return None

    def _groups(self) -> dict[str, Any]:
        """`/apis`: every group served, with its versions (the first is the preferred one)."""
        groups: dict[str, list[str]] = {}
        for g, v, _ in self.kinds:
            if g:
                groups.setdefault(g, [])
                if v not in groups[g]:
                    groups[g].append(v)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in sorted(groups.items())
            ],
        }

    def _resources(self, group: str, version: str) -> dict[str, Any] | None:
        """A group version's `APIResourceList`: each kind with its names, and its `/status` and `/scale`
        subresources; None when the group version is not served."""
        resources = [k for (g, v, _), k in self.kinds.items() if (g, v) == (group, version)]
        if not resources:
            return None
        verbs = ["create", "delete", "get", "list", "patch", "update"]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": resources[0].group_version,
            "resources": [
                {
                    "name": k.plural,
                    "singularName": k.singular or k.kind.lower(),
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": verbs,
                }
                | ({"shortNames": list(k.short_names)} if k.short_names else {})
                | ({"categories": list(k.categories)} if k.categories else {})
                for k in resources
            ]
            + [
                {
                    "name": f"{k.plural}/status",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": ["get", "patch", "update"],
                }
                for k in resources
            ]
            + [
                {
                    "name": f"{k.plural}/scale",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
                for k in resources
                if k.kind in SCALABLE
            ],
        }

    def _openapi(self, path: str, accept: str) -> dict[str, Any]:
        """`/openapi/v2`, the `/openapi/v3` index and its group versions' documents (promoter.sim.openapi),
        of the kinds served now; built once per set of kinds and CRDs."""
        if path == "/openapi/v2" and accept and not any(t in accept for t in ("json", "*/*")):
            raise ApiError(406, "NotAcceptable", "only application/json is served here")
        with self.lock:
            kinds = sorted(self.kinds.values(), key=lambda k: (k.group, k.version, k.plural))
            crds = list(self.objects.of("apiextensions.k8s.io", "customresourcedefinitions").values())
            key = (tuple(kinds), tuple(o["metadata"]["resourceVersion"] for o in crds))
            crds = copy.deepcopy(crds)
        if self._documents.get("key") != key:
            groups: dict[str, Any] = {}
            for gv in dict.fromkeys(k.group_version for k in kinds):
                served = [k for k in kinds if k.group_version == gv]
                groups[f"apis/{gv}" if "/" in gv else f"api/{gv}"] = openapi.v3(self.kubernetes_version, served, crds)
            self._documents = {
                "key": key,
                "v2": openapi.v2(self.kubernetes_version, kinds, crds),
                "v3": groups,
                "hashes": {where: openapi.digest(doc) for where, doc in groups.items()},
            }
        documents = self._documents
        if path == "/openapi/v2":
            return dict(documents["v2"])
        if path == "/openapi/v3":
            return {
                "paths": {
                    where: {"serverRelativeURL": f"/openapi/v3/{where}?hash={digest}"}
                    for where, digest in documents["hashes"].items()
                }
            }
        found = documents["v3"].get(path.removeprefix("/openapi/v3/"))
        if found is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        return dict(found)

    def _route(self, path: str) -> tuple[Kind, str | None, str | None, bool | str]:
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        elif len(rest) == 2 and rest[0] == "namespaces" and (group, version, "namespaces") in self.kinds:
            pass  # /api/v1/namespaces/NAME: the namespace object itself
        kind = self._kind_for(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        status = len(rest) > 2 and rest[2] == "status"
        if kind.namespaced and name is not None and namespace is None:
            raise ApiError(404, "NotFound", f"{kind.plural} are namespaced: give a namespace")
        if len(rest) > 2 and rest[2] == "scale":
            if kind.kind not in SCALABLE:
                raise ApiError(404, "NotFound", f"{kind.plural} have no scale subresource")
            return kind, namespace, name, SCALE
        return kind, namespace, name, status

    def handle(
        self,
        method: str,
        raw_path: str,
        content_type: str,
        body: bytes,
        user_agent: str = "",
        accept: str = "",
        authorization: str = "",
    ) -> tuple[int, Any, Warnings]:
        """One request: (status, the answer, its `Warning` headers). Any credentials are taken; which
        ones came is counted in `authorizations`, for tests."""
        url = urlsplit(raw_path)
        query = parse_qs(url.query)
        dry_run = query.get("dryRun", [])
        if dry_run not in ([], ["All"]):
            raise ApiError(400, "BadRequest", f"unsupported dryRun value {dry_run}; the only one is All")
        validation = query.get("fieldValidation", ["Warn"])[0]
        if validation not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, "BadRequest", f"fieldValidation {validation!r} is not Strict, Warn or Ignore")
        # a real server names an update's manager after the client when it does not say (kubectl-edit, ...)
        manager = query.get("fieldManager", [""])[0] or user_agent.split("/", 1)[0] or "unknown"
        with self.lock:
            self.requests.append((method, url.path))
            self.authorizations[authorization] = self.authorizations.get(authorization, 0) + 1
            at = next((i for i, f in enumerate(self._faults) if url.path.endswith(f[2])), None)
            fault = self._faults.pop(at) if at is not None else None
        if fault is not None:
            if fault[0] == "stall":
                time.sleep(fault[1])  # a slow server, on purpose
            else:
                code = int(fault[1])
                return code, ApiError(code, "InternalError", "simulated fault").status(), []
        if method == "GET":
            found = self._discovery(url.path)
            if found is not None:
                return 200, found, []
            if url.path.startswith("/openapi/"):
                return 200, self._openapi(url.path, accept), []
        payload = decode(body, content_type)  # outside the lock
        with self.lock:  # the request's field validation and warnings are its own while it holds the lock
            self._field_validation, self._warnings, self._dry_run = validation, [], bool(dry_run)
            if method == "GET":
                code, answer = self._write(method, url.path, query, content_type, payload, manager)
                if "as=PartialObjectMetadata" in accept:
                    self.metadata_reads += 1
                    answer = metadata_only(answer)
                return code, answer, self._warnings
            if not dry_run:
                return (*self._write(method, url.path, query, content_type, payload, manager), self._warnings)
            saved = (self.objects.copy(), dict(self.applied), set(self.workloads), dict(self.kinds), self.version)
            try:  # what the write would leave, and then nothing of it
                return (*self._write(method, url.path, query, content_type, payload, manager), self._warnings)
            finally:
                self.objects, self.applied, self.workloads, self.kinds, self.version = saved

    def _write(
        self, method: str, path: str, query: Query, content_type: str, payload: Any, manager: str
    ) -> tuple[int, Any]:
        """One request past discovery and faults, under the lock."""
        kind, namespace, name, sub = self._route(path)
        ns = namespace or ""
        if sub == SCALE and name is not None:  # `kubectl scale`: the workload's replicas, as a Scale
            if method in ("PATCH", "PUT"):
                replicas = ((payload or {}).get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    raise ApiError(422, "Invalid", "spec.replicas must be a non-negative integer")
                self.merge_patch(kind, ns, name, {"spec": {"replicas": replicas}}, manager, subresource=SCALE)
            elif method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on scale")
            return 200, self._scale(kind, ns, name)
        if method == "PATCH" and name is not None and content_type.startswith("application/json-patch"):
            return 200, self.json_patch(kind, ns, name, payload, manager)
        if method == "PATCH" and name is not None and content_type.startswith("application/strategic-merge-patch"):
            return 200, self.strategic_patch(kind, ns, name, payload, manager)
        if method == "GET":
            if name is None:
                return 200, self.list(kind, namespace, query.get("labelSelector", [""])[0])
            return 200, self.get(kind, ns, name)
        if method == "POST" and name is None:
            return 201, self.create(kind, ns, payload, manager)
        if method == "PUT" and name is not None:
            return 200, self.replace(kind, ns, name, payload, manager)
        if method == "PATCH" and name is not None:
            if content_type.startswith("application/apply-patch"):
                if not query.get("fieldManager", [""])[0]:
                    raise ApiError(400, "BadRequest", "fieldManager is required for apply requests")
                existed = (kind.group, kind.plural, ns, name) in self.objects
                return (200 if existed else 201), self.apply(kind, ns, name, payload, manager)
            return 200, self.merge_patch(kind, ns, name, payload, manager)
        if method == "DELETE" and name is not None:
            self.delete(kind, ns, name)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every answer
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "GET" and urlsplit(self.path).path == "/metrics":
                    return send_metrics(self, sim)  # Prometheus' text format, not the API's JSON
                warnings: list[str] = []
                try:
                    code, answer, warnings = sim.handle(
                        self.command,
                        self.path,
                        self.headers.get("Content-Type", ""),
                        body,
                        self.headers.get("User-Agent", ""),
                        self.headers.get("Accept", ""),
                        self.headers.get("Authorization", ""),
                    )
                except ApiError as e:
                    code, answer = e.code, e.status()
                raw = jsonfast.dumps(answer)
                self.send_response(code)
                for warning in warnings:  # RFC 7234 warn-code 299, as a real API server sends them
                    self.send_header("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        return Handler
