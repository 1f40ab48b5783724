"""GitLab publishes no full description of its REST API, so its stand-ins are held to the wording of
the merge requests API documentation (doc/api/merge_requests.md, "Merge status" and "Merge a merge
request"): a merge request's `detailed_merge_status` must be one the documentation lists, and a merge
(`PUT /projects/:id/merge_requests/:merge_request_iid/merge`) may fail only with the status codes it
lists, besides those any GitLab call may answer (docs: REST API troubleshooting, rate limits)."""

from __future__ import annotations

import json
import re
from typing import Any

DOCS = "https://docs.gitlab.com/api/merge_requests/"

# "The `detailed_merge_status` field can contain one of the following values related to the merge
# request:" (#merge-status), word for word
DETAILED_MERGE_STATUS = {
    "approvals_syncing": "The merge request's approvals are syncing.",
    "checking": "Git is testing if a valid merge is possible.",
    "ci_must_pass": "A CI/CD pipeline must succeed before merge.",
    "ci_still_running": "A CI/CD pipeline is still running.",
    "commits_status": "Source branch should exist, and contain commits.",
    "conflict": "Conflicts exist between the source and target branches.",
    "discussions_not_resolved": "All discussions must be resolved before merge.",
    "draft_status": "Can't merge because the merge request is a draft.",
    "jira_association_missing": "The title or description must reference a Jira issue.",
    "mergeable": "The branch can merge cleanly into the target branch.",
    "merge_request_blocked": "Blocked by another merge request.",
    "merge_time": "May not be merged until after the specified time.",
    "need_rebase": "The merge request must be rebased.",
    "not_approved": "Approval is required before merge.",
    "not_open": "The merge request must be open before merge.",
    "preparing": "Merge request diff is being created.",
    "requested_changes": "The merge request has reviewers who have requested changes.",
    "security_policy_violations": "All security policies must be satisfied.",
    "status_checks_must_pass": "All status checks must pass before merge.",
    "unchecked": "Git has not yet tested if a valid merge is possible.",
    "locked_paths": "Paths locked by other users must be unlocked before merging to default branch.",
    "locked_lfs_files": "LFS files locked by other users must be unlocked before merge.",
}

# "This API returns specific HTTP status codes on failure:" (#merge-a-merge-request): status, message, reason
MERGE_FAILURES = {
    401: ("Unauthorized", "This user does not have permission to accept this merge request."),
    405: ("Method Not Allowed", "The merge request is not able to be merged."),
    409: (
        "SHA does not match HEAD of source branch",
        "The provided `sha` parameter does not match the HEAD of the source.",
    ),
    422: ("Branch cannot be merged", "The merge request failed to merge."),
}
# what any call may answer: 403 (the token's scope or role), 404, 429 (rate limits), and 5xx
ANY_CALL = {403, 404, 429, 500, 502, 503, 504}
MERGE = re.compile(r"^/api/v4/projects/[^/]+(/[^/]+)*/merge_requests/\d+/merge$")


def complaints(method: str, path: str, status: int, body: bytes) -> list[str]:
    """What the documentation does not allow in one GitLab exchange, one line each."""
    found = []
    if method == "PUT" and MERGE.match(path) and status not in {200, *MERGE_FAILURES, *ANY_CALL}:
        documented = ", ".join(map(str, sorted(MERGE_FAILURES)))
        found.append(f"GitLab PUT {path}: response {status}: undocumented for a merge (documented: {documented})")
    for status_name in _detailed_statuses(body):
        if status_name not in DETAILED_MERGE_STATUS:
            said = f"detailed_merge_status {status_name!r} is not one {DOCS}#merge-status lists"
            found.append(f"GitLab {method} {path}: response {status}: {said}")
    return found


def _detailed_statuses(body: bytes) -> list[str]:
    try:
        data: Any = json.loads(body or b"null")
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    return [str(i["detailed_merge_status"]) for i in items if isinstance(i, dict) and "detailed_merge_status" in i]
