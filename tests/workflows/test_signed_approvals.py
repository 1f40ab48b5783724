"""Signed approvals on a real Temporal dev server, with real git, the local forge and OpenSSH's own
`ssh-keygen`: a gate with `approval.require_signed` refuses every approval that proves nothing (an
unsigned one, a review on the local forge), every signature that is not for exactly this gate (another
promotion, environment or tree, a stale time, a revoked or unknown key), each with one line saying
which, and opens for a signature `ssh-keygen -Y sign` made; `promoter history` then verifies it again
from Git alone, with no Temporal server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from promoter import api, proofs, signing
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from tests.support.gitops import PROMOTER, Origin
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio

SSH_KEYGEN = "/usr/bin/ssh-keygen"


def keygen(path: Path, kind: str = "ed25519") -> str:
    """A new key made by ssh-keygen; its public key line."""
    extra = ["-b", "256"] if kind == "ecdsa" else []
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, *extra, "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def ssh_keygen_sign(key: Path, text: str, tmp: Path) -> str:
    """The armored signature `ssh-keygen -Y sign` makes of `text`."""
    message = tmp / "statement"
    message.write_text(text)
    subprocess.run([SSH_KEYGEN, "-Y", "sign", "-n", signing.NAMESPACE, "-f", str(key), str(message)], check=True)
    signature = Path(f"{message}.sig")
    armored = signature.read_text()
    signature.unlink()
    return armored


def envs() -> list[dict[str, object]]:
    gate = {"required": 1, "approvers": ["alice", "bob", "carol"], "timeout": "24h", "require_signed": True}
    return [{"name": "dev", "order": 1}, {"name": "prod", "order": 2, "approval": gate}]


def waiting(s: PromotionStatus) -> bool:
    return s.stages[1].state == StageState.AWAITING_APPROVAL


async def refused(handle: Any, d: Decision) -> str:
    """Send `d` as the `approve` update; it must be refused: the reason."""
    with pytest.raises(WorkflowUpdateFailedError) as e:
        await handle.execute_update(PromotionWorkflow.approve, d)
    return str(e.value.cause)


async def test_only_a_signature_for_exactly_this_gate_opens_it_and_git_alone_verifies_it(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    alice, bob, _carol = (keygen(keys / "alice"), keygen(keys / "bob", "ecdsa"), keygen(keys / "carol"))
    origin = origin_factory(envs())
    origin.commit(
        {
            "trust/allowed_signers": (
                f'alice namespaces="promoter-approval" {alice}\nbob {bob}\n'  # carol's key is listed for nobody
            ),
            "trust/revoked_keys": f"{bob} bob lost his laptop\n",
        },
        "trust: alice and bob sign approvals; bob's key is revoked",
    )
    origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        status = await api.wait_for(handle, waiting)
        stage = status.stages[1]
        assert stage.signed_required and stage.trees, stage
        now = datetime.now(UTC).replace(microsecond=0)

        def signed(key: str, **changes: Any) -> Decision:
            """alice's approval, its statement changed by `changes`, signed in process with `key`."""
            said = replace(proofs.statement_for(status, stage, "approve", "alice", now, "ship it"), **changes)
            text = said.text()
            armored = signing.sign_file(text.encode(), keys / key)
            return Decision(env="prod", approver="alice", comment="ship it", statement=text, signature=armored)

        # nothing proves who sent these
        unsigned = await refused(handle, Decision(env="prod", approver="alice", via="cli"))
        assert "prod requires signed approvals; an unsigned one does not count" in unsigned
        assert "--sign-key" in unsigned
        forge.add_review(stage.pr_number or 0, "carol", "approved", "lgtm")
        status = await api.wait_for(handle, lambda s: any(r.via == "pull_request" for r in s.stages[1].refusals))
        review = next(r for r in status.stages[1].refusals if r.via == "pull_request")
        assert "this forge does not authenticate its reviewers" in review.reason, review.reason
        # signatures that are not for this gate, each refused with its own reason
        assert "environment staging, not prod" in await refused(handle, signed("alice", env="staging"))
        other = await refused(handle, signed("alice", promotion="promote-other"))
        assert "promotion promote-other, not promote-demo" in other
        assert "another run of promote-demo" in await refused(handle, signed("alice", run="0" * 36))
        assert "commit 000000000000, not" in await refused(handle, signed("alice", commit="0" * 40))
        assert "PR head 0000000, not" in await refused(handle, signed("alice", head="0" * 40))
        changed = tuple((folder, "1" * 40) for folder, _ in stage.trees.items())
        assert "a tree that is not what would merge now" in await refused(handle, signed("alice", trees=changed))
        stale = await refused(handle, signed("alice", at=now - timedelta(minutes=11)))
        assert "minutes off the workflow's clock (at most 10)" in stale
        assert "another comment" in await refused(handle, signed("alice", comment="something else"))
        unknown = await refused(handle, signed("carol"))  # carol's key, as alice
        assert "not in trust/allowed_signers for 'alice'" in unknown, unknown
        bob_signs = signed("bob", approver="bob")
        revoked = await refused(handle, bob_signs.model_copy(update={"approver": "bob"}))
        assert "revoked" in revoked, revoked
        tampered = signed("alice")
        tampered = tampered.model_copy(update={"statement": tampered.statement.replace("ship it", "ship it!")})
        assert "does not match the statement" in await refused(handle, tampered)
        status = await handle.query(PromotionWorkflow.query_status)
        assert waiting(status) and status.stages[1].approvals == []
        assert len(status.stages[1].refusals) == 13  # each one on record, with its reason
        # alice signs with OpenSSH itself, and the gate opens
        text = proofs.statement_for(status, stage, "approve", "alice", datetime.now(UTC).replace(microsecond=0)).text()
        good = Decision(
            env="prod", approver="alice", statement=text, signature=ssh_keygen_sign(keys / "alice", text, tmp_path)
        )
        await handle.execute_update(PromotionWorkflow.approve, good)
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    approval = result.stages[1].approvals[0]
    assert (approval.approver, approval.proof) == ("alice", "signed")
    assert approval.fingerprint.startswith("SHA256:")
    # from Git alone: the history command with nothing but the repository's URL, no Temporal server
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOTER_")}
    env.update(PROMOTER_REPO_URL=origin.url, PROMOTER_STATE_DIR=str(tmp_path / "no-stack"), COLUMNS="200")
    shown = subprocess.run([*PROMOTER, "history", "demo", "--env", "prod"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert f"approval by alice via ui: verified ({approval.fingerprint})" in shown.stdout, shown.stdout


async def test_one_key_counts_once_whatever_principals_it_is_listed_for(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any, tmp_path: Path
) -> None:
    shared = keygen(tmp_path / "shared")
    gate = {"required": 2, "approvers": ["alice", "bob"], "timeout": "24h", "require_signed": True}
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "prod", "order": 2, "approval": gate}])
    origin.commit({"trust/allowed_signers": f"alice,bob {shared}\n"}, "trust: one key for two people")
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        status = await api.wait_for(handle, waiting)
        stage = status.stages[1]

        def signed_as(who: str) -> Decision:
            now = datetime.now(UTC).replace(microsecond=0)
            text = proofs.statement_for(status, stage, "approve", who, now).text()
            armored = signing.sign_file(text.encode(), tmp_path / "shared")
            return Decision(env="prod", approver=who, statement=text, signature=armored)

        await handle.execute_update(PromotionWorkflow.approve, signed_as("alice"))
        twice = await refused(handle, signed_as("bob"))
        assert "has already approved prod (as alice); one key counts once" in twice, twice
        await handle.cancel()


async def test_a_key_revoked_while_the_gate_waits_no_longer_signs(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any, tmp_path: Path
) -> None:
    alice = keygen(tmp_path / "alice")
    origin = origin_factory(envs())
    origin.commit({"trust/allowed_signers": f"alice {alice}\n"}, "trust: alice signs")
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        status = await api.wait_for(handle, waiting)
        origin.commit({"trust/revoked_keys": f"{alice} lost\n"}, "revoke alice's key")  # after the start
        now = datetime.now(UTC).replace(microsecond=0)
        text = proofs.statement_for(status, status.stages[1], "approve", "alice", now).text()
        signed = Decision(
            env="prod", approver="alice", statement=text, signature=signing.sign_file(text.encode(), tmp_path / "alice")
        )
        reason = await refused(handle, signed)
        assert "has been revoked (trust/revoked_keys on main) since the promotion started" in reason, reason
        await handle.cancel()
