"""No value leaks, end to end (issue 25): on a real Temporal dev server, a distinctive secret is planted
where a person would put one by mistake, and everything promoter wrote is searched for it afterwards:
every workflow's history on the task queue (inputs, results, memos, activity failures, heartbeats), the
worker's log records and output, every PR body and comment of the forge, and every webhook payload.
It must appear 0 times (raw, or base64 as a Secret's data holds it).

- In Git: a Secret whose `stringData.password` is the planted number (a schema finding: the wrong type)
  and a container env `DB_PASSWORD` with the planted string. The promotion is denied before any PR.
- In the cluster: after a clean promotion, a person sets `DB_PASSWORD` to the planted string by hand
  (`kubectl set env`); the drift check reports it, a webhook hears of it, and the heal puts Git back.

tests/hostile/test_no_value_leaks.py covers, in process, what this cannot reach here: a forge that
quotes its token back (the local forge has none) and a `Link` header naming another host."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.cluster import HIDDEN
from promoter.models import NOTIFY_EVENTS, DriftInput, PromotionState
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio

PLANTED = "s3cr3t-e2e-9c4f1b7d"
NUMBER = 7318264950137  # a password YAML reads as an integer: the schema finding's value


def leaks(text: str) -> list[str]:
    forms = {f for s in (PLANTED, str(NUMBER)) for f in (s, base64.b64encode(s.encode()).decode())}
    return sorted(f for f in forms if f in text)


def readable(node: Any) -> list[str]:
    """Every string in a history's JSON, with each payload's data (base64 there) decoded."""
    if isinstance(node, dict):
        found = [s for value in node.values() for s in readable(value)]
        if isinstance(node.get("data"), str) and "metadata" in node:  # a Payload: its bytes are base64 in JSON
            found.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
        return found
    if isinstance(node, list):
        return [s for value in node for s in readable(value)]
    return [node] if isinstance(node, str) else []


async def everything_written(env: WorkflowEnvironment, task_queue: str, at_least: int) -> str:
    """Every workflow history on `task_queue`, payloads decoded (visibility lags: wait until it lists them)."""
    deadline = time.monotonic() + 30
    while True:
        ids = [w.id async for w in env.client.list_workflows(f'TaskQueue="{task_queue}"')]
        if len(ids) >= at_least or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(ids) >= at_least, ids
    found = []
    for wid in sorted(set(ids)):
        async for history in env.client.list_workflows(f'WorkflowId="{wid}"'):
            events = await env.client.get_workflow_handle(wid, run_id=history.run_id).fetch_history()
            found += readable(json.loads(events.to_json()))
    return "\n".join(found)


async def test_a_planted_secret_appears_nowhere_promoter_writes(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    hooks: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    notify = [{"url": f"{hooks['url']}/ok", "events": sorted(NOTIFY_EVENTS)}]  # every event, drift too
    envs: list[dict[str, object]] = [
        {"name": "dev", "order": 1, "notify": notify},
        {"name": "staging", "order": 2, "notify": notify, "drift": {"interval": "5m", "self_heal": True}},
    ]
    origin = origin_factory(envs)
    path = "environments/dev/demo/deployment.yaml"
    manifest = yaml.safe_load((origin.work / path).read_text())
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": "from-vault"}]
    clean = yaml.safe_dump(manifest)  # drift compares what Git sets: the variable is in Git, its value is not secret
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": PLANTED}]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": NUMBER}}
    origin.commit(
        {path: yaml.safe_dump(manifest), "environments/dev/demo/secret.yaml": yaml.safe_dump(secret)},
        "demo: a database password, by mistake",
    )
    async with run_worker(dev_env, origin) as tq:
        sims = clusters([])
        denied = await (await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))).result()
        assert denied.state == PromotionState.POLICY_DENIED, denied.message
        rules = {d.rule for d in denied.stages[0].policy.deny} if denied.stages[0].policy else set()
        assert "kubernetes.secrets.deny_literal_secret" in rules, rules  # the planted values were seen

        origin.commit({path: clean, "environments/dev/demo/secret.yaml": None}, "demo: the password goes")
        origin.bump(tag="5.0.0")
        promoted = await (await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))).result()
        assert promoted.state == PromotionState.SUCCEEDED, promoted.message

        done = subprocess.run(
            ["kubectl", "--kubeconfig", os.environ["KUBECONFIG"], "--context", "staging", "-n", "apps"]
            + ["set", "env", "deployment/demo", f"DB_PASSWORD={PLANTED}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        report = await api.drift(dev_env.client, tq, DriftInput(env="staging"))
        [demo] = report.drifted
        assert demo.healed and [d.path for d in demo.drifts] == ["spec.template.spec.containers"], demo
        [drift] = demo.drifts  # lists are compared whole: the containers, with the secret's value masked on both sides
        assert [c[0]["env"] for c in (drift.git, drift.live)] == [[{"name": "DB_PASSWORD", "value": HIDDEN}]] * 2
        live = sims["staging"].objects[("apps", "deployments", "apps", "demo")]
        assert PLANTED not in str(live["spec"])  # healed back to Git

        histories = await everything_written(dev_env, tq, at_least=3)  # two promotions and the drift check
    assert PLANTED in str(manifest) and "DB_PASSWORD" in histories  # the search looks where the value was
    forge = origin.forge()
    prs = forge.list_pull_requests()
    assert prs, "the clean promotion opened PRs"
    written = {
        "workflow histories": histories,
        "PR bodies and comments": "\n".join(p.body + "\n".join(forge.comments(p.number)) for p in prs),
        "webhook payloads": repr(hooks["got"]),
        "worker log records": "\n".join(r.getMessage() + repr(r.args) for r in caplog.records),
        "worker output": "".join(capfd.readouterr()),
    }
    assert hooks["got"] and any("drift" in repr(h) for h in hooks["got"])
    assert {where: leaks(text) for where, text in written.items() if leaks(text)} == {}
