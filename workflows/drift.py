"""Drift: how an environment's live objects differ from Git, and, with `drift.self_heal`, put back.

Each environment has a Temporal Schedule, `drift-<env>`, made by the worker as it starts and visible
on the Web UI's Schedules page. Every `drift.interval` (environment.yaml, 5 minutes by default) it
runs this workflow. `promoter drift ENV` runs it at once. One step compares every app folder of the
environment on main with the live objects (`detect_drift`). The report is the workflow's result:
the last scheduled run's result is the environment's drift. An app with a promotion in flight is
left alone (reported `paused`): its sync and a heal must never fight. Each run sets the gauge
`promoter_drift{env, app}` (differences found) and posts a `drift` event to the environment's webhooks
that list it, for each app that differs. Its memo carries a summary (`drift`: the apps checked, and
for each that differs or was paused its first differences), which `promoter status APP` and the Web
UI show without reading the result.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from promoter.models import DriftInput, DriftReport, NotifyInput
    from promoter.promotions import DRIFT_MEMO
    from workflows import steps


@workflow.defn
class DriftWorkflow:
    @workflow.run
    async def run(self, req: DriftInput) -> DriftReport:
        promoting: list[str] = await steps.RUNNING_PROMOTIONS.call(req.env, "promotions in flight")
        req = req.model_copy(update={"paused": sorted(set(req.paused) | set(promoting))})
        report: DriftReport = await steps.DETECT_DRIFT.call(req, f"compare {req.env} with Git")
        gauge = workflow.metric_meter().create_gauge(
            "promoter_drift", "fields and objects whose live state differs from Git", "differences"
        )
        for app in report.apps:
            gauge.set(len(app.drifts), {"env": req.env, "app": app.app})
        for app in report.drifted:
            healed = " (healed: re-applied from Git; live differed from Git)" if app.healed else ""
            for url in report.notify:
                text = f"{app.app} in {req.env} differs from Git @ {report.revision[:7]}{healed}: " + "; ".join(
                    f"{d.object} {d.path or 'missing'}" for d in app.drifts[:10]
                )
                notice = NotifyInput(
                    url=url,
                    event="drift",
                    text=text,
                    promotion_id=workflow.info().workflow_id,
                    app=app.app,
                    env=req.env,
                    commit=report.revision,
                    state="healed" if app.healed else "drifted",
                )
                try:
                    await steps.NOTIFY.call(notice, f"notify drift of {app.app}")
                except ActivityError:
                    pass  # a webhook that fails never fails the check: the report is the record
        if workflow.patched("drift-memo"):
            workflow.upsert_memo({DRIFT_MEMO: summary(report)})
        return report


SHOWN = 10  # differences per app kept in the memo (the result has them all)


def summary(report: DriftReport) -> dict[str, object]:
    """What the memo keeps of a report: small, whatever the environment's size."""
    return {
        "env": report.env,
        "revision": report.revision,
        "checked_at": report.checked_at.isoformat(),
        "checked": [a.app for a in report.apps if not a.paused],
        "apps": {
            a.app: {
                "count": len(a.drifts),
                "healed": a.healed,
                "paused": a.paused,
                "drifts": [d.model_dump(mode="json") for d in a.drifts[:SHOWN]],
            }
            for a in report.apps
            if a.drifts or a.paused
        },
    }
