"""Many clusters per environment, in waves (`clusters:` and `waves:` in environment.yaml), end to end on
the dev server with real git, the local forge and a simulated cluster per context: a good version goes
through prod's three clusters one wave at a time, in order, with the pause between two waves; a version
that fails health in the first wave's cluster stops the rollout there, the one revert restores that
cluster, the later waves' clusters are never touched, and every cluster ends on the previous version; one
failing in the second wave has both synced clusters restored. Drift compares (and heals) every cluster.
Each wave is verified: a check naming `{{cluster}}` measured for the wave's cluster, the second wave's
failed check reverting both clusters; a cancel that cuts a wave's checks short reverts it (fail closed);
a cancel while a wave syncs lets every wave run to the stage's verdict. Also the parser's bad inputs
for the new keys (one line naming the file and the key), and which checks are measured once per
cluster of a wave (`{{cluster}}`)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from rich.console import Console
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.cli.render import table
from promoter.environments import parse_environment, waves
from promoter.errors import BadInput
from promoter.models import DriftInput, PromotionState, StageState, StageStatus, VerifyConfig
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin
from tests.support.workflows import deployment, failing_in
from workflows.verification import per_cluster

CONTEXTS = ["prod-eu-1", "prod-eu-2", "prod-us-1"]
PAUSE = timedelta(seconds=1)


def prod_in_waves(origin: Origin) -> str:
    """prod as three clusters in waves of one, a second apart (a commit on main)."""
    path = "environments/prod/environment.yaml"
    doc = yaml.safe_load((origin.work / path).read_text())
    del doc["cluster"]
    doc["clusters"] = [{"context": CONTEXTS[0], "namespace": "apps"}, *({"context": c} for c in CONTEXTS[1:])]
    doc["waves"] = {"size": 1, "pause": "1s"}
    doc["health"] = {"timeout": "30s"}
    return origin.commit({path: yaml.safe_dump(doc)}, "prod: three clusters in waves of one")


def kubectl(*args: str, context: str) -> None:
    """As a person runs it, against the kubeconfig the `clusters` fixture wrote (KUBECONFIG)."""
    argv = ["kubectl", "--kubeconfig", os.environ["KUBECONFIG"], "--context", context, "-n", "apps", *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def image(sim: KubeSim) -> str:
    return str(deployment(sim)["spec"]["template"]["spec"]["containers"][0]["image"])


def prod(stages: list[StageStatus]) -> StageStatus:
    return next(s for s in stages if s.env == "prod")


@pytest.mark.asyncio
async def test_waves_in_order_and_a_failing_first_wave_restores_every_synced_cluster(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "prod", "order": 2}])
    prod_in_waves(origin)
    sims = clusters(CONTEXTS)
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        good = await handle.result()
        assert good.state == PromotionState.SUCCEEDED, good.message
        stage = prod(good.stages)
        assert [(c.context, c.wave, c.state) for c in stage.clusters] == [
            (c, i + 1, "healthy") for i, c in enumerate(CONTEXTS)
        ]
        synced = [c.synced_at for c in stage.clusters]
        assert all(synced), synced
        for before, after in zip(synced, synced[1:], strict=False):
            assert before and after and after - before >= PAUSE, synced  # in order, the pause between
        assert all(image(sims[c]).endswith(":2.0.0") for c in CONTEXTS), [image(sims[c]) for c in CONTEXTS]
        assert stage.message.startswith("3 wave(s) healthy: prod-eu-1 → prod-eu-2 → prod-us-1"), stage.message

        # drift looks in every cluster: a hand edit in the last one is found, named by its cluster, and healed
        kubectl("scale", "deployment", "demo", "--replicas", "5", context=CONTEXTS[2])
        seen = await api.drift(dev_env.client, tq, DriftInput(env="prod", heal=False))
        [demo] = seen.drifted
        assert [(d.cluster, d.object, d.path, d.live) for d in demo.drifts] == [
            ("prod-us-1", "Deployment/apps/demo", "spec.replicas", 5)
        ]
        healed = await api.drift(dev_env.client, tq, DriftInput(env="prod", heal=True))
        assert healed.drifted[0].healed and deployment(sims[CONTEXTS[2]])["spec"]["replicas"] == 2

        failing_in(origin, CONTEXTS[0], tag="3.1.0")
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        bad = await handle.result()
        # failing in the second wave: the first wave's cluster, healthy on it, is restored too
        failing_in(origin, CONTEXTS[1], tag="3.2.0")
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        second = await handle.result()

    assert second.state == PromotionState.REVERTED, second.message
    assert [(c.context, c.state) for c in prod(second.stages).clusters] == [
        ("prod-eu-1", "reverted"),
        ("prod-eu-2", "reverted"),
        ("prod-us-1", "pending"),
    ], prod(second.stages).clusters
    assert [image(sims[c]) for c in CONTEXTS] == ["ghcr.io/promoter-dev/demo:2.0.0"] * 3

    assert bad.state == PromotionState.REVERTED, bad.message
    stage = prod(bad.stages)
    assert stage.state == StageState.REVERTED, stage.message
    assert stage.revert_pr_number is not None and stage.revert_commit is not None
    assert [(c.context, c.state) for c in stage.clusters] == [
        ("prod-eu-1", "reverted"),
        ("prod-eu-2", "pending"),
        ("prod-us-1", "pending"),
    ], stage.clusters
    assert stage.clusters[1].synced_at is None and stage.clusters[2].synced_at is None
    assert "untouched: prod-eu-2, prod-us-1" in stage.message, stage.message
    # every cluster ends on the previous version: the first restored by the revert, the others never touched
    assert [image(sims[c]) for c in CONTEXTS] == ["ghcr.io/promoter-dev/demo:2.0.0"] * 3
    console = Console(width=200, record=True)  # promoter status: each cluster's wave and state below prod
    console.print(table(bad))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 3}
    assert "reverted" in rows["prod-eu-1"] and "wave 1: reverted to" in rows["prod-eu-1"], rows
    assert "pending" in rows["prod-eu-2"] and "wave 2" in rows["prod-eu-2"], rows
    reverts = [e for e in bad.audit if e.kind == "revert"]
    assert len(reverts) == 1 and "wave 1/3 (prod-eu-1)" in reverts[0].detail, reverts


GATE = threading.Event()  # /gate answers 503 until it is set


@pytest.fixture
def healthz() -> Iterator[str]:
    """A loopback server answering GET /<context>: 200 for prod-eu-1, 503 for every other cluster;
    GET /gate: 503 until GATE is set."""
    GATE.clear()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            opened = GATE.is_set() if self.path == "/gate" else self.path == f"/{CONTEXTS[0]}"
            self.send_response(200 if opened else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def two_clusters(origin_factory: Callable[..., Origin], check: dict[str, Any], **more: Any) -> Origin:
    """dev, and prod as two clusters in two waves (`groups`), checked by `check` (none when empty)."""
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "prod", "order": 2}])
    path = "environments/prod/environment.yaml"
    doc = yaml.safe_load((origin.work / path).read_text())
    del doc["cluster"]
    doc["clusters"] = [{"context": c, "namespace": "apps"} for c in CONTEXTS[:2]]
    doc["waves"] = [[CONTEXTS[0]], [CONTEXTS[1]]]
    doc.update({"verify": [check] if check else [], **more})
    origin.commit({path: yaml.safe_dump(doc)}, "prod: two clusters, each checked")
    return origin


@pytest.mark.asyncio
async def test_three_clusters_in_waves_of_one_stop_after_the_first_wave_fails_its_verification(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    healthz: str,
) -> None:
    """The issue's case: prod as three clusters in waves of one, a version healthy by its rollout whose check
    fails in the first wave: the rollout stops there, and every cluster ends on the previous version (the
    first reverted, the other two never touched)."""
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "prod", "order": 2}])
    prod_in_waves(origin)
    path = "environments/prod/environment.yaml"
    doc = yaml.safe_load((origin.work / path).read_text())
    doc["verify"] = [{"name": "smoke", "http": {"url": healthz + "/gate"}, "interval": "1s"}]  # 503: not open
    origin.commit({path: yaml.safe_dump(doc)}, "prod: each wave checked")
    sims = clusters(CONTEXTS)
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()
    assert result.state == PromotionState.REVERTED, result.message
    stage = prod(result.stages)
    assert [(c.context, c.state) for c in stage.clusters] == [
        (CONTEXTS[0], "reverted"),
        (CONTEXTS[1], "pending"),
        (CONTEXTS[2], "pending"),
    ], stage.clusters
    assert [(c.cluster or CONTEXTS[0], c.verdict) for c in stage.verification] == [(CONTEXTS[0], "failed")]
    assert not image(sims[CONTEXTS[0]]).endswith(":2.0.0"), image(sims[CONTEXTS[0]])  # back on the previous one
    for untouched in CONTEXTS[1:]:  # never synced: as they were (these fresh clusters held no demo)
        assert ("apps", "deployments", "apps", "demo") not in sims[untouched].objects, untouched


@pytest.mark.asyncio
async def test_a_wave_whose_sync_errors_reverts_the_clusters_already_synced(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    """The second wave's cluster cannot be reached (its context is in no kubeconfig): its sync fails for
    good, which is an unhealthy wave, so the first wave's cluster is reverted, never left on the new
    version; the unreachable one cannot be reverted either, so the promotion fails naming it (never a
    silent "restored"), and the third wave is never touched."""
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "prod", "order": 2}])
    prod_in_waves(origin)
    sims = clusters(CONTEXTS[:1])  # prod-eu-2 and prod-us-1 exist nowhere
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()
    assert result.state == PromotionState.FAILED, (result.state, result.message)
    assert "the revert did not restore health: prod-eu-2: the revert's sync or health failed" in result.message
    stage = prod(result.stages)
    assert [(c.context, c.state) for c in stage.clusters] == [
        (CONTEXTS[0], "reverted"),
        (CONTEXTS[1], "failed"),
        (CONTEXTS[2], "pending"),
    ], [(c.context, c.state, c.message) for c in stage.clusters]
    assert stage.revert_commit, stage  # main is reverted too: one revert PR
    assert not image(sims[CONTEXTS[0]]).endswith(":2.0.0"), image(sims[CONTEXTS[0]])


@pytest.mark.asyncio
async def test_each_wave_is_verified_per_cluster_and_a_failed_check_reverts_every_synced_cluster(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    healthz: str,
) -> None:
    origin = two_clusters(
        origin_factory, {"name": "smoke", "http": {"url": healthz + "/{{cluster}}"}, "interval": "1s"}
    )
    sims = clusters(CONTEXTS[:2])
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()

    assert result.state == PromotionState.REVERTED, result.message
    stage = prod(result.stages)
    assert [(c.cluster, c.target, c.verdict) for c in stage.verification] == [
        (CONTEXTS[0], f"{healthz}/{CONTEXTS[0]}", "passed"),  # the first wave passed its check
        (CONTEXTS[1], f"{healthz}/{CONTEXTS[1]}", "failed"),
    ], stage.verification
    assert [(c.context, c.state) for c in stage.clusters] == [(CONTEXTS[0], "reverted"), (CONTEXTS[1], "reverted")]
    assert "wave 2/2 (prod-eu-2): verification failed: smoke (demo, prod-eu-2)" in stage.message, stage.message
    assert all(not image(sims[c]).endswith(":2.0.0") for c in CONTEXTS[:2]), [image(sims[c]) for c in CONTEXTS[:2]]
    audited = [e.detail for e in result.audit if e.kind == "verify"]
    assert len(audited) == 2 and audited[1].startswith("smoke (demo, prod-eu-2) failed"), audited


@pytest.mark.asyncio
async def test_a_cancel_that_cuts_a_waves_checks_short_reverts_it(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    healthz: str,
) -> None:
    """Fail closed, as for one cluster: the first wave's checks stopped by a cancel leave it unverified,
    so its cluster is reverted, and the second wave's is never touched."""
    smoke = {"name": "smoke", "http": {"url": healthz + "/{{cluster}}"}, "interval": "1s", "count": 60}
    origin = two_clusters(origin_factory, smoke)
    clusters(CONTEXTS[:2])
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        await api.wait_for(handle, lambda s: any(c.taken > 0 for c in prod(s.stages).verification))
        await handle.cancel()
        final = await handle.result()

    assert final.state == PromotionState.REVERTED, (final.state, final.message)
    stage = prod(final.stages)
    (check,) = stage.verification
    assert check.verdict == "stopped" and check.cluster == CONTEXTS[0] and 0 < check.taken < 30
    assert stage.state == StageState.REVERTED and "verification stopped by a cancel" in stage.message
    assert [(c.context, c.state) for c in stage.clusters] == [(CONTEXTS[0], "reverted"), (CONTEXTS[1], "pending")]


