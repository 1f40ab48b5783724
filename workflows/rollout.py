"""A merged stage's rollout: sync the environment's cluster to a revision, judge its health, and when
it is unhealthy revert the merge (a revert PR merged without a gate), sync the revert and judge it
again. Deterministic: workflow code only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter.models import (
        Event,
        HealthInput,
        HealthResult,
        PromotionState,
        RevertInput,
        StageState,
        StageStatus,
        SyncInput,
    )
    from workflows import steps
    from workflows.recorder import Promotion, Recorder
    from workflows.verification import Verification


class Rollout:
    def __init__(self, promotion: Promotion, recorder: Recorder, runner: steps.Runner) -> None:
        self.p = promotion
        self.r = recorder
        self.runner = runner
        self.verification = Verification(recorder, runner)

    async def verify(self, stage: StageStatus, revision: str) -> bool:
        """Sync and judge `revision`, then run the environment's `verify` checks (when it has any);
        healthy and verified: the stage is healthy, else it is reverted (or fails)."""
        health = await self._sync_and_judge(stage, revision)
        cfg = self.p.envs[stage.env].config
        healthy_at = workflow.now()
        if health.healthy and cfg.verify:
            failed = await self.verification.run(stage, cfg, self.p.plan.apps)
            passed = f"{len(stage.verification)} verify check(s) passed"
            if any(c.verdict == "stopped" for c in stage.verification):
                passed = "verification stopped by a cancel"
            said = failed or f"{health.reason}; {passed}"
            health = HealthResult(healthy=not failed, reason=said, engine=health.engine)
        if health.healthy:
            self.r.set(stage, StageState.HEALTHY, health.reason)
            # with a soak, the checks measured across it: the soak counts from the rollout's health
            stage.finished_at = healthy_at if cfg.verify and cfg.soak else workflow.now()
            self.r.notify(stage, "succeeded", f"{self.p.label} is healthy in {stage.env}")
            return True
        healthy = await self._revert(stage, self.p.envs[stage.env].config.revert.automatic, health.reason)
        event: Event = "reverted" if stage.state == StageState.REVERTED else "failed"
        self.r.notify(stage, event, f"{self.p.label} in {stage.env}: {stage.message}")
        return healthy

    async def _sync_and_judge(self, stage: StageStatus, revision: str) -> HealthResult:
        """Sync every app (each member of a release set, in turn), then judge every app's health:
        healthy only when all are."""
        cfg = self.p.envs[stage.env].config
        apps = self.p.plan.apps
        reverting = stage.state == StageState.REVERTING  # the revert's sync keeps the stage `reverting`
        self.r.set(stage, stage.state if reverting else StageState.SYNCING, f"syncing {revision[:7]}")
        applied = unchanged = pruned = 0
        notes: list[str] = []
        for app in apps:
            sync = SyncInput(
                promotion_id=self.p.status.id, app=app, env=stage.env, revision=revision, cluster=cfg.cluster
            )
            of = f" ({app})" if self.p.plan.members else ""
            synced = await self.runner.run(steps.SYNC, sync, f"sync {stage.env} to {revision[:7]}{of}")
            applied, unchanged, pruned = applied + synced.applied, unchanged + synced.unchanged, pruned + synced.pruned
            notes += [synced.note] if synced.note else []
        if not reverting:
            counts = f"{applied} applied, {unchanged} unchanged, {pruned} pruned"
            self.r.set(stage, StageState.VERIFYING, "; ".join([counts, *notes]))
        step = steps.health_step(cfg.health.timeout or timedelta(minutes=5))
        verdicts: list[tuple[str, HealthResult]] = []
        for app in apps:
            check = HealthInput(
                app=app,
                env=stage.env,
                revision=revision,
                cluster=cfg.cluster,
                timeout=cfg.health.timeout,
                http=cfg.health.http,
            )
            of = f" ({app})" if self.p.plan.members else ""
            verdicts.append((app, await self.runner.run(step, check, f"health of {stage.env} at {revision[:7]}{of}")))
        if len(verdicts) == 1:
            reasons = verdicts[0][1].reason
            sick = [] if verdicts[0][1].healthy else verdicts
        else:
            sick = [(app, v) for app, v in verdicts if not v.healthy]
            reasons = "; ".join(f"{app}: {v.reason}" for app, v in (sick or verdicts))
        said = "; ".join([reasons, *notes])  # what the sync said once (an inventory built) stays on the stage
        return HealthResult(healthy=not sick, reason=said, engine=verdicts[0][1].engine)

    async def _revert(self, stage: StageStatus, automatic: bool, reason: str) -> bool:
        unhealthy = f"unhealthy: {reason}"
        if stage.source or stage.merge_commit is None or stage.pr_number is None:
            why = "the source environment has nothing to revert to: fix it in the source folder and promote again"
            self.r.end(stage, StageState.FAILED, f"{unhealthy}; {why}", PromotionState.FAILED, unhealthy)
            return False
        if not automatic:
            why = "revert.automatic is off, the environment is left as it is: fix forward, or revert the merge by hand"
            self.r.end(stage, StageState.FAILED, f"{unhealthy}; {why}", PromotionState.FAILED, unhealthy)
            return False
        self.r.set(stage, StageState.REVERTING, reason)
        revert = RevertInput(
            app=self.p.plan.app,
            members=self.p.plan.members,
            env=stage.env,
            merge_commit=stage.merge_commit,
            pr_number=stage.pr_number,
            reason=reason,
            commit=self.p.plan.commit,
        )
        result = await self.runner.run(steps.REVERT, revert, f"revert {stage.env}")
        assert result.revert_commit is not None
        stage.revert_commit, stage.revert_pr_number = result.revert_commit, result.pr_number
        by = f"reverted by {result.revert_commit[:7]} (PR #{result.pr_number})"
        self.r.audit(
            stage.env, "revert", detail=f"{reason}; reverted by {result.revert_commit[:12]} (PR #{result.pr_number})"
        )
        self.r.reverted(stage.env)
        restored = await self._sync_and_judge(stage, result.revert_commit)
        stage.finished_at = workflow.now()
        if not restored.healthy:
            self.r.set(stage, StageState.FAILED, f"{unhealthy}; {by}, but still unhealthy: {restored.reason}")
            self.r.finish(PromotionState.FAILED, f"{stage.env}: the revert did not restore health: {restored.reason}")
            return False
        self.r.set(stage, StageState.REVERTED, f"{unhealthy}; {by}, healthy again")
        held = ", ".join(self.p.plan.apps)
        self.p.status.notices.append(
            f"{held} @ {self.p.plan.short_commit} is now held out of {stage.env}: "
            f"promoting it there again is refused until the hold is lifted"
        )
        self.r.finish(PromotionState.REVERTED, f"{stage.env}: {unhealthy}")
        return False
