"""`GET /metrics` of a simulated cluster: request counters per workload, in Prometheus' text format, so
that a Prometheus scraping the simulators can judge a version by its metrics.

Each ready replica of a Deployment, StatefulSet or DaemonSet serves `RPS` requests a second (counted
when scraped, from the time since the last scrape); the fraction its pod template's annotation
`sim.promoter.dev/error-rate` gives (e.g. `"0.2"`; absent, unreadable or outside 0..1: 0) answer 500,
the rest 200:

    http_requests_total{app="demo",namespace="apps",workload="demo",kind="Deployment",env="staging",code="500"} 12

`app` is the workload's `promoter.dev/app` label, else its pod template's `app` (or
`app.kubernetes.io/name`) label, else its name.
The counters live in memory: a restarted simulator starts them at 0 again, as a restarted pod does
(Prometheus' `rate` takes that as a counter reset)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from promoter.sim.store import Objects

ERROR_RATE = "sim.promoter.dev/error-rate"
RPS = 10.0  # requests a second, per ready replica
APP_LABEL = "promoter.dev/app"  # promoter.cluster.objects' (the simulator imports nothing of the client)
_KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}


def error_rate(obj: dict[str, Any]) -> float:
    annotations = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
    try:
        rate = float(str(annotations.get(ERROR_RATE, "0")))
    except ValueError:
        return 0.0
    return rate if 0.0 <= rate <= 1.0 else 0.0


def _app(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels = template.get("labels") or {}
    named = labels.get("app") or labels.get("app.kubernetes.io/name")
    return str((meta.get("labels") or {}).get(APP_LABEL) or named or meta["name"])


def _ready(obj: dict[str, Any]) -> int:
    status = obj.get("status") or {}
    return int(status.get("readyReplicas") or status.get("numberReady") or 0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counters:
    """Each workload's requests and errors so far; `advance` counts what its ready replicas served since
    the last call (at its error rate then), `exposition` writes them out. What a workload's object says
    (ready replicas, error rate, labels) is read again only when its resourceVersion moved, so a scrape
    of thousands of workloads costs little more than writing their lines."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str, str], list[float]] = {}  # (plural, namespace, name) -> [ok, errors]
        self.last = time.monotonic()
        self._read: dict[tuple[str, str, str], tuple[str, int, float, str]] = {}  # rv, ready, rate, series

    def _described(self, key: tuple[str, str, str], obj: dict[str, Any], env: str) -> tuple[str, int, float, str]:
        version = str(obj["metadata"].get("resourceVersion"))
        read = self._read.get(key)
        if read is None or read[0] != version:
            labels = (
                f'http_requests_total{{app="{_label(_app(obj))}",namespace="{_label(key[1])}",'
                f'workload="{_label(key[2])}",kind="{_KINDS[key[0]]}",env="{_label(env)}",code='
            )
            read = self._read[key] = (version, _ready(obj), error_rate(obj), labels)
        return read

    def advance(self, objects: Objects, env: str) -> None:
        """Count what each workload served since the last call; a workload gone is forgotten."""
        now = time.monotonic()
        elapsed, self.last = now - self.last, now
        live = set()
        for plural in _KINDS:
            for (_, _, namespace, name), obj in objects.of("apps", plural).items():
                key = (plural, namespace, name)
                _, ready, rate, _ = self._described(key, obj, env)
                served = RPS * ready * elapsed
                counts = self.totals.setdefault(key, [0.0, 0.0])
                counts[0] += served - served * rate
                counts[1] += served * rate
                live.add(key)
        for gone in [key for key in self.totals if key not in live]:
            del self.totals[gone], self._read[gone]

    def exposition(self) -> str:
        """The counters as `advance` left them, in Prometheus' text format."""
        lines = [
            "# HELP http_requests_total Requests the workload's pods answered (simulated), by status code.",
            "# TYPE http_requests_total counter",
        ]
        for key, (ok, errors) in sorted(self.totals.items()):
            series = self._read[key][3]  # up to its code's value
            lines.append(f'{series}"200"}} {ok:.3f}\n{series}"500"}} {errors:.3f}')
        return "\n".join(lines) + "\n"


class Measured(Protocol):
    """What `send_metrics` needs of a simulator (promoter.sim.kube.KubeSim)."""

    env: str
    lock: threading.RLock
    objects: Objects
    counters: Counters


def send_metrics(handler: BaseHTTPRequestHandler, sim: Measured) -> None:
    """Answer `GET /metrics` with the counters, advanced to now."""
    with sim.lock:
        sim.counters.advance(sim.objects, sim.env)
        raw = sim.counters.exposition().encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)
