"""Determinism: recorded histories of every workflow type the worker registers replay against the
current code, with the worker's own workflow classes and sandbox. A change that breaks running
workflows fails here; guard it with `workflow.patched` and record new histories with
`python -m tests.histories.record` (see CONTRIBUTING.md, "Versioning a workflow change").

Covered: PromotionWorkflow (approved by a review after a refused signal, rejected by update, before and
after each of its patches, and a release set superseded through a member's claim), PlanWorkflow,
DryRunWorkflow, DriftWorkflow (a heal under the app's claim, and the older heals recorded on each side
of its patches), ReleaseSetClaim (released by a drift heal, cancelled by a supersede) and
LiftHoldWorkflow (rejected, approved). It also fails when a workflow type the worker registers has
no history, when a patch in the code has no history on each side of it, when a history carries a
secret or grows large, and when a promotion recorded since `index-per-task` upserts its search
attributes more than once per workflow task."""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import pkgutil
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import promoter.worker
import workflows
from promoter.converter import DATA_CONVERTER
from workflows import RUNNER
from workflows.recorder import INDEX_PER_TASK

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
LARGEST = 256 * 1024  # a history is a fixture: one run's worth, not a soak test
SECRETS = re.compile(r"PRIVATE KEY|ghp_|github_pat_|glpat-|Bearer |xox[abp]-|AKIA[0-9A-Z]{16}")


def _evaluate(node: ast.expr, namespace: dict[str, Any], where: str) -> Any:
    # evaluated in the module that wrote it: its own names (a list literal, a constant), never input
    return eval(compile(ast.Expression(node), where, "eval"), namespace)


@cache
def registered() -> tuple[type, ...]:
    """The workflow classes promoter/worker.py gives its Workers (`workflows=`), read from its source
    and evaluated in its namespace: a type added there needs a history here."""
    source = inspect.getsource(promoter.worker)
    found: list[type] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "workflows":
                    found.extend(_evaluate(kw.value, vars(promoter.worker), promoter.worker.__file__))
    assert found, "promoter/worker.py gives no Worker `workflows=`: update how this test reads them"
    return tuple(dict.fromkeys(found))


def type_name(cls: type) -> str:
    return workflow._Definition.must_from_class(cls).name


@cache
def history(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def recorded_type(path: Path) -> str:
    return str(history(path)["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def markers(path: Path) -> set[str]:
    """The patch IDs a history recorded (`workflow.patched` that took the new path)."""
    found = set()
    for event in history(path)["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            [payload] = marker["details"]["patch-data"]["payloads"]
            found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def patches() -> dict[str, bool]:
    """Every patch ID the workflows' code asks about, read from its source: ID → still has an old path
    (`workflow.patched`; False once it is `workflow.deprecate_patch`ed and the old path deleted)."""
    found: dict[str, bool] = {}
    for info in pkgutil.iter_modules(workflows.__path__):
        module = importlib.import_module(f"workflows.{info.name}")
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if node.func.attr in ("patched", "deprecate_patch"):
                    pid = _evaluate(node.args[0], vars(module), str(module.__file__))
                    found[pid] = found.get(pid, False) or node.func.attr == "patched"
    return found


def decoded(value: Any) -> str:
    """A history's text with every payload's data decoded, which is where a leaked value would be."""
    if isinstance(value, dict):
        parts = [decoded(v) for v in value.values()]
        data = value.get("data")
        if isinstance(data, str):
            try:
                parts.append(base64.b64decode(data, validate=True).decode("utf-8", "replace"))
            except ValueError:
                pass  # not base64: the text itself is already in parts
        return "\n".join(parts)
    if isinstance(value, list):
        return "\n".join(decoded(v) for v in value)
    return str(value)


def test_every_registered_workflow_type_has_a_recorded_history() -> None:
    recorded = {recorded_type(p) for p in HISTORIES}
    missing = [type_name(cls) for cls in registered() if type_name(cls) not in recorded]
    assert not missing, (
        f"no recorded history of {missing}: record one with `python -m tests.histories.record` "
        "(tests/histories/record.py), so that a change to it cannot break its runs in flight unseen"
    )
    unknown = recorded - {type_name(cls) for cls in registered()}
    assert not unknown, f"histories of types the worker no longer registers: {unknown}"


def test_every_patch_has_a_history_on_each_side() -> None:
    """A `workflow.patched` keeps an old path for runs recorded before it: a history with the marker
    replays the new path, and one of the same type without it the old path, which nothing else runs."""
    for pid, old_path in patches().items():
        marked = [p for p in HISTORIES if pid in markers(p)]
        assert marked, f"no history recorded patch {pid!r}: record one of the new path"
        if old_path:
            kinds = {recorded_type(p) for p in marked}
            unmarked = [p.name for p in HISTORIES if recorded_type(p) in kinds and pid not in markers(p)]
            assert unmarked, f"no history of {kinds} without patch {pid!r}: its old path is never replayed"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_a_history_is_small_and_carries_no_secret(path: Path) -> None:
    assert path.stat().st_size < LARGEST, f"{path.name}: {path.stat().st_size} bytes; record a shorter run"
    found = SECRETS.search(decoded(history(path)))
    assert found is None, f"{path.name} carries what looks like a secret: {found.group(0)!r}"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    replayer = Replayer(workflows=list(registered()), data_converter=DATA_CONVERTER, workflow_runner=RUNNER)
    await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


PER_TASK = [p for p in HISTORIES if INDEX_PER_TASK in markers(p)]


@pytest.mark.parametrize("path", PER_TASK, ids=[p.stem for p in PER_TASK])
def test_a_promotion_upserts_its_search_attributes_once_per_workflow_task(path: Path) -> None:
    """Since `index-per-task`, the attributes set while local steps run (checking_policy, opening_pr,
    merging, which the server would only ever see together) are one upsert when the workflow task ends:
    at most one upsert of the promotion's own attributes between two workflow tasks. (The replay above
    fails if the code upserted otherwise than the history it recorded.)"""
    per_task: list[int] = [0]
    for event in history(path)["events"]:
        if "workflowTaskCompletedEventAttributes" in event:
            per_task.append(0)
        attributes = event.get("upsertWorkflowSearchAttributesEventAttributes")
        if attributes and set(attributes["searchAttributes"]["indexedFields"]) != {"TemporalChangeVersion"}:
            per_task[-1] += 1
    assert max(per_task) == 1, f"{path.name}: upserts per workflow task {per_task}"
