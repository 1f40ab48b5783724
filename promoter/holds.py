"""Held versions: a commit that was reverted in an environment stays out of it.

Git is the record, not Temporal. The merge of an automatic revert's PR carries trailers:

    Promoter-Held: <the promoted commit>
    Promoter-Held-App: <app>
    Promoter-Held-Env: <environment>
    Promoter-Held-Reason: <why it was reverted, one line>
    Promoter-Held-PR: <the revert PR's URL>

Planning a promotion of that commit into that environment is refused with the reason and the PR. A
later commit of main lifts the hold (made through a reviewed pull request, like any change of main):

    Promoter-Release-Hold: <commit>
    Promoter-Held-App: <app>
    Promoter-Held-Env: <environment>
    Promoter-Released-By: <who>: <why>

A newer commit of the app is never held by an older one's revert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

HELD = "Promoter-Held"
RELEASE = "Promoter-Release-Hold"


@dataclass(frozen=True)
class Hold:
    app: str
    env: str
    commit: str
    reason: str
    pr_url: str
    recorded_in: str  # the commit of main that holds it

    def refusal(self) -> str:
        return (
            f"{self.app} @ {self.commit[:7]} is held out of {self.env}: it was reverted there "
            f"({self.reason}; {self.pr_url or self.recorded_in[:12]}); promote a newer commit, or lift the hold "
            f"with `promoter release-hold {self.app} --env {self.env} --commit {self.commit[:12]} --as <you> "
            "--reason <why>`"
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def trailers(apps: str | list[str], env: str, commit: str, reason: str, pr_url: str) -> str:
    """The hold of `commit` in `env` for each of `apps` (a release set's revert holds every member)."""
    named = "".join(f"{HELD}-App: {app}\n" for app in ([apps] if isinstance(apps, str) else apps))
    return (
        f"{HELD}: {commit}\n{named}{HELD}-Env: {env}\n"
        f"{HELD}-Reason: {_one_line(reason)[:500]}\n{HELD}-PR: {_one_line(pr_url)}\n"
    )


def release_trailers(app: str, env: str, commit: str, who: str, why: str) -> str:
    by = f"Promoter-Released-By: {_one_line(who)}: {_one_line(why)}"
    return f"{RELEASE}: {commit}\n{HELD}-App: {app}\n{HELD}-Env: {env}\n{by}\n"


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """A commit message's `Key: value` lines (git trailers, and the like), in order."""
    found = []
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and re.fullmatch(r"[A-Z][A-Za-z-]+", key):
            found.append((key, value.strip()))
    return found


def _fields(message: str) -> dict[str, str]:
    """The message's `Promoter-*` trailers, the first of each key."""
    found: dict[str, str] = {}
    for key, value in parse_trailers(message):
        if key.startswith("Promoter-"):
            found.setdefault(key, value)
    return found


def current(app: str, commits: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Hold]:
    """The holds of `app` in force after `commits` of main, (sha, message) oldest first: keyed by
    (environment, commit)."""
    holds: dict[tuple[str, str], Hold] = {}
    for sha, message in commits:
        f = _fields(message)
        apps = [value for key, value in parse_trailers(message) if key == f"{HELD}-App"]
        if app not in apps or not f.get(f"{HELD}-Env"):
            continue
        env = f[f"{HELD}-Env"]
        if f.get(HELD):
            holds[(env, f[HELD])] = Hold(
                app, env, f[HELD], f.get(f"{HELD}-Reason", ""), f.get(f"{HELD}-PR", ""), recorded_in=sha
            )
        if f.get(RELEASE):
            holds.pop((env, f[RELEASE]), None)
    return holds
