"""A release set's hold on its members' promotion IDs.

While a release set runs, it holds `promote-<member>` for each member as a child workflow of this
type. Temporal allows one running workflow per ID, so a promotion of a member cannot start while the
set runs, and a set cannot claim a member whose own promotion runs, however close together the two
are started (the CLI's check before starting is only the friendly, early answer).

A claim answers the `status` query as a promotion does ("moving as a member of the release set …"),
ends with the set's outcome when the set releases it, and is cancelled by the server if the set ever
closes without releasing it (parent close policy REQUEST_CANCEL). `promote APP --supersede` of a
member supersedes and cancels the whole set through its claim.

`Claims` is the set's side: it takes each member's claim as the set starts and lets them go, with the
set's outcome, as it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from promoter.models import ClaimInput, PromotionState, PromotionStatus, Supersede
    from promoter.names import workflow_id
    from promoter.promotions import STATUS_QUERY, SUPERSEDE
    from workflows.recorder import Promotion, Recorder

RELEASE = "release"  # the set's signal: it has ended, with this outcome


def holder(set_id: str) -> str:
    """Who holds the claim, as its status says: a release set, or a drift check healing the app
    (workflows/drift.py takes the same claim, so that a heal and a promotion never run at once)."""
    return f"the drift heal {set_id}" if set_id.startswith("drift-") else f"the release set {set_id}"


def member(set_id: str, verb: str) -> str:
    """`<verb> as a member of the release set <id>`, or `held for the drift heal <id>`."""
    return f"held for {holder(set_id)}" if set_id.startswith("drift-") else f"{verb} as a member of {holder(set_id)}"


def following(set_id: str) -> str:
    """How to follow the release set a member moves in (a drift heal is no promotion to follow)."""
    return "" if set_id.startswith("drift-") else f"; follow it with `promoter status {set_id} --follow`"


@workflow.defn(name="ReleaseSetClaim")
class ReleaseSetClaim:
    @workflow.init
    def __init__(self, inp: ClaimInput) -> None:
        self.inp = inp
        self.status = PromotionStatus(
            id=workflow.info().workflow_id,
            app=inp.app,
            commit=inp.commit,
            requested_by=inp.requested_by,
            started_at=workflow.info().start_time,
            message=member(inp.set_id, "moving") + following(inp.set_id),
        )
        self.outcome: PromotionState | None = None

    @workflow.run
    async def run(self, inp: ClaimInput) -> PromotionStatus:
        try:
            await workflow.wait_condition(lambda: self.outcome is not None)
        except asyncio.CancelledError:
            self.status.state = PromotionState.CANCELLED
            self.status.message = f"no longer held for {holder(inp.set_id)}"
            await workflow.wait_condition(workflow.all_handlers_finished)  # a supersede passed on to the set
            raise
        assert self.outcome is not None
        self.status.state = self.outcome
        self.status.finished_at = workflow.now()
        self.status.message = f"{member(inp.set_id, 'moved')}: {self.outcome.value}"
        return self.status

    @workflow.signal(name=RELEASE)
    def release(self, outcome: PromotionState) -> None:
        self.outcome = outcome

    @workflow.signal(dynamic=True)
    async def tools_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """`supersede` (from `promoter promote APP --supersede`): the set is what is replaced."""
        if name == SUPERSEDE and args:
            by = workflow.payload_converter().from_payload(args[0].payload, Supersede)
            parent = workflow.get_external_workflow_handle(self.inp.set_id)
            await parent.signal(SUPERSEDE, by)
            await parent.cancel()

    @workflow.query(name=STATUS_QUERY)
    def query_status(self) -> PromotionStatus:
        return self.status


class Claims:
    """A release set's claims on its members' promotion IDs, held while the set runs."""

    def __init__(self, promotion: Promotion, recorder: Recorder) -> None:
        self.p = promotion
        self.r = recorder
        self.held: list[ChildWorkflowHandle[ReleaseSetClaim, PromotionStatus]] = []

    async def take(self) -> bool:
        """Hold `promote-<member>` for each member, so that no promotion of a member runs beside the
        set; False (the set ends failed, nothing started) when one of them is running."""
        status = self.p.status
        for app in self.p.plan.members:
            try:
                claim = await workflow.start_child_workflow(
                    ReleaseSetClaim.run,
                    ClaimInput(app=app, commit=self.p.plan.commit, set_id=status.id, requested_by=status.requested_by),
                    id=workflow_id(app),
                    parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    static_summary=f"Held for the release set {status.id}",
                )
            except WorkflowAlreadyStartedError:
                self.r.finish(
                    PromotionState.FAILED,
                    f"{workflow_id(app)} is running: a release set and a promotion of one of its apps never run "
                    f"at once; nothing of {self.p.label} was started",
                )
                return False
            self.held.append(claim)
        return True

    async def release(self) -> None:
        """Let the members go, with the set's outcome, and wait for their claims to end."""
        claims, self.held = self.held, []
        for claim in claims:
            try:
                await claim.signal(RELEASE, self.p.status.state)
            except ApplicationError:
                pass  # it has ended already (cancelled by a promotion of its member that superseded the set)
        for claim in claims:
            try:
                await claim
            except ChildWorkflowError:
                pass  # cancelled by hand: the member is free all the same
