"""The worker: it builds a promotion's adapters through the settings' factories (`Settings.repository`,
`make_forge`, `make_policy_engine`), once, and hands them to the activities; each cluster's client is
made by `ClusterActivities.cluster` when an activity first needs it (docs/architecture.md, "Where
adapters are built")."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import MetricMeter
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from activities import Heartbeats
from activities.cluster import ClusterActivities
from activities.forge import ForgeActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyActivities
from activities.promotions import PromotionActivities
from activities.repository import GitActivities
from activities.revert import RevertActivities
from activities.verify import VerifyActivities
from promoter import errors, heap
from promoter import policy as policy_engines
from promoter.cluster import resources
from promoter.errors import BadInput
from promoter.forges import http as forge_http
from promoter.git import objects
from promoter.gitrepo import GitClone
from promoter.models import DriftInput, EnvironmentConfig
from promoter.settings import Settings, connect, metrics_runtime
from workflows import RUNNER
from workflows.claim import ReleaseSetClaim
from workflows.drift import DriftWorkflow
from workflows.dry_run import DryRunWorkflow
from workflows.lift_hold import LiftHoldWorkflow
from workflows.promotion import PromotionWorkflow, ResolveWorkflow
from workflows.steps import WATCH_QUEUE_SUFFIX

log = logging.getLogger("promoter.worker")
WATCH_HEARTBEAT_THROTTLE = timedelta(seconds=5)  # a waiting gate's watcher: one heartbeat per 5 s at most
HEARTBEAT_THROTTLE = timedelta(seconds=2)  # an ordinary activity's heartbeats reach the server this often
# a workflow cached on a worker that died waits this long for its next task before any worker takes it
# (with a full replay): short, since a lost worker's promotions wait it; the SDK's default is 10 s
STICKY_TIMEOUT = timedelta(seconds=3)
# SIGTERM: the worker stops polling at once, then lets its activities end for this long; what is still
# running is then cancelled and handed back (activities.Heartbeats) to another worker, which retries it
# at once. Kubernetes' default terminationGracePeriodSeconds (30 s) leaves room for it.
GRACEFUL_SHUTDOWN = timedelta(seconds=5)
SHUTDOWN_BOUND = GRACEFUL_SHUTDOWN + timedelta(seconds=10)  # then the process exits whatever still runs
# thread activities (a sync, a health check that waits out a rollout, a merge waiting for the push lock)
# and local ones (a policy check, an approval's) each have their own slots, and the executor a thread for
# every slot: a local activity never waits for a long one's thread while its workflow task holds a slot
# (with 16 threads for both kinds, 16 health checks waiting out slow rollouts held every approval's
# policy check, every PR's opening and every resolve back: tests/workflows/test_activity_threads.py)
ACTIVITY_SLOTS, LOCAL_ACTIVITY_SLOTS = 16, 16
WORKFLOWS = [PromotionWorkflow, ResolveWorkflow, DryRunWorkflow, LiftHoldWorkflow, DriftWorkflow, ReleaseSetClaim]


class Workers:
    """The worker of the task queue, and beside it the gates' PR watchers on `<task queue>-watch`: a
    waiting gate holds one of those (an async activity, no thread) and never a slot the git, forge,
    policy and cluster activities need. `async with` runs both."""

    def __init__(
        self,
        *workers: Worker,
        warm: Callable[[], None] = lambda: None,
        environments: Callable[[], list[EnvironmentConfig]] = list,
    ) -> None:
        self.workers = workers
        self.warm = warm  # compiles main's policies: run once as the worker starts
        self.environments = environments  # main's environments, for their drift schedules

    async def __aenter__(self) -> Workers:
        for w in self.workers:
            await w.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Shut every worker down at once (each stops polling, then waits for its graceful period):
        one after the other, the main worker would keep taking work while the watchers stop."""
        await asyncio.gather(*(w.__aexit__(*exc) for w in reversed(self.workers)))  # type: ignore[arg-type]


