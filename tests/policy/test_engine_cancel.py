"""An evaluation cancelled while its engine process works never hands its answer to the next one.

The SDK cancels a thread activity (a policy check is a local one) by raising its cancel into the thread
at any point. Raised after the question was sent to the revision's engine process and before its
answer was read, it left that answer in the pipe: the next evaluation on that process, another
promotion's, read it as its own. The process is now ended on any exception in the middle of the
exchange, and the next evaluation compiles the revision again. The SDK's own cancel
(temporalio.testing's ActivityEnvironment raises it into the thread as a worker does)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

import promoter.worker  # noqa: F401 - the worker's errors.PASS_THROUGH, as `promoter worker` sets it
from promoter import calendars, schemas
from promoter.policy import PolicyBundle, decide
from promoter.policy.embedded import EmbeddedEngine

ECHO = """package promoter
import rego.v1

echo := input.n if not input.slow

echo := input.n if {
	input.slow
	count([x | some x in numbers.range(1, 3000000); x % 7 == 0]) > 0
}
"""
RULE = "data.promoter.echo"


def test_a_cancelled_evaluation_never_answers_the_next_one() -> None:
    bundle = PolicyBundle(modules={"promoter/echo.rego": ECHO}, data={}, metadata={})
    engine = EmbeddedEngine(timeout_s=60)
    try:
        assert engine.query(bundle, RULE, {"n": 0}) == 0  # compiled: the next question goes to that process
        compiled = engine.compiled(bundle)
        env, outcome = ActivityEnvironment(), []

        def slow() -> None:
            try:
                env.run(engine.query, bundle, RULE, {"n": 1, "slow": True})
            except BaseException as e:  # noqa: BLE001 - what ended it is the test's to check
                outcome.append(e)

        running = threading.Thread(target=slow)
        running.start()
        deadline = time.monotonic() + 30
        while not compiled.lock.locked():  # the question is on its way: the exchange holds the pipe
            assert time.monotonic() < deadline, "the slow evaluation never started"
            time.sleep(0.005)
        env.cancel()
        running.join(60)
        assert not running.is_alive() and len(outcome) == 1 and isinstance(outcome[0], CancelledError)
        assert engine.query(bundle, RULE, {"n": 2}) == 2  # its own answer, not the cancelled one's
    finally:
        engine.close()


SLOW_DECISION = """package promoter
import rego.v1

decision := {"allow": true} if count([x | some x in numbers.range(1, 3000000); x % 7 == 0]) > 0
"""


def test_a_cancelled_check_ends_cancelled_never_as_a_denial() -> None:
    """`decide` fails closed on any error, and the SDK's cancel is an Exception: taken for one, a
    cancelled check (a worker shutting down, a promotion cancelled) was recorded as the policies'
    denial, "policy evaluation failed: CancelledError"."""
    bundle = PolicyBundle(modules={"promoter/decision.rego": SLOW_DECISION}, data={}, metadata={})
    engine = EmbeddedEngine(timeout_s=60)
    try:
        engine.warm(bundle)
        compiled = engine.compiled(bundle)
        env, outcome = ActivityEnvironment(), []

        def check() -> None:
            try:
                outcome.append(env.run(decide, engine, bundle, {}))
            except BaseException as e:  # noqa: BLE001 - what ended it is the test's to check
                outcome.append(e)

        running = threading.Thread(target=check)
        running.start()
        deadline = time.monotonic() + 30
        while not compiled.lock.locked():
            assert time.monotonic() < deadline, "the evaluation never started"
            time.sleep(0.005)
        env.cancel()
        running.join(60)
        assert not running.is_alive() and len(outcome) == 1
        assert isinstance(outcome[0], CancelledError), f"a cancelled check answered {outcome[0]!r}"
    finally:
        engine.close()


def _cancelled(*_: object, **__: object) -> Any:
    """What the SDK raises into an activity's thread at any point: here, mid-step."""
    raise CancelledError()


def test_a_cancel_inside_a_schema_check_is_neither_a_finding_nor_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema gate's broad handler (a schema the validator cannot apply is a finding) took the cancel
    for one, and the object's findings are remembered for its later checks: every later check of that
    object on the worker denied it, "its schema could not be applied: Cancelled"."""
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "d"}, "data": {"a": "b"}}
    version = schemas.shipped()[-1]
    schemas._CHECKED.clear()

    class Cancelling:
        iter_errors = staticmethod(_cancelled)

    with monkeypatch.context() as patched:
        patched.setattr(schemas.Catalog, "validator", lambda *_: Cancelling())
        with pytest.raises(CancelledError):
            schemas.check([obj], version)
    assert schemas.check([obj], version) == []  # checked again, clean


def test_a_cancel_while_a_freeze_calendar_is_expanded_is_no_denial(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calendar that cannot be expanded is bad input, which `decide` denies; the cancel is not."""
    monkeypatch.setattr(calendars, "_occurrences", _cancelled)
    bundle = PolicyBundle(
        modules={}, data={}, metadata={}, calendars=(calendars.Calendar("policies/f.ics", None, object()),)
    )

    class Allowing:
        name = "allowing"

        def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
            return {"allow": True}

        def warm(self, bundle: PolicyBundle) -> None:
            pass

    with pytest.raises(CancelledError):
        decide(Allowing(), bundle, {"promotion": {"evaluated_at": "2026-12-04T10:00:00Z"}})
