"""Who asks for a break-glass, proven (activities/glass.py `vetted`): where the environment's approvals
must be signed, the request must be signed too (`promoter break-glass --sign-key`), by a key
trust/allowed_signers lists for the asker, over this very request (app, env, until, asker, reason) made
within 10 minutes; the fingerprint it returns is the key the gate then refuses as an approver. Where
approvals may be unsigned, an unsigned request is declared, as the approvals are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from activities.glass import keys_still_trusted, vetted
from promoter import breakglass, history, signing
from promoter.errors import BadInput
from promoter.gitrepo import GitClone
from promoter.models import EnvironmentConfig, LiftHoldInput, Trust
from promoter.stack import demo_keys
from tests.support.gitops import Origin
from tests.support.keys import keygen

PROD = EnvironmentConfig.model_validate(yaml.safe_load(Path("environments/prod/environment.yaml").read_text()))
UNTIL = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)


def asked(keys: Path, key: str, who: str = "alice", at: datetime | None = None, **other: str) -> LiftHoldInput:
    req = LiftHoldInput(app="demo", env="prod", commit="", requested_by=who, reason="incident 4711", until=UNTIL)
    said = {"app": "demo", "env": "prod", "by": who, "why": "incident 4711"} | other  # what the statement says
    req.statement = breakglass.request_statement(
        said["app"], said["env"], UNTIL, said["by"], said["why"], at or datetime.now(UTC)
    )
    req.signature = signing.armor_to_line(signing.sign_file(req.statement.encode(), keys / key))
    return req


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trust]:
    keys = tmp_path_factory.mktemp("keys")
    public = demo_keys(keys, ("alice", "mallory", "alice-old"))
    allowed = "".join(f'alice namespaces="promoter-approval" {public[k]}\n' for k in ("alice", "alice-old"))
    return keys, Trust(revision="r", allowed_signers=allowed, revoked_keys=f"{public['alice-old']}\n")


def test_a_signed_request_names_the_key_that_asked(trust: tuple[Path, Trust]) -> None:
    keys, t = trust
    fingerprint = vetted(asked(keys, "alice"), PROD, t)
    assert fingerprint.startswith("SHA256:")
    unsigned = LiftHoldInput(app="demo", env="prod", commit="", requested_by="alice", reason="x", until=UNTIL)
    assert (
        vetted(
            unsigned,
            PROD.model_copy(update={"approval": PROD.approval.model_copy(update={"require_signed": False})}),
            t,
        )
        == ""
    )


@pytest.mark.parametrize(
    ("key", "changes", "expected"),
    [
        (None, {}, "prod requires signed approvals, so a break-glass request must be signed too: add --sign-key"),
        ("mallory", {}, "the break-glass request's signature does not verify: "),
        ("alice-old", {}, "the break-glass request's signature does not verify: "),
        ("alice", {"app": "other"}, "the signed request is not for this break-glass"),
        ("alice", {"why": "something else"}, "the signed request is not for this break-glass"),
        ("alice", {"by": "bob"}, "the signed request is not for this break-glass"),
        ("alice", {"at": "stale"}, "the signed request was made at "),
    ],
)
def test_a_request_not_signed_by_the_asker_for_itself_is_refused(
    trust: tuple[Path, Trust], key: str | None, changes: dict[str, str], expected: str
) -> None:
    keys, t = trust
    if key is None:
        req = LiftHoldInput(app="demo", env="prod", commit="", requested_by="alice", reason="x", until=UNTIL)
    else:
        at = datetime.now(UTC) - timedelta(minutes=30) if changes.pop("at", None) else None
        req = asked(keys, key, at=at, **changes)
    with pytest.raises(BadInput) as e:
        vetted(req, PROD, t)
    assert str(e.value).startswith(expected), e.value
    assert "\n" not in str(e.value)


def test_a_key_revoked_after_it_approved_seals_no_lift_nor_break_glass(
    origin_factory: Callable[..., Origin], tmp_path: Path
) -> None:
    """The gate verified bob's signed approval against trust/ as it stood when the lift opened; bob's key
    is revoked on main before the seal: the seal (a lift's and a break-glass's) refuses, naming him and
    the key, and nothing is pushed. Before the revocation the same trailers pass."""
    origin = origin_factory()
    bob = tmp_path / "bob"
    public = keygen(bob)
    at = datetime(2026, 12, 3, 12, tzinfo=UTC)
    statement = signing.Statement(
        promotion="lift-demo-prod", run="r", env="prod", commit="c" * 40, head="h" * 40, trees=(),
        decision="approve", approver="bob", at=at, comment="",
    )  # fmt: skip
    line = signing.armor_to_line(signing.sign(statement.text().encode(), bob.read_bytes()))
    comment = f"Merge pull request #3 from lift/demo/prod/abc\n\n{history.signed_trailer(statement.text(), line)}\n"
    clone = GitClone(origin.url, tmp_path / "cache")
    keys_still_trusted(clone, comment)  # not revoked: nothing to say
    origin.commit({"trust/revoked_keys": public + "\n"}, "revoke bob's key")
    with pytest.raises(BadInput, match=r"bob's key SHA256:\S+ has been revoked since they approved"):
        keys_still_trusted(clone, comment)
