"""`promoter history` verifies each approval of a merge again from Git alone (promoter.proofs): a
signature that verifies but names another environment or other trees, one recorded as signed with no
signature, a key revoked since, a trust revision that is not main's, and a signature with no approval
beside it are each INVALID with the reason; an unsigned approval says so."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from promoter import history, proofs, signing
from promoter.models import Trust

FOLDER = "environments/prod/demo"
TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
COMMIT = "1" * 40
HEAD = "6" * 40  # the PR head the merge brought in (its second parent)


def key() -> tuple[bytes, str]:
    k = ed25519.Ed25519PrivateKey.generate()
    private = k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return private, signing.public_key_line(private)


def statement(**changes: object) -> str:
    fields: dict[str, object] = {
        "promotion": "promote-demo",
        "run": "r1",
        "env": "prod",
        "commit": COMMIT,
        "head": HEAD,
        "trees": ((FOLDER, TREE),),
        "decision": "approve",
        "approver": "alice",
        "at": datetime(2026, 12, 2, 4, 30, tzinfo=UTC),
        "comment": "go",
    }
    fields.update(changes)
    return signing.Statement(**fields).text()  # type: ignore[arg-type]


def merge_fields(private: bytes, text: str, note: str = " (signed)") -> list[tuple[str, str]]:
    line = signing.armor_to_line(signing.sign(text.encode(), private))
    value = history.signed_trailer(text, line).split(": ", 1)[1]
    return [
        (history.APPROVAL, f"alice via cli{note} at 2026-12-02T04:30:05Z: go"),
        (history.TRUST, "2" * 40),
        (history.SIGNED, value),
    ]


EVENT = history.Event(env="prod", kind="promoted", at="", commit=COMMIT, main_commit="3" * 40, promotion="promote-demo")


def verdicts(fields: list[tuple[str, str]], trust: proofs.TrustAt, trees: str = TREE) -> list[str]:
    found = proofs.check(EVENT, fields, "demo", trust, lambda folders: {f: trees for f in folders}, HEAD)
    return [f"{a['approver']}: {a['verdict']}" for a in found]


def test_each_forgery_of_the_record_is_invalid_and_says_why() -> None:
    private, public = key()
    trust = proofs.TrustAt(Trust(revision="2" * 40, allowed_signers=f"alice {public}\n"))
    good = merge_fields(private, statement())
    assert verdicts(good, trust)[0].startswith("alice: verified (SHA256:")
    staging = merge_fields(private, statement(env="staging"))
    assert verdicts(staging, trust) == ["alice: INVALID: it is for environment staging, not prod"]
    assert verdicts(good, trust, trees="5" * 40) == [
        "alice: INVALID: the trees it names are not what this merge put on main"
    ]
    other_head = merge_fields(private, statement(head="7" * 40))
    assert verdicts(other_head, trust) == [f"alice: INVALID: it is for PR head {'7' * 12}, not the {'6' * 12} merged"]
    stripped = [f for f in good if f[0] != history.SIGNED]
    assert verdicts(stripped, trust) == [
        "alice: INVALID: recorded as signed, but the merge carries no signature for it"
    ]
    revoked_since = proofs.TrustAt(trust.trust, revoked_now=public + "\n")
    assert (
        "INVALID: the key SHA256:" in verdicts(good, revoked_since)[0] and "revoked" in verdicts(good, revoked_since)[0]
    )
    nowhere = proofs.TrustAt(None, "Promoter-Trust 222222222222 is not a commit of main before this merge")
    assert verdicts(good, nowhere) == [
        "alice: INVALID: Promoter-Trust 222222222222 is not a commit of main before this merge"
    ]
    added = [f for f in good if f[0] != history.APPROVAL]
    assert verdicts(added, trust) == ["alice: INVALID: a signature for an approval not recorded"]
    other_key, _ = key()
    assert "INVALID: the key SHA256:" in verdicts(merge_fields(other_key, statement()), trust)[0]


def test_unsigned_approvals_say_so_and_the_local_forge_s_review_is_unauthenticated() -> None:
    fields = [
        (history.APPROVAL, "bob via cli (unsigned) at 2026-12-02T04:30:05Z: ok"),
        (history.APPROVAL, "carol via pull_request (unauthenticated) at 2026-12-02T04:30:06Z: lgtm"),
        (history.APPROVAL, "dave via pull_request at 2026-12-02T04:30:07Z: lgtm"),  # a review on GitHub
        (history.APPROVAL, "erin via ui at 2026-12-02T04:30:08Z: ok"),  # recorded before approvals were signed
    ]
    assert verdicts(fields, proofs.TrustAt(None, "none")) == [
        "bob: unsigned",
        "carol: unsigned (the local forge's unauthenticated review)",
        "dave: unsigned",
        "erin: unsigned",
    ]
