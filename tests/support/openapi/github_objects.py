"""GitHub's objects as its description requires them (every `required` field, of the right type), for
the stand-ins' answers: a pull request, its list item, a review, a comment, a label, a combined status,
check runs, a commit and a merge result. Each takes the few fields a test cares about; the rest are
plausible constants. tests/forges/test_forge_specs.py checks each against the description."""

from __future__ import annotations

from typing import Any

API = "https://api.github.com"
WEB = "https://github.com"
WHEN = "2026-11-26T10:00:00Z"

_USER_URLS = (
    "events_url followers_url following_url gists_url organizations_url received_events_url repos_url "
    "starred_url subscriptions_url"
).split()
_REPO_URLS = (
    "archive_url assignees_url blobs_url branches_url collaborators_url comments_url commits_url compare_url "
    "contents_url contributors_url deployments_url downloads_url events_url forks_url git_commits_url "
    "git_refs_url git_tags_url hooks_url issue_comment_url issue_events_url issues_url keys_url labels_url "
    "languages_url merges_url milestones_url notifications_url pulls_url releases_url stargazers_url "
    "statuses_url subscribers_url subscription_url tags_url teams_url trees_url"
).split()


def user(login: str, account_id: int = 1) -> dict[str, Any]:
    """simple-user"""
    base = f"{API}/users/{login}"
    return {
        "login": login,
        "id": account_id,
        "node_id": f"U_{account_id}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{account_id}",
        "gravatar_id": "",
        "url": base,
        "html_url": f"{WEB}/{login}",
        "type": "User",
        "site_admin": False,
        **{name: f"{base}/{name.removesuffix('_url')}" for name in _USER_URLS},
    }


def repository(full_name: str = "acme/gitops") -> dict[str, Any]:
    """repository"""
    base = f"{API}/repos/{full_name}"
    counts = "forks forks_count open_issues open_issues_count size stargazers_count watchers watchers_count"
    flags = "has_downloads has_issues has_projects has_wiki has_pages archived disabled fork private"
    return {
        "id": 1,
        "node_id": "R_1",
        "name": full_name.split("/")[1],
        "full_name": full_name,
        "owner": user(full_name.split("/")[0]),
        "description": None,
        "url": base,
        "html_url": f"{WEB}/{full_name}",
        "clone_url": f"{WEB}/{full_name}.git",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "svn_url": f"{WEB}/{full_name}",
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "license": None,
        "default_branch": "main",
        "pushed_at": WHEN,
        "created_at": WHEN,
        "updated_at": WHEN,
        **{name: f"{base}/{name.removesuffix('_url')}" for name in _REPO_URLS},
        **dict.fromkeys(counts.split(), 0),
        **dict.fromkeys(flags.split(), False),
    }


def _branch(ref: str, sha: str, full_name: str) -> dict[str, Any]:
    owner = full_name.split("/")[0]
    return {"label": f"{owner}:{ref}", "ref": ref, "sha": sha, "user": user(owner), "repo": repository(full_name)}


def pull_request_simple(
    number: int,
    head: str,
    head_sha: str,
    *,
    state: str = "open",
    title: str = "Promote demo",
    body: str | None = "",
    base: str = "main",
    merged_at: str | None = None,
    merge_commit_sha: str | None = None,
    full_name: str = "acme/gitops",
    author: str = "promoter-bot",
) -> dict[str, Any]:
    """pull-request-simple: an item of `GET /repos/{owner}/{repo}/pulls`."""
    api, web = f"{API}/repos/{full_name}", f"{WEB}/{full_name}/pull/{number}"
    links = {"html": web, "self": f"{api}/pulls/{number}", "issue": f"{api}/issues/{number}"}
    links |= {"comments": f"{api}/issues/{number}/comments", "commits": f"{api}/pulls/{number}/commits"}
    links |= {"review_comments": f"{api}/pulls/{number}/comments", "statuses": f"{api}/statuses/{head_sha}"}
    links["review_comment"] = f"{api}/pulls/comments{{/number}}"
    return {
        "url": links["self"],
        "id": 1000 + number,
        "node_id": f"PR_{number}",
        "html_url": web,
        "diff_url": f"{web}.diff",
        "patch_url": f"{web}.patch",
        "issue_url": links["issue"],
        "commits_url": links["commits"],
        "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"],
        "comments_url": links["comments"],
        "statuses_url": links["statuses"],
        "number": number,
        "state": state,
        "locked": False,
        "title": title,
        "user": user(author, 2),
        "body": body,
        "labels": [],
        "milestone": None,
        "assignee": None,
        "created_at": WHEN,
        "updated_at": WHEN,
        "closed_at": merged_at if state == "closed" else None,
        "merged_at": merged_at,
        "merge_commit_sha": merge_commit_sha,
        "head": _branch(head, head_sha, full_name),
        "base": _branch(base, "0" * 40, full_name),
        "_links": {name: {"href": href} for name, href in links.items()},
        "author_association": "NONE",
        "auto_merge": None,
    }


def pull_request(number: int, head: str, head_sha: str, *, merged: bool = False, **fields: Any) -> dict[str, Any]:
    """pull-request: the answer of `GET`, `POST` and `PATCH` on a pull request."""
    merged_at = fields.pop("merged_at", WHEN if merged else None)
    data = pull_request_simple(number, head, head_sha, merged_at=merged_at, **fields)
    return data | {
        "merged": merged,
        "mergeable": None if merged else True,
        "mergeable_state": "unknown" if merged else "clean",
        "merged_by": user("web-flow", 3) if merged else None,
        "maintainer_can_modify": False,
        "comments": 0,
        "review_comments": 0,
        "commits": 1,
        "additions": 1,
        "deletions": 1,
        "changed_files": 1,
    }


