"""A merged stage's rollout: sync the environment's cluster to a revision, judge its health, and when
it is unhealthy revert the merge (a revert PR merged without a gate), sync the revert and judge it
again. An environment with `clusters` is rolled out in waves (`Waves`): each wave's clusters synced
side by side and judged (health, then the `verify` checks) before a durable pause and the next wave; a
failing wave stops the rollout, and the revert restores every cluster already synced (later waves'
clusters were never touched). Deterministic: workflow code only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from promoter import environments, report
    from promoter.models import (
        ClusterConfig,
        ClusterStatus,
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
        self.waves = Waves(self)

    async def verify(self, stage: StageStatus, revision: str) -> bool:
        """Sync and judge `revision`, then run the environment's `verify` checks (when it has any);
        healthy and verified: the stage is healthy, else it is reverted (or fails)."""
        cfg = self.p.envs[stage.env].config
        if cfg.clusters:
            health = await self.waves.roll(stage, revision)
        else:
            health = await self._sync_and_judge(stage, revision)
        healthy_at = workflow.now()
        if health.healthy and cfg.verify and not cfg.clusters:  # with clusters each wave was verified
            failed = await self.verification.run(stage, cfg, self.p.plan.apps)
            passed = f"{len(stage.verification)} verify check(s) passed"
            if not failed and any(c.verdict == "stopped" for c in stage.verification):
                # fail closed: a version whose checks a cancel cut short is not verified, and never stays
                # as if it were (a later promotion would find its folder matching and skip the stage)
                failed = "verification stopped by a cancel before it finished: the version is not verified"
            said = failed or f"{health.reason}; {passed}"
            health = HealthResult(healthy=not failed, reason=said, engine=health.engine)
        if health.healthy:
            self.r.set(stage, StageState.HEALTHY, health.reason)
            # with a soak, the checks measured across it: the soak counts from the rollout's health
            stage.finished_at = healthy_at if cfg.verify and cfg.soak and not cfg.clusters else workflow.now()
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
        reverting = stage.state == StageState.REVERTING  # the revert's sync keeps the stage `reverting`
        self.r.set(stage, stage.state if reverting else StageState.SYNCING, f"syncing {revision[:7]}")
        counts, notes = await self.sync(stage.env, revision, cfg.cluster, stage.env)
        if not reverting:
            self.r.set(stage, StageState.VERIFYING, "; ".join([counts, *notes]))
        return await self.judge(stage.env, revision, cfg.cluster, stage.env, notes)

    async def sync(self, env: str, revision: str, cluster: ClusterConfig, where: str) -> tuple[str, list[str]]:
        """Sync every app to one cluster (`where` names it in the steps' summaries); the counts, and
        what the syncs said once."""
        applied = unchanged = pruned = 0
        notes: list[str] = []
        for app in self.p.plan.apps:
            sync = SyncInput(promotion_id=self.p.status.id, app=app, env=env, revision=revision, cluster=cluster)
            of = f" ({app})" if self.p.plan.members else ""
            synced = await self.runner.run(steps.SYNC, sync, f"sync {where} to {revision[:7]}{of}")
            applied, unchanged, pruned = applied + synced.applied, unchanged + synced.unchanged, pruned + synced.pruned
            notes += [synced.note] if synced.note else []
        return f"{applied} applied, {unchanged} unchanged, {pruned} pruned", notes

    async def judge(
        self, env: str, revision: str, cluster: ClusterConfig, where: str, notes: list[str]
    ) -> HealthResult:
        """Judge every app's health in one cluster: healthy only when all are."""
        cfg = self.p.envs[env].config
        step = steps.health_step(cfg.health.timeout or timedelta(minutes=5))
        verdicts: list[tuple[str, HealthResult]] = []
        for app in self.p.plan.apps:
            check = HealthInput(
                app=app,
                env=env,
                revision=revision,
                cluster=cluster,
                timeout=cfg.health.timeout,
                http=cfg.health.http,
            )
            of = f" ({app})" if self.p.plan.members else ""
            verdicts.append((app, await self.runner.run(step, check, f"health of {where} at {revision[:7]}{of}")))
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
        if self.p.envs[stage.env].config.clusters:
            restored = await self.waves.restore(stage, result.revert_commit)
        else:
            restored = await self._sync_and_judge(stage, result.revert_commit)
        stage.finished_at = workflow.now()
        if not restored.healthy:
            self.r.set(stage, StageState.FAILED, f"{unhealthy}; {by}, but still unhealthy: {restored.reason}")
            self.r.finish(PromotionState.FAILED, f"{stage.env}: the revert did not restore health: {restored.reason}")
            return False
        again = f"{restored.reason}, healthy again" if self.p.envs[stage.env].config.clusters else "healthy again"
        self.r.set(stage, StageState.REVERTED, f"{unhealthy}; {by}, {again}")
        held = ", ".join(self.p.plan.apps)
        self.p.status.notices.append(
            f"{held} @ {self.p.plan.short_commit} is now held out of {stage.env}: "
            f"promoting it there again is refused until the hold is lifted"
        )
        self.r.finish(PromotionState.REVERTED, f"{stage.env}: {unhealthy}")
        return False


class Waves:
    """An environment with `clusters`: its rollout wave by wave, and its revert in every cluster synced."""

    def __init__(self, rollout: Rollout) -> None:
        self.o = rollout

    async def roll(self, stage: StageStatus, revision: str) -> HealthResult:
        """Each wave in turn: its clusters synced side by side and judged, then the `verify` checks (those
        naming `{{cluster}}` once per cluster of the wave), then the pause. The first wave that fails ends
        the rollout: its verdict is the stage's, and the later waves' clusters stay `pending`, untouched."""
        cfg = self.o.p.envs[stage.env].config
        groups = environments.waves(cfg)
        stage.clusters = [ClusterStatus(context=str(c.context), wave=i + 1) for i, g in enumerate(groups) for c in g]
        stage.verification = []
        unsoaked = cfg.model_copy(update={"soak": None})  # each wave is measured `count` times; the soak follows
        pause = cfg.waves.pause if cfg.waves else None
        for i, group in enumerate(groups):
            contexts = [str(c.context) for c in group]
            label = f"wave {i + 1}/{len(groups)} ({', '.join(contexts)})"
            if i and self.o.runner.cancel_requested:  # fail closed: a cancel stops the fleet, never speeds it up
                return HealthResult(healthy=False, reason=f"cancelled before {label}")
            self.o.r.set(stage, StageState.SYNCING, f"{label}: syncing {revision[:7]}")
            verdicts = await self._every(self._one(stage, revision, c) for c in group)
            sick = [(ctx, v) for ctx, v in zip(contexts, verdicts, strict=True) if not v.healthy]
            if sick:
                said = "; ".join(f"{ctx}: {v.reason}" for ctx, v in sick)
                return HealthResult(healthy=False, reason=f"{label}: {said}", engine=verdicts[0].engine)
            if cfg.verify:
                self.o.r.set(stage, StageState.VERIFYING, f"{label}: healthy, verifying")
                failed = await self.o.verification.run(stage, unsoaked, self.o.p.plan.apps, contexts)
                if not failed and any(c.verdict == "stopped" for c in stage.verification):
                    # fail closed, as for one cluster: a wave whose checks a cancel cut short is not verified
                    failed = "verification stopped by a cancel before it finished: the version is not verified"
                if failed:
                    self._mark(stage, contexts, "failed", failed)
                    return HealthResult(healthy=False, reason=f"{label}: {failed}", engine=verdicts[0].engine)
                self._mark(stage, contexts, "healthy", f"healthy; {len(cfg.verify)} verify check(s) passed")
            if i + 1 < len(groups) and pause:
                self.o.r.set(
                    stage, StageState.VERIFYING, f"{label} healthy; the next wave in {report.human_duration(pause)}"
                )
                await self._pause(pause, f"pause after wave {i + 1} of {stage.env}")
        names = " → ".join(", ".join(str(c.context) for c in g) for g in groups)
        return HealthResult(healthy=True, reason=f"{len(groups)} wave(s) healthy: {names}", engine=verdicts[0].engine)

    async def _pause(self, pause: timedelta, summary: str) -> None:
        """A durable timer between two waves. A cancel cuts it short, and no later wave is synced: the
        clusters synced so far are reverted (`roll`), so a cancel stops the fleet rather than rushing it."""
        try:
            await workflow.sleep(pause, summary=summary)
        except asyncio.CancelledError:
            self.o.runner.cancel_requested = True

    async def _one(self, stage: StageStatus, revision: str, cluster: ClusterConfig) -> HealthResult:
        """Sync one cluster of a wave and judge it; its state follows."""
        where = f"{stage.env}/{cluster.context}"
        status = self._status(stage, str(cluster.context))
        status.state, status.message = "syncing", f"syncing {revision[:7]}"
        try:
            counts, notes = await self.o.sync(stage.env, revision, cluster, where)
            status.state, status.message, status.synced_at = "synced", "; ".join([counts, *notes]), workflow.now()
            health = await self.o.judge(stage.env, revision, cluster, where, notes)
        except ActivityError as e:  # its sync or health step failed for good: an unhealthy cluster, so the
            # clusters already synced are reverted (with one cluster such an error fails the stage, as before)
            health = HealthResult(healthy=False, reason=f"{status.state} failed: {e.cause or e}")
        status.state, status.message = ("healthy" if health.healthy else "failed"), health.reason
        return health

    async def restore(self, stage: StageStatus, revision: str) -> HealthResult:
        """The revert in every cluster already synced (side by side), each judged again; the clusters of
        later waves were never touched and stay as they are."""
        cfg = self.o.p.envs[stage.env].config
        by_context = {str(c.context): c for c in cfg.targets()}
        touched = [c.context for c in stage.clusters if c.state != "pending"]
        verdicts = await self._every(self._restore(stage, revision, by_context[c]) for c in touched)
        sick = [(ctx, v) for ctx, v in zip(touched, verdicts, strict=True) if not v.healthy]
        untouched = [c.context for c in stage.clusters if c.state == "pending"]
        left = f"; untouched: {', '.join(untouched)}" if untouched else ""
        if sick:
            said = "; ".join(f"{ctx}: {v.reason}" for ctx, v in sick)
            return HealthResult(healthy=False, reason=said, engine=verdicts[0].engine)
        return HealthResult(healthy=True, reason=f"restored in {', '.join(touched)}{left}", engine=verdicts[0].engine)

    async def _restore(self, stage: StageStatus, revision: str, cluster: ClusterConfig) -> HealthResult:
        where = f"{stage.env}/{cluster.context}"
        status = self._status(stage, str(cluster.context))
        status.state, status.message = "reverting", f"syncing the revert {revision[:7]}"
        try:
            _, notes = await self.o.sync(stage.env, revision, cluster, where)
            health = await self.o.judge(stage.env, revision, cluster, where, notes)
        except ActivityError as e:  # this cluster cannot be reverted: the others still are, and the stage
            # fails naming it (never a silent "restored")
            health = HealthResult(healthy=False, reason=f"the revert's sync or health failed: {e.cause or e}")
        status.state = "reverted" if health.healthy else "failed"
        status.message = f"reverted to {revision[:7]}" + (
            "" if health.healthy else f", still unhealthy: {health.reason}"
        )
        return health

    async def _every(self, jobs: Iterable[Awaitable[HealthResult]]) -> list[HealthResult]:
        """Each cluster's job side by side, every one to its end, even when the promotion is cancelled
        meanwhile (as `steps.Runner` runs one step: the cancel then acts after the stage's verdict); a
        step that fails for good (its error then fails the stage) never leaves another one unawaited."""
        together = asyncio.ensure_future(asyncio.gather(*jobs, return_exceptions=True))
        try:
            results = await asyncio.shield(together)
        except asyncio.CancelledError:
            self.o.runner.cancel_requested = True
            results = await together
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, HealthResult)]

    @staticmethod
    def _status(stage: StageStatus, context: str) -> ClusterStatus:
        return next(c for c in stage.clusters if c.context == context)

    @staticmethod
    def _mark(stage: StageStatus, contexts: list[str], state: str, message: str) -> None:
        for c in stage.clusters:
            if c.context in contexts:
                c.state, c.message = state, message  # type: ignore[assignment]
