"""Decision parity: the embedded engine (regorus) and OPA's own Go engine give identical decision
documents over a corpus: the sample apps in every environment, every input a `*_test.rego` runs its
rules with (captured by running the tests), the promotion cases, and 250 generated objects (every
pod-running kind, images from good and confusable registries, tags and digests, privileged,
escalating and root containers, ephemeral and init containers, probes with and without handlers,
host namespaces and paths, missing labels, replicas). A difference fails naming the first input
and the first field that differs."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from promoter.policy import PolicyBundle
from promoter.policy.embedded import EmbeddedEngine
from promoter.policy.goopa import GoOpaEngine
from promoter.policy.testing import discover
from tests.support.policy import CASES, POLICIES, demo_objects, make_input

ENVS = ("dev", "staging", "prod")
KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")
IMAGES = (
    "ghcr.io/promoter-dev/demo:1.2.3",
    "ghcr.io/promoter-dev/demo:latest",
    "ghcr.io/promoter-dev/demo",
    "ghcr.io/promoter-dev/demo@sha256:0a1b",
    "ghcr.io/promoter-devil/demo:1.0",
    "docker.io/library/nginx:1.27",
    "localhost:5000/demo:2",
    "ghcr.io.evil.example/promoter-dev/demo:1",
    "busybox",
)
PROBES = (
    None,
    {},
    {"httpGet": {"path": "/", "port": 80}},
    {"tcpSocket": {"port": 80}},
    {"exec": {"command": ["true"]}},
    {"grpc": {"port": 9}},
    {"periodSeconds": 3},
    "absent",
)


def container(rng: random.Random, name: str) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": rng.choice(IMAGES)}
    if rng.random() < 0.8:
        c["resources"] = {
            k: {r: "1" for r in ("cpu", "memory") if rng.random() < 0.8}
            for k in ("requests", "limits")
            if rng.random() < 0.85
        }
    if rng.random() < 0.85:
        c["securityContext"] = {
            k: rng.choice([True, False])
            for k in ("privileged", "allowPrivilegeEscalation", "runAsNonRoot")
            if rng.random() < 0.7
        }
    for probe in ("readinessProbe", "livenessProbe"):
        choice = rng.choice(PROBES)
        if choice != "absent":
            c[probe] = choice
    if rng.random() < 0.2:
        c["volumeMounts"] = [{"name": "host", "mountPath": "/h", **({"readOnly": True} if rng.random() < 0.5 else {})}]
    return c


def workload(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choice(KINDS)
    spec: dict[str, Any] = {"containers": [container(rng, f"c{j}") for j in range(rng.randint(1, 3))]}
    for helper in ("initContainers", "ephemeralContainers"):
        if rng.random() < 0.25:
            spec[helper] = [container(rng, f"{helper[:4]}{j}") for j in range(rng.randint(1, 2))]
    if rng.random() < 0.6:
        spec["securityContext"] = {"runAsNonRoot": rng.choice([True, False])}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if rng.random() < 0.1:
            spec[field] = True
    if rng.random() < 0.2:
        spec["volumes"] = [
            {"name": "host", "hostPath": {"path": rng.choice(["/", "/var/log", "/var/log/pods", "/var/logs"])}}
        ]
    labels = {k: "demo" for k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of") if rng.random() < 0.85}
    meta = {"name": f"w{i}", "labels": labels, **({"namespace": "apps"} if rng.random() < 0.5 else {})}
    template = {"metadata": {"labels": labels}, "spec": spec}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "CronJob":
        return {
            "apiVersion": "batch/v1",
            "kind": kind,
            "metadata": meta,
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}},
        }
    body: dict[str, Any] = {"template": template}
    if kind in ("Deployment", "StatefulSet") and rng.random() < 0.8:
        body["replicas"] = rng.randint(0, 4)
    return {"apiVersion": "batch/v1" if kind == "Job" else "apps/v1", "kind": kind, "metadata": meta, "spec": body}


def generated(n: int = 250, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    objects = [workload(rng, i) for i in range(n)]
    objects += [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}},
    ]
    return objects


CAPTURE = "package lib.capture_test\n\nimport rego.v1\n\ncapture(x) := x if print(json.marshal(x))\n"
WITH_INPUT = re.compile(r"with input as (.+?)(?=\s+with\s|$)", re.MULTILINE)


def fixture_inputs(bundle: PolicyBundle) -> list[dict[str, Any]]:
    """Every input a `*_test.rego` evaluates its rules with: each `with input as EXPR` is rewritten
    to `with input as capture(EXPR)`, a function that prints its argument, and every test is run on
    OPA's engine, whose prints are collected."""
    from opa_bindings import OpaEngine

    engine = OpaEngine()
    engine.print_handler = lambda message, location: None
    found: dict[str, dict[str, Any]] = {}
    try:
        for path, text in sorted(bundle.modules.items()):
            if path.endswith("_test.rego"):
                text = WITH_INPUT.sub(lambda m: f"with input as capture({m.group(1)})", text)
                text = text.replace("import rego.v1\n", "import data.lib.capture_test.capture\nimport rego.v1\n", 1)
            engine.add_policy(path, text)
        engine.add_policy("lib/capture_test.rego", CAPTURE)
        engine.add_data(bundle.full_data())
        for root in sorted({name.split(".")[1] for name in discover(bundle)}):  # every test of a root at once
            engine.eval_query(f"data.{root}")
            for message, _ in engine.last_prints:
                doc = json.loads(message)
                found.setdefault(json.dumps(doc, sort_keys=True), doc)
    finally:
        engine.close()
    return list(found.values())


def canonical(decision: Any) -> str:
    return json.dumps(decision, sort_keys=True)


def first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path or '(top)'}: embedded {json.dumps(a)[:300]} vs opa-go {json.dumps(b)[:300]}"


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.from_dir(POLICIES)


def corpus(bundle: PolicyBundle, captured: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    inputs = [(f"case {name}", make()) for name, make in CASES.items()]
    for env in ENVS:
        inputs.append((f"sample demo in {env}", make_input(env, objects=demo_objects(env))))
        inputs.append((f"all generated objects in {env}", make_input(env, objects=generated())))
    for i, doc in enumerate(captured):
        inputs.append((f"fixture input #{i} of the Rego tests", doc))
    for i, obj in enumerate(generated()):
        env = ENVS[i % 3]
        inputs.append((f"generated #{i} {obj['kind']} in {env}", make_input(env, [obj])))
    return inputs


def test_both_engines_give_identical_decisions_over_the_corpus(bundle: PolicyBundle) -> None:
    captured = fixture_inputs(bundle)
    assert len(captured) >= 60
    inputs = corpus(bundle, captured)
    assert len(inputs) >= 250 + 3 * 2 + len(CASES) + len(captured)
    embedded, opa = EmbeddedEngine(timeout_s=60), GoOpaEngine()
    try:
        denials = 0
        for name, doc in inputs:
            ours, theirs = embedded.evaluate(bundle, doc), opa.evaluate(bundle, doc)
            assert canonical(ours) == canonical(theirs), f"{name}: {first_difference(ours, theirs)}"
            denials += not ours["allow"]
    finally:
        embedded.close()
        opa.close()
    assert 0.3 * len(inputs) < denials < len(inputs)  # a corpus of both verdicts, not one kind
