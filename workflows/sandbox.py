"""The sandbox every worker and replayer runs the workflows in (`RUNNER`), and what it costs per run.

The sandbox imports a workflow's module afresh for every workflow run it starts (a promotion, each
`resolve`, each drift check), so that no state leaks between runs and its restrictions (no clock, no
I/O, no randomness) apply to that module's code. It should import nothing else afresh:
- `workflows.steps` is passed through: the other workflow modules take it from within
  `imports_passed_through` blocks as `from workflows import steps`, a form under which the sandbox
  imported it again for each run (it found the package `workflows` already in its own modules);
- this module is passed through, so the package's `__init__`, run again for each run, costs nothing;
- `cryptography` (the signed approvals' verification, promoter.signing): its Rust core imports Python
  modules while it runs, which the sandbox would import again, and a native extension cannot be
  loaded twice.
And the workflow modules are compiled once per process (`CompiledOnce`): without bytecode files
(`PYTHONDONTWRITEBYTECODE`, a read-only install) each run's import compiled the module's source again,
about half of the run's start. The module is still executed afresh for each run. The SDK's own code
strings, which it `exec`s to enter the sandbox at every activation and for every payload it encodes or
decodes, are compiled once too (`Runner`; about a fifteenth of the worker's Python time went to
compiling them again). And with promoter's data converter, which has no codec and no external
storage, no payload's context is asked of the sandbox at all (`PLAIN`): the SDK's passes over the
payloads apply only the codec and the storage, so the context picks nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import CodeType, ModuleType
from typing import Any

from temporalio.converter import SerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions, _runner

from promoter.converter import DATA_CONVERTER

PASSED_THROUGH = ("cryptography", "workflows.sandbox", "workflows.steps")

_compiled: dict[tuple[str, bytes], CodeType] = {}  # (path, source) -> its code


class _CompilingOnce(importlib.machinery.SourceFileLoader):
    """A source loader that keeps each compiled source: the same path and bytes give the same code."""

    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> CodeType:  # type: ignore[override]
        key = (str(path), data.encode() if isinstance(data, str) else bytes(data))
        code = _compiled.get(key)
        if code is None:
            code = _compiled[key] = super().source_to_code(data, path, _optimize=_optimize)
        return code


class CompiledOnce(importlib.abc.MetaPathFinder):
    """Finds the `workflows` package's modules as the path finder does, loaded by `_CompilingOnce`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] != "workflows":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _CompilingOnce(spec.loader.name, spec.loader.path)
        return spec


if not any(isinstance(f, CompiledOnce) for f in sys.meta_path):
    sys.meta_path.insert(0, CompiledOnce())

_snippets: dict[str, CodeType] = {}  # the SDK's few code strings, each compiled once


# The worker's and the replayer's data converter has no payload codec and no external storage: the
# passes the SDK makes over every payload of an activation and of its completion (codec, then storage)
# change nothing, and the serialization context each payload's pass asks the sandbox for picks nothing
PLAIN = DATA_CONVERTER.payload_codec is None and DATA_CONVERTER.external_storage is None


class _Instance(_runner._Instance):
    """The SDK's sandboxed instance, whose code strings (one per activation, and one per payload to learn
    its serialization context: a few hundred a promotion) are compiled once, not at every `exec`; and,
    with a data converter that has no codec and no storage (`PLAIN`), whose payloads' contexts are not
    asked of the sandbox (each ask entered it, its import hooks set and reset, for nothing)."""

    def _run_code(self, code: str, **extra_globals: Any) -> None:
        compiled = _snippets.get(code)
        if compiled is None:
            compiled = _snippets[code] = compile(code, "<string>", "exec")
        super()._run_code(compiled, **extra_globals)  # type: ignore[arg-type]  # exec takes code objects

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        return None if PLAIN else super().get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None) if PLAIN else super().get_external_store_context(command_info)


@dataclass(frozen=True)
class Runner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances compile the SDK's code strings once."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _Instance(det, self.runner_class, self.restrictions)


RUNNER = Runner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH))
