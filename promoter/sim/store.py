"""The simulator's object store: the kinds it serves (built-ins, and a CRD's once it is created), the
objects with the system fields, generation and managed fields a real API server keeps, schema checks as
the server's decoding and validation make them, reads, lists by label selector, and deletes.
KubeSim (promoter.sim.kube) holds the state; the writes are promoter.sim.writes'."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any

from promoter import schemas
from promoter.sim.fields import canonicalise, changed, fieldset, now, record

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}
SCALABLE = {"Deployment", "StatefulSet"}  # kinds with a `/scale` subresource
SCALE = "scale"
Query = dict[str, list[str]]  # a URL's parameters, as parse_qs reads them
Warnings = list[str]  # a response's `Warning` headers
Key = tuple[str, str, str, str]  # an object's (group, plural, namespace, name)


class Objects(dict[Key, dict[str, Any]]):
    """The objects by key, also by kind (`of`: a list reads its kind's objects, not every one held), with
    the keys written or deleted since the controllers last took them (`take_touched`)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        self._by_kind: dict[tuple[str, str], dict[Key, dict[str, Any]]] = {}
        self._touched: set[Key] = set()
        for key, obj in items:
            self[key] = obj

    def __setitem__(self, key: Key, obj: dict[str, Any]) -> None:
        super().__setitem__(key, obj)
        self._by_kind.setdefault(key[:2], {})[key] = obj
        self._touched.add(key)

    def __delitem__(self, key: Key) -> None:
        super().__delitem__(key)
        self._by_kind[key[:2]].pop(key, None)
        self._touched.add(key)

    def pop(self, key: Key, *default: Any) -> Any:
        if key not in self and default:
            return default[0]
        obj = self[key]
        del self[key]
        return obj

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("write Objects by key (obj[key] = ..., del obj[key], pop): the index follows those")

    popitem = setdefault = update = clear = __ior__ = _refuse

    def of(self, group: str, plural: str) -> dict[Key, dict[str, Any]]:
        """The objects of one kind (do not write through it)."""
        return self._by_kind.get((group, plural), {})

    def take_touched(self) -> set[Key]:
        touched, self._touched = self._touched, set()
        return touched

    def copy(self) -> Objects:
        """A copy with its own index and touched keys (a dry run's: put back afterwards)."""
        copied = Objects()
        dict.update(copied, self)
        copied._by_kind = {kind: dict(objects) for kind, objects in self._by_kind.items()}
        copied._touched = set(self._touched)
        return copied


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


def prune_applied(
    target: dict[str, Any], old: dict[str, Any], new: dict[str, Any], others: list[Any] | None = None
) -> None:
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
                prune_applied(target[key], old_value, below, kept)


def merge_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch (RFC 7386): mappings merge, null deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def content_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    """The objects and kinds, under `lock` (KubeSim sets them up)."""

    env: str
    kubernetes_version: str
    lock: threading.RLock
    written: threading.Event  # set by every write, to wake the controllers
    metadata_reads: int
    kinds: dict[tuple[str, str, str], Kind]
    objects: Objects
    workloads: set[tuple[str, str, str, str]]
    active: set[tuple[str, str, str, str]]  # the workloads whose latest generation has not yet rolled out
    applied: dict[tuple[str, str, str, str, str], dict[str, Any]]
    version: int
    _field_validation: str
    _warnings: Warnings
    _dry_run: bool

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
            if content_of(obj) != content_of(previous):
                meta["generation"] += 1
        if self._dry_run and previous is not None:  # as a real server: a dry run keeps the version it read
            meta["resourceVersion"] = previous["metadata"]["resourceVersion"]
        else:
            meta["resourceVersion"] = self._bump()
        self.objects[(kind.group, kind.plural, namespace, meta["name"])] = obj
        self.written.set()
        if kind.kind in WORKLOADS or kind.kind == "Job":
            self.workloads.add((kind.group, kind.plural, namespace, meta["name"]))
            self.active.add((kind.group, kind.plural, namespace, meta["name"]))
        if kind.kind == "CustomResourceDefinition":
            self._register_crd(obj)
        return obj

    def _check_schema(self, kind: Kind, obj: dict[str, Any]) -> None:
        """Refuse what a real API server refuses, against the same schemas as the schema gate: a
        value of the wrong type is a decoding error (400, whatever the field validation); an unknown
        field is one under `fieldValidation=Strict` (400), else it is dropped with a warning (`Warn`,
        the default) or silently (`Ignore`); anything else invalid is 422 `Invalid` with its causes."""
        content = {k: v for k, v in obj.items() if k != "status"}
        crds = lambda: (list(self.objects.of("apiextensions.k8s.io", "customresourcedefinitions").values()), "")  # noqa: E731
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

    def delete(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        del self.objects[(kind.group, kind.plural, namespace, name)]
        for applied in [a for a in self.applied if a[:4] == (kind.group, kind.plural, namespace, name)]:
            del self.applied[applied]
        if kind.kind == "Namespace":
            for inside in [o for o in self.objects if o[2] == name]:  # every kind's: a namespace's delete is rare
                del self.objects[inside]
        self._bump()
        self.written.set()
        return obj

    def list(self, kind: Kind, namespace: str | None, selector: str) -> dict[str, Any]:
        items = [  # not copied: a stored object is never changed in place, a write stores a new one
            o
            for (_, _, ns, _), o in sorted(self.objects.of(kind.group, kind.plural).items())
            if (namespace is None or ns == namespace)
            and _selector_matches(selector, o.get("metadata", {}).get("labels") or {})
        ]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.group_version,
            "metadata": {"resourceVersion": str(self.version)},
            "items": items,
        }
