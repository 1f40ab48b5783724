"""The gate's one phrase (`report.needs`) and its one list of approvers, as pure functions: every
message a gate writes (status, the Web UI, the PR body, the approve reply) is built from them. The
end-to-end wording is asserted in test_gates.py and test_promotion.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from promoter import report
from promoter.models import (
    Approval,
    DiffSummary,
    EnvironmentConfig,
    PlannedEnvironment,
    PolicyDecision,
    PromotionPlan,
    StageStatus,
)

AT = datetime(2025, 1, 1, tzinfo=UTC)


def test_needs_names_what_is_left_and_never_a_count_of_what_is_done() -> None:
    who = ["alice", "bob"]
    assert report.needs(2, 0, who, False, False) == "needs 2 more approval(s) from alice, bob"
    assert report.needs(2, 1, who, False, False) == "needs 1 more approval(s) from alice, bob"
    both = "needs 1 more approval(s) from alice, bob; also needs an approving PR review"
    assert report.needs(1, 0, who, True, False) == both
    assert report.needs(1, 1, who, True, False) == "needs an approving PR review"  # the count is met
    assert report.needs(0, 0, [], True, False) == "needs an approving PR review"
    assert report.needs(1, 0, who, True, True) == "needs 1 more approval(s) from alice, bob"
    assert report.needs(1, 1, who, True, True) == ""
    assert report.needs(1, 3, who, False, False) == ""  # never "needs -2 more"
    assert report.needs(1, 0, [], False, False) == "needs 1 more approval(s) from nobody"


def test_stage_needs_names_the_screened_list_and_counts_a_review() -> None:
    stage = StageStatus(
        env="prod",
        order=2,
        approvals_required=1,
        review_required=True,
        approvers=["alice", "bob", "carol"],
        screened={"bob": "bob wrote the change"},
    )
    assert report.may_approve(stage) == ["alice", "carol"]
    assert report.stage_needs(stage) == "needs 1 more approval(s) from alice, carol; also needs an approving PR review"
    stage.approvals.append(Approval(approver="alice", at=AT, via="cli"))
    assert report.stage_needs(stage) == "needs an approving PR review"
    stage.approvals.append(Approval(approver="carol", at=AT, via="pull_request"))
    assert report.stage_needs(stage) == ""


def body(approval: dict[str, Any], decided: list[str]) -> str:
    plan = PromotionPlan(
        app="demo",
        commit="a" * 40,
        short_commit="aaaaaaa",
        author="dana",
        message="bump",
        environments=[
            PlannedEnvironment(config=EnvironmentConfig(name="dev", order=1)),
            PlannedEnvironment(
                config=EnvironmentConfig.model_validate({"name": "prod", "order": 2, "approval": approval})
            ),
        ],
    )
    decision = PolicyDecision(allow=True, approvers=decided)
    required = int(approval.get("required", 0))
    return report.pr_body(plan, "promote-demo", "dev", "prod", DiffSummary(), decision, approval["approvers"], required)


def test_the_pr_body_names_the_approvers_as_the_policies_expand_them() -> None:
    gate = {"required": 1, "approvers": ["alice", "group:sre"], "require_review": True}
    text = body(gate, ["alice", "sam", "sue"])
    assert "Needs 1 more approval(s) from alice, sam, sue; also needs an approving PR review." in text
    assert "group:sre" not in text
    # rules that give no list (an older trusted revision): the environment's own list, as it is
    assert "Needs 1 more approval(s) from alice, group:sre;" in body(gate, [])
    # a review alone: no CLI command to approve with, since only a review on the PR opens it
    only = body({"approvers": ["alice"], "require_review": True}, ["alice"])
    assert "Needs an approving PR review." in only and "promoter approve" not in only
