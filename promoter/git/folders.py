"""An app folder's promotions as main's first-parent line shows them: the commits that changed the
folder (`folder_log`), the verdict on them (`judged`: the folder as promoter's own merge last wrote it,
and what changed it since), and whether a heal may apply that revision (`moved_aside`). Read by
`Provenance.promoted_folder` for one app and by a drift check's one walk for all (activities/promoted.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import git

from promoter import history
from promoter.git import commits, objects
from promoter.git import index as main_index
from promoter.git.clone import Clone
from promoter.models import PromotedFolder, UnpromotedChange

Touched = tuple[str, str, str, str]  # (sha, second parent or "", author as `%an <%ae>`, a merge's message)


def touched(clone: Clone, repo: git.Repo, shas: list[str]) -> list[Touched]:
    """What `judged` and the merges of promoter's own are read from, for commits that changed a folder:
    each from its own object, never split out of one git run's output, where a name or a message holding
    the separators could pass off a made-up commit as promoter's merge. Only a merge's message is read
    (no other is asked of it)."""
    seconds = {sha: (objects.parents(repo, sha) + ["", ""])[1] for sha in shas}
    messages = clone.messages(repo, [sha for sha in shas if seconds[sha]])
    return [(sha, seconds[sha], commits.author(repo, sha), messages.get(sha, "")) for sha in shas]


def folder_log(clone: Clone, repo: git.Repo, main: str, folder: str) -> list[Touched]:
    """`touched` for main's first-parent commits that changed `folder`, newest first, picked by the index
    of main's records."""
    indexed = main_index.of(clone).at(repo, main)
    return touched(clone, repo, [indexed.sha(p) for p in reversed(indexed.changed([folder]))])


class Aside:
    """Whether a heal may apply an app folder's revision: not when a merge of a promotion or a revert of
    the app into the environment, promoter's own (`ours`: its branch commit signed by promoter, when it
    signs), is on main off its first-parent line and not behind the revision. A merge with an older
    first parent than the main it follows (`git merge main` on an old branch, pushed as main) puts it
    there: what was deployed may be newer than the revision, and a heal would roll it back. Main's such
    merges are read once, when first asked (two git runs, none per app); a release set's are not
    looked for."""

    def __init__(self, clone: Clone, repo: git.Repo, main: str, ours: Callable[[str], bool]) -> None:
        self.clone, self.repo, self.main, self.ours = clone, repo, main, ours
        self._merges: list[tuple[str, str, str, str, str]] | None = None  # (sha, second parent, kind, app, env)

    def merges(self) -> list[tuple[str, str, str, str, str]]:
        if self._merges is None:
            on_line = set(self.clone.run(self.repo, "rev-list", "--first-parent", self.main).split())
            out = self.clone.run(
                self.repo, "log", "--merges", "--format=%H %P", "--grep=from promote/", "--grep=from revert/",
                self.main,
            )  # fmt: skip
            listed = [fields for row in out.splitlines() if len(fields := row.split()) > 2 and fields[0] not in on_line]
            messages = self.clone.messages(self.repo, [sha for sha, *_ in listed])  # each from its own commit
            self._merges = []
            for sha, _, second, *_ in listed:
                if (named := history.merge_of(messages[sha])) is not None:
                    self._merges.append((sha, second, named[1], named[2], named[3]))
        return self._merges

    def unhealable(self, found: PromotedFolder, env: str, app: str) -> str:
        """Why a heal must not apply `found.revision` ("": nothing says so); asked when the folder changed
        since it (a heal would apply it then)."""
        if not found.promoted or not found.unpromoted:
            return ""
        for sha, second, kind, named_app, named_env in self.merges():
            if (named_app, named_env) == (app, env) and self.ours(second):
                if not self.clone.is_ancestor(self.repo, sha, found.revision):
                    return (
                        f"{kind} merge {sha[:12]} of {app} into {env} is on main but off its first-parent line "
                        f"and not behind {found.revision[:12]} (a merge with an older first parent moved it "
                        "aside): not healed, what runs may be newer"
                    )
        return ""


def judged(touched: Sequence[tuple[str, str, str, str]], ours: set[str], main: str) -> PromotedFolder:
    """`promoted_folder`'s verdict on the commits (sha, second parent, author, message; newest first) that
    changed an app's folder, given the merges of promoter's own among them (the drift check's too)."""
    unpromoted: list[UnpromotedChange] = []
    for sha, _, author, _ in touched:
        if sha in ours:
            return PromotedFolder(revision=sha, promoted=True, unpromoted=unpromoted)
        unpromoted.append(UnpromotedChange(commit=sha, author=author))
    if not unpromoted:  # the folder is not on main's first-parent line at all
        return PromotedFolder(revision=main, promoted=False)
    seed = unpromoted.pop()  # the oldest: the commit that created the folder
    return PromotedFolder(revision=seed.commit, promoted=False, unpromoted=unpromoted)
