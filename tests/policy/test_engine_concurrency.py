"""The embedded engine under concurrency: twenty evaluations at once on a cold engine (the worker's
first moments), three times, all allowed — the race that closed a process another thread was using
("handle is closed") denied most of them; an evicted revision is never closed under an evaluation;
and a fault of our own engine (its process killed) is raised to be retried, never a denial."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from promoter.models import PolicyDecision
from promoter.policy import EngineFault, PolicyBundle, decide
from promoter.policy.embedded import EmbeddedEngine
from tests.support.policy import POLICIES, make_input


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.from_dir(POLICIES)


def at_once(engine: EmbeddedEngine, bundles: list[PolicyBundle], doc: dict[str, object]) -> list[PolicyDecision]:
    results: list[PolicyDecision | BaseException | None] = [None] * len(bundles)
    start = threading.Barrier(len(bundles))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = decide(engine, bundles[i], doc)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bundles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    errors = [r for r in results if not isinstance(r, PolicyDecision)]
    assert not errors, errors
    return [r for r in results if isinstance(r, PolicyDecision)]


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_twenty_evaluations_at_once_on_a_cold_engine_are_all_allowed(bundle: PolicyBundle, round_: int) -> None:
    engine = EmbeddedEngine()
    try:
        decisions = at_once(engine, [bundle] * 20, make_input())
    finally:
        engine.close()
    denied = [d.deny for d in decisions if not d.allow]
    assert denied == [], denied


def test_revisions_evicted_while_in_use_are_never_closed_under_an_evaluation(bundle: PolicyBundle) -> None:
    """Six revisions through a cache of two, three evaluations each, all at once."""
    revisions = [
        PolicyBundle(modules=bundle.modules, data={**bundle.data, "rev": i}, metadata=bundle.metadata) for i in range(6)
    ]
    engine = EmbeddedEngine(cache_size=2)
    try:
        decisions = at_once(engine, revisions * 3, make_input())
    finally:
        engine.close()
    assert all(d.allow for d in decisions), [d.deny for d in decisions if not d.allow]


def test_a_killed_engine_process_is_a_fault_to_retry_not_a_denial(bundle: PolicyBundle) -> None:
    engine = EmbeddedEngine()
    try:
        assert decide(engine, bundle, make_input()).allow
        compiled = engine.compiled(bundle)
        assert compiled.process.pid is not None
        os.kill(compiled.process.pid, signal.SIGKILL)
        compiled.process.join(timeout=10)
        # the dead process is noticed: the next evaluation compiles the revision again
        assert decide(engine, bundle, make_input()).allow
        compiled = engine.compiled(bundle)
        with compiled.lock:  # killed between the lookup and the use: the pipe breaks under the evaluation
            assert compiled.process.pid is not None
            os.kill(compiled.process.pid, signal.SIGKILL)
            compiled.process.join(timeout=10)
        with pytest.raises(EngineFault, match="the policy engine process"):
            compiled.run("data.promoter.decision", make_input(), 5.0)
    finally:
        engine.close()
