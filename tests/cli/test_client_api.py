"""The client API the CLI talks through, over Temporal's HTTP API answered by a loopback server
(pytest-httpserver speaking the routes and whole payloads of `promoter.temporal_http`): following a
promotion to its result, and to `failed` with its failure's words when it closed without one; waiting
for the lift of a hold to open its PR, and its own one-line failure when there is no such hold; and
how a listed run's state and stage are read (memo, search attributes, how it closed), the same for both
transports since both list `Listed` rows. The gRPC side runs against real servers in test_cli.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from promoter.errors import PromoterError
from promoter.models import PromotionState, PromotionStatus, StageState, StageStatus
from promoter.promotions import ENV_ATTRIBUTE, STATE_ATTRIBUTE, Listed
from promoter.temporal_http import HttpPromotions

BASE = "/api/v1/namespaces/default/workflows"


def payload(value: Any) -> dict[str, Any]:
    encoding = base64.b64encode(b"json/plain").decode()
    return {"metadata": {"encoding": encoding}, "data": base64.b64encode(json.dumps(value).encode()).decode()}


def described(wid: str, status: str) -> dict[str, Any]:
    return {
        "workflowExecutionInfo": {
            "execution": {"workflowId": wid, "runId": "r1"},
            "status": f"WORKFLOW_EXECUTION_STATUS_{status}",
            "taskQueue": "promoter",
        }
    }


def answers(server: HTTPServer, wid: str, states: list[tuple[str, Any]], close: dict[str, Any]) -> None:
    """Each (execution status, query answer) once, in order; then the close event."""
    for status, answer in states:
        server.expect_oneshot_request(f"{BASE}/{wid}", "GET").respond_with_json(described(wid, status))
        server.expect_oneshot_request(f"{BASE}/{wid}/query/status", "POST").respond_with_json(
            {"queryResult": {"payloads": [payload(answer)]}}
        )
    server.expect_request(f"{BASE}/{wid}/history", "GET").respond_with_json({"history": {"events": [close]}})


async def test_following_ends_with_the_result_and_shows_each_answer(httpserver: HTTPServer) -> None:
    running = PromotionStatus(id="promote-demo", app="demo", commit="abc").model_dump(mode="json")
    done = {**running, "state": "succeeded"}
    completed = {"workflowExecutionCompletedEventAttributes": {"result": {"payloads": [payload(done)]}}}
    answers(httpserver, "promote-demo", [("RUNNING", running)], completed)
    httpserver.expect_oneshot_request(f"{BASE}/promote-demo", "GET").respond_with_json(
        described("promote-demo", "COMPLETED")
    )
    seen: list[PromotionStatus] = []
    final = await HttpPromotions(httpserver.url_for("/"), "default").follow("promote-demo", "r1", seen.append)
    assert final.state == PromotionState.SUCCEEDED and [s.state for s in seen] == [PromotionState.RUNNING]


async def test_a_run_that_closed_without_an_outcome_is_failed_saying_why(httpserver: HTTPServer) -> None:
    running = PromotionStatus(id="promote-demo", app="demo", commit="abc").model_dump(mode="json")
    failure = {"message": "outer", "cause": {"message": "the worker's own words\nand a trace"}}
    answers(
        httpserver,
        "promote-demo",
        [("FAILED", running)],
        {"workflowExecutionFailedEventAttributes": {"failure": failure}},
    )
    final = await HttpPromotions(httpserver.url_for("/"), "default").follow("promote-demo", None, lambda s: None)
    assert (final.state, final.message) == (PromotionState.FAILED, "the worker's own words")


async def test_the_lift_of_a_hold_is_waited_for_until_its_pr_is_open(httpserver: HTTPServer) -> None:
    opening = StageStatus(env="staging", order=1, state=StageState.OPENING_PR).model_dump(mode="json")
    waiting = {**opening, "state": "awaiting_approval", "pr_number": 7}
    answers(httpserver, "release-hold-demo-staging", [("RUNNING", opening), ("RUNNING", waiting)], {})
    stage = await HttpPromotions(httpserver.url_for("/"), "default").hold_pr("release-hold-demo-staging")
    assert (stage.state, stage.pr_number) == (StageState.AWAITING_APPROVAL, 7)


async def test_a_lift_of_no_hold_is_its_own_one_line_failure(httpserver: HTTPServer) -> None:
    wid = "release-hold-demo-staging"
    httpserver.expect_request(f"{BASE}/{wid}", "GET").respond_with_json(described(wid, "FAILED"))
    failure = {"message": "activity failed", "cause": {"message": "demo @ abc is not held out of staging"}}
    httpserver.expect_request(f"{BASE}/{wid}/history", "GET").respond_with_json(
        {"history": {"events": [{"workflowExecutionFailedEventAttributes": {"failure": failure}}]}}
    )
    with pytest.raises(PromoterError, match="^demo @ abc is not held out of staging$"):
        await HttpPromotions(httpserver.url_for("/"), "default").hold_pr(wid)


def listed(status: str, memo: dict[str, Any], attributes: dict[str, str] | None = None) -> Listed:
    return Listed("promote-demo", "r1", status, memo, attributes or {}, None, None)


@pytest.mark.parametrize(
    ("row", "state", "stage"),
    [
        (listed("RUNNING", {"stage": "dev", "stage_state": "syncing"}), "running", ("dev", "syncing")),
        (
            listed("RUNNING", {"stage": "dev"}, {STATE_ATTRIBUTE: "awaiting_approval", ENV_ATTRIBUTE: "prod"}),
            "running",
            ("prod", "awaiting_approval"),
        ),
        (listed("COMPLETED", {"state": "succeeded"}), "succeeded", (None, None)),
        (listed("CANCELED", {}), "cancelled", (None, None)),
        (listed("TERMINATED", {"state": "running"}), "failed", (None, None)),
        (listed("CONTINUED_AS_NEW", {}), "failed", (None, None)),
    ],
)
def test_a_listed_run_s_state_and_stage(row: Listed, state: str, stage: tuple[str | None, str | None]) -> None:
    assert (row.state, row.stage) == (state, stage)
