"""App and environment names are identifiers, never paths: each is a DNS-1123 label (lowercase
letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit), checked
once at every edge that takes one (the CLI, resolving a request, every activity). Every name derived
from them (folder paths, branch names, workflow IDs) is built here, from checked names only, so
`../staging/demo`, `demo/` or `''` can never become a folder of another environment, a branch of
another app or a second workflow ID for the same app.
"""

from __future__ import annotations

import re

from promoter.errors import BadInput

MAX_NAME = 63
ENVIRONMENTS = "environments"
# who may sign approvals (git's allowed-signers format) and the keys that may no longer sign
ALLOWED_SIGNERS = "trust/allowed_signers"
REVOKED_KEYS = "trust/revoked_keys"
WORKFLOW_PREFIX = "promote-"
LIFT_PREFIX = "release-hold-"
GLASS_PREFIX = "break-glass-"  # `promoter break-glass`'s run: break-glass-<app>-<env>
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def shown(value: str, limit: int = 40) -> str:
    """A name as an error message may quote it: on one line, and short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_label(value: object) -> bool:
    return isinstance(value, str) and _LABEL.fullmatch(value) is not None


def check(value: str, what: str = "app") -> str:
    """`value` when it is a valid name; else a `BadInput` saying what a name may be."""
    if is_label(value):
        return value
    if not isinstance(value, str) or not value:
        raise BadInput(f"the {what} name is empty; give one like 'demo'")
    if len(value) > MAX_NAME:
        raise BadInput(f"the {what} name {shown(value)} is {len(value)} characters long; a name has at most {MAX_NAME}")
    raise BadInput(
        f"{shown(value)} is not a valid {what} name: use lowercase letters, digits and '-', "
        f"starting and ending with a letter or digit (a DNS-1123 label, e.g. 'demo')"
    )


def app_folder(env: str, app: str) -> str:
    """`environments/<env>/<app>`, from checked names only."""
    return f"{env_folder(env)}/{check(app, 'app')}"


def env_folder(env: str) -> str:
    return f"{ENVIRONMENTS}/{check(env, 'environment')}"


def workflow_id(app: str) -> str:
    """The one workflow ID of an app's promotion: one promotion per app at a time."""
    return WORKFLOW_PREFIX + check(app, "app")


def promotion_id(id_or_app: str) -> str:
    """What a person may type where a promotion is meant: its ID (`promote-demo`) or its app (`demo`)."""
    if id_or_app.startswith(WORKFLOW_PREFIX) and is_label(id_or_app[len(WORKFLOW_PREFIX) :]):
        return id_or_app
    if id_or_app.startswith(LIFT_PREFIX) and is_label(id_or_app[len(LIFT_PREFIX) :]):
        return id_or_app  # `promoter lift-hold`'s run, which takes approve and reject as a promotion does
    if id_or_app.startswith(GLASS_PREFIX) and is_label(id_or_app[len(GLASS_PREFIX) :]):
        return id_or_app  # `promoter break-glass`'s run, the same gate
    try:
        return workflow_id(id_or_app)
    except BadInput as e:
        raise BadInput(f"{e}; a promotion ID is promote-<app>") from None


_REVISION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._/~^@{}-]{0,199}")


def check_revision(value: str) -> str:
    """A commit as a person gives it (a SHA, or a revision of main such as `main~2`): never an option."""
    if _REVISION.fullmatch(value) and ".." not in value:
        return value
    raise BadInput(f"{shown(value)} is not a commit: give a commit SHA of main (or a revision like main~1)")


# branches: derived from the input, so a retry finds its branch again
PROMOTE, REVERT = "promote", "revert"


def promotion_branch(app: str, env: str, commit: str) -> str:
    """`promote/<app>/<env>/<short sha>`: derived from the input, so a retry finds its branch again."""
    return f"{branch_family(app, env)}{commit[:7]}"


def branch_family(app: str, env: str) -> str:
    """The prefix every promotion branch of an app into an environment shares."""
    return f"{PROMOTE}/{check(app, 'app')}/{check(env, 'environment')}/"


def family_of(branch: str) -> str:
    """The family (`promote/<app>/<env>/`) of a promotion branch."""
    return branch.rsplit("/", 1)[0] + "/"


def revert_branch(app: str, env: str, merge_commit: str) -> str:
    return f"{REVERT}/{check(app, 'app')}/{check(env, 'environment')}/{merge_commit[:7]}"


def lift_branch(app: str, env: str, commit: str) -> str:
    """`release-hold/<app>/<env>/<short sha>`: the PR that lifts a hold (see promoter.holds)."""
    return f"release-hold/{check(app, 'app')}/{check(env, 'environment')}/{commit[:7]}"
