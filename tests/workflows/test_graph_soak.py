"""A fan-in waits for the soak of every environment it comes after, on the time-skipping test server
(no test waits for real time): dev → staging-eu (soak 2h) ∥ staging-us (soak 30m) → prod. prod starts
only once staging-eu's two hours have passed (not the soak of staging-us, the environment just before
prod in the plan, which a line would wait for), and the policies (`promotion.soak`) let it through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, StageState
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio

GRAPH: list[dict[str, object]] = [
    {"name": "dev"},
    {"name": "staging-eu", "after": ["dev"], "soak": "2h"},
    {"name": "staging-us", "after": ["dev"], "soak": "30m"},
    {"name": "prod", "after": ["staging-eu", "staging-us"]},
]


async def test_the_fan_in_waits_for_the_longest_soak_of_its_upstreams(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(GRAPH)
    origin.bump(tag="6.0.0")
    async with run_worker(ts_env, origin) as tq:
        dry = await api.dry_run(ts_env.client, tq, "demo")  # each environment's own soak, before what comes after it
        assert dry.denied == [] and {st.env: st.soak_s for st in dry.stages} == {
            "dev": 0.0,
            "staging-eu": 7200.0,
            "staging-us": 1800.0,
            "prod": 0.0,
        }
        handle = await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))
        result = await handle.result()  # the server skips the soak
    assert result.state == PromotionState.SUCCEEDED, result.message
    by = {s.env: s for s in result.stages}
    assert all(s.state == StageState.HEALTHY for s in result.stages), [(s.env, s.state) for s in result.stages]
    eu, us, prod = by["staging-eu"], by["staging-us"], by["prod"]
    assert eu.finished_at and us.finished_at and prod.started_at
    prod_checked = next(e.at for e in result.audit if e.env == "prod" and e.kind == "policy")
    assert prod_checked >= eu.finished_at + timedelta(hours=2), (prod_checked, eu.finished_at)
    assert prod_checked >= us.finished_at + timedelta(minutes=30)
