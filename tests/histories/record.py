"""Record workflow histories for the replay test: `python -m tests.histories.record [promotion|others]`.

Run it only when a change to a workflow is meant to be incompatible *and* is guarded by
`workflow.patched`, or is a documented cut-over (see CONTRIBUTING.md, "Versioning a workflow
change"); otherwise the replay test is exactly what should catch the change. Histories of earlier
versions stay and must keep replaying, unless a cut-over retired them (v1 was, by v2).

`promotion` (the default) writes `<VERSION>_approved.json` (search attributes registered, a refused
signal, the prod gate opened by an approving review on the PR) and `<VERSION>_rejected.json`
(rejected by update) of PromotionWorkflow.

`others` writes one history or more of every other workflow type the worker registers, named
`<type>.<case>.json`, each run for real on the dev server through the product's own calls (`api`):
PlanWorkflow and DryRunWorkflow (`promoter dry-run`), DriftWorkflow healing an app under its claim and
the ReleaseSetClaim it holds meanwhile, LiftHoldWorkflow rejected and then approved (the hold an
automatic revert put), and a release set superseded through a member's claim (the claim cancelled,
and the set, a PromotionWorkflow, cancelled by it).

`drift` writes the DriftWorkflow history alone. Run from an older tree (`git archive <commit>`, this
file copied in, `PROMOTER_HISTORIES=<this folder>`), it records the side of a patch that the
current code only replays: `PROMOTER_HISTORIES_CASE` names the case (e.g. `healed-unclaimed`).

The recorded runs carry no secret: the local forge takes no token, and promoter's commit signing key
is read by the worker from a file, never passed through a workflow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from promoter import api, search
from promoter.converter import DATA_CONVERTER
from promoter.models import Decision, DriftInput, LiftHoldInput, PromotionState, StageState, StageStatus
from promoter.promotions import APPROVE, REJECT
from promoter.settings import Settings
from promoter.sim.kube import KubeSim, kubeconfig
from promoter.stack import binary, seed_origin
from promoter.worker import build_worker
from tests.support.gitops import Origin, make_gitops
from workflows.promotion import PromotionWorkflow

HERE = Path(__file__).parent
OUT = Path(os.environ.get("PROMOTER_HISTORIES", HERE))  # an older tree's run writes into this folder
# v2.2: the search attributes upserted once per workflow task (patch "index-per-task");
# v2.1: a decided gate's PR watcher ends before the promotion does (patch "watchers-awaited");
# v2: the steps folded and made local (issue 13); v1 was retired by a drained cut-over
VERSION = "v2.3"


def write(name: str, history: WorkflowHistory) -> None:
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}.json")


async def fetch(client: Client, wid: str, run_id: str | None = None) -> WorkflowHistory:
    return await client.get_workflow_handle(wid, run_id=run_id).fetch_history()


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


@contextmanager
def webhook() -> Iterator[str]:
    """A webhook receiver on loopback (a free port) that answers 200 to every post."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/drift"
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def stack(
    base: Path, apps: tuple[str, ...] = ("demo",), signed_commits: bool = False
) -> AsyncIterator[tuple[WorkflowEnvironment, Origin, Settings, dict[str, KubeSim]]]:
    """The dev server, an origin of the sample's environments, a simulated cluster per environment and
    a worker; with `signed_commits`, promoter signs what it writes and trust/ lists its key, so that the
    holds a revert puts are believed (docs/approving.md, "Held versions")."""
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER, dev_server_existing_path=binary("temporal"), search_attributes=search.KEYS
    )
    if signed_commits:
        from promoter.stack import demo_keys  # imported here: the trees `drift` records from predate it

        seed_origin(make_gitops(base, apps=apps), base / "origin.git", signers=demo_keys(base / "keys", ("promoter",)))
    else:
        seed_origin(make_gitops(base, apps=apps), base / "origin.git")
    origin = Origin(base / "origin.git", base / "person")
    sims = {e: KubeSim(env=e, rollout_delay_s=0.05).start() for e in ("dev", "staging", "prod")}
    (base / "kubeconfig").write_text(yaml.safe_dump(kubeconfig({e: sim.url for e, sim in sims.items()})))
    os.environ["KUBECONFIG"] = str(base / "kubeconfig")
    settings = Settings(
        task_queue=str(uuid.uuid4()),
        repo_url=origin.url,
        forge_db=str(base / "forge.sqlite"),
        cache_dir=str(base / "cache"),
        review_poll_s=0.1,
        **({"commit_signing_key": str(base / "keys" / "promoter")} if signed_commits else {}),
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            async with build_worker(env.client, settings, pool):
                yield env, origin, settings, sims
    finally:
        for sim in sims.values():
            sim.stop()
        await env.shutdown()


async def promotions() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with stack(Path(tmp)) as (env, origin, settings, _):
            for name, decide in (("approved", "approve"), ("rejected", "reject")):
                origin.bump(tag=f"{name}-1")
                handle = await api.start(
                    env.client, settings.task_queue, await api.resolve(env.client, settings.task_queue, "demo")
                )
                status = await api.wait_for(handle, lambda s: s.stages[2].state == "awaiting_approval")
                await handle.signal(PromotionWorkflow.approve_signal, Decision(env="prod", approver="mallory"))
                if decide == "approve":  # by an approving review on the PR
                    origin.forge().add_review(status.stages[2].pr_number or 0, "alice", "approved", "recorded")
                else:
                    await handle.execute_update(
                        PromotionWorkflow.reject, Decision(env="prod", approver="alice", comment="recorded")
                    )
                await handle.result()
                write(f"{VERSION}_{name}", await handle.fetch_history())


async def drifted_and_healed(
    env: WorkflowEnvironment, origin: Origin, tq: str, sims: dict[str, KubeSim], hook: str
) -> str:
    """staging heals by itself (`drift.self_heal`) and posts drift to the webhook `hook`: demo promoted
    there, then scaled by hand, is put back by a drift check. Returns the check's workflow ID."""
    path = origin.work / "environments/staging/environment.yaml"
    config = yaml.safe_load(path.read_text())
    config["drift"] = {"interval": "5m", "self_heal": True}
    config["notify"] = [{"url": hook, "events": ["drift"]}]  # the check posts each drifted app to it
    origin.commit({"environments/staging/environment.yaml": yaml.safe_dump(config)}, "staging heals drift")
    origin.bump(tag="drift-1")
    handle = await api.start(env.client, tq, await api.resolve(env.client, tq, "demo", to_env="staging"))
    assert (await handle.result()).state == PromotionState.SUCCEEDED
    sims["staging"].objects[("apps", "deployments", "apps", "demo")]["spec"]["replicas"] = 5  # by hand
    report = await api.drift(env.client, tq, DriftInput(env="staging"))
    [demo] = [a for a in report.drifted if a.app == "demo"]  # another app never promoted there is never healed
    assert demo.healed, demo
    found: list[str] = []

    async def listed() -> bool:  # the check is kept (api.drift), under an ID of its own; visibility lags
        found[:] = [wf.id async for wf in env.client.list_workflows("WorkflowType = 'DriftWorkflow'")]
        return len(found) == 1

    await until(listed, "the drift check is listed")
    return found[0]


async def drift() -> None:
    case = os.environ.get("PROMOTER_HISTORIES_CASE", "healed")
    with tempfile.TemporaryDirectory() as tmp, webhook() as hook:
        async with stack(Path(tmp)) as (env, origin, settings, sims):
            check = await drifted_and_healed(env, origin, settings.task_queue, sims, hook)
            write(f"DriftWorkflow.{case}", await fetch(env.client, check))


async def others() -> None:
    captured: dict[str, WorkflowHistory] = {}
    forget = api._forget

    async def kept_then_forgotten(client: Client, wid: str) -> None:  # the short runs are deleted once answered
        captured[wid.rsplit("-", 5)[0]] = await fetch(client, wid)
        await forget(client, wid)

    api._forget = kept_then_forgotten  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp, webhook() as hook:
        async with stack(Path(tmp), apps=("demo", "tools"), signed_commits=True) as (env, origin, settings, sims):
            client, tq = env.client, settings.task_queue
            await api.resolve(client, tq, "demo", to_env="staging")
            write("PlanWorkflow.demo", captured["resolve-demo"])
            await api.dry_run(client, tq, "demo", with_patch=True)
            write("DryRunWorkflow.demo", captured["dry-run-demo"])

            check = await drifted_and_healed(env, origin, tq, sims, hook)
            write("DriftWorkflow.healed", await fetch(client, check))
            claim = await client.get_workflow_handle("promote-demo").describe()  # the heal's claim, its last run
            assert claim.workflow_type == "ReleaseSetClaim", claim.workflow_type
            write("ReleaseSetClaim.released", await fetch(client, claim.id, claim.run_id))

            await held(client, tq, origin)
            await superseded(client, tq, origin)
    api._forget = forget  # type: ignore[method-assign]


async def held(client: Client, tq: str, origin: Origin) -> None:
    """A commit that fails its rollout in staging is reverted and held out of it; a lift of the hold
    is rejected (the hold stays), then another is approved (the hold is lifted)."""
    from tests.support.workflows import failing_in

    bad = failing_in(origin, "staging", tag="held-1")
    handle = await api.start(client, tq, await api.resolve(client, tq, "demo", to_env="staging"))
    assert (await handle.result()).state == PromotionState.REVERTED
    ask = LiftHoldInput(app="demo", env="staging", commit=bad, requested_by="alice", reason="recorded")
    for case, decide in (("rejected", REJECT), ("approved", APPROVE)):
        lift = await api.lift_hold(client, tq, ask)

        async def waiting(lift: Any = lift) -> bool:
            try:
                stage = await lift.query("status", result_type=StageStatus)
            except Exception:  # noqa: BLE001 - its first workflow task has not run yet
                return False
            return stage.state == StageState.AWAITING_APPROVAL

        await until(waiting, "the lift waits for a decision")
        await lift.execute_update(decide, Decision(env="staging", approver="bob", via="cli", comment="recorded"))
        stage = await lift.result()
        assert stage.state == (StageState.HEALTHY if decide == APPROVE else StageState.REJECTED), stage
        write(f"ReleaseHoldWorkflow.{case}", await lift.fetch_history())  # its recorded type's name


async def superseded(client: Client, tq: str, origin: Origin) -> None:
    """A release set of demo and tools waits at prod's gate; a promotion of tools started with
    --supersede meets tools' claim (its visibility missed the set) and supersedes that, as `api.start`
    does: the claim passes it on to the set and is cancelled, and the set ends cancelled."""
    files = {}
    for app in ("demo", "tools"):  # a new image for both, and demo's rollout no longer fails
        path = f"environments/dev/{app}/deployment.yaml"
        doc = yaml.safe_load((origin.work / path).read_text())
        template = doc["spec"]["template"]
        template["metadata"].pop("annotations", None)
        template["spec"]["containers"][0]["image"] = f"ghcr.io/promoter-dev/{app}:set-1"
        files[path] = yaml.safe_dump(doc, sort_keys=False)
    origin.commit(files, "release set-1")
    handle = await api.start(client, tq, await api.resolve(client, tq, "release", members=["demo", "tools"]), "dana")
    await api.wait_for(handle, lambda s: s.stages[2].state == StageState.AWAITING_APPROVAL)
    claim = await client.get_workflow_handle("promote-tools").describe()
    assert claim.workflow_type == "ReleaseSetClaim", claim.workflow_type
    await api._supersede(client, claim.id, await api.resolve(client, tq, "tools", to_env="dev"), "erin", None)
    try:
        await handle.result()
        raise AssertionError("the set was not cancelled")
    except WorkflowFailureError:
        pass  # cancelled through its claim
    write("ReleaseSetClaim.superseded", await fetch(client, claim.id, claim.run_id))
    write(f"{VERSION}_release-set-superseded", await handle.fetch_history())


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "promotion"
    asyncio.run({"promotion": promotions, "others": others, "drift": drift}[which]())
