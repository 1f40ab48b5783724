"""A healthy rollout's verification: the environment's `verify` checks (Prometheus queries, HTTP
checks), each measured `count` times `interval` apart, every app's checks at once. Each measurement
is one `measure` activity and the wait between two is a durable timer, so a worker that dies between
measurements loses none, and the history holds what each measurement found. A check fails once more
than `failure_limit` measurements failed; then the others stop at their next wait. With a `soak`, the
checks go on measuring until it has passed (at most `MAX_MEASUREMENTS` each: a long soak spaces them
out). A cancel stops the checks at their next wait (each ends `stopped`): the version is then not
verified, and the stage is reverted as a failed check's is (workflows/rollout.py), never left healthy.
Deterministic: workflow code only."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from promoter import report
    from promoter.models import (
        CheckStatus,
        EnvironmentConfig,
        MeasureInput,
        Measurement,
        StageStatus,
        VerifyConfig,
    )
    from promoter.verify import substitute, verdict
    from workflows import steps
    from workflows.recorder import Recorder

MAX_MEASUREMENTS = 200  # a check's measurements in one stage: bounds the history however long the soak
KEPT = 20  # the measurements a check keeps in the status (the audit sums up all of them)
CANCELLED = "(the promotion was cancelled)"


def schedule(check: VerifyConfig, soak: timedelta | None) -> tuple[int, timedelta]:
    """How many measurements a check takes, and how far apart: `count` at `interval`, or across the soak."""
    interval = check.interval or timedelta(seconds=10)
    count = check.count
    if soak and soak > timedelta(0):
        covering = math.ceil(soak / interval) + 1  # the first at once, the last once the soak has passed
        if covering > MAX_MEASUREMENTS:
            covering, interval = MAX_MEASUREMENTS, soak / (MAX_MEASUREMENTS - 1)
        count = max(count, covering)
    return min(count, MAX_MEASUREMENTS), interval


class Verification:
    def __init__(self, recorder: Recorder, runner: steps.Runner) -> None:
        self.r = recorder
        self.runner = runner

    async def run(
        self, stage: StageStatus, cfg: EnvironmentConfig, apps: list[str], wave: list[str] | None = None
    ) -> str | None:
        """Measure every check of every app; None when all passed, else why verification failed. For a
        `wave` of clusters (their contexts) the checks add to the stage's earlier waves', and a check
        naming `{{cluster}}` is measured once per cluster of the wave, its context substituted."""
        if wave is None:
            stage.verification = []
        jobs: list[tuple[VerifyConfig, CheckStatus]] = []
        for app in apps:
            for check, cluster in per_cluster(cfg.verify, wave):
                count, _ = schedule(check, cfg.soak)
                status = describe(check, app, stage.env, count)
                status.cluster = cluster
                stage.verification.append(status)
                jobs.append((check, status))
        stopped: list[str] = []  # the first failed check's name (or a cancel): the others stop at their next wait
        checks = asyncio.ensure_future(
            asyncio.gather(*(self._check(stage, check, status, cfg.soak, stopped) for check, status in jobs))
        )
        try:
            await asyncio.shield(checks)
        except asyncio.CancelledError:  # as for any step (steps.Runner): the checks end, then the cancel acts
            self.runner.cancel_requested = True
            stopped.append(CANCELLED)
            await checks
        for _, status in jobs:
            self.r.audit(stage.env, "verify", actor=status.kind, detail=audit_line(status))
        failed = [s for _, s in jobs if s.verdict == "failed"]
        if failed:
            return "verification failed: " + "; ".join(reason(s) for s in failed)
        return None

    async def _check(
        self, stage: StageStatus, check: VerifyConfig, status: CheckStatus, soak: timedelta | None, stopped: list[str]
    ) -> None:
        count, interval = schedule(check, soak)
        of = f" ({_of(status)})"
        if check.initial_delay:
            stage.message = f"verifying: {status.name}{of} measures in {report.human_duration(check.initial_delay)}"
            await pause(stopped, check.initial_delay, f"initial delay of {status.name}")
        for index in range(count):
            if stopped:
                status.verdict = "stopped"
                return
            ask = MeasureInput(check=check, app=status.app, env=stage.env)
            summary = f"measure {status.name}{of} in {stage.env} ({index + 1}/{count})"
            try:
                measured = await self.runner.run(steps.MEASURE, ask, summary)
            except ActivityError as e:  # its retries spent (or no worker knows `measure`): a failed
                # measurement, never a pass, and never an error that would skip the revert
                measured = Measurement(at=workflow.now(), passed=False, error=f"not measured: {e.cause or e}")
            status.taken += 1
            status.failed += 0 if measured.passed else 1
            status.measurements = [*status.measurements, measured][-KEPT:]
            stage.message = f"verifying: {status.name}{of} {status.taken}/{count}, {status.failed} failed"
            done = verdict(status.failed, status.taken, count, status.failure_limit)
            if done is not None:
                status.verdict = "passed" if done else "failed"
                if not done:
                    stopped.append(status.name)
                return
            await pause(stopped, interval, f"interval of {status.name}")


CLUSTER = re.compile(r"\{\{\s*cluster\s*\}\}")  # spaces inside the braces allowed, as for {{app}}


def per_cluster(checks: list[VerifyConfig], wave: list[str] | None) -> list[tuple[VerifyConfig, str]]:
    """The checks to measure: each once, or, in a wave, one naming `{{cluster}}` (in its query or URL)
    once per cluster of the wave, with the context in its place."""
    out: list[tuple[VerifyConfig, str]] = []
    for check in checks:
        text = check.prometheus.query if check.prometheus is not None else check.http.url if check.http else ""
        if not wave or not CLUSTER.search(text):
            out.append((check, ""))
            continue
        for context in wave:
            if check.prometheus is not None:
                query = CLUSTER.sub(context, check.prometheus.query)
                out.append(
                    (
                        check.model_copy(update={"prometheus": check.prometheus.model_copy(update={"query": query})}),
                        context,
                    )
                )
            elif check.http is not None:
                url = CLUSTER.sub(context, check.http.url)
                out.append((check.model_copy(update={"http": check.http.model_copy(update={"url": url})}), context))
    return out


async def pause(stopped: list[str], duration: timedelta, summary: str) -> None:
    """A durable timer of `duration`, cut short when a check has failed."""
    try:
        await workflow.wait_condition(lambda: bool(stopped), timeout=duration, timeout_summary=summary)
    except TimeoutError:
        pass


def describe(check: VerifyConfig, app: str, env: str, count: int) -> CheckStatus:
    if check.prometheus is not None:
        target, success, kind = substitute(check.prometheus.query, app, env), check.prometheus.success, "prometheus"
    else:
        assert check.http is not None
        target, success, kind = substitute(check.http.url, app, env), f"status == {check.http.expect_status}", "http"
    return CheckStatus(
        name=check.name,
        app=app,
        kind=kind,  # type: ignore[arg-type]
        target=target,
        success=success,
        count=count,
        failure_limit=check.failure_limit,
    )


def _of(status: CheckStatus) -> str:
    return f"{status.app}, {status.cluster}" if status.cluster else status.app


def _values(status: CheckStatus) -> str:
    shown = [f"{m.value:g}" if m.value is not None else "none" for m in status.measurements]
    more = status.taken - len(status.measurements)
    return (f"…{more} earlier, " if more > 0 else "") + ", ".join(shown)


def reason(status: CheckStatus) -> str:
    """Why a failed check failed, in one line."""
    last = next((m.error for m in reversed(status.measurements) if not m.passed), "")
    return (
        f"{status.name} ({_of(status)}): {status.failed} of {status.taken} measurement(s) failed "
        f"(failure_limit {status.failure_limit}); last: {last}"
    )


def audit_line(status: CheckStatus) -> str:
    """A check's record for the audit (and with it the PR body): what it measured, the values, the verdict."""
    what = f"query `{status.target}`, success `{status.success}`" if status.kind == "prometheus" else status.target
    line = (
        f"{status.name} ({_of(status)}) {status.verdict}: {what}; values: {_values(status) or 'none'}; "
        f"{status.failed} of {status.taken} failed (failure_limit {status.failure_limit})"
    )
    last = next((m.error for m in reversed(status.measurements) if not m.passed), "")
    return line + (f"; last error: {last}" if last else "")
