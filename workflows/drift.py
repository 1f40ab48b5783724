"""Drift: how an environment's live objects differ from Git, and, with `drift.self_heal`, put back.

Each environment has a Temporal Schedule, `drift-<env>`, made by the worker as it starts (and updated
when main's `drift.interval` changes: the worker re-reads it every minute) and visible on the Web UI's
Schedules page. Every `drift.interval` (environment.yaml, 5 minutes by default) it
runs this workflow. `promoter drift ENV` runs it at once. One step compares every app folder of the
environment with the live objects (`detect_drift`): each against the folder as promoter's own merge
(a promotion's or a revert's) last wrote it, not main's folder, so that a commit pushed to an
environment folder without a promotion is reported (`unpromoted change on main: <commit> by <author>`)
and never deployed by a heal. An environment with `clusters` is compared (and healed) in every one of
them, each difference naming its cluster. The report is the workflow's result: the last scheduled run's result is
the environment's drift. An app with a promotion in flight is left alone (reported `paused`): its sync
and a heal must never fight. Visibility, which says so, lags; so each heal also takes the app's claim
(`promote-<app>`, the one running workflow per app that promotions and release sets hold too, see
workflows/claim.py), compares again under it and only then applies; when a promotion holds the ID,
the app is not healed and the report says so. Each run sets the gauge
`promoter_drift{env, app}` (differences found) and posts a `drift` event to the environment's webhooks
that list it, for each app that differs. Its memo carries a summary (`drift`: the apps checked, and
for each that differs or was paused its first differences), which `promoter status APP` and the Web
UI show without reading the result.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from promoter.models import AppDrift, ClaimInput, DriftInput, DriftReport, NotifyInput, PromotionState
    from promoter.names import workflow_id
    from promoter.promotions import DRIFT_MEMO
    from workflows import steps
    from workflows.claim import RELEASE, ReleaseSetClaim

CLAIMED_HEAL = "drift-heal-claimed"  # heal each app under its claim, after the comparison (was: within it)


@workflow.defn
class DriftWorkflow:
    @workflow.run
    async def run(self, req: DriftInput) -> DriftReport:
        promoting: list[str] = await steps.RUNNING_PROMOTIONS.call(req.env, "promotions in flight")
        req = req.model_copy(update={"paused": sorted(set(req.paused) | set(promoting))})
        claimed = workflow.patched(CLAIMED_HEAL)
        if claimed:
            req = req.model_copy(update={"defer_heal": True})
        report: DriftReport = await steps.DETECT_DRIFT.call(req, f"compare {req.env} with Git")
        if claimed:
            report.apps = [await self._heal(req, app) if app.to_heal else app for app in report.apps]
        gauge = workflow.metric_meter().create_gauge(
            "promoter_drift", "fields and objects whose live state differs from Git", "differences"
        )
        for app in report.apps:
            gauge.set(len(app.drifts), {"env": req.env, "app": app.app})
        for app in report.drifted:
            healed = " (healed: re-applied from Git; live differed from Git)" if app.healed else ""
            for url in report.notify:
                text = f"{app.app} in {req.env} differs from Git @ {report.revision[:7]}{healed}: " + "; ".join(
                    [
                        f"{d.cluster + ': ' if d.cluster else ''}{d.object} {d.path or 'missing'}"
                        for d in app.drifts[:10]
                    ]
                    + [u.line() for u in app.unpromoted[:10]]
                    + ([app.note] if app.note else [])
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

    async def _heal(self, req: DriftInput, app: AppDrift) -> AppDrift:
        """Heal one app while holding `promote-<app>`: no promotion of it can start meanwhile, and none
        runs (else the ID is taken and the app is left as it is). Under the claim the app is compared
        again, with its last promoted revision read again, and only then applied: a promotion that ended
        since the first comparison has moved what the app is healed to."""
        try:
            claim = await workflow.start_child_workflow(
                ReleaseSetClaim.run,
                ClaimInput(app=app.app, commit=app.revision, set_id=workflow.info().workflow_id, requested_by="drift"),
                id=workflow_id(app.app),
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"Held for the drift heal of {app.app} in {req.env}",
            )
        except WorkflowAlreadyStartedError:
            note = f"not healed: {workflow_id(app.app)} is running (a promotion of it); a heal never runs beside one"
            return app.model_copy(update={"to_heal": False, "note": note})
        outcome = PromotionState.FAILED
        try:
            again = DriftInput(env=req.env, apps=[app.app], heal=True)
            found: DriftReport = await steps.DETECT_DRIFT.call(
                again, f"heal {app.app} (compared again, under its claim)"
            )
            [healed] = found.apps
            outcome = PromotionState.SUCCEEDED
            return healed
        except ActivityError as e:
            return app.model_copy(update={"to_heal": False, "note": f"not healed: {steps.cause(e)}"})
        finally:
            try:
                await claim.signal(RELEASE, outcome)
                await claim
            except (ApplicationError, ChildWorkflowError):
                pass  # it has ended already (cancelled by hand, or by a supersede): the app is free all the same


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
                # what was pushed to the app's folder on main and never promoted; why it was not healed
                **({"unpromoted": [u.line() for u in a.unpromoted[:SHOWN]]} if a.unpromoted else {}),
                **({"note": a.note} if a.note else {}),
            }
            for a in report.apps
            if a.drifts or a.paused or a.unpromoted
        },
    }
