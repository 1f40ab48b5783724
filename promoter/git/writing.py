"""Writing to the GitOps repository: a revert's branch, a hold's lift (its request, then the signed
commit that lifts it once the gate approved), and merging a branch into main.

Every commit is promoter's own, written as objects and signed with its key when it has one. Only the
update of main is serialised, by a lock held across threads and worker processes (a file lock), and a
push that lost the race is merged again on top of the new main, so no commit pushed by anyone else is
lost.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import git

from promoter import holds, names, signing
from promoter.errors import BadInput, Conflict, NotFound, TemporaryError
from promoter.git import objects
from promoter.git.change import StageChange
from promoter.git.clone import Clone
from promoter.git.objects import MAIN
from promoter.git.reading import GitOpsReader
from promoter.names import app_folder

PUSH_ATTEMPTS = 8
MERGE_BATCH = 64  # merges pushed together at most (a push that fails redoes them all)


class _Merge:
    """One merge asked of `MainWriter.merge_branch`: its merge commit or its error, once settled."""

    def __init__(self, branch: str, message: str, expected_head: str | None) -> None:
        self.branch, self.message, self.expected_head = branch, message, expected_head
        self.settled = False
        self.result: str | None = None
        self.error: BaseException | None = None

    def settle(self, result: str | None = None, error: BaseException | None = None) -> None:
        """The first answer counts: a later one (a batch's catch-all) changes nothing."""
        if not self.settled:
            self.settled, self.result, self.error = True, result, error

    def outcome(self) -> str:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class MainWriter:
    """The branches promoter writes besides a stage's, and the merges of main."""

    def __init__(self, clone: Clone, reading: GitOpsReader, changes: StageChange) -> None:
        self.clone = clone
        self.reading = reading
        self.changes = changes
        self._waiting: list[_Merge] = []  # merges asked and not yet taken by a lock holder (`merge_branch`)
        self._waiting_lock = threading.Lock()

    def push_revert(
        self, app: str, env: str, merge_commit: str, reason: str, members: Sequence[str] = (), held: str = ""
    ) -> tuple[str, str]:
        """Commit on `revert/<app>/<env>/<short>` that puts the app folder (every member's, for a
        release set) back as it was before `merge_commit`, and push it. With `held` (the promoted
        commit), the commit's trailers hold its content out of `env` (promoter.holds): this commit is
        promoter's own, signed, whoever merges it. Idempotent: an unmerged branch with that content is
        reused. Returns (branch, head)."""
        apps = list(members) or [app]
        branch = names.revert_branch(app, env, merge_commit)
        repo = self.clone.fresh()
        if objects.rev(repo, merge_commit) is None:
            raise NotFound(f"merge commit {merge_commit[:12]} not found in {self.clone.url}")
        before = self.changes.folders_at(repo, f"{merge_commit}^1", env, apps)
        main = self.clone.main(repo)
        existing = self.clone.branch(repo, branch)
        if (
            existing is not None
            and self.changes.folders_at(repo, existing, env, apps) == before
            and self.changes.only_folders(repo, existing, main, [app_folder(env, a) for a in apps])  # nothing else
        ):
            return branch, existing
        message = (
            f"revert({app}): {env} back to before {merge_commit[:7]}\n\n{reason.strip() or 'unhealthy'}\n\n"
            f"Reverts: {merge_commit}\nTarget-Environment: {env}\n"
        )
        if held:  # the hold, in the trailer block of promoter's own commit
            message += holds.trailers(apps, env, held, reason, trees=self.reading.held_trees_at(repo, main, held, apps))
        head = self.changes.commit_folders(repo, main, env, apps, before, message)
        self.clone.push_branch(repo, branch, head, existing)
        return branch, head

    def push_lift_request(self, hold: holds.Hold, who: str, why: str) -> tuple[str, str]:
        """The lift-hold PR's first commit: an empty commit on main that asks to lift `hold`
        and lifts nothing (see promoter.holds), pushed as `release-hold/<app>/<env>/<short>`. The
        commit that lifts the hold is written only once the gate approved (`seal_lift`). Idempotent:
        promoter's own unmerged request for that hold is reused. (branch, head)"""
        if self.clone.signing_key is None:  # fail closed: an unsigned lift would lift nothing
            raise BadInput(
                "promoter has no commit signing key (PROMOTER_COMMIT_SIGNING_KEY), and a hold is lifted only by "
                "a commit promoter signed; set the key, list its public key for the principal `promoter` "
                '(namespaces="git") in trust/allowed_signers, and ask again'
            )
        branch = names.lift_branch(hold.app, hold.env, hold.commit)
        repo = self.clone.fresh()
        main = self.clone.main(repo)
        existing = self.clone.branch(repo, branch)
        if existing is not None and not self.clone.is_ancestor(repo, existing, main):
            asked = self._request(repo, existing)
            if (
                asked is not None
                and asked[:3] == (hold.app, hold.env, hold.commit)
                and self.changes.only_folders(repo, existing, main, [])  # promoter's empty request, nothing else
            ):
                return branch, existing
        message = f"lift-hold({hold.app}): {hold.env} may take {hold.commit[:7]} again\n\n" + (
            f"Asked by {who}; lifts nothing until {hold.env}'s approvers approve it.\n\n"
            + holds.request_trailers(hold.app, hold.env, hold.commit, who, why)
        )
        head = self.clone.write_commit(repo, objects.root(repo, main), [main], message)
        self.clone.push_branch(repo, branch, head, existing)
        return branch, head

    def lift_request(self, commit: str) -> tuple[str, str, str, str]:
        """(app, environment, held commit, `who: why`) of a lift-hold PR's request commit, which promoter
        wrote and signed with its own key; `BadInput` for any other commit."""
        repo = self.clone.have(commit)
        asked = self._request(repo, commit)
        if asked is None:
            raise BadInput(
                f"{commit[:12]} is not a lift-hold request promoter wrote and signed; run `promoter lift-hold` again"
            )
        return asked

    def seal_lift(self, branch: str, request: str, approvals: Sequence[str] = ()) -> str:
        """After the gate's approvals: the commit that lifts the hold `request` asks to lift, written
        and signed by promoter on top of it and pushed to `branch`, for the caller to merge at once (with
        that commit as the expected head). `approvals` (`Promoter-Approval: ...` lines) are recorded in it.
        Idempotent: a retry finds the commit it pushed. `Conflict` when the branch moved past `request`."""
        repo = self.clone.have(request)
        app, env, held, asked_by = self.lift_request(request)
        head = self.clone.branch(repo, branch)
        if head is None:
            raise NotFound(f"branch {branch} not found in {self.clone.url}")
        if head != request:
            if objects.parents(repo, head) == [request] and self._ours(repo, head):
                lifted = holds.lift(holds.Record(head, objects.commit_message(repo, head), signed=True))
                if lifted == (app, env, held):
                    return head  # pushed by an earlier attempt whose merge did not happen yet
            raise Conflict(
                f"branch {branch} is at {head[:12]}, not the approved {request[:12]}; the hold stays, "
                "run `promoter lift-hold` again"
            )
        who, _, why = asked_by.partition(": ")
        message = f"lift-hold({app}): {env} may take {held[:7]} again\n\n" + (
            "Approved on the lift-hold pull request; promoter signed this commit after the approvals.\n\n"
            + holds.lift_trailers(app, env, held, who, why, approvals)
        )
        sealed = self.clone.write_commit(repo, objects.root(repo, request), [request], message)
        self.clone.push_branch(repo, branch, sealed, request)
        return sealed

    def _request(self, repo: git.Repo, commit: str) -> tuple[str, str, str, str] | None:
        """A lift-hold request in `commit` that this promoter signed (its own key), else None."""
        if not self._ours(repo, commit):
            return None
        return holds.lift_request(objects.commit_message(repo, commit))

    def _ours(self, repo: git.Repo, commit: str) -> bool:
        """Whether `commit` is signed with this clone's own signing key."""
        if self.clone.signing_key is None:
            return False
        mine = f'{holds.PRINCIPAL} namespaces="git" {signing.public_key_line(self.clone.signing_key)}\n'
        try:
            signing.commit_signer(objects.raw(repo, commit), mine)
        except BadInput:  # SignatureError: unsigned, or another key
            return False
        return True

    def merge_branch(self, branch: str, message: str, expected_head: str | None = None) -> str:
        """Merge `branch` into main with a merge commit and push it, if main is still what it was
        merged onto; otherwise main is fetched and the merge redone on top of it, so no commit pushed
        by anyone else is lost. The first try merges onto the main this process pushed last (no
        fetch), since under load it is nearly always still main.

        Merges asked at once are pushed together (a group commit): whoever takes the main lock merges
        the waiting ones too (up to `MERGE_BATCH`), each its own merge commit on top of the one before,
        and pushes them in one push; the others find their merge made when they get the lock. A push
        costs several times a merge (git's pack, the remote's checks), so a burst of approved gates
        merges at the pace of the merges, not of the pushes. A merge that fails (a conflict, a branch
        gone) fails alone; a push that fails fails them all (retried by their activities)."""
        job = _Merge(branch, message, expected_head)
        with self._waiting_lock:
            self._waiting.append(job)
        with self.clone.main_lock:
            if not job.settled:
                with self._waiting_lock:
                    others = [j for j in self._waiting if j is not job][: MERGE_BATCH - 1]
                    batch = [job, *others]
                    self._waiting = [j for j in self._waiting if j not in batch]
                try:
                    with self.clone.file_lock(".main"):
                        self._merge_all(batch)
                finally:
                    for j in batch:  # never leave a waiting thread without its answer
                        j.settle(error=TemporaryError(f"the merge of {j.branch} was not made; trying again"))
        return job.outcome()

    def _merge_all(self, batch: list[_Merge]) -> None:
        """Merge each of `batch` onto main, one merge commit on top of the other, and push the last;
        each job settled with its merge commit or its error. Callers hold the main locks."""
        clone = self.clone
        repo = clone.open()
        for job in batch:  # each reviewed head, fetched only when this clone lacks it (no fetch of main yet)
            if job.expected_head:
                try:
                    repo = clone.have(job.expected_head)
                except Exception as e:  # noqa: BLE001 - this job's alone: the others merge
                    job.settle(error=e)
        main = clone.pushed_main if clone.pushed_main and objects.rev(repo, clone.pushed_main) else None
        last = ""
        for _ in range(PUSH_ATTEMPTS):
            if main is None:
                repo = clone.fresh()
                main = clone.main(repo)
            tip, merged = main, dict[_Merge, str]()
            for job in batch:
                if job.settled:
                    continue
                try:
                    head = self._head(repo, job.branch, job.expected_head)
                    done = self._find_merge(repo, head, tip)
                    if done is None:
                        tree = self._merge_tree(repo, job.branch, tip, head)
                        done = tip = clone.write_commit(repo, tree, [tip, head], job.message)
                    merged[job] = done
                except Exception as e:  # noqa: BLE001 - a conflict or a branch gone fails this merge alone
                    job.settle(error=e)
            try:
                if tip != main:  # by URL, and only if main is still the one merged onto
                    clone.run(
                        repo,
                        "push",
                        "--quiet",
                        f"--force-with-lease=refs/heads/{MAIN}:{main}",
                        clone.url,
                        f"{tip}:refs/heads/{MAIN}",
                    )
                    clone.pushed_main = tip
            except git.GitCommandError as e:
                last = objects.stderr(e)
                main = None  # main moved under us: fetch and merge again on top of it
                continue
            for job in batch:
                if job in merged:
                    job.settle(merged[job])
            return
        for job in batch:  # an error of its own each: each is raised in its own thread
            job.settle(
                error=TemporaryError(f"could not push {MAIN} of {clone.url} after {PUSH_ATTEMPTS} attempts: {last}")
            )

    def _head(self, repo: git.Repo, branch: str, expected_head: str | None) -> str:
        """The head to merge: the reviewed head, when the forge has just checked that the PR is still at
        it, merged as it is (no round trip to ask the remote again); otherwise the branch's head."""
        head = expected_head if expected_head and objects.rev(repo, expected_head) else self.clone.branch(repo, branch)
        if head is None:
            raise NotFound(f"branch {branch} not found in {self.clone.url}")
        if expected_head is not None and head != expected_head:
            raise Conflict(
                f"branch {branch} is at {head[:12]}, not the reviewed {expected_head[:12]}; review the new commit first"
            )
        return head

    def _merge_tree(self, repo: git.Repo, branch: str, main: str, head: str) -> str:
        """The tree of `head` merged onto `main` (`merge-tree --write-tree`, no working tree); `Conflict`
        naming the files when they conflict."""
        status, out, _ = repo.git.execute(
            ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", main, head],
            env=self.clone.identity,
            with_extended_output=True,
            with_exceptions=False,
        )
        if status != 0:  # exit 1: conflicts; the lines after the tree name the files
            files = sorted(set(out.splitlines()[1:])) or ["(unknown files)"]
            raise Conflict(
                f"{branch} conflicts with {MAIN} in {', '.join(files)}: that folder was changed on "
                f"{MAIN} directly; reconcile it there, then promote again"
            )
        tree: str = out.splitlines()[0]
        return tree

    def _find_merge(self, repo: git.Repo, head: str, main: str) -> str | None:
        if not self.clone.is_ancestor(repo, head, main):
            return None
        out = self.clone.run(repo, "rev-list", "--first-parent", "--parents", "-n", "2000", main)
        for line in out.splitlines():
            shas = line.split()
            if head in shas[2:]:
                return shas[0]
            if shas[0] == head:
                return head  # fast-forwarded
        return head