def _merge_methods(forge: object) -> tuple[tuple[str, ...] | None, str]:
    """The merge methods `forge` can do (None: all that environment.yaml allows), and its name: the
    local forge merges only with a merge commit."""
    from promoter.forges.local import MERGE_METHODS, LocalForge

    if isinstance(forge, LocalForge):
        return tuple(m for m in MERGE_METHODS if m), "local"
    return None, type(forge).__name__


def _cancel_held() -> AbstractContextManager[object]:
    """What each read of a git object runs under in this worker (promoter.git.objects.READ_GUARD): the
    SDK raises its cancel of a thread activity into the thread at any point, and one raised between an
    object's header and its content would leave git's object reader out of step; it waits for the read."""
    return activity.shield_thread_cancel_exception() if activity.in_activity() else contextlib.nullcontext()


objects.READ_GUARD = _cancel_held
resources.CALL_GUARD = _cancel_held  # a request to a cluster's API server, and the reading of its answer
forge_http.REQUEST_GUARD = _cancel_held  # a request to a forge's API, and the reading of its answer
policy_engines.REQUEST_GUARD = _cancel_held  # a request to a policy server (the opa backend's), and its answer
errors.PASS_THROUGH = (CancelledError,)  # a cancelled check ends cancelled, never as a denial or a finding


def losing_a_worker() -> dict[str, Any]:
    """The main worker's options that bound what a lost or stopped worker costs: its thread activities
    heartbeat from the event loop and a shutdown hands back what it cannot finish (`Heartbeats`), the
    heartbeats reach the server often enough for a short timeout, a workflow cached on a dead worker
    moves to another soon, and a SIGTERM lets running activities end first."""
    return {
        "interceptors": [Heartbeats()],
        "max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
        "sticky_queue_schedule_to_start_timeout": STICKY_TIMEOUT,
        "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN,
    }


def build_worker(client: Client, settings: Settings, executor: concurrent.futures.Executor) -> Workers:
    """The task queue's worker and its PR watchers, over the adapters the settings' factories build once."""
    repo = settings.repository()  # no repository configured: one line that says what to set
    if settings.commit_signing_key:  # promoter signs the commits it writes (docs/approving.md, "Held versions")
        repo.sign_commits_with(_read_key(settings.commit_signing_key))
    forge = settings.make_forge(repo)
    git_acts = GitActivities(repo, *_merge_methods(forge))
    forge_acts = ForgeActivities(forge, repo, settings.review_poll_s)
    cluster = ClusterActivities(repo)
    policy = PolicyActivities(
        repo,
        settings.make_policy_engine(),
        lambda cfg: cluster.cluster(cfg).crds(),
        forge,
        claims=lambda cfg, app, objects: cluster.cluster(cfg).claims(app, objects, cfg.adopt),
    )
    reverts = RevertActivities(repo, forge)
    promotions = PromotionActivities(client)
    measures = VerifyActivities(settings.prometheus_url)
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflow_runner=RUNNER,
        workflows=WORKFLOWS,
        activities=[
            git_acts.resolve,
            git_acts.change_patch,
            policy.check_change,
            forge_acts.open_change,
            forge_acts.open_lift,
            forge_acts.merge_pull_request,
            forge_acts.close_pull_request,
            forge_acts.update_pull_request,
            policy.check_policy,
            policy.check_approval,
            policy.screen_approvers,
            cluster.sync,
            cluster.check_health,
            cluster.detect_drift,
            reverts.revert,
            NotifyActivities().notify,
            promotions.running_promotions,
            measures.measure,
        ],
        activity_executor=executor,
        max_cached_workflows=settings.workflow_cache,
        **activity_slots(),
        **losing_a_worker(),
    )
    watchers = Worker(
        client,
        task_queue=settings.task_queue + WATCH_QUEUE_SUFFIX,
        activities=[forge_acts.watch_pull_request],
        max_concurrent_activities=1000,
        # a decided gate's watcher learns of its cancel from a heartbeat's answer: sent this often
        max_heartbeat_throttle_interval=min(WATCH_HEARTBEAT_THROTTLE, timedelta(seconds=settings.review_poll_s)),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,  # a watcher hands its watch back first (WorkerShutdown)
    )
    return Workers(main, watchers, warm=policy.warm, environments=repo.environments)


