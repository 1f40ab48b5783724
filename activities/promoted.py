"""What a drift check of a whole environment compares each app's folder with, read in one walk of main
for all its apps: the answer `Provenance.promoted_folder` gives for one app, which costs a fetch, a
read of the trusted rules and a first-parent log of all of main per app (5,000 apps: 5,000 walks).

One fetch, the rules read once, then one `git log --first-parent --name-only` of main limited to the
environment's folder: each commit that changed an app's folder is handed to that app, and each app's
commits are judged as `promoted_folder` judges them (the newest merge of promoter's own, a promotion's
or a revert's, signed by promoter when it signs; what changed the folder since is unpromoted; an app
never promoted is compared with the commit that created its folder)."""

from __future__ import annotations

from collections.abc import Sequence

import git

from promoter import history
from promoter.errors import TemporaryError
from promoter.git import index as main_index
from promoter.git.clone import Clone
from promoter.git.folders import Aside, Touched, judged
from promoter.git.folders import touched as read_touched
from promoter.git.provenance import Provenance, brings
from promoter.git.reading import GitOpsReader
from promoter.git.rules import TrustedRules
from promoter.models import PromotedFolder
from promoter.names import ENVIRONMENTS, app_folder, check, env_folder

_START = "\x1dcommit\x1f"  # before each commit's sha in the log (its changed paths follow it)


class PromotedFolders:
    """Each app's `PromotedFolder` in an environment, from one walk of main."""

    def __init__(self, clone: Clone, trusted: TrustedRules, reading: GitOpsReader) -> None:
        self.clone = clone
        self.trusted = trusted
        self.reading = reading

    def of(self, env: str, apps: Sequence[str]) -> dict[str, PromotedFolder]:
        check(env, "environment")
        for app in apps:
            check(app, "app")
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        if self.reading.environments_at(repo, self.trusted.rules(main).commit)[0].config.name == env:
            return {app: PromotedFolder(revision=main, promoted=True) for app in apps}
        touched = self.touched(repo, self.clone.run(repo, *log_args(env, main)), env, set(apps), main)
        seconds = [second for commits in touched.values() for _, second, _, _ in commits if second]
        branches = self.clone.messages(repo, sorted(set(seconds)))
        signers = self.trusted.promoter_signers(repo, main) if self.clone.signing_key is not None else None
        signed: dict[str, bool] = {}

        def promoters(second: str) -> bool:
            if signers is None:
                return True
            if second not in signed:
                signed[second] = self.trusted.branch_signed(repo, second, signers)
            return signed[second]

        found: dict[str, PromotedFolder] = {}
        aside = Aside(self.clone, repo, main, promoters)
        for app in apps:
            commits = touched.get(app, [])
            merges = [{"sha": sha, "at": "", "message": msg} for sha, second, _, msg in commits if second]
            second_of = {sha: second for sha, second, _, _ in commits}
            for m in merges:
                m["branch_message"] = branches.get(second_of[m["sha"]], "")
            ours = {
                e.main_commit
                for e in history.events(app, merges, [])
                if e.env == env
                and (e.kind == "reverted" or e.promotion)
                and promoters(second_of.get(e.main_commit, ""))
                and brings(self.clone, repo, e.main_commit, second_of.get(e.main_commit, ""), app_folder(env, app))
            }
            found[app] = judged(commits, ours, main)
            found[app].unhealable = aside.unhealable(found[app], env, app)
        for app in self.thrown_away(repo, main, env, found):  # a merge threw away its folder's changes
            found[app] = Provenance(self.clone, self.trusted, self.reading).promoted_folder(env, app)
        return found

    def thrown_away(self, repo: git.Repo, main: str, env: str, found: dict[str, PromotedFolder]) -> list[str]:
        """The apps whose folder a merge on main threw away changes of (promoter.git.merged) after the
        revision found for it, which the first-parent log above does not see: each is judged alone, from
        the index of main's records. An older such merge was judged by the promotion after it."""
        indexed = main_index.view(self.clone, repo, main)
        if indexed is None:
            return []
        newer = []
        for app, folder in found.items():
            since = indexed.rank(folder.revision)
            ranks = [indexed.rank(sha) for sha in indexed.thrown(f"{env_folder(env)}/{app}")]
            if any(since is None or (r is not None and r < since) for r in ranks):
                newer.append(app)
        return newer

    def touched(self, repo: git.Repo, log: str, env: str, apps: set[str], main: str) -> dict[str, list[Touched]]:
        """Each app's commits in `log` (`log_args`' output), newest first. The log gives each commit's
        sha and changed paths only, and must list exactly git's own commits (a path holding the record
        mark would start a made-up one): parents, author and message are read from each commit's object."""
        prefix = env_folder(env) + "/"
        records = [record.partition("\x1e") for record in log.split(_START)[1:]]
        expected = self.clone.run(repo, "rev-list", "--first-parent", main, "--", f"{ENVIRONMENTS}/{env}/").split()
        if [sha for sha, _, _ in records] != expected:
            raise TemporaryError(f"git's log of {env_folder(env)} on {main[:12]} lists other commits than git's own")
        found: dict[str, list[Touched]] = {}
        entries = read_touched(self.clone, repo, expected)
        for entry, (sha, _, names) in zip(entries, records, strict=True):
            for app in {n[len(prefix) :].split("/", 1)[0] for n in names.split("\n") if n.startswith(prefix)}:
                if app in apps and (not found.get(app) or found[app][-1][0] != sha):
                    found.setdefault(app, []).append(entry)
        return found


def log_args(env: str, main: str) -> list[str]:
    """main's first-parent commits that changed the environment's folder, each with the paths it changed
    (a merge's: against its first parent; renames as a deletion and an addition)."""
    return [
        "log",
        "--first-parent",
        "--diff-merges=first-parent",
        "--no-renames",
        "--name-only",
        f"--format={_START}%H%x1e",
        main,
        "--",
        f"{ENVIRONMENTS}/{env}/",
    ]
