"""Determinism: recorded histories of PromotionWorkflow (approved, and rejected after a refused
signal) replay against the current code. A change that breaks running workflows fails here; guard it
with `workflow.patched` and record new histories with `python -m tests.histories.record`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from promoter.converter import DATA_CONVERTER
from workflows import RUNNER
from workflows.promotion import PlanWorkflow, PromotionWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 2


@pytest.mark.asyncio
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    replayer = Replayer(
        workflows=[PromotionWorkflow, PlanWorkflow], data_converter=DATA_CONVERTER, workflow_runner=RUNNER
    )
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer.replay_workflow(history)