def activity_slots() -> dict[str, Any]:
    """The main worker's activity slots of each kind (run on `activity_threads()`)."""
    return {"max_concurrent_activities": ACTIVITY_SLOTS, "max_concurrent_local_activities": LOCAL_ACTIVITY_SLOTS}


def activity_threads() -> concurrent.futures.ThreadPoolExecutor:
    """The executor of the main worker's thread activities: a thread for each slot of either kind."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=ACTIVITY_SLOTS + LOCAL_ACTIVITY_SLOTS)


def _read_key(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as e:
        raise BadInput(f"PROMOTER_COMMIT_SIGNING_KEY: cannot read {path}: {e.strerror or e}") from None


def _replace_schedule(schedule: Schedule, current: ScheduleUpdateInput) -> ScheduleUpdate:
    """The new action, spec and policy; the schedule's state (paused by an operator, and why) is kept."""
    schedule.state = current.description.schedule.state
    return ScheduleUpdate(schedule=schedule)


async def drift_schedules(client: Client, task_queue: str, environments: list[EnvironmentConfig]) -> None:
    """One Temporal Schedule per environment, `drift-<env>`, running `DriftWorkflow` every
    `drift.interval`; made when missing, updated when its interval or task queue changed."""
    for env in environments:
        sid = f"drift-{env.name}"
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                DriftWorkflow.run, DriftInput(env=env.name), id=sid, task_queue=task_queue
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=env.drift.interval or timedelta(minutes=5))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        try:
            await client.create_schedule(sid, schedule)
        except ScheduleAlreadyRunningError:
            await client.get_schedule_handle(sid).update(functools.partial(_replace_schedule, schedule))


DRIFT_SCHEDULES_REREAD = timedelta(minutes=1)  # how often the worker re-reads main's drift intervals


Intervals = list[tuple[str, timedelta | None]]  # each environment's drift.interval, as the schedules were made


async def refresh_drift_schedules(
    client: Client, task_queue: str, environments: Callable[[], list[EnvironmentConfig]], made: Intervals | None
) -> Intervals | None:
    """Re-read main's environments and make or update the drift schedules when an environment's
    `drift.interval` (or the set of environments) differs from `made`; what they now follow. A read
    or update that fails is logged (never fatal: promotions do not need them) and tried again later."""
    try:
        current = await asyncio.to_thread(environments)
        seen = [(e.name, e.drift.interval) for e in current]
        if seen != made:
            await drift_schedules(client, task_queue, current)
            if made is not None:
                log.info("drift schedules updated from main's environment.yaml: %s", seen)
        return seen
    except Exception as e:  # noqa: BLE001 - never fatal: promotions do not need them
        log.warning("the drift schedules could not be made or updated: %s", e)
        return made


async def follow_drift_schedules(
    client: Client,
    task_queue: str,
    environments: Callable[[], list[EnvironmentConfig]],
    stop: asyncio.Event,
    made: Intervals | None = None,
    every: timedelta = DRIFT_SCHEDULES_REREAD,
) -> None:
    """Every `every` until `stop`, `refresh_drift_schedules`: the schedules follow `environment.yaml`
    without a worker restart. It runs beside the worker, outside any workflow, so nothing here is
    replayed and `DriftWorkflow`'s history gains no command (a drift run that updated its own schedule
    through an activity would need a patch, and would only notice a change at its next, old-interval run)."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every.total_seconds())
            return
        except TimeoutError:
            made = await refresh_drift_schedules(client, task_queue, environments, made)


DELIVERY_EVERY = timedelta(minutes=1)  # how often the worker sets its promoter_dora_* gauges from main


def export_delivery(meter: MetricMeter, repository: GitClone) -> None:
    """Set the `promoter_dora_*` gauges (promoter.metrics.GAUGES) from main's last 30 days: one fetch
    of main and one `git log` of its first-parent line in the worker's clone (docs/metrics.md)."""
    from promoter import metrics

    now = datetime.now(UTC)
    delivery, envs = repository.delivery(int((now - metrics.WORKER_WINDOW).timestamp()))
    _, found = metrics.figures(delivery, envs, int(now.timestamp()))
    gauges = {name: meter.create_gauge_float(name, text) for name, text in metrics.GAUGES.items()}
    for name, labels, value in metrics.gauge_values(found):
        gauges[name].set(value, labels)