@pytest.mark.asyncio
async def test_a_cancel_while_a_wave_syncs_stops_before_the_next_wave_and_reverts(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    healthz: str,
) -> None:
    """A cancel while the first wave's health is judged: that wave is judged to its end (never a sync left
    half done), no later wave is synced (a cancel stops the fleet, never rushes it past its pauses), and
    the clusters synced so far are reverted, as a failing wave's are."""
    origin = two_clusters(origin_factory, {}, health={"timeout": "60s", "http": [{"url": healthz + "/gate"}]})
    sims = clusters(CONTEXTS[:2])
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        await api.wait_for(
            handle, lambda s: bool(prod(s.stages).clusters) and prod(s.stages).clusters[0].state == "synced"
        )
        await handle.cancel()
        GATE.set()
        final = await handle.result()

    stage = prod(final.stages)
    assert final.state == PromotionState.REVERTED, (final.state, final.message)
    assert "cancelled before wave 2/2 (prod-eu-2)" in stage.message, stage.message
    assert [(c.context, c.state) for c in stage.clusters] == [(CONTEXTS[0], "reverted"), (CONTEXTS[1], "pending")]
    assert not image(sims[CONTEXTS[0]]).endswith(":2.0.0"), image(sims[CONTEXTS[0]])
    assert ("apps", "deployments", "apps", "demo") not in sims[CONTEXTS[1]].objects  # never synced


