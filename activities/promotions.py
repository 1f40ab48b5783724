"""What Temporal knows about promotions, for the workflows that need it beside a promotion (the drift
check leaves an app alone while a promotion of it is in flight, so the two never fight over a sync)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from promoter.names import WORKFLOW_PREFIX
from promoter.promotions import PROMOTION_QUERY


class PromotionActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="running_promotions")
    async def running_promotions(self, env: str) -> list[str]:
        """The apps with a promotion running now (in any environment: it may reach `env` any moment),
        as Temporal's visibility lists them: a release set's members (from its memo) too."""
        query = f"{PROMOTION_QUERY} AND ExecutionStatus = 'Running'"
        apps: set[str] = set()
        async for wf in self.client.list_workflows(query):
            apps.add(wf.id.removeprefix(WORKFLOW_PREFIX))
            members = (await wf.memo()).get("members")
            if isinstance(members, list):
                apps.update(str(m) for m in members)
        return sorted(apps)