def review(
    review_id: int, login: str, state: str, commit_id: str | None, number: int = 7, body: str = "", **extra: Any
) -> dict[str, Any]:
    """pull-request-review (`submitted_at` is optional in the description, and set here)."""
    web = f"{WEB}/acme/gitops/pull/{number}"
    return {
        "id": review_id,
        "node_id": f"PRR_{review_id}",
        "user": user(login, 10 + review_id),
        "body": body,
        "state": state,
        "commit_id": commit_id,
        "html_url": f"{web}#pullrequestreview-{review_id}",
        "pull_request_url": f"{API}/repos/acme/gitops/pulls/{number}",
        "_links": {"html": {"href": f"{web}#pullrequestreview-{review_id}"}, "pull_request": {"href": web}},
        "author_association": "MEMBER",
        "submitted_at": WHEN,
        **extra,
    }


def issue_comment(comment_id: int, body: str, number: int = 7, login: str = "promoter-bot") -> dict[str, Any]:
    """issue-comment"""
    return {
        "id": comment_id,
        "node_id": f"IC_{comment_id}",
        "url": f"{API}/repos/acme/gitops/issues/comments/{comment_id}",
        "html_url": f"{WEB}/acme/gitops/pull/{number}#issuecomment-{comment_id}",
        "issue_url": f"{API}/repos/acme/gitops/issues/{number}",
        "body": body,
        "user": user(login, 2),
        "created_at": WHEN,
        "updated_at": WHEN,
        "author_association": "NONE",
    }


def label(name: str, label_id: int = 1) -> dict[str, Any]:
    """label"""
    return {
        "id": label_id,
        "node_id": f"LA_{label_id}",
        "url": f"{API}/repos/acme/gitops/labels/{name}",
        "name": name,
        "description": "",  # a string: a pull request's labels may not have null here
        "color": "5319e7",
        "default": False,
    }


def combined_status(sha: str, statuses: dict[str, str]) -> dict[str, Any]:
    """combined-commit-status: `statuses` maps each context to its state."""
    states = set(statuses.values())
    overall = "failure" if states & {"failure", "error"} else "pending" if states - {"success"} else "success"
    return {
        "state": overall,
        "sha": sha,
        "total_count": len(statuses),
        "statuses": [
            {
                "id": i,
                "node_id": f"SC_{i}",
                "url": f"{API}/repos/acme/gitops/statuses/{sha}",
                "avatar_url": None,
                "target_url": None,
                "description": None,
                "context": context,
                "state": state,
                "created_at": WHEN,
                "updated_at": WHEN,
            }
            for i, (context, state) in enumerate(statuses.items(), 1)
        ],
        "repository": repository(),  # more than minimal-repository requires, which it allows
        "commit_url": f"{API}/repos/acme/gitops/commits/{sha}",
        "url": f"{API}/repos/acme/gitops/commits/{sha}/status",
    }


def check_runs(sha: str, runs: dict[str, tuple[str, str | None]]) -> dict[str, Any]:
    """The answer of `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`: `runs` maps each name to its
    (status, conclusion)."""
    return {
        "total_count": len(runs),
        "check_runs": [
            {
                "id": i,
                "node_id": f"CR_{i}",
                "head_sha": sha,
                "external_id": None,
                "name": name,
                "url": f"{API}/repos/acme/gitops/check-runs/{i}",
                "html_url": None,
                "details_url": None,
                "status": status,
                "conclusion": conclusion,
                "started_at": WHEN,
                "completed_at": WHEN if status == "completed" else None,
                "output": {
                    "title": None,
                    "summary": None,
                    "text": None,
                    "annotations_count": 0,
                    "annotations_url": f"{API}/repos/acme/gitops/check-runs/{i}/annotations",
                },
                "check_suite": None,
                "app": None,
                "pull_requests": [],
            }
            for i, (name, (status, conclusion)) in enumerate(runs.items(), 1)
        ],
    }


def commit(sha: str, author: str | None, committer: str | None, message: str = "demo 1.2.3") -> dict[str, Any]:
    """commit: the answer of `GET /repos/{owner}/{repo}/commits/{ref}`; `author` and `committer` are the
    logins of the accounts the commit's emails belong to, None (null) where none does."""
    api = f"{API}/repos/acme/gitops"
    person = {"name": "Alice", "email": "alice@example.com", "date": WHEN}
    unsigned = {"verified": False, "reason": "unsigned", "signature": None, "payload": None, "verified_at": None}
    return {
        "sha": sha,
        "node_id": f"C_{sha[:12]}",
        "url": f"{api}/commits/{sha}",
        "html_url": f"{WEB}/acme/gitops/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": person,
            "committer": person,
            "message": message,
            "comment_count": 0,
            "tree": {"sha": "e" * 40, "url": f"{api}/git/trees/{'e' * 40}"},
            "verification": unsigned,
        },
        "author": user(author, 4) if author else None,
        "committer": user(committer, 5) if committer else None,
        "parents": [
            {"sha": "f" * 40, "url": f"{api}/commits/{'f' * 40}", "html_url": f"{WEB}/acme/gitops/commit/{'f' * 40}"}
        ],
        "stats": {"total": 0, "additions": 0, "deletions": 0},
        "files": [],
    }


def merge_result(sha: str) -> dict[str, Any]:
    """pull-request-merge-result"""
    return {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