async def follow_delivery(meter: MetricMeter, settings: Settings, stop: asyncio.Event) -> None:
    """`export_delivery` now and every `DELIVERY_EVERY` until `stop`; a failed read is logged, never fatal."""
    repository: GitClone | None = None
    while not stop.is_set():
        try:
            repository = repository or settings.repository()  # beside the worker's own clone, in its cache
            await asyncio.to_thread(export_delivery, meter, repository)
        except Exception as e:  # noqa: BLE001 - never fatal: promotions do not need them
            log.warning("the delivery metrics could not be read from main: %s", e)
        try:
            await asyncio.wait_for(stop.wait(), DELIVERY_EVERY.total_seconds())
        except TimeoutError:
            continue


async def run_worker(settings: Settings, ready_file: str | None = None) -> None:
    runtime = metrics_runtime(settings.metrics_port) if settings.metrics_port else None
    client = await connect(settings, runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with activity_threads() as executor:
        worker = build_worker(client, settings, executor)
        log.info(
            "worker on %s, task queue %s, repository %s",
            settings.temporal_address,
            settings.task_queue,
            settings.repo_url,
        )
        if settings.trust_root is None:  # said at every start: the unsafe default must not go unnoticed
            log.warning(
                "no PROMOTER_TRUST_ROOT: main's rule files (policies/, environment.yaml, trust/) judge as they "
                "stand, whoever pushed them; pin a reviewed commit of main (docs/policies.md, Who can change the rules)"
            )
        if settings.commit_signing_key is None:
            log.warning("no PROMOTER_COMMIT_SIGNING_KEY: promoter's commits are unsigned, so lift-hold is refused")
        try:
            await asyncio.to_thread(worker.warm)
        except Exception as e:  # noqa: BLE001 - never fatal: the first check of that revision denies, naming it
            log.warning("the policies on main could not be compiled ahead: %s", e)
        heap.tune()  # what start-up and the warm-up made is never collected again (promoter.heap)
        made = await refresh_drift_schedules(client, settings.task_queue, worker.environments, None)
        schedules = asyncio.create_task(
            follow_drift_schedules(client, settings.task_queue, worker.environments, stop, made), name="drift schedules"
        )
        if runtime is not None:  # metrics on: the delivery gauges beside the SDK's
            delivery = asyncio.create_task(follow_delivery(runtime.metric_meter, settings, stop), name="delivery")
        bound = threading.Timer(SHUTDOWN_BOUND.total_seconds(), _exit_now)
        bound.daemon = True
        async with worker:
            if ready_file:
                Path(ready_file).write_text(str(os.getpid()))
            await stop.wait()
            log.info("stopping: no new work; running activities get %s to end", GRACEFUL_SHUTDOWN)
            bound.start()
        await schedules
        if runtime is not None:
            await delivery
    bound.cancel()  # the executor's threads have ended (a thread whose work was handed back too)


def _exit_now() -> None:
    """A thread activity that does not end on its cancel (blocked in a system call) would hold the
    shutdown for good (its work was handed back already): past the bound the process ends."""
    log.warning("activities still running %s after the stop: exiting without them", SHUTDOWN_BOUND)
    os._exit(1)
