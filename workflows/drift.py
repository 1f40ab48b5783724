"""Drift: how an environment's live objects differ from Git, and, with `drift.self_heal`, put back.

Each environment has a Temporal Schedule, `drift-<env>`, made by the worker as it starts and visible
on the Web UI's Schedules page. Every `drift.interval` (environment.yaml, 5 minutes by default) it
runs this workflow. `promoter drift ENV` runs it at once. One step compares every app folder of the
environment on main with the live objects (`detect_drift`). The report is the workflow's result:
the last scheduled run's result is the environment's drift.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter.models import DriftInput, DriftReport
    from workflows import steps


@workflow.defn
class DriftWorkflow:
    @workflow.run
    async def run(self, req: DriftInput) -> DriftReport:
        step = steps.DETECT_DRIFT.but(start_to_close=timedelta(minutes=10))
        report: DriftReport = await step.call(req, f"compare {req.env} with Git")
        return report
