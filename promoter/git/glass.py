"""Writing a break-glass (promoter.breakglass): its PR's request commit, which asks and adds nothing,
then, once its gate approved, the commit promoter signs that adds `trust/break-glass/<id>.yaml`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import git

from promoter import breakglass, holds, signing
from promoter.errors import BadInput, Conflict, NotFound
from promoter.git import objects, trees
from promoter.git.clone import Clone
from promoter.git.objects import Entry
from promoter.git.reading import GitOpsReader
from promoter.models import EnvironmentConfig, Trust
from promoter.names import check


class BreakGlassWriter:
    def __init__(self, clone: Clone, reading: GitOpsReader) -> None:
        self.clone = clone
        self.reading = reading

    def push_request(
        self,
        app: str,
        env: str,
        until: datetime,
        who: str,
        why: str,
        now: datetime,
        vet: Callable[[EnvironmentConfig, Trust], None] | None = None,
    ) -> tuple[str, str, str, EnvironmentConfig]:
        """The break-glass PR's first commit, on `break-glass/<app>/<env>/<stamp>`: an empty commit on main
        that asks, signed by promoter. (id, branch, main's commit it was written on, the environment as the
        trusted rules have it);
        bad input when the environment has no break_glass approvers, or `until` is not within 24 hours."""
        check(app, "app")
        check(env, "environment")
        if self.clone.signing_key is None:  # fail closed: an unsigned break-glass would count for nothing
            raise BadInput(
                "promoter has no commit signing key (PROMOTER_COMMIT_SIGNING_KEY), and a break-glass counts only in "
                "a commit promoter signed; set the key, list it for the principal `promoter` in trust/allowed_signers"
            )
        breakglass.check_until(until, now)
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        rules = self.reading.trusted.rules(main).commit
        config = self.reading.environment(repo, rules, env)
        if config.break_glass is None:
            raise BadInput(
                f"{env} has no break_glass in its environment.yaml: add break_glass: {{approvers: [...], required: N}} "
                "(a reviewed rules change) before anyone can break the glass there"
            )
        if vet is not None:  # the asker's signature, against trust/ at the same revision: before anything is pushed
            vet(config, self.reading.trusted.trust(rules))
        if app not in self.reading.apps(repo, main, env):
            raise BadInput(f"{env} has no app {app!r}; name one of its apps (environments/{env}/<app>)")
        gid = breakglass.glass_id(app, env, now)
        branch = breakglass.branch(app, env, gid)
        ends, asker = breakglass.rfc3339(until), breakglass.one_line(who, 120)
        message = (
            f"break-glass({app}): {env} asks to promote through a freeze until {ends}\n\n"
            f"Asked by {asker}; adds nothing until {env}'s break-glass approvers approve.\n\n"
        ) + breakglass.request_trailers(gid, app, env, ends, who, why)
        existing = self.clone.branch(repo, branch)
        if existing is not None and self._asked(repo, existing) is not None:
            return gid, branch, main, config  # a retry finds its own request
        head = self.clone.write_commit(repo, objects.root(repo, main), [main], message)
        self.clone.push_branch(repo, branch, head, existing)
        return gid, branch, main, config

    def asked(self, commit: str) -> dict[str, str]:
        """The request of a break-glass PR's first commit that promoter signed; bad input for any other."""
        repo = self.clone.have(commit)
        found = self._asked(repo, commit)
        if found is None:
            raise BadInput(
                f"{commit[:12]} is not a break-glass request promoter wrote; run `promoter break-glass` again"
            )
        return found

    def seal(self, branch: str, request: str, approvals: Sequence[str], approved_by: list[str]) -> str:
        """After the gate's approvals: the commit that adds the break-glass file, written and signed by
        promoter on top of `request` and pushed to `branch`, to merge at once. Idempotent. Bad input
        when the break-glass has ended already."""
        repo = self.clone.have(request)
        asked = self.asked(request)
        gid = asked["id"]
        head = self.clone.branch(repo, branch)
        if head is None:
            raise NotFound(f"branch {branch} not found in {self.clone.url}")
        if head != request:
            if objects.parents(repo, head) == [request] and self._ours(repo, head):
                if breakglass.sealed(objects.commit_message(repo, head)) == gid:
                    return head  # pushed by an earlier attempt whose merge did not happen yet
            raise Conflict(f"branch {branch} is at {head[:12]}, not the approved {request[:12]}; ask again")
        now = datetime.now(UTC)
        until = breakglass.parse_time(asked["until"], "until")
        if until <= now:
            raise BadInput(f"break-glass {gid} ended at {asked['until']} before it was approved; ask again")
        text = breakglass.render(gid, asked, now, approved_by)
        blob = objects.store(repo, b"blob", text.encode())
        files = {**self.clone.tree(repo, request, breakglass.FOLDER), f"{gid}.yaml": Entry("100644", blob)}
        folder = trees.write_folder(repo, files)
        tree = trees.replace(repo, objects.root(repo, request), breakglass.FOLDER.split("/"), folder)
        assert tree is not None
        message = f"break-glass({asked['app']}): {asked['env']} through a freeze until {asked['until']}\n\n" + (
            "Approved on the break-glass pull request; promoter signed this commit after the approvals.\n\n"
            + breakglass.seal_trailers(gid, asked["app"], asked["env"], asked["until"], asked["why"], list(approvals))
        )
        sealed = self.clone.write_commit(repo, tree, [request], message)
        self.clone.push_branch(repo, branch, sealed, request)
        return sealed

    def _asked(self, repo: git.Repo, commit: str) -> dict[str, str] | None:
        if not self._ours(repo, commit):
            return None
        return breakglass.request(objects.commit_message(repo, commit))

    def _ours(self, repo: git.Repo, commit: str) -> bool:
        if self.clone.signing_key is None:
            return False
        mine = f'{holds.PRINCIPAL} namespaces="git" {signing.public_key_line(self.clone.signing_key)}\n'
        try:
            signing.commit_signer(objects.raw(repo, commit), mine)
        except BadInput:
            return False
        return True
