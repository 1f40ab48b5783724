"""A simulated Kubernetes API server on loopback, for the embedded stack and the tests.

The official `kubernetes` client (typed and dynamic) and the real `kubectl` talk to it unchanged over
HTTP: discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`, with the short
names, singular names and categories of a real server, and a CRD's own: `kubectl get deploy`,
`kubectl get all`), `/openapi/v2` and `/openapi/v3` with a document per group version
(promoter.sim.openapi, built from the schemas the schema gate uses: `kubectl apply` validates, and
`kubectl explain` answers), namespaced and cluster-scoped CRUD for any kind it knows (built-ins, and
custom resources once their CustomResourceDefinition is created), `resourceVersion` and `generation`,
list with label selectors, server-side apply (`application/apply-patch+yaml`), merge patches,
strategic merge patches merged by the kind's patch strategies and merge keys (what `kubectl apply`,
`diff` and `edit` send), JSON patches (`kubectl patch --type json`: add, replace, remove, test), the
`/scale` subresource of Deployments and StatefulSets (`kubectl scale`), delete, `dryRun=All` on every
write (`kubectl diff`, `kubectl apply --server-side --dry-run=server`: the answer is what the write
would leave, with the resourceVersion it read, and nothing is kept), `metadata.managedFields`
(promoter.sim.fields), resource quantities in canonical form, and a rollout controller: Deployments,
StatefulSets and DaemonSets become available after `rollout_delay_s`, Jobs complete, unless the pod
template carries the annotation `sim.promoter.dev/fail-in` naming this server's environment (a
comma-separated list of names, or `*`): that rollout ends in `ProgressDeadlineExceeded`.

Where it differs from a real API server (kept honest on purpose):
- no authentication or authorization, admission or defaulting; no watch, no subresources but
  `/status` reads and `/scale`; no aggregated discovery (kubectl falls back to the per-group
  documents, as for an old server); lists are never answered as a `Table`, so `kubectl get` shows
  only NAME and AGE; the OpenAPI documents cover only the kinds served (promoter.sim.openapi says
  where else they differ);
- objects are validated against the strict schemas of `kubernetes_version` (promoter.schemas, the
  schema gate's), as a real server's decoding and validation do: a wrong type is 400, an unknown
  field is 400 under `fieldValidation=Strict` and dropped with a `Warning` header under `Warn` (the
  default), anything else invalid is 422 `Invalid` with `details.causes`. What a real server checks
  in Go code beyond the OpenAPI schema (name formats, a Job's restartPolicy, immutable fields) is not
  checked, and a 400's message is shorter than a real server's;
- a strategic merge patch to a custom resource is taken as a JSON merge patch (a real server answers
  415; kubectl never sends one); `$setElementOrder` puts the items the patch lists first and the rest
  after them, where a real server interleaves them;
- server-side apply is simplified: one applied configuration is remembered per field manager; a new
  apply removes the fields that manager applied before and no longer does (unless another manager's
  applied configuration still sets them; fields only an update wrote do not count), then merges the
  new configuration in; lists are atomic; conflicts between managers are never reported;
- managed fields and quantities are kept as promoter.sim.fields says (lists are one field; only
  decimal numbers and millis are canonicalised); an update names its manager from `fieldManager`,
  else the User-Agent before its first `/`, as a real server does;
- generation counts changes to anything but metadata and status, for every kind;
- no pods or ReplicaSets are created: the controller writes the workload's status directly, and an
  EndpointSlice controller keeps one slice per Service with a selector, `<service>-sim`, with one
  ready endpoint per ready replica of the workloads whose pod template the selector matches (fake
  addresses; no Endpoints objects, which real servers still serve);
- namespaces are deleted at once (no finalizers), and deleting one deletes what is in it.
Why not kmock (PyPI, 0.8): it is a scripted mock of responses, with no server-side apply, no
generation semantics and no controller, and a promotion needs all three behaving as a cluster does.

With `state_file`, the objects (and what each field manager applied, and which rollouts ended)
are written to that JSON file within ~0.1 s of every change and read back at start, so the embedded
stack's clusters survive `promoter down` / `up` as a real cluster would.

Faults for tests: `fail_next(status, count)` answers the next requests with that HTTP status,
`stall_next(seconds, count)` delays them; `fail_next(..., path=...)` only requests whose path ends so.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from promoter import schemas
from promoter.httpserver import Server
from promoter.sim import openapi
from promoter.sim.fields import canonicalise, changed, fieldset, now, record

FAIL_IN = "sim.promoter.dev/fail-in"
SLICER = "endpointslice-controller.k8s.io"  # the EndpointSlice controller's name, as a real cluster's
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}
SCALABLE = {"Deployment", "StatefulSet"}  # kinds with a `/scale` subresource
SCALE = "scale"
Query = dict[str, list[str]]  # a URL's parameters, as parse_qs reads them
Warnings = list[str]  # a response's `Warning` headers


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()  # as a real server lists them (`kubectl get deploy`)
    categories: tuple[str, ...] = ()  # `all`: what `kubectl get all` lists
    singular: str = ""  # default: the kind in lower case

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


ALL = ("all",)
BUILTIN = [  # with the short names and categories of Kubernetes 1.31's own discovery
    Kind("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Kind("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Kind("", "v1", "secrets", "Secret", True),
    Kind("", "v1", "services", "Service", True, ("svc",), ALL),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Kind("", "v1", "pods", "Pod", True, ("po",), ALL),
    Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    Kind("apps", "v1", "deployments", "Deployment", True, ("deploy",), ALL),
    Kind("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ALL),
    Kind("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ALL),
    Kind("batch", "v1", "jobs", "Job", True, (), ALL),
    Kind("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ALL),
    Kind("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",)),
    Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
    Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Kind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",), ALL),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Kind(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        ("api-extensions",),
    ),
]
SLICES = next(k for k in BUILTIN if k.kind == "EndpointSlice")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        """A `Status` as the API conventions define it (with `details.causes` for an invalid object)."""
        answer = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            answer["details"] = self.details
        return answer


def _drop(obj: Any, at: tuple[str | int, ...]) -> None:
    """Remove the field at `at` from `obj` (an unknown field a lenient request loses)."""
    for key in at[:-1]:
        obj = obj[key]
    obj.pop(at[-1], None)


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _prune(target: dict[str, Any], old: dict[str, Any], new: dict[str, Any], others: list[Any] | None = None) -> None:
    """Remove from `target` what `old` applied and `new` no longer does (recursing into mappings),
    unless another manager's applied configuration (`others`) still sets it: a field two managers
    applied stays while one of them does."""
    for key, old_value in old.items():
        kept = [o[key] for o in others or [] if isinstance(o, dict) and key in o]
        if key not in new and not kept:
            target.pop(key, None)
        elif isinstance(old_value, dict) and isinstance(target.get(key), dict):
            below = new.get(key, {})
            if isinstance(below, dict):  # (else a mapping replaced by a value: the merge writes it)
                _prune(target[key], old_value, below, kept)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch (RFC 7386): mappings merge, null deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class KubeSim:
    def __init__(
        self,
        env: str = "sim",
        rollout_delay_s: float = 0.3,
        port: int = 0,
        state_file: Path | None = None,
        kubernetes_version: str | None = None,
    ) -> None:
        self.env = env
        self.kubernetes_version = schemas.check_version(kubernetes_version)  # whose schemas writes must meet
        self._field_validation = "Warn"  # the request's (under the lock): Strict, Warn or Ignore
        self._warnings: Warnings = []  # the request's `Warning` headers
        self._dry_run = False  # whether the request is `dryRun=All` (under the lock)
        self.rollout_delay_s = rollout_delay_s
        self.kinds: dict[tuple[str, str, str], Kind] = {(k.group, k.version, k.plural): k for k in BUILTIN}
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}  # (group, plural, ns, name)
        self.workloads: set[tuple[str, str, str, str]] = set()  # the controller's keys (of objects)
        self.applied: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}  # + field manager
        self.rollouts: dict[tuple[str, str, str, str], tuple[int, float]] = {}  # generation, started
        self.done: dict[tuple[str, str, str, str], int] = {}  # the generation whose rollout ended
        self.version = 0
        self._sliced = -1  # the version the EndpointSlice controller last looked at
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self._faults: list[tuple[str, float, str]] = []
        self._documents: dict[str, Any] = {}  # the OpenAPI documents of the kinds served now, and their key
        self.server = Server(("127.0.0.1", port), self._handler())
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self.state_file = Path(state_file) if state_file is not None else None
        self._saved_version = -1
        if self.state_file is not None and self.state_file.is_file():
            self._load(json.loads(self.state_file.read_text()))
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True, name=f"kube-{env}"),
            threading.Thread(target=self._controller, daemon=True, name=f"rollouts-{env}"),
        ]
        if self.state_file is not None:
            self._threads.append(threading.Thread(target=self._saver, daemon=True, name=f"save-{env}"))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KubeSim:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.save()

    # ------------------------------------------------------------------ persistence

    def _snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": self.version,
                "objects": [[list(k), o] for k, o in self.objects.items()],
                "applied": [[list(k), c] for k, c in self.applied.items()],
                "done": [[list(k), g] for k, g in self.done.items()],
            }

    def _load(self, state: dict[str, Any]) -> None:
        self.version = int(state.get("version", 0))
        self.objects = {tuple(k): o for k, o in state.get("objects", [])}
        self.workloads = {k for k, o in self.objects.items() if o.get("kind") in WORKLOADS or o.get("kind") == "Job"}
        self.applied = {tuple(k): c for k, c in state.get("applied", [])}
        self.done = {tuple(k): g for k, g in state.get("done", [])}
        self.rollouts = {k: (g, 0.0) for k, g in self.done.items()}  # ended rollouts stay ended
        for obj in self.objects.values():
            if obj.get("kind") == "CustomResourceDefinition":
                self._register_crd(obj)
        self._saved_version = self.version

    def save(self) -> None:
        """Write the state file (atomically) when anything changed since the last write."""
        if self.state_file is None or self.version == self._saved_version:
            return
        snapshot = self._snapshot()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot))
        os.replace(tmp, self.state_file)
        self._saved_version = snapshot["version"]

    def _saver(self) -> None:
        while not self._stop.wait(0.1):
            self.save()

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, status: int, count: int = 1, path: str = "") -> None:
        """Answer the next `count` requests (whose path ends with `path`, if given) with `status`."""
        with self.lock:
            self._faults += [("status", float(status), path)] * count

    def stall_next(self, seconds: float, count: int = 1) -> None:
        with self.lock:
            self._faults += [("stall", seconds, "")] * count

    # ------------------------------------------------------------------ store

    def _kind_for(self, group: str, version: str, plural: str) -> Kind:
        kind = self.kinds.get((group, version, plural))
        if kind is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural})")
        return kind

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((kind.group, kind.plural, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{kind.plural}{"." + kind.group if kind.group else ""} "{name}" not found')
        return obj

    def _check_namespace(self, kind: Kind, namespace: str) -> None:
        if kind.namespaced and ("", "namespaces", "", namespace) not in self.objects:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')

    def _validate(self, kind: Kind, body: Any, name: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        if body.get("kind") not in (None, kind.kind):
            raise ApiError(400, "BadRequest", f"kind {body.get('kind')} does not match {kind.kind}")
        if body.get("apiVersion") not in (None, kind.group_version):
            raise ApiError(
                400, "BadRequest", f"apiVersion {body.get('apiVersion')} does not match {kind.group_version}"
            )
        meta = body.get("metadata") or {}
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "metadata.name does not match the URL")
        if not (meta.get("name") or name):
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        return body

    def _store(
        self,
        kind: Kind,
        namespace: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None,
        manager: str,
        applied: dict[str, Any] | None = None,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Keep `obj`, written by `manager` (`applied`: its server-side apply configuration, else an
        update), with the system fields, generation and managed fields a real API server keeps."""
        self._check_schema(kind, obj)
        canonicalise(obj)
        meta = obj.setdefault("metadata", {})
        meta["name"] = meta.get("name")
        if kind.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["kind"], obj["apiVersion"] = kind.kind, kind.group_version
        if previous is None:
            meta["uid"] = f"sim-{self.env}-{self.version + 1}"
            meta["creationTimestamp"] = now()
            meta["generation"] = 1
        else:
            for system in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                meta[system] = previous["metadata"][system]
            if "status" in previous and "status" not in obj:
                obj["status"] = previous["status"]
        written, removed = changed(previous or {}, obj)
        meta["managedFields"] = record(
            (previous or {}).get("metadata", {}).get("managedFields") or [],
            manager,
            "Update" if applied is None else "Apply",
            kind.group_version,
            written if applied is None else fieldset(applied),
            removed,
            moved=bool(written or removed),
            subresource=subresource,
        )
        if previous is not None:
            if obj == previous:
                return previous  # a no-op write: no new resourceVersion or generation, as a real server
            if _content(obj) != _content(previous):
                meta["generation"] += 1
        if self._dry_run and previous is not None:  # as a real server: a dry run keeps the version it read
            meta["resourceVersion"] = previous["metadata"]["resourceVersion"]
        else:
            meta["resourceVersion"] = self._bump()
        self.objects[(kind.group, kind.plural, namespace, meta["name"])] = obj
        if kind.kind in WORKLOADS or kind.kind == "Job":
            self.workloads.add((kind.group, kind.plural, namespace, meta["name"]))
        if kind.kind == "CustomResourceDefinition":
            self._register_crd(obj)
        return obj

    def _check_schema(self, kind: Kind, obj: dict[str, Any]) -> None:
        """Refuse what a real API server refuses, against the same schemas as the schema gate: a
        value of the wrong type is a decoding error (400, whatever the field validation); an unknown
        field is one under `fieldValidation=Strict` (400), else it is dropped with a warning (`Warn`,
        the default) or silently (`Ignore`); anything else invalid is 422 `Invalid` with its causes."""
        content = {k: v for k, v in obj.items() if k != "status"}
        crds = lambda: ([o for (g, p, _, _), o in self.objects.items() if p == "customresourcedefinitions"], "")  # noqa: E731
        found = [f for f in schemas.check([content], self.kubernetes_version, crds) if f.kind == "invalid"]
        name = (obj.get("metadata") or {}).get("name", "")
        decoding = [f for f in found if f.message.startswith("expected ")]
        if decoding:
            f = decoding[0]
            raise ApiError(
                400,
                "BadRequest",
                f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: {f.path}: {f.message}',
            )
        unknown = [f for f in found if f.message.startswith("unknown field")]
        if unknown and self._field_validation == "Strict":
            raise ApiError(
                400, "BadRequest", "strict decoding error: " + ", ".join(f'unknown field "{f.path}"' for f in unknown)
            )
        for f in unknown:
            _drop(obj, f.at)
            if self._field_validation == "Warn":
                self._warnings.append(f'unknown field "{f.path}"')
        invalid = [f for f in found if f not in unknown]
        if invalid:
            group = f".{kind.group}" if kind.group else ""
            causes = [
                {
                    "reason": "FieldValueRequired" if f.message == "Required value" else "FieldValueInvalid",
                    "message": f.message,
                    "field": f.path,
                }
                for f in invalid
            ]
            raise ApiError(
                422,
                "Invalid",
                f'{kind.kind}{group} "{name}" is invalid: '
                + ", ".join(f"{c['field']}: {c['message']}" for c in causes),
                {"name": name, "group": kind.group, "kind": kind.kind, "causes": causes},
            )

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        for v in spec.get("versions", []):
            if v.get("served", True):
                names = spec["names"]
                k = Kind(
                    spec["group"],
                    v["name"],
                    names["plural"],
                    names["kind"],
                    spec.get("scope", "Namespaced") == "Namespaced",
                    tuple(names.get("shortNames") or ()),
                    tuple(names.get("categories") or ()),
                    names.get("singular") or "",
                )
                self.kinds[(k.group, k.version, k.plural)] = k

    def create(self, kind: Kind, namespace: str, body: dict[str, Any], manager: str = "sim") -> dict[str, Any]:
        body = copy.deepcopy(self._validate(kind, body, None))
        name = body["metadata"]["name"]
        self._check_namespace(kind, namespace)
        if (kind.group, kind.plural, namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{kind.plural} "{name}" already exists')
        body.pop("status", None)
        return self._store(kind, namespace, body, None, manager)

    def replace(
        self, kind: Kind, namespace: str, name: str, body: dict[str, Any], manager: str = "sim"
    ) -> dict[str, Any]:
        body = copy.deepcopy(self._validate(kind, body, name))
        previous = self.get(kind, namespace, name)
        expected = body.get("metadata", {}).get("resourceVersion")
        if expected and expected != previous["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.plural} "{name}": '
                "the object has been modified; please apply your changes to the latest version",
            )
        body["metadata"]["name"] = name
        return self._store(kind, namespace, body, previous, manager)

    def apply(self, kind: Kind, namespace: str, name: str, body: dict[str, Any], manager: str) -> dict[str, Any]:
        config = copy.deepcopy(self._validate(kind, body, name))
        config.setdefault("metadata", {})["name"] = name
        config.pop("status", None)
        key = (kind.group, kind.plural, namespace, name)
        previous = self.objects.get(key)
        if previous is None:
            self._check_namespace(kind, namespace)
            obj: dict[str, Any] = {}
        else:
            obj = copy.deepcopy(previous)
            others = [c for (*k, m), c in self.applied.items() if tuple(k) == key and m != manager]
            _prune(obj, self.applied.get((*key, manager), {}), config, others)
        _merge(obj, config)
        self.applied[(*key, manager)] = config
        return self._store(kind, namespace, obj, previous, manager, applied=config)

    def _scale(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        meta = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
        }

    def json_patch(self, kind: Kind, namespace: str, name: str, ops: Any, manager: str = "sim") -> dict[str, Any]:
        """RFC 6902 `add`, `replace`, `remove` and `test` (`kubectl patch --type json`)."""
        previous = self.get(kind, namespace, name)
        obj = copy.deepcopy(previous)
        if not isinstance(ops, list):
            raise ApiError(400, "BadRequest", "a JSON patch is a list of operations")
        for op in ops:
            path = [p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]]
            if not path:
                raise ApiError(422, "Invalid", f"the JSON patch path {op.get('path')!r} is not supported")
            parent: Any = obj
            try:
                for part in path[:-1]:
                    parent = parent[int(part)] if isinstance(parent, list) else parent[part]
                last: Any = int(path[-1]) if isinstance(parent, list) and path[-1] != "-" else path[-1]
                if op.get("op") in ("add", "replace"):
                    if isinstance(parent, list) and (last == "-" or op["op"] == "add"):
                        parent.insert(len(parent) if last == "-" else last, op["value"])
                    else:
                        parent[last] = op["value"]
                elif op.get("op") == "remove":
                    del parent[last]
                elif op.get("op") == "test":
                    if parent[last] != op.get("value"):
                        raise ApiError(422, "Invalid", f"the JSON patch test of {op['path']} failed")
                else:
                    raise ApiError(422, "Invalid", f"the JSON patch op {op.get('op')!r} is not supported")
            except (KeyError, IndexError, ValueError, TypeError):
                raise ApiError(422, "Invalid", f"the JSON patch path {op.get('path')} does not exist") from None
        return self._store(kind, namespace, obj, previous, manager)

    def merge_patch(
        self, kind: Kind, namespace: str, name: str, patch: dict[str, Any], manager: str = "sim", subresource: str = ""
    ) -> dict[str, Any]:
        previous = self.get(kind, namespace, name)
        obj = copy.deepcopy(previous)
        _merge(obj, patch)
        return self._store(kind, namespace, obj, previous, manager, subresource=subresource)

    def strategic_patch(
        self, kind: Kind, namespace: str, name: str, patch: Any, manager: str = "sim"
    ) -> dict[str, Any]:
        """A strategic merge patch (`kubectl apply`, `edit`, `diff` send them), merged by the patch
        strategies of the kind's schema. A custom resource has none: its patch is taken as a JSON
        merge patch (a real server refuses it with 415; kubectl never sends one)."""
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a strategic merge patch is an object")
        definition = openapi.definition_of(self.kubernetes_version, kind.group_version, kind.kind)
        if definition is None:
            return self.merge_patch(kind, namespace, name, patch, manager)
        previous = self.get(kind, namespace, name)
        walker = openapi.Schemas(self.kubernetes_version)
        obj = openapi.strategic_merge(previous, patch, {"$ref": openapi.DEFS + definition}, walker)
        return self._store(kind, namespace, obj, previous, manager)

    def delete(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        del self.objects[(kind.group, kind.plural, namespace, name)]
        for applied in [a for a in self.applied if a[:4] == (kind.group, kind.plural, namespace, name)]:
            del self.applied[applied]
        if kind.kind == "Namespace":
            for inside in [o for o in self.objects if o[2] == name]:
                del self.objects[inside]
        self._bump()
        return obj

    def list(self, kind: Kind, namespace: str | None, selector: str) -> dict[str, Any]:
        items = [
            copy.deepcopy(o)
            for (g, p, ns, _), o in sorted(self.objects.items())
            if (g, p) == (kind.group, kind.plural)
            and (namespace is None or ns == namespace)
            and _selector_matches(selector, o.get("metadata", {}).get("labels") or {})
        ]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.group_version,
            "metadata": {"resourceVersion": str(self.version)},
            "items": items,
        }

    # ------------------------------------------------------------------ rollout controller

    def _controller(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            with self.lock:
                for key in list(self.workloads):
                    obj = self.objects.get(key)
                    if obj is None:
                        self.workloads.discard(key)  # deleted
                    else:
                        self._reconcile(key, obj, now)
                if self._sliced != self.version:
                    self._slice()
                    self._sliced = self.version

    def _slice(self) -> None:
        """The EndpointSlice controller: each Service with a selector has the slice `<service>-sim`
        (labelled `kubernetes.io/service-name`), with one ready endpoint per ready replica of the
        workloads in its namespace whose pod template labels the selector matches; a slice whose
        Service is gone is deleted."""
        wanted: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for (group, plural, namespace, name), service in list(self.objects.items()):
            spec = service.get("spec") or {}
            selector = spec.get("selector") or {}
            if group or plural != "services" or not selector or spec.get("type") == "ExternalName":
                continue
            matched = [key for key in self.workloads if self._selects(key, namespace, selector)]
            ready = sum(self._ready(self.objects[key]) for key in matched)
            wanted[(SLICES.group, SLICES.plural, namespace, f"{name}-sim")] = {
                "apiVersion": SLICES.group_version,
                "kind": SLICES.kind,
                "metadata": {
                    "name": f"{name}-sim",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": SLICER},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [f"10.0.{i // 250}.{i % 250 + 1}"], "conditions": {"ready": True}}
                    for i in range(ready)
                ],
                "ports": [
                    {"port": p.get("targetPort") if isinstance(p.get("targetPort"), int) else p.get("port")}
                    for p in spec.get("ports") or []
                ],
            }
        for key, obj in list(self.objects.items()):
            managed = ((obj.get("metadata") or {}).get("labels") or {}).get("endpointslice.kubernetes.io/managed-by")
            if key[:2] == (SLICES.group, SLICES.plural) and managed == SLICER and key not in wanted:
                del self.objects[key]
                self._bump()
        for key, body in wanted.items():
            old = self.objects.get(key)
            if old is not None and _content(old) == _content(body):
                continue
            meta = body["metadata"]
            meta["uid"] = old["metadata"]["uid"] if old else f"sim-{self.env}-{self.version + 1}"
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else now()
            meta["generation"] = 1
            meta["resourceVersion"] = self._bump()
            self.objects[key] = body

    def _selects(self, key: tuple[str, str, str, str], namespace: str, selector: dict[str, Any]) -> bool:
        obj = self.objects.get(key)
        if key[2] != namespace or obj is None or obj["kind"] == "Job":
            return False
        labels = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in selector.items())

    @staticmethod
    def _ready(obj: dict[str, Any]) -> int:
        status = obj.get("status") or {}
        return int(status.get("readyReplicas") or status.get("numberReady") or 0)

    def _reconcile(self, key: tuple[str, str, str, str], obj: dict[str, Any], now: float) -> None:
        generation = obj["metadata"].get("generation", 1)
        started = self.rollouts.get(key)
        if started is None or started[0] != generation:
            self.rollouts[key] = (generation, now)
            self._set_status(key, obj, self._progressing(obj, generation))
            return
        if now - started[1] < self.rollout_delay_s or self.done.get(key) == generation:
            return
        annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        targets = {t.strip() for t in str(annotations.get(FAIL_IN, "")).split(",") if t.strip()}
        failing = "*" in targets or self.env in targets
        self.done[key] = generation
        self._set_status(key, obj, self._failed(obj, generation) if failing else self._available(obj, generation))

    def _set_status(self, key: tuple[str, str, str, str], obj: dict[str, Any], status: dict[str, Any]) -> None:
        updated = copy.deepcopy(obj)
        updated["status"] = status
        updated["metadata"]["resourceVersion"] = self._bump()
        self.objects[key] = updated

    @staticmethod
    def _replicas(obj: dict[str, Any]) -> int:
        return int(obj.get("spec", {}).get("replicas", 1)) if obj["kind"] != "DaemonSet" else 1

    def _progressing(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        old = obj.get("status", {})
        n = self._replicas(obj)
        if obj["kind"] == "Job":
            return {"active": 1}
        if obj["kind"] == "DaemonSet":
            return {
                "observedGeneration": generation,
                "desiredNumberScheduled": 1,
                "updatedNumberScheduled": 0,
                "numberAvailable": old.get("numberAvailable", 0),
                "numberReady": old.get("numberReady", 0),
            }
        return {
            "observedGeneration": generation,
            "replicas": n,
            "updatedReplicas": 0,
            "readyReplicas": old.get("readyReplicas", 0),
            "availableReplicas": old.get("availableReplicas", 0),
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": "rollout in progress",
                }
            ],
        }

    def _available(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        n = self._replicas(obj)
        if obj["kind"] == "Job":
            return {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        if obj["kind"] == "DaemonSet":
            return {
                "observedGeneration": generation,
                "desiredNumberScheduled": 1,
                "currentNumberScheduled": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
                "numberReady": 1,
            }
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
        if obj["kind"] == "StatefulSet":
            status.update(
                {"currentReplicas": n, "currentRevision": f"r{generation}", "updateRevision": f"r{generation}"}
            )
        else:
            status["conditions"] = [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f"ReplicaSet has successfully progressed (generation {generation})",
                },
            ]
        return status

    def _failed(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        status = self._progressing(obj, generation)
        message = f"simulated failure in {self.env} ({FAIL_IN})"
        if obj["kind"] == "Job":
            return {
                "failed": 1,
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message}
                ],
            }
        status["conditions"] = [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message}
        ]
        return status

    # ------------------------------------------------------------------ HTTP

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
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
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
        return None

    def _openapi(self, path: str, accept: str) -> dict[str, Any]:
        """`/openapi/v2`, the `/openapi/v3` index and its group versions' documents (promoter.sim.openapi),
        of the kinds served now; built once per set of kinds and CRDs."""
        if path == "/openapi/v2" and accept and not any(t in accept for t in ("json", "*/*")):
            raise ApiError(406, "NotAcceptable", "only application/json is served here")
        with self.lock:
            kinds = sorted(self.kinds.values(), key=lambda k: (k.group, k.version, k.plural))
            crds = [o for (_, p, _, _), o in self.objects.items() if p == "customresourcedefinitions"]
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
        self, method: str, raw_path: str, content_type: str, body: bytes, user_agent: str = "", accept: str = ""
    ) -> tuple[int, Any, Warnings]:
        """One request: (status, the answer, its `Warning` headers)."""
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
        payload: Any = None
        if body:  # outside the lock; JSON (which YAML includes, and which clients send) first
            try:
                payload = json.loads(body)
            except ValueError:
                if "yaml" not in content_type:
                    raise ApiError(400, "BadRequest", "cannot decode the body: not JSON") from None
                try:
                    payload = yaml.safe_load(body.decode())
                except (ValueError, yaml.YAMLError) as e:
                    raise ApiError(400, "BadRequest", f"cannot decode the body: {e}") from None
        with self.lock:  # the request's field validation and warnings are its own while it holds the lock
            self._field_validation, self._warnings, self._dry_run = validation, [], bool(dry_run)
            if not dry_run or method == "GET":
                return (*self._write(method, url.path, query, content_type, payload, manager), self._warnings)
            saved = (dict(self.objects), dict(self.applied), set(self.workloads), dict(self.kinds), self.version)
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
                warnings: list[str] = []
                try:
                    code, answer, warnings = sim.handle(
                        self.command,
                        self.path,
                        self.headers.get("Content-Type", ""),
                        body,
                        self.headers.get("User-Agent", ""),
                        self.headers.get("Accept", ""),
                    )
                except ApiError as e:
                    code, answer = e.code, e.status()
                raw = json.dumps(answer).encode()
                self.send_response(code)
                for warning in warnings:  # RFC 7234 warn-code 299, as a real API server sends them
                    self.send_header("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        return Handler


def kubeconfig(servers: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig with one context per environment, named after it."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": env, "cluster": {"server": url}} for env, url in servers.items()],
        "users": [{"name": "promoter", "user": {"token": "simulated"}}],
        "contexts": [
            {"name": env, "context": {"cluster": env, "user": "promoter", "namespace": namespace}} for env in servers
        ],
        "current-context": next(iter(servers), ""),
    }
