"""`promoter metrics` and the worker's `promoter_dora_*` gauges, from a scripted week of real promotions
of demo (dev -> staging -> prod, prod gated) on the time-skipping server: a person's commits dated 7, 5,
3 and 2 days back (GIT_COMMITTER_DATE), each promoted; the third fails its rollout in prod and is
reverted (and held) automatically, the fourth restores prod. Every figure is checked exactly against
what the test computes from the commits' own times read back from origin and the merges the promotions
reported: deployments and their rate, lead times (median and p90), change failure rate and time to
restore, per environment, with `--since` (a date, a span), `--env` and `--app`, the table, and the
gauges; a `promoter worker` with metrics on sets them; bad input is exit 2 with one line."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter import metrics as metrics_of
from promoter.cli.metrics import table
from promoter.gitrepo import GitClone
from promoter.metrics import Delivery, Deployment, Revert, figures, link
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from promoter.settings import metrics_runtime
from promoter.sim.controllers import FAIL_IN
from promoter.stack import free_port, wait_until
from promoter.worker import export_delivery
from tests.support.gitops import PROMOTER, Origin
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio

DAY = 86400
ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "staging", "order": 2},
    {
        "name": "prod",
        "order": 3,
        "approval": {"required": 1, "approvers": ["alice"], "pull_request_reviews": False},
    },
]


def push(origin: Origin, tag: str, fail_in: str = "") -> str:
    """A person's change of demo's image in dev (failing its rollout in `fail_in`, if named)."""
    path = "environments/dev/demo/deployment.yaml"
    doc = yaml.safe_load((origin.work / path).read_text())
    template = doc["spec"]["template"]
    template["metadata"]["annotations"] = {FAIL_IN: fail_in} if fail_in else {}
    template["spec"]["containers"][0]["image"] = f"ghcr.io/promoter-dev/demo:{tag}"
    return origin.commit({path: yaml.safe_dump(doc, sort_keys=False)}, f"demo {tag}")


def dated(monkeypatch: pytest.MonkeyPatch, origin: Origin, when: int, tag: str, fail_in: str = "") -> str:
    """`push`, committed at `when` (Unix seconds) by git's clock (GIT_COMMITTER_DATE), as a person whose
    change sat on their machine for days: promoter's own commits keep the real clock."""
    for name in ("GIT_COMMITTER_DATE", "GIT_AUTHOR_DATE"):
        monkeypatch.setenv(name, f"@{when} +0000")
    try:
        return push(origin, tag, fail_in)
    finally:
        for name in ("GIT_COMMITTER_DATE", "GIT_AUTHOR_DATE"):
            monkeypatch.delenv(name)


async def promote(env: WorkflowEnvironment, tq: str) -> PromotionStatus:
    """A promotion of demo through staging, and prod once alice approves (after a day of the server's clock)."""
    handle = await api.start(env.client, tq, await api.resolve(env.client, tq, "demo"))
    with env.auto_time_skipping_disabled():
        await api.wait_for(handle, lambda s: s.stages[2].state == StageState.AWAITING_APPROVAL)
    await env.sleep(timedelta(days=1))
    await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
    return await handle.result()


def median(values: list[int]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def p90(values: list[int]) -> float:
    return float(sorted(values)[math.ceil(0.9 * len(values)) - 1])


def metrics(origin: Origin, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`promoter metrics` as a person runs it, from a fresh process with no Temporal server (a closed port)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "PROMOTER_REPO_URL": origin.url,
            "PROMOTER_TEMPORAL_ADDRESS": f"127.0.0.1:{closed.getsockname()[1]}",
            "PROMOTER_STATE_DIR": str(tmp_path / "no-stack"),
            "PROMOTER_CACHE_DIR": str(tmp_path / "cli-cache"),
        }
        return subprocess.run([*PROMOTER, "metrics", *args], env=env, capture_output=True, text=True, timeout=120)


def as_json(origin: Origin, tmp_path: Path, *args: str) -> dict[str, Any]:
    shown = metrics(origin, tmp_path, *args, "--json")
    assert shown.returncode == 0, shown.stderr
    report: dict[str, Any] = json.loads(shown.stdout)
    return report


def envs_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["env"]: e for e in report["environments"]}


def per_day(report: dict[str, Any], count: int) -> float:
    """`count` deployments over the report's window (its start and end read back; at least a day)."""
    start, end = (datetime.fromisoformat(report["window"][k].replace("Z", "+00:00")) for k in ("start", "end"))
    days = max((end - start).total_seconds(), 86400) / 86400
    assert report["window"]["days"] == days
    return count / days


