"""Sync of an app of 10, 100 and 1,000 objects to the simulated API server (first sync and an
unchanged re-sync), and the time from a failed health verdict to the reverted state healthy again.

The sync figures talk to a simulator in its own process, as `promoter up` runs it (a real API server
is another machine): it validates every write against the schemas and keeps managed fields, as a
real one does, and that work is not the client's.

The revert figure comes from a real promotion (Temporal dev server, in-process worker, real git,
local forge, simulated clusters with a 0.2 s rollout delay, as `promoter up` runs them): the time
from the `revert` activity being scheduled (right after the failed verdict) to the workflow's end,
which covers the revert commit, its PR and merge, the sync and the health of the reverted state.

    .venv/bin/python bench/sync_bench.py
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bench.generated import generated_objects  # noqa: E402
from promoter import api  # noqa: E402
from promoter.cluster import KubeCluster  # noqa: E402
from promoter.converter import DATA_CONVERTER  # noqa: E402
from promoter.settings import Settings  # noqa: E402
from promoter.sim.kube import FAIL_IN, KubeSim, kubeconfig  # noqa: E402
from promoter.stack import binary, seed_origin, wait_until  # noqa: E402
from promoter.worker import build_worker  # noqa: E402


@contextlib.contextmanager
def simulator() -> Iterator[str]:
    """A simulated API server in its own process (`python -m promoter.sim`, as `promoter up` runs it,
    and as a real cluster is another machine): its URL."""
    with tempfile.TemporaryDirectory(prefix="promoter-sync-bench-sim-") as tmp:
        config = Path(tmp) / "kubeconfig"
        proc = subprocess.Popen(
            [sys.executable, "-m", "promoter.sim", "--kubeconfig", str(config), "--env", "bench"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: config.exists() or proc.poll() is not None, 30, "the simulator")
            yield yaml.safe_load(config.read_text())["clusters"][0]["cluster"]["server"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def sync_figures() -> dict[str, dict[str, float]]:
    figures = {}
    for n in (10, 100, 1000):
        with simulator() as url:
            configuration = client.Configuration()
            configuration.host = url
            cluster = KubeCluster(client.ApiClient(configuration), "apps")
            objects = generated_objects(n, "staging")
            t0 = time.perf_counter()
            cluster.sync("bench", "bench", objects)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            outcome = cluster.sync("bench", "bench", objects)
            again = time.perf_counter() - t0
            assert outcome.unchanged == n
        figures[str(n)] = {
            "first_s": round(first, 3),
            "resync_s": round(again, 3),
            "per_object_ms": round(first / n * 1000, 2),
        }
        print(
            f"{n:>5} objects: first sync {first:.3f} s ({first / n * 1000:.2f} ms/object), "
            f"unchanged re-sync {again:.3f} s"
        )
    return figures


async def revert_figure() -> float:
    with tempfile.TemporaryDirectory(prefix="promoter-sync-bench-") as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "src"
        for folder in ("environments", "policies"):
            shutil.copytree(ROOT / folder, src / folder)
        deployment = src / "environments" / "dev" / "demo" / "deployment.yaml"
        seed_origin(src, tmp / "origin.git")
        sims = {env: KubeSim(env=env, rollout_delay_s=0.2).start() for env in ("dev", "staging", "prod")}
        (tmp / "kubeconfig").write_text(yaml.safe_dump(kubeconfig({e: s.url for e, s in sims.items()})))
        import os

        os.environ["KUBECONFIG"] = str(tmp / "kubeconfig")
        import git

        person = git.Repo.clone_from(str(tmp / "origin.git"), tmp / "person")
        doc = yaml.safe_load((tmp / "person" / deployment.relative_to(src)).read_text())
        doc["spec"]["template"]["metadata"]["annotations"] = {FAIL_IN: "staging"}
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/promoter-dev/demo:9.9.9"
        (tmp / "person" / deployment.relative_to(src)).write_text(yaml.safe_dump(doc))
        person.git.execute(["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qam", "fail in staging"])
        person.git.push("-q", "origin", "main")
        env = await WorkflowEnvironment.start_local(
            data_converter=DATA_CONVERTER, dev_server_existing_path=binary("temporal")
        )
        try:
            settings = Settings(
                task_queue=str(uuid.uuid4()),
                repo_url=str(tmp / "origin.git"),
                forge_db=str(tmp / "forge.sqlite"),
                cache_dir=str(tmp / "cache"),
            )
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                async with build_worker(env.client, settings, pool):
                    plan = await api.resolve(env.client, settings.task_queue, "demo")
                    handle = await api.start(env.client, settings.task_queue, plan)
                    result = await handle.result()
                    assert result.state.value == "reverted", result.message
                    history = await handle.fetch_history()
        finally:
            await env.shutdown()
            for s in sims.values():
                s.stop()
    scheduled = next(
        e.event_time.ToDatetime()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "revert"
    )
    ended = history.events[-1].event_time.ToDatetime()
    return (ended - scheduled).total_seconds()


def main() -> None:
    figures = sync_figures()
    revert_s = asyncio.run(revert_figure())
    print(f"failed verdict -> reverted and healthy again: {revert_s:.3f} s")
    print(json.dumps({"sync": figures, "revert_to_healthy_s": round(revert_s, 3)}))


if __name__ == "__main__":
    main()
