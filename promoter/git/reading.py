"""Reading the GitOps repository: resolving a promotion request against main (its commit, its
environments, the holds in its way), each environment's configuration and apps, and the files,
trees and policies at a commit.

Environments and trust/ are read at the trusted rules revision (`promoter.git.rules`), never at
main as it stands: an unsigned change of main's must not move what judges a promotion.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path

import git

from promoter import holds
from promoter.environments import in_order, parse_environment, up_to
from promoter.errors import BadInput, NotFound
from promoter.git import commits, objects
from promoter.git import index as main_index
from promoter.git.clone import Clone
from promoter.git.objects import MAIN, TREE
from promoter.git.rules import TrustedRules
from promoter.models import EnvironmentConfig, PlannedEnvironment, PromotionPlan, PromotionRequest
from promoter.names import ENVIRONMENTS, app_folder, check, check_revision, env_folder

HELD_MAINS = 8  # the mains whose held commits are kept
# an environments/ tree's id -> its environments, parsed (a bad one is never kept: parsing it raises)
_ENVIRONMENTS: dict[str, list[PlannedEnvironment]] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


class GitOpsReader:
    """What main says: the request resolved, the environments, their apps, the holds, the files."""

    def __init__(self, clone: Clone, trusted: TrustedRules) -> None:
        self.clone = clone
        self.trusted = trusted
        self._held: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (clone, main) -> its held commits
        self._held_lock = threading.Lock()

    def resolve(self, req: PromotionRequest) -> PromotionPlan:
        """The request resolved against main as it is now: the commit to promote (the newest that changed
        the app, or the one given, which must be on main), the environments it goes through (up to
        `to_env`; in a graph, those on a path from the source to it), and the trust/ and rules revision
        that judge it. `BadInput` names what is wrong."""
        _check_request(req)
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        rules = self.trusted.rules(main)  # environment.yaml and trust/ as the trusted rules revision has them
        envs = self.environments_at(repo, rules.commit)
        source = envs[0].config.name
        if req.to_env is not None:
            names = [e.config.name for e in envs]
            if req.to_env not in names:
                raise BadInput(f"unknown environment '{req.to_env}'; environments: {', '.join(names)}")
            envs = up_to(envs, req.to_env)  # a graph: the environments on some path to it
        apps_here = self.apps(repo, main, source)
        if req.members and req.app in apps_here:
            raise BadInput(f"the release set's name '{req.app}' is an app's; give the set another --name")
        for app in req.apps:
            if app not in apps_here:
                raise BadInput(
                    f"unknown app '{app}': no {app_folder(source, app)} on {MAIN}; "
                    f"apps in {source}: {', '.join(apps_here) or 'none'}"
                )
        sha = self._commit(repo, main, req, source)
        self._check_promotable(repo, main, sha, req, envs, apps_here)
        return PromotionPlan(
            app=req.app,
            members=req.members,
            commit=sha,
            short_commit=sha[:7],
            author=commits.author(repo, sha),  # as `git log --format='%an <%ae>'`, read in process
            message=commits.subject(repo, sha),
            environments=envs,
            trust=self.trusted.read_trust(repo, rules.commit),
            rules=rules,
        )

    def _commit(self, repo: git.Repo, main: str, req: PromotionRequest, source: str) -> str:
        """The commit a request promotes: the one it names, which must be on main, or else the newest
        commit of main that changed the app (any member of a set)."""
        if req.commit is None:
            folders = [app_folder(source, app) + "/" for app in req.apps]
            indexed = main_index.view(self.clone, repo, main)
            changed = indexed.changed([f.rstrip("/") for f in folders]) if indexed is not None else []
            # the newest first-parent commit that changed them; from it, git finds the very commit
            # (in the branch a merge took in) as it would from main: no commit after it changed them
            since = indexed.sha(changed[-1]) if indexed is not None and changed else main
            return self.clone.run(repo, "log", "-1", "--format=%H", since, "--", *folders)
        sha = objects.rev(repo, req.commit) or ""
        if not sha:
            raise BadInput(f"commit '{req.commit}' does not exist in {self.clone.url}; give a commit of {MAIN}")
        if not self.clone.is_ancestor(repo, sha, main):
            raise BadInput(f"commit {sha[:12]} is not on {MAIN}; promote only commits of {MAIN}")
        return sha

    def _check_promotable(
        self,
        repo: git.Repo,
        main: str,
        sha: str,
        req: PromotionRequest,
        envs: list[PlannedEnvironment],
        apps_here: list[str],
    ) -> None:
        """Each app's folder exists at `sha` with nothing that can never be promoted in it, and no hold
        keeps `sha` out of an environment the request goes to."""
        source = envs[0].config.name
        for app in req.apps:
            folder = app_folder(source, app)
            if not self.clone.tree(repo, sha, folder):  # also refuses entries that can never be promoted
                raise BadInput(
                    f"unknown app '{app}': {folder} does not exist at {sha[:12]}; "
                    f"apps in {source}: {', '.join(apps_here) or 'none'}"
                )
            held = self._holds(repo, main, app)
            for env in envs[1:]:  # held: that commit, or the same content of the app's folder as a held one
                hold = holds.find(held, env.config.name, sha, lambda folder: self.clone.tree_id(repo, sha, folder))
                if hold is not None:
                    raise BadInput(hold.refusal(sha))

    def environments(self) -> list[EnvironmentConfig]:
        """Every environment's configuration, as the trusted rules revision of main has it."""
        repo = self.clone.fresh()
        return [e.config for e in self.environments_at(repo, self.trusted.rules(self.clone.main(repo)).commit)]

    def environment_apps(self, env: str) -> tuple[str, EnvironmentConfig, list[str]]:
        """(main's commit, the environment's configuration, its apps) as main has them now."""
        check(env, "environment")
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        return main, self.environment(repo, self.trusted.rules(main).commit, env), self.apps(repo, main, env)

    def held(self, app: str, env: str, commit: str) -> tuple[holds.Hold, EnvironmentConfig, str]:
        """The hold that keeps `app` @ `commit` out of `env` on main (one of that commit, or of the same
        content), with the environment's configuration and the held commit's author; `BadInput` when
        there is none."""
        check(app, "app")
        check(env, "environment")
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        config = self.environment(repo, self.trusted.rules(main).commit, env)
        sha = objects.rev(repo, commit) or ""
        hold = None
        if sha:
            in_force = self._holds(repo, main, app)
            hold = holds.find(in_force, env, sha, lambda folder: self.clone.tree_id(repo, sha, folder))
        if hold is None:
            raise BadInput(f"{app} @ {commit[:12]} is not held in {env}; `promoter history {app}` shows the holds")
        held = objects.rev(repo, hold.commit) or sha
        author = commits.author(repo, held)
        return hold, config, author

    def held_trees(self, commit: str, apps: Sequence[str]) -> dict[str, str]:
        """What `commit` deploys of each app: the tree id of its folder in the source environment (the
        first), by folder. A revert holds these: any commit with the same content is held too."""
        repo = self.clone.fresh()
        return self.held_trees_at(repo, self.clone.main(repo), commit, apps)

    def held_trees_at(self, repo: git.Repo, main: str, commit: str, apps: Sequence[str]) -> dict[str, str]:
        try:  # the source environment as the trusted rules name it: an unsigned change of main's cannot move it
            source = self.environments_at(repo, self.trusted.rules(main).commit)[0].config.name
        except BadInput:  # the environments do not parse: the revert still happens, held by its commit alone
            return {}
        if objects.rev(repo, commit) is None:
            return {}
        return {app_folder(source, app): self.clone.tree_id(repo, commit, app_folder(source, app)) for app in apps}

    def environment(self, repo: git.Repo, main: str, env: str) -> EnvironmentConfig:
        """`env`'s configuration on `main`; `BadInput` naming the environments when there is none."""
        configs = {e.config.name: e.config for e in self.environments_at(repo, main)}
        if env not in configs:
            raise BadInput(f"unknown environment '{env}'; environments: {', '.join(configs)}")
        return configs[env]

    def environments_at(self, repo: git.Repo, rev: str) -> list[PlannedEnvironment]:
        """The environments at `rev`, in order. They depend only on the `environments/` tree, so they are
        parsed once per tree id (a hundred promotions read the same ones) and handed out as copies."""
        tree = self.clone.tree_id(repo, rev, ENVIRONMENTS)
        with _ENVIRONMENTS_LOCK:
            parsed = _ENVIRONMENTS.get(tree) if tree else None
        if parsed is None:
            parsed = self._parse_environments(repo, rev)
            with _ENVIRONMENTS_LOCK:
                if tree:
                    _ENVIRONMENTS[tree] = parsed
                while len(_ENVIRONMENTS) > 64:
                    del _ENVIRONMENTS[next(iter(_ENVIRONMENTS))]
        return [e.model_copy(deep=True) for e in parsed]

    def _parse_environments(self, repo: git.Repo, rev: str) -> list[PlannedEnvironment]:
        configs: list[EnvironmentConfig] = []
        for name in self.clone.folders(repo, rev, ENVIRONMENTS):
            where = f"{ENVIRONMENTS}/{name}/environment.yaml"
            text = self.clone.show(repo, rev, where)
            if text is not None:  # a folder without environment.yaml is not an environment
                configs.append(parse_environment(text, where, name))
        return in_order(configs)

    def apps(self, repo: git.Repo, rev: str, env: str) -> list[str]:
        return [name for name in self.clone.folders(repo, rev, env_folder(env)) if not name.startswith(".")]

    def _holds(self, repo: git.Repo, main: str, app: str) -> list[holds.Hold]:
        """The holds of `app` in force on `main` (see promoter.holds), read from main's commits: every hold
        counts, signed or not (fail closed); a lift counts only when promoter's key signed it."""
        named = re.compile(rf"^{re.escape(holds.HELD)}-App: {re.escape(app)}$", re.MULTILINE)
        commits = [(sha, message) for sha, message in self._held_commits(repo, main) if named.search(message)]
        signers: tuple[str, str] | None = None
        records = []
        for sha, message in commits:
            signed = False
            if holds.is_lift(message):
                signers = signers or self.trusted.promoter_signers(repo, main)
                signed = self.trusted.signed_by_promoter(repo, sha, signers)
            records.append(holds.Record(sha, message, signed))
        return holds.current(app, records, lambda sha, of: self.clone.is_ancestor(repo, sha, of))

    def _held_commits(self, repo: git.Repo, main: str) -> list[tuple[str, str]]:
        """(sha, message) of every commit of `main` that holds an app, newest first: from the index of
        main's records (promoter.git.index), else one `git log` per main, kept for the last few mains."""
        indexed = main_index.view(self.clone, repo, main)
        if indexed is not None:
            return [(r["sha"], r["message"]) for r in indexed.records(main_index.HELD_LINE)]
        key = (str(repo.common_dir), main)
        with self._held_lock:
            found = self._held.get(key)
        if found is None:
            shas = self.clone.run(repo, "log", "--format=%H", f"--grep=^{holds.HELD}-App: ", main).split()
            messages = self.clone.messages(repo, shas)  # each from its own commit, never split out of a log
            found = [(sha, messages[sha]) for sha in shas]
            with self._held_lock:
                self._held[key] = found
                while len(self._held) > HELD_MAINS:
                    self._held.pop(next(iter(self._held)))
        return found

    def folder_trees(self, rev: str, folders: list[str]) -> dict[str, str]:
        """Each folder's git tree id at `rev` ("" when it has none): the digest of exactly what a
        branch would merge there, which a signed approval names."""
        repo = self.clone.have(rev)
        trees: dict[str, str] = {}
        for folder in folders:
            found = self.clone.entry(repo, rev, folder)
            trees[folder] = found.sha if found is not None and found.mode == TREE else ""
        return trees

    def policy_revision(self, base: str | None = None) -> tuple[str, str]:
        """(tree id of policies/ at the trusted rules revision, commit of main) for main as it is now,
        or at `base` (a commit of main); `rules(main).commit` names the revision that judges."""
        repo = self.clone.have(base)
        main = base or self.clone.main(repo)
        return self._policy_tree(repo, self.trusted.rules(main).commit), main

    def _policy_tree(self, repo: git.Repo, commit: str) -> str:
        found = self.clone.entry(repo, commit, "policies")
        if found is None or found.mode != TREE:
            raise BadInput(f"{self.clone.url} has no policies/ folder on {MAIN}; policies are required")
        return found.sha

    def policy_files(self, commit: str | None = None) -> tuple[str, dict[str, str]]:
        """(tree id, files) of policies/ at `commit` (by default main as it is now)."""
        repo = self.clone.have(commit)
        commit = commit or self.clone.main(repo)
        tree = self._policy_tree(repo, commit)
        contents = self.clone.contents(repo, self.clone.tree(repo, commit, "policies"))
        try:
            return tree, {p: data.decode() for p, data in contents.items()}
        except UnicodeDecodeError:
            bad = next(p for p, data in contents.items() if not objects.is_utf8(data))
            raise BadInput(f"policies/{bad} is not UTF-8 text; save it as UTF-8") from None

    def folder_files(self, rev: str, folder: str) -> dict[str, bytes]:
        """The files under `folder` at `rev` (relative paths → content)."""
        repo = self.clone.have(rev)
        if objects.rev(repo, rev) is None:
            raise NotFound(f"revision {rev[:12]} not found in {self.clone.url}")
        return self.clone.contents(repo, self.clone.tree(repo, rev, folder))

    def export_tree(self, rev: str, dest: Path) -> None:
        """The whole tree at `rev` into `dest` (for kustomize overlays that reach a base elsewhere)."""
        self.clone.extract(self.clone.have(rev), rev, dest)


def _check_request(req: PromotionRequest) -> None:
    """The request's names, each as a name of its kind must be (`BadInput` otherwise)."""
    check(req.app, "app")
    for member in req.members:
        check(member, "app")
    if req.members and (len(set(req.members)) != len(req.members) or len(req.members) < 2):
        raise BadInput("a release set is two apps or more, each named once")
    if req.to_env is not None:
        check(req.to_env, "environment")
    if req.commit is not None:
        check_revision(req.commit)