async def test_a_scripted_week_gives_each_figure_exactly(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    origin = origin_factory(ENVS)
    bare = git.Repo(origin.path)
    week = int((datetime.now(UTC) - timedelta(days=7)).timestamp())
    async with run_worker(ts_env, origin) as tq:
        c1 = dated(monkeypatch, origin, week, "1.1.0")
        first = await promote(ts_env, tq)
        c2 = dated(monkeypatch, origin, week + 2 * DAY, "1.2.0")
        second = await promote(ts_env, tq)
        c3 = dated(monkeypatch, origin, week + 4 * DAY, "1.3.0", fail_in="prod")
        third = await promote(ts_env, tq)  # prod's rollout fails: reverted (and held) at once
        c4 = dated(monkeypatch, origin, week + 5 * DAY + 3 * 3600, "1.4.0")
        fourth = await promote(ts_env, tq)  # prod restored
    promotions, commits = (first, second, third, fourth), (c1, c2, c3, c4)
    assert [p.state for p in (first, second, fourth)] == [PromotionState.SUCCEEDED] * 3
    assert third.state == PromotionState.REVERTED and third.stages[2].state == StageState.REVERTED

    # every expected figure from the commits' own times, read back from origin (what the promotions
    # reported merged, and when git says it was committed)
    def at(sha: str | None) -> int:
        assert sha
        return int(bare.git.log("-1", "--format=%ct", sha))

    staging = [at(p.stages[1].merge_commit) for p in promotions]
    prod = [at(p.stages[2].merge_commit) for p in promotions]
    staging_leads = [m - at(c) for m, c in zip(staging, commits, strict=True)]
    prod_leads = [m - at(c) for m, c in zip(prod, commits, strict=True)]
    assert at(c1) == week and min(staging_leads) > DAY  # the week is in the figures
    restored = prod[3] - at(third.stages[2].revert_commit)

    report = as_json(origin, tmp_path)
    figures = envs_of(report)
    assert list(figures) == ["dev", "staging", "prod"]  # main's environments, in their order
    assert report["schema"] == 1 and report["app"] is None and report["window"]["since"] is None
    assert report["window"]["start"] == iso(staging[0])  # the first promotion's merge
    assert figures["dev"]["deployment_frequency"] == {"deployments": 0, "per_day": 0.0}
    assert figures["staging"]["deployment_frequency"] == {"deployments": 4, "per_day": per_day(report, 4)}
    assert figures["prod"]["deployment_frequency"] == {"deployments": 4, "per_day": per_day(report, 4)}
    lead = {"count": 4, "median": median(staging_leads), "p90": p90(staging_leads)}
    assert figures["staging"]["lead_time_seconds"] == lead
    lead = {"count": 4, "median": median(prod_leads), "p90": p90(prod_leads)}
    assert figures["prod"]["lead_time_seconds"] == lead
    assert figures["staging"]["change_failure_rate"] == {"failed": 0, "merged": 4, "rate": 0.0}
    assert figures["prod"]["change_failure_rate"] == {"failed": 1, "merged": 4, "rate": 0.25}
    assert figures["dev"]["change_failure_rate"] == {"failed": 0, "merged": 0, "rate": None}
    none = {"reverts": 0, "restored": 0, "unrestored": 0, "median": None, "p90": None}
    assert figures["staging"]["time_to_restore_seconds"] == none
    restore = {"reverts": 1, "restored": 1, "unrestored": 0, "median": float(restored), "p90": float(restored)}
    assert figures["prod"]["time_to_restore_seconds"] == restore

    # each deployment and revert, as main records them and the promotions reported them
    shown = [d for d in report["deployments"] if d["env"] == "prod"]
    assert [d["merge"] for d in shown] == [p.stages[2].merge_commit for p in promotions]
    assert [d["commit"] for d in shown] == list(commits)
    assert [d["promotion"] for d in shown] == [p.id for p in promotions]
    assert [d["lead_time_seconds"] for d in shown] == prod_leads
    assert [bool(d["failed_by"]) for d in shown] == [False, False, True, False]
    assert not any(d["break_glass"] for d in report["deployments"])
    [revert] = report["reverts"]
    assert revert["merge"] == shown[2]["failed_by"] == third.stages[2].revert_commit
    assert revert["reverts"] == third.stages[2].merge_commit and revert["held"] == c3
    assert revert["pr_number"] == third.stages[2].revert_pr_number
    assert revert["restored_by"] == fourth.stages[2].merge_commit and revert["time_to_restore_seconds"] == restored

    # --since, by the time of the third promotion's merge into staging: what merged from then on
    cut = staging[2]
    since = as_json(origin, tmp_path, "--since", iso(cut))
    figures = envs_of(since)
    assert since["window"]["start"] == since["window"]["since"] == iso(cut)
    kept = [lead for m, lead in zip(prod, prod_leads, strict=True) if m >= cut]
    assert figures["staging"]["deployment_frequency"] == {"deployments": 2, "per_day": per_day(since, 2)}
    assert figures["prod"]["lead_time_seconds"] == {"count": len(kept), "median": median(kept), "p90": p90(kept)}
    rate = {"failed": 1, "merged": len(kept), "rate": 1 / len(kept)}
    assert figures["prod"]["change_failure_rate"] == rate
    assert figures["prod"]["time_to_restore_seconds"] == restore
    # a span back from now: everything merged in the last two weeks
    assert as_json(origin, tmp_path, "--since", "2w")["deployments"] == report["deployments"]

    # --env and --app narrow what is shown
    only = as_json(origin, tmp_path, "--env", "prod", "--app", "demo")
    assert only["app"] == "demo" and [e["env"] for e in only["environments"]] == ["prod"]
    expected = envs_of(report)["prod"] | {"deployment_frequency": {"deployments": 4, "per_day": per_day(only, 4)}}
    assert only["environments"][0] == expected

    # the table a person reads (shown with -s: docs/metrics.md's example is one)
    print(metrics(origin, tmp_path).stdout)
    table = metrics(origin, tmp_path, "--env", "prod")
    assert table.returncode == 0, table.stderr
    header, _, row = table.stdout.splitlines()
    assert header.startswith(f"main @ {report['main'][:7]}, ") and header.endswith("all apps")
    assert row.split()[:2] == ["prod", "4"] and " 1/4 = 25% " in row and row.split()[-1] == "0"  # no break-glass

    # the worker's gauges: the same figures (the week is within their 30 days), on its /metrics
    port = free_port()
    runtime = metrics_runtime(port, "127.0.0.1")
    export_delivery(runtime.metric_meter, GitClone(origin.url, tmp_path / "worker-cache"))
    text = scrape(port)
    assert value(text, "promoter_dora_deployments", env="prod") == 4.0
    assert value(text, "promoter_dora_deployments", env="dev") == 0.0
    assert value(text, "promoter_dora_break_glass_deployments", env="prod") == 0.0
    assert value(text, "promoter_dora_lead_time_seconds", env="prod", quantile="0.5") == median(prod_leads)
    assert value(text, "promoter_dora_lead_time_seconds", env="staging", quantile="0.9") == p90(staging_leads)
    assert value(text, "promoter_dora_change_failure_rate", env="prod") == 0.25
    assert value(text, "promoter_dora_time_to_restore_seconds", env="prod", quantile="0.9") == restored
    assert str(value(text, "promoter_dora_time_to_restore_seconds", env="staging", quantile="0.5")) == "nan"
    assert value(text, "promoter_dora_deployments_per_day", env="staging") == 4 / 30  # over the last 30 days


def iso(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


async def test_bad_input_is_one_line_saying_what_to_fix(origin: Origin, tmp_path: Path) -> None:
    for args, said in [
        (["--since", "last tuesday"], "--since 'last tuesday' is not a date: give an ISO 8601 date or time"),
        (["--since", "2999-01-01"], "--since '2999-01-01' is in the future"),
        (["--env", "qa"], "unknown environment 'qa'; environments: dev, staging, prod"),
        (["--app", "nope"], "unknown app 'nope'; apps: demo"),
        (["--app", "../x"], "app"),
    ]:
        shown = metrics(origin, tmp_path, *args)
        assert shown.returncode == 2, (args, shown.stdout, shown.stderr)
        assert len(shown.stderr.splitlines()) == 1 and said in shown.stderr, (args, shown.stderr)
    nothing = as_json(origin, tmp_path, "--app", "demo")  # a real app, not promoted yet: zero, not an error
    assert all(e["deployment_frequency"]["deployments"] == 0 for e in nothing["environments"])

    # a merge pushed by hand that looks like promoter's, with an option for a promoted commit and git log's
    # separators in its message: counted as main says (no more), never an argument to git, never a crash
    work = origin.repo
    work.git.checkout("-q", "-b", "forged")
    (origin.work / "environments/prod/demo/forged.txt").write_text("x\n")
    work.git.add("-A")
    work.git.commit("-q", "-m", f"promote(demo): prod\n\nPromoted-Commit: --output={tmp_path / 'planted'}\n")
    work.git.checkout("-q", "main")
    forged = "Merge pull request #9 from promote/demo/prod/abcdef0\n\n\x1eabc\x1fdef\x1fnot-a-time\x1fzzz\x1e\n"
    work.git.merge("-q", "--no-ff", "-m", forged, "forged")
    work.git.push("-q", "origin", "main")
    shown = as_json(origin, tmp_path)
    [counted] = shown["deployments"]
    assert (counted["env"], counted["pr_number"], counted["committed_at"]) == ("prod", 9, None)
    assert not (tmp_path / "planted").exists()


async def test_the_gauges_before_any_promotion(origin: Origin, tmp_path: Path) -> None:
    """Nothing merged yet: zero deployments, and no timing or rate (NaN), not a zero that looks good."""
    port = free_port()
    runtime = metrics_runtime(port, "127.0.0.1")
    export_delivery(runtime.metric_meter, GitClone(origin.url, tmp_path / "worker-cache"))
    text = scrape(port)
    assert value(text, "promoter_dora_deployments", env="staging") == 0.0
    assert str(value(text, "promoter_dora_lead_time_seconds", env="prod", quantile="0.5")) == "nan"
    assert str(value(text, "promoter_dora_change_failure_rate", env="prod")) == "nan"


async def test_a_worker_with_metrics_on_sets_the_gauges(
    origin: Origin, worker_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`promoter worker` with PROMOTER_METRICS_PORT: the gauges appear on its /metrics as it starts (its
    minute's loop runs at once), one per environment of main."""
    port = free_port()
    monkeypatch.setenv("PROMOTER_METRICS_PORT", str(port))
    worker_process(origin, str(uuid.uuid4()))
    seen: list[str] = []

    def exported() -> bool:
        try:
            seen[:] = [scrape(port)]
        except OSError:
            return False
        return 'promoter_dora_deployments{env="prod"' in seen[0]

    wait_until(exported, 60, "the worker's promoter_dora_* gauges")
    assert value(seen[0], "promoter_dora_deployments", env="dev") == 0.0
    assert value(seen[0], "promoter_dora_deployments", env="staging") == 0.0
    assert str(value(seen[0], "promoter_dora_change_failure_rate", env="prod")) == "nan"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} with {labels} in:\n{text}")


def deployment(position: int, env: str, apps: list[str], commit: str, at: int) -> Deployment:
    return Deployment(env, apps, position, f"m{position}", at, commit, at - 60, position=position)


def revert(position: int, env: str, apps: list[str], held: str, reverts: str, at: int) -> Revert:
    return Revert(env, apps, position, f"m{position}", at, reverts, held, position=position)


async def test_which_promotion_a_revert_fails_and_which_restores() -> None:
    """By `Reverts:` first, else by the held commit; a release set's revert restores with any member's
    next healthy promotion there; a promotion a revert failed restores nothing; the order on main, not
    the clock, decides (a revert merged in the second of its promotion still follows it)."""
    d = [
        deployment(0, "prod", ["api", "web"], "c1", 100),  # a release set
        deployment(2, "prod", ["api"], "c2", 200),  # failed by revert 3 (named by the held commit only)
        deployment(4, "prod", ["web"], "c3", 300),  # restores revert 1 (web is of its set), not revert 3
        deployment(5, "staging", ["api"], "c4", 400),  # another environment: restores nothing in prod
        deployment(6, "prod", ["api"], "c5", 500),  # failed by revert 7, merged in the same second
        deployment(8, "prod", ["api"], "c6", 600),  # restores revert 3 and revert 7
    ]
    r = [
        revert(1, "prod", ["api", "web"], "c1", "m0", 150),
        revert(3, "prod", ["api"], "c2", "", 250),
        revert(7, "prod", ["api"], "c5", "m6", 500),
    ]
    link(d, r)
    assert [x.failed_by for x in d] == ["m1", "m3", "", "", "m7", ""]
    assert [(x.restored_by, x.time_to_restore) for x in r] == [("m4", 150), ("m8", 350), ("m8", 100)]
    window, found = figures(Delivery(main="x", since=None, deployments=d, reverts=r), ["staging", "prod"], 700)
    prod = {f.env: f for f in found}["prod"]
    assert (window.start, prod.deployments, prod.failed, prod.restores) == (100, 5, 3, [150, 350, 100])
    web = {f.env: f for f in figures(Delivery("x", None, d, r), ["prod"], 700, app="web")[1]}["prod"]
    assert (web.deployments, web.failed, web.reverts) == (2, 1, 1)
    # promoter's median and nearest-rank p90 (the test's own, above, check the week's figures)
    assert (metrics_of.median([1, 2, 3, 10]), metrics_of.p90([1, 2, 3, 10])) == (2.5, 10.0)
    assert (metrics_of.p90(list(range(1, 11))), metrics_of.median([]), metrics_of.p90([7])) == (9.0, None, 7.0)


def test_the_table_and_the_gauges_count_break_glass_deployments() -> None:
    glass = deployment(1, "prod", ["demo"], "c1", 1_000_000)
    glass.break_glass = True
    delivery = Delivery(main="f" * 40, since=None, deployments=[deployment(0, "prod", ["demo"], "c0", 999_000), glass])
    window, found = figures(delivery, ["prod"], 1_000_100)
    header, columns, row = table(delivery.main, window, found, None)
    assert columns.split()[-1] == "break-glass" and row.split()[:2] == ["prod", "2"] and row.split()[-1] == "1"
    assert ("promoter_dora_break_glass_deployments", {"env": "prod"}, 1.0) in metrics_of.gauge_values(found)
