"""The workflow sandbox (workflows/sandbox.py) as each workflow run meets it: the run imports its own
workflow module afresh and nothing else of ours (not `workflows.steps`, which the sandbox imported
again for every run), compiles nothing once a first run of that module has, compiles the SDK's own
code strings once, and still keeps the sandbox's restrictions on the workflow's own module."""

from __future__ import annotations

import importlib._bootstrap_external as bootstrap
from typing import Any

import pytest
from temporalio.workflow import _Definition

from workflows import RUNNER
from workflows.drift import DriftWorkflow
from workflows.promotion import PromotionWorkflow, ResolveWorkflow

OURS = ("workflows", "activities", "promoter")


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The modules of ours whose code a run loads (`get_code`), and the sources compiled meanwhile."""
    loaded: list[str] = []
    compiled: list[str] = []
    get_code, source_to_code = bootstrap.SourceLoader.get_code, bootstrap.SourceLoader.source_to_code

    def counting_get_code(self: Any, fullname: str) -> Any:
        if fullname.split(".")[0] in OURS:
            loaded.append(fullname)
        return get_code(self, fullname)

    def counting_source_to_code(self: Any, data: Any, path: Any, *, _optimize: int = -1) -> Any:
        compiled.append(str(path))
        return source_to_code(self, data, path, _optimize=_optimize)

    monkeypatch.setattr(bootstrap.SourceLoader, "get_code", counting_get_code)
    monkeypatch.setattr(bootstrap.SourceLoader, "source_to_code", counting_source_to_code)
    return loaded, compiled


@pytest.mark.parametrize(
    "cls, module",
    [
        (PromotionWorkflow, "workflows.promotion"),
        (ResolveWorkflow, "workflows.resolve"),
        (DriftWorkflow, "workflows.drift"),
    ],
)
async def test_a_run_imports_its_workflow_module_again_compiled_once(
    imports: tuple[list[str], list[str]], cls: type, module: str
) -> None:
    loaded, compiled = imports
    defn = _Definition.must_from_class(cls)
    RUNNER.prepare_workflow(defn)  # a first run: its module may be compiled
    loaded.clear()
    compiled.clear()
    for _ in range(3):
        RUNNER.prepare_workflow(defn)
    assert sorted(set(loaded)) == ["workflows", module]  # the package's __init__ and the module, afresh
    assert loaded.count(module) == 3  # each run executes its module again
    assert compiled == []


async def test_the_workflow_module_stays_restricted() -> None:
    """The workflow's own module is not passed through: its code meets the sandbox's restrictions."""
    from temporalio.worker.workflow_sandbox._importer import Importer

    importer = Importer(RUNNER.restrictions, None)  # type: ignore[arg-type]
    for name in ("workflows", "workflows.promotion", "workflows.drift", "workflows.claim", "workflows.lift_hold"):
        assert not importer.module_configured_passthrough(name), name
    assert importer.module_configured_passthrough("workflows.steps")


async def test_the_sdks_code_strings_are_compiled_once() -> None:
    """The SDK enters the sandbox by `exec`ing a few code strings, at every activation and for every
    payload: a replay of a whole promotion compiles each string once, and a second replay none."""
    from pathlib import Path

    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    from promoter.converter import DATA_CONVERTER
    from workflows import sandbox

    path = Path(__file__).parent.parent / "histories" / "v2.2_approved.json"
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[PromotionWorkflow], data_converter=DATA_CONVERTER, workflow_runner=RUNNER)
    await replayer.replay_workflow(history)
    compiled = dict(sandbox._snippets)
    assert len(compiled) >= 3  # creating the instance, activating it, a payload's serialization context
    await replayer.replay_workflow(history)
    assert sandbox._snippets == compiled  # the same code objects: nothing compiled again


async def test_no_payloads_context_is_asked_of_the_sandbox_with_a_plain_converter() -> None:
    """promoter's data converter has no codec and no external storage, so the SDK's passes over each
    payload change nothing whatever its context: the context is not asked of the sandbox (each ask
    entered it). A codec or storage added to the converter turns the asking back on."""
    from temporalio.converter._extstore import StorageDriverStoreContext

    from promoter.converter import DATA_CONVERTER
    from workflows import sandbox

    assert DATA_CONVERTER.payload_codec is None and DATA_CONVERTER.external_storage is None
    assert sandbox.PLAIN
    made: list[Any] = []

    class Keeping(type(RUNNER)):  # type: ignore[misc]  # RUNNER's class, keeping the instance it makes
        def create_instance(self, det: Any) -> Any:
            made.append(super().create_instance(det))
            return made[-1]

    Keeping(restrictions=RUNNER.restrictions).prepare_workflow(_Definition.must_from_class(PromotionWorkflow))
    [instance] = made
    assert instance.get_serialization_context(None) is None
    assert instance.get_external_store_context(None) == StorageDriverStoreContext(target=None)