PROD = "name: prod\norder: 2\n"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("cluster: {context: a}\nclusters: [{context: b}]", "clusters: given beside cluster"),
        ("waves: {size: 1}", "waves: needs clusters"),
        ("clusters: [{context: a}, {context: a}]", "clusters: context a is listed twice"),
        (  # contexts name clusters in waves, status and the revert: two kubeconfigs' same name is refused too
            "clusters: [{context: a, kubeconfig: /k1}, {context: a, kubeconfig: /k2}]",
            "clusters: context a is listed twice",
        ),
        ("clusters: [{context: a}, {namespace: x}]", "clusters: entry 2 has no context"),
        ("clusters: [{context: a, namespace: x}, {context: b, namespace: y}]", "clusters: b: namespace y differs"),
        ("clusters: [{context: a}, {context: b}]\nwaves: [[a], [c]]", "waves.groups: unknown context 'c'"),
        ("clusters: [{context: a}, {context: b}]\nwaves: [[a]]", "waves.groups: b in no wave"),
        ("clusters: [{context: a}, {context: b}]\nwaves: [[a, b], [a]]", "waves.groups: a cluster is named twice"),
        ("clusters: [{context: a}]\nwaves: {size: 1, groups: [[a]]}", "waves: give either size"),
        ("clusters: [{context: a}]\nwaves: {size: 0}", "waves.size:"),
        ("clusters: [{context: a}]\nwaves: {size: 1, pause: soon}", "waves.pause:"),
        (
            "verify: [{name: e, http: {url: 'http://x/{{ cluster }}'}}]",
            "verify: e names {{cluster}}, which only an environment with clusters has",
        ),
    ],
)
def test_bad_clusters_and_waves_are_one_line_naming_the_key(text: str, said: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_environment(PROD + text, "environments/prod/environment.yaml", "prod")
    assert str(e.value).startswith(f"environments/prod/environment.yaml: {said}"), str(e.value)
    assert "\n" not in str(e.value)


def test_waves_by_size_by_groups_and_the_first_clusters_namespace() -> None:
    three = "clusters: [{context: a, namespace: apps}, {context: b}, {context: c, version: '1.31'}]\n"
    cfg = parse_environment(PROD + three + "waves: {size: 2, pause: 5m}", "x", "prod")
    assert [[c.context for c in w] for w in waves(cfg)] == [["a", "b"], ["c"]]
    assert [c.namespace for c in cfg.targets()] == ["apps"] * 3 and cfg.cluster.context == "a"
    assert cfg.waves is not None and cfg.waves.pause == timedelta(minutes=5)
    cfg = parse_environment(PROD + three + "waves: [[c], [b, a]]", "x", "prod")
    assert [[c.context for c in w] for w in waves(cfg)] == [["c"], ["b", "a"]]
    cfg = parse_environment(PROD + three, "x", "prod")  # no waves: one wave of every cluster
    assert [[c.context for c in w] for w in waves(cfg)] == [["a", "b", "c"]]
    one = parse_environment(PROD + "cluster: {context: solo}", "x", "prod")
    assert one.clusters is None and [c.context for c in one.targets()] == ["solo"]
    assert [[c.context for c in w] for w in waves(one)] == [["solo"]]


def test_a_check_naming_the_cluster_is_measured_once_per_cluster_of_the_wave() -> None:
    q = "sum(rate(http_requests_total{app='{{app}}',cluster='{{ cluster }}'}[1m]))"
    named = VerifyConfig.model_validate({"name": "errors", "prometheus": {"query": q, "success": "result < 1"}})
    plain = VerifyConfig.model_validate({"name": "smoke", "http": {"url": "http://{{app}}.example/healthz"}})
    got = per_cluster([named, plain], ["eu-1", "eu-2"])
    assert [(c.name, cluster) for c, cluster in got] == [("errors", "eu-1"), ("errors", "eu-2"), ("smoke", "")]
    assert got[0][0].prometheus is not None and "cluster='eu-1'" in got[0][0].prometheus.query
    assert got[1][0].prometheus is not None and "cluster='eu-2'" in got[1][0].prometheus.query
    assert [c for c, _ in per_cluster([named, plain], None)] == [named, plain]  # no wave: as written
