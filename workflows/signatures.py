"""What proves who gave a gate's decision: nothing (declared), the forge (a review read from a forge that
authenticates its users), or an SSH signature over the gate's own statement, verified against
trust/allowed_signers as main's trusted rules had it when the run started. A promotion's gates and the
lift gate (workflows/lift_hold.py: a lift of a hold, a break-glass) share it. Deterministic: workflow
code only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter import signing
    from promoter.models import Decision, Proof, StageStatus, Trust
    from workflows.recorder import Promotion

SIGNATURE_SKEW = timedelta(minutes=10)  # a signed statement's time may be this far off the workflow's clock


@dataclass(frozen=True)
class Proven:
    """What proves who gave a decision (see `Proof`), and for a signed one the signature's record."""

    proof: Proof = "declared"
    fingerprint: str = ""
    statement: str = ""
    signature: str = ""  # on one line


FORGE = Proven("forge")
DECLARED = Proven()


@dataclass(frozen=True)
class Gate:
    """What a signed decision of one gate must name (the run, its stage, the commit it promotes or
    lifts: promoter.proofs.statement_of) and the trust files that verify it, as main's trusted rules had
    them when the run started (never from a caller's payload)."""

    id: str  # the workflow ID
    run: str
    commit: str
    stage: StageStatus
    trust: Trust


def gate_of(p: Promotion, env: str) -> Gate:
    """A promotion's gate at `env`."""
    return Gate(p.status.id, p.status.run_id, p.plan.commit, p.stage_by_env[env], p.plan.trust)


def proven(gate: Gate, d: Decision, approving: bool) -> tuple[Proven, str | None]:
    """What proves a sent decision: its SSH signature over this gate's statement, verified against
    the gate's trust (or nothing, unsigned); with the reason it is refused, if it is."""
    if not d.statement and not d.signature:
        return DECLARED, None
    if not d.statement or not d.signature:
        return (
            DECLARED,
            "a signed decision needs both `statement` and `signature`; make them with `--print-payload`",
        )
    trust = gate.trust
    try:
        said = signing.Statement.parse(d.statement)
        armored = d.signature if "BEGIN SSH SIGNATURE" in d.signature else signing.line_to_armor(d.signature)
        verified = signing.verify(
            d.statement.encode(),
            armored,
            principal=d.approver,
            allowed_signers=trust.allowed_signers,
            revoked_keys=trust.revoked_keys,
            at=said.at,
        )
    except signing.SignatureError as e:
        return DECLARED, str(e)
    mismatch = _mismatch(gate, said, d, approving)
    if mismatch is not None:
        return DECLARED, f"the signature is for {mismatch}; sign this gate's statement again"
    off = abs(workflow.now() - said.at)
    if off > SIGNATURE_SKEW:
        return DECLARED, (
            f"the signature was made at {said.at:%Y-%m-%dT%H:%M:%SZ}, {int(off.total_seconds() // 60)} minutes "
            f"off the workflow's clock (at most {int(SIGNATURE_SKEW.total_seconds() // 60)}); sign again now"
        )
    return Proven("signed", verified.fingerprint, d.statement, signing.armor_to_line(armored)), None


def unproven(gate: Gate, d: Decision, proof: Proven) -> str | None:
    """Why a decision that proves nothing cannot open a gate that requires signed approvals (None: it
    may), in one line saying how to sign."""
    if proof.proof != "declared" or not gate.stage.signed_required:
        return None
    if d.via == "pull_request":
        return (
            f"{d.env} requires signed approvals and this forge does not authenticate its reviewers, so a "
            f"review there does not count; sign: `promoter approve {gate.id} --env {d.env} "
            f"--as {d.approver} --sign-key KEY`"
        )
    return (
        f"{d.env} requires signed approvals; an unsigned one does not count: sign with `promoter approve "
        f"{gate.id} --env {d.env} --as {d.approver} --sign-key KEY`, or paste the payload that "
        "`--print-payload` prints into the Web UI's update dialog"
    )


def key_used(stage: StageStatus, d: Decision, proof: Proven) -> str | None:
    """One key counts once, whatever principals trust/allowed_signers lists it for."""
    other = next((a for a in stage.approvals if proof.fingerprint and a.fingerprint == proof.fingerprint), None)
    if other is None:
        return None
    return f"the key {proof.fingerprint} has already approved {d.env} (as {other.approver}); one key counts once"


def _mismatch(gate: Gate, said: signing.Statement, d: Decision, approving: bool) -> str | None:
    """What a verified statement names that this decision is not (None: it is this decision)."""
    decision = "approve" if approving else "reject"
    stage = gate.stage
    trees = tuple(sorted(stage.trees.items()))
    head = (stage.head_sha or "?")[:7]
    checks = [
        (said.promotion, gate.id, f"promotion {said.promotion}, not {gate.id}"),
        (said.run, gate.run, f"another run of {said.promotion} ({said.run[:8]}), not this one"),
        (said.env, d.env, f"environment {said.env}, not {d.env}"),
        (said.commit, gate.commit, f"commit {said.commit[:12]}, not {gate.commit[:12]}"),
        (
            said.head,
            stage.head_sha or "",
            f"PR head {said.head[:7]}, not {head} (a commit was pushed onto the PR since)",
        ),
        (
            said.trees,
            trees,
            f"a tree that is not what would merge now (PR head {head}: a commit pushed onto the PR changes it)",
        ),
        (said.decision, decision, f"a decision to {said.decision}, not to {decision}"),
        (said.approver, d.approver, f"approver {said.approver}, not {d.approver}"),
        (said.comment, d.comment, "another comment"),
    ]
    return next((why for theirs, ours, why in checks if theirs != ours), None)
