"""The whole policy set over generated Deployments and Services, through both engines side by side:
the embedded engine (regorus, in its engine process, as the worker runs it) and OPA's own Go engine
(`opa-go`, in process), when it is installed.

Cold: the first evaluation of a policy revision (engine start, compiling every module, the evaluation
itself). Warm: later evaluations of the same revision, which is how the worker runs. For 1,000 objects
it prints p50/p99 per evaluation and objects per second for each engine; then the warm median for 250
to 4,000 objects to show how the cost grows. Its last lines time `promoter policy check` on the sample
app as pre-commit runs it (a fresh process each time, median of 10) and say `<N> objects/s` (embedded,
warm, 1,000 objects). Before the engines, the schema gate (promoter/schemas.py) over the same 1,000
objects: cold (the version's schemas read and each kind's validator compiled) and warm (the median of
later checks, as the worker runs them); the Rego input then carries its findings, as in a promotion.

    .venv/bin/python bench/policy_bench.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generated import generated_objects  # noqa: E402
from promoter import schemas  # noqa: E402
from promoter.models import EnvironmentConfig, PolicyCheckInput  # noqa: E402
from promoter.policy import PolicyBundle, build_input, decide, schema_input  # noqa: E402
from promoter.policy.embedded import EmbeddedEngine  # noqa: E402
from promoter.policy.goopa import GoOpaEngine, available  # noqa: E402


def document(n: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    env = EnvironmentConfig.model_validate(yaml.safe_load((ROOT / "environments/prod/environment.yaml").read_text()))
    now = datetime.now(UTC)
    req = PolicyCheckInput(
        promotion_id="bench",
        app="bench",
        commit="0" * 40,
        author="bench <b@x>",
        source_env="dev",
        target_env="prod",
        started_at=now,
        evaluated_at=now,
        environment=env,
        environments=["dev", "staging", "prod"],
        history=[
            {"env": "dev", "state": "healthy", "healthy_since": now},
            {"env": "staging", "state": "healthy", "healthy_since": now},
        ],
    )
    objects = generated_objects(n, "prod")
    return build_input(req, objects, schema_input(env, objects))


def measure(engine: Any, bundle: PolicyBundle, runs: int) -> dict[str, Any]:
    doc = document(1000)
    t0 = time.perf_counter()
    first = decide(engine, bundle, doc)
    cold = time.perf_counter() - t0
    assert first.allow, first.deny[:3]
    warm = []
    for _ in range(runs):
        t0 = time.perf_counter()
        decision = decide(engine, bundle, doc)
        warm.append(time.perf_counter() - t0)
        assert decision.allow
    warm.sort()
    p50 = statistics.median(warm)
    p99 = warm[min(len(warm) - 1, int(len(warm) * 0.99))]
    print(
        f"{engine.name}: 1000 objects: cold {cold:.3f} s; warm p50 {p50:.3f} s, p99 {p99:.3f} s over {runs} runs "
        f"({1000 / p50:.0f} objects/s)"
    )
    scaling = {}
    for n in (250, 500, 1000, 2000, 4000):
        d = document(n)
        times = []
        for _ in range(max(3, runs // 4)):
            t0 = time.perf_counter()
            decide(engine, bundle, d)
            times.append(time.perf_counter() - t0)
        scaling[n] = statistics.median(times)
        print(f"  {n:>5} objects: warm median {scaling[n]:.3f} s ({scaling[n] / n * 1e6:.0f} µs per object)")
    engine.close()
    return {
        "objects": 1000,
        "cold_s": round(cold, 3),
        "warm_p50_s": round(p50, 3),
        "warm_p99_s": round(p99, 3),
        "warm_objects_per_s": round(1000 / p50),
        "scaling_median_s": {str(k): round(v, 3) for k, v in scaling.items()},
    }


def schema_gate(runs: int) -> dict[str, Any]:
    """1,000 objects against Kubernetes 1.31's schemas: the first check (schemas read, validators
    compiled) and later ones."""
    objects = generated_objects(1000, "prod")
    t0 = time.perf_counter()
    first = schemas.check(objects, "1.31")
    cold = time.perf_counter() - t0
    assert first == [], first[:3]
    warm = []
    for _ in range(runs):
        t0 = time.perf_counter()
        schemas.check(objects, "1.31")
        warm.append(time.perf_counter() - t0)
    p50 = statistics.median(warm)
    rate = f"{1000 / p50:.0f} objects/s"
    print(f"schema gate: 1000 objects: cold {cold:.3f} s; warm median {p50:.3f} s over {runs} runs ({rate})")
    return {"objects": 1000, "cold_s": round(cold, 3), "warm_median_s": round(p50, 3)}


def policy_check_wall(runs: int = 10) -> float:
    """`promoter policy check --env staging --app demo`, a fresh process each time, as pre-commit runs it."""
    promoter = Path(sys.executable).parent / "promoter"
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(promoter), "policy", "check", "--env", "staging", "--app", "demo"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        times.append(time.perf_counter() - t0)
        assert done.returncode == 0, done.stdout + done.stderr
    return statistics.median(times)


def main(runs: int) -> None:
    bundle = PolicyBundle.from_dir(ROOT / "policies")
    results = {"schema_gate": schema_gate(runs), "embedded": measure(EmbeddedEngine(timeout_s=120), bundle, runs)}
    if available():
        results["opa-go"] = measure(GoOpaEngine(), bundle, runs)
    else:
        print("opa-go: not installed (pip install --ignore-requires-python opa-golib-python-bindings==0.4.4)")
    wall = policy_check_wall()
    print(json.dumps({**results, "policy_check_wall_median_s": round(wall, 3)}))
    print(f"promoter policy check (one app, fresh process): median {wall:.3f} s over 10 runs")
    print(f"{results['embedded']['warm_objects_per_s']} objects/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    main(parser.parse_args().runs)
