"""Temporal workflows: deterministic orchestration only, no I/O."""

from workflows.sandbox import RUNNER

__all__ = ["RUNNER"]
