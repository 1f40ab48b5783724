"""Steps whose final signatures are in place but whose capability lands in a later issue.

Each is an explicit no-op that says so in its result (`engine="none"`), so nothing can mistake it for a
real check: the workflow already calls them at the right moment with the right input.
"""

from __future__ import annotations

from temporalio import activity

from promoter.models import (
    HealthInput,
    HealthResult,
    RevertInput,
    RevertResult,
    SyncInput,
    SyncResult,
)


class ClusterActivities:
    # CAPABILITY: cluster sync and rollout health (issue 4).
    @activity.defn(name="sync")
    def sync(self, req: SyncInput) -> SyncResult:
        return SyncResult(engine="none")

    @activity.defn(name="check_health")
    def check_health(self, req: HealthInput) -> HealthResult:
        return HealthResult(healthy=True, engine="none")

    # CAPABILITY: automatic revert (issue 4).
    @activity.defn(name="revert")
    def revert(self, req: RevertInput) -> RevertResult:
        return RevertResult(reverted=False, engine="none")
