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
comma-separated list of names, or `*`): that rollout ends in `ProgressDeadlineExceeded`. `GET /metrics`
serves request counters per workload, their errors shaped by the pod template's annotation
`sim.promoter.dev/error-rate` (promoter.sim.metrics).

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
- namespaces are deleted at once (no finalizers), and deleting one deletes what is in it;
- `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (or `as=PartialObjectMetadata`)
  is answered with the metadata alone, each item typed `meta.k8s.io/v1` `PartialObjectMetadata`; any
  other `as=` (a `Table`) is ignored and the whole objects are sent.
Why not kmock (PyPI, 0.8): it is a scripted mock of responses, with no server-side apply, no
generation semantics and no controller, and a promotion needs all three behaving as a cluster does.

With `state_file`, the objects (and what each field manager applied, and which rollouts ended)
are written to that JSON file within ~5 s of every change (and as the simulator stops) and read back
at start, so the embedded stack's clusters survive `promoter down` / `up` as a real cluster would.

Faults for tests: `fail_next(status, count)` answers the next requests with that HTTP status,
`stall_next(seconds, count)` delays them; `fail_next(..., path=...)` only requests whose path ends so.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from promoter import schemas
from promoter.httpserver import Server
from promoter.sim.controllers import FAIL_IN, Controllers
from promoter.sim.metrics import Counters
from promoter.sim.serving import Serving
from promoter.sim.slices import SLICER, Slicer
from promoter.sim.store import (
    BUILTIN,
    WORKLOADS,
    ApiError,
    Kind,
    Objects,
    Warnings,
)

__all__ = ["FAIL_IN", "SLICER", "ApiError", "Kind", "KubeSim", "kubeconfig"]

SAVE_EVERY_S = 5.0  # the state file's writes, at most this often (more seldom when a write takes long)


class KubeSim(Serving, Controllers):
    """One simulated API server: its state, threads, persistence and faults; the store, writes,
    controllers and serving are its mixins (promoter.sim.store, .writes, .controllers, .serving)."""

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
        self.objects = Objects()  # (group, plural, ns, name)
        self.workloads: set[tuple[str, str, str, str]] = set()  # the controller's keys (of objects)
        self.active: set[tuple[str, str, str, str]] = set()  # those it still has to roll out (or check)
        self.applied: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}  # + field manager
        self.rollouts: dict[tuple[str, str, str, str], tuple[int, float]] = {}  # generation, started
        self.done: dict[tuple[str, str, str, str], int] = {}  # the generation whose rollout ended
        self.version = 0
        self.slicer = Slicer(env)  # the EndpointSlice controller's indexes
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self.metadata_reads = 0  # GETs answered with metadata alone (PartialObjectMetadata), for tests
        self.authorizations: dict[str, int] = {}  # each `Authorization` header received, and how often
        self._faults: list[tuple[str, float, str]] = []
        self._documents: dict[str, Any] = {}  # the OpenAPI documents of the kinds served now, and their key
        self.counters = Counters()  # `GET /metrics` (promoter.sim.metrics)
        self.server = Server(("127.0.0.1", port), self._handler())
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self.written = threading.Event()  # a write wakes the controllers (promoter.sim.controllers)
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
        self.written.set()
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
        self.objects = Objects((tuple(k), o) for k, o in state.get("objects", []))
        self.workloads = {k for k, o in self.objects.items() if o.get("kind") in WORKLOADS or o.get("kind") == "Job"}
        self.active = set(self.workloads)  # each one whose rollout ended is dropped at the controller's first pass
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
        """Save every 5 s when anything changed (the whole state each time: it only guards against the
        simulator being killed, `stop` saves too); a big state waits 50 times as long as its last write
        took, so writing the file costs at most a fiftieth of a core however many objects there are."""
        pause = SAVE_EVERY_S
        while not self._stop.wait(pause):
            started = time.monotonic()
            self.save()
            pause = max(SAVE_EVERY_S, 50 * (time.monotonic() - started))

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
