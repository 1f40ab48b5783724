"""SSH signatures of approvals (promoter/signing.py) against the real ssh-keygen: signatures go both ways
for ed25519, ECDSA and RSA keys, and every refusal says which one it is. Keys are made per module in
tmp_path by ssh-keygen itself."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from promoter import signing
from promoter.signing import NAMESPACE, SignatureError, Statement

SSH_KEYGEN = "/usr/bin/ssh-keygen"
KINDS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "rsa3072": ["-t", "rsa", "-b", "3072"],
}
MISMATCH = (
    "the signature does not match the statement: it was made for another promotion, environment, commit, "
    "tree, decision or time"
)

STATEMENT = Statement(
    promotion="promote-demo",
    run="0192f3a4-5b6c-7d8e-9f00-112233445566",
    env="prod",
    commit="1a2b3c4d" * 5,
    head="5e6f7a8b" * 5,
    trees=(("environments/prod/demo", "4b825dc6" * 5), ("environments/prod/web", "9e1f00aa" * 5)),
    decision="approve",
    approver="alice",
    at=datetime(2026, 12, 2, 4, 30, tzinfo=UTC),
    comment='ship it\n"now" — über',
)
STATEMENT_TEXT = (
    "promoter-approval v1\n"
    "promotion promote-demo\n"
    "run 0192f3a4-5b6c-7d8e-9f00-112233445566\n"
    "env prod\n"
    f"commit {'1a2b3c4d' * 5}\n"
    f"head {'5e6f7a8b' * 5}\n"
    f"tree environments/prod/demo {'4b825dc6' * 5}\n"
    f"tree environments/prod/web {'9e1f00aa' * 5}\n"
    "decision approve\n"
    "approver alice\n"
    "at 2026-12-02T04:30:00Z\n"
    'comment "ship it\\n\\"now\\" \\u2014 \\u00fcber"\n'
)
MESSAGE = STATEMENT_TEXT.encode()


@dataclass(frozen=True)
class Key:
    path: Path
    public: str  # "keytype base64", as in an allowed_signers line

    def allowed(self, principals: str = "alice", options: str = "") -> str:
        return " ".join(field for field in (principals, options, self.public, "a comment") if field) + "\n"


def keygen(*args: str | Path, message: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([SSH_KEYGEN, *map(str, args)], input=message, capture_output=True, timeout=30)


def make_key(path: Path, *args: str, passphrase: str = "") -> Key:
    assert keygen("-q", *args, "-N", passphrase, "-C", path.name, "-f", path).returncode == 0
    return Key(path, " ".join(Path(f"{path}.pub").read_text().split()[:2]))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    folder = tmp_path_factory.mktemp("keys")
    made = {kind: make_key(folder / kind, *args) for kind, args in KINDS.items()}
    made["stranger"] = make_key(folder / "stranger", "-t", "ed25519")
    return made


def keygen_sign(key: Key, message: bytes, folder: Path, *options: str, namespace: str = NAMESPACE) -> str:
    """What `ssh-keygen -Y sign` writes for message."""
    file = folder / "signed"
    file.write_bytes(message)
    Path(f"{file}.sig").unlink(missing_ok=True)  # ssh-keygen would ask before overwriting
    done = keygen("-q", "-Y", "sign", "-n", namespace, "-f", key.path, *options, file)
    assert done.returncode == 0, done.stderr
    return Path(f"{file}.sig").read_text()


def keygen_verify(message: bytes, armored: str, allowed: str, folder: Path, principal: str = "alice") -> bool:
    """Whether `ssh-keygen -Y verify` accepts the signature of message by principal."""
    (folder / "allowed_signers").write_text(allowed)
    (folder / "checked.sig").write_text(armored)
    checked = ("-f", folder / "allowed_signers", "-I", principal, "-n", NAMESPACE, "-s", folder / "checked.sig")
    return keygen("-Y", "verify", *checked, message=message).returncode == 0


@pytest.fixture(scope="module")
def signed(keys: dict[str, Key], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The statement signed by ssh-keygen with the ed25519 key."""
    return keygen_sign(keys["ed25519"], MESSAGE, tmp_path_factory.mktemp("signed"))


# --- Both ways with ssh-keygen --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_what_ssh_keygen_signs_verifies_here(keys: dict[str, Key], kind: str, tmp_path: Path) -> None:
    key = keys[kind]
    armored = keygen_sign(key, MESSAGE, tmp_path)
    printed = keygen("-l", "-f", f"{key.path}.pub").stdout.split()[1].decode()  # "SHA256:…" as ssh-keygen says
    assert signing.verify(MESSAGE, armored, "alice", key.allowed()) == signing.Verified("alice", printed)
    with pytest.raises(SignatureError) as e:
        signing.verify(MESSAGE + b" ", armored, "alice", key.allowed())
    assert str(e.value) == MISMATCH


@pytest.mark.parametrize("kind", KINDS)
def test_what_we_sign_verifies_with_ssh_keygen(keys: dict[str, Key], kind: str, tmp_path: Path) -> None:
    key = keys[kind]
    armored = signing.sign_file(MESSAGE, key.path)
    lines = armored.splitlines()
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----" and lines[-1] == "-----END SSH SIGNATURE-----"
    assert all(len(line) == 70 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 70
    assert keygen_verify(MESSAGE, armored, key.allowed(), tmp_path)
    assert not keygen_verify(MESSAGE.replace(b"env prod", b"env test"), armored, key.allowed(), tmp_path)
    assert not keygen_verify(MESSAGE, armored, key.allowed("bob"), tmp_path)
    assert signing.verify(MESSAGE, armored, "alice", key.allowed()).principal == "alice"


def test_a_message_hashed_with_sha256_verifies(keys: dict[str, Key], tmp_path: Path) -> None:
    armored = keygen_sign(keys["ecdsa256"], MESSAGE, tmp_path, "-O", "hashalg=sha256")
    assert b"sha256" in base64.b64decode(signing.armor_to_line(armored))
    assert signing.verify(MESSAGE, armored, "alice", keys["ecdsa256"].allowed()).principal == "alice"


def rsa_signature(key: Key, message: bytes, algorithm: bytes, digest: hashes.HashAlgorithm) -> str:
    """An SSHSIG by an RSA key made by hand (ssh-keygen only makes rsa-sha2-512 ones)."""

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    private = load_ssh_private_key(key.path.read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    head = string(NAMESPACE.encode()) + string(b"") + string(b"sha512")
    value = private.sign(b"SSHSIG" + head + string(hashlib.sha512(message).digest()), padding.PKCS1v15(), digest)
    public = base64.b64decode(key.public.split()[1])
    blob = b"SSHSIG" + (1).to_bytes(4, "big") + string(public) + head + string(string(algorithm) + string(value))
    body = base64.b64encode(blob).decode()
    wrapped = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{wrapped}\n-----END SSH SIGNATURE-----\n"


def test_rsa_sha2_256_verifies_and_ssh_rsa_sha1_is_refused(keys: dict[str, Key], tmp_path: Path) -> None:
    key = keys["rsa3072"]
    sha256 = rsa_signature(key, MESSAGE, b"rsa-sha2-256", hashes.SHA256())
    assert keygen_verify(MESSAGE, sha256, key.allowed(), tmp_path)  # the hand-made signature is a right one
    assert signing.verify(MESSAGE, sha256, "alice", key.allowed()).principal == "alice"
    sha1 = rsa_signature(key, MESSAGE, b"ssh-rsa", hashes.SHA1())  # the point is refusing it
    for refused in (lambda: signing.verify(MESSAGE, sha1, "alice", key.allowed()), lambda: signing.armor_to_line(sha1)):
        with pytest.raises(SignatureError, match=r"ssh-rsa \(SHA-1\), which is refused"):
            refused()


def test_key_line_and_fingerprint_are_ssh_keygens(keys: dict[str, Key]) -> None:
    for key in keys.values():
        assert signing.public_key_line(key.path.read_bytes()) == key.public
        printed = keygen("-l", "-f", f"{key.path}.pub").stdout.split()[1].decode()
        assert signing.fingerprint(base64.b64decode(key.public.split()[1])) == printed


def test_a_signature_fits_one_line_and_comes_back_exactly(signed: str) -> None:
    line = signing.armor_to_line(signed)
    assert "\n" not in line and len(line) > 70
    assert signing.line_to_armor(line) == signed  # byte for byte what ssh-keygen wrote
    assert signing.line_to_armor(line[:40] + "\n " + line[40:]) == signed  # a folded trailer
    for garbage in ("", "hello", base64.b64encode(b"NOTSIG" + bytes(40)).decode(), line[:-20]):
        with pytest.raises(SignatureError):
            signing.line_to_armor(garbage)
    with pytest.raises(SignatureError, match="not an SSH signature"):
        signing.armor_to_line(line)
    with pytest.raises(SignatureError, match="not an SSH signature"):
        signing.verify(MESSAGE, "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n", "alice", "")


# --- The statement --------------------------------------------------------------------------------


def test_the_statement_text_is_canonical_and_parses_back() -> None:
    assert STATEMENT.text() == STATEMENT_TEXT
    assert Statement.parse(STATEMENT_TEXT) == STATEMENT
    spaced = replace(STATEMENT, trees=(("environments/my app", "ab" * 20),), comment="")
    assert Statement.parse(spaced.text()) == spaced


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello\n",
        STATEMENT_TEXT.rstrip("\n"),  # no final newline
        STATEMENT_TEXT.replace("env prod", "env  prod"),  # parses, but to another statement than signed
        STATEMENT_TEXT.replace("04:30:00Z", "04:30:00+00:00"),
        STATEMENT_TEXT.replace("\\u00fcber", "\u00fcber"),  # the same comment spelled another way
        STATEMENT_TEXT.replace("decision approve", "decision maybe"),
        STATEMENT_TEXT.replace("approver alice\n", ""),
        "\n".join(reversed(STATEMENT_TEXT.split("\n"))),
    ],
)
def test_a_statement_not_in_canonical_form_is_refused(text: str) -> None:
    with pytest.raises(SignatureError):
        Statement.parse(text)


@pytest.mark.parametrize(
    "change",
    [
        {"env": "prod\ncommit 0000"},
        {"approver": "alice\r"},
        {"promotion": "promote\x1b[2Jdemo"},
        {"run": "a\u2028b"},
        {"commit": "1a2b\u202e"},  # a bidi override would make the statement read otherwise
        {"trees": (("environments/prod\n/demo", "4b82"),)},
        {"trees": (("environments/prod/demo", "4b82 55"),)},
        {"env": ""},
    ],
)
def test_a_field_that_could_break_a_line_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(SignatureError, match="statement's"):
        replace(STATEMENT, **change).text()  # type: ignore[arg-type]


def test_a_statement_time_is_aware_whole_seconds_and_its_decision_approve_or_reject() -> None:
    for change in ({"at": datetime(2026, 12, 2)}, {"at": STATEMENT.at.replace(microsecond=5)}, {"decision": "ok"}):
        with pytest.raises(SignatureError, match="statement's"):
            replace(STATEMENT, **change).text()


# --- Every refusal, each with its own message ------------------------------------------------------


def refusal(
    message: bytes, armored: str, principal: str, allowed: str, revoked: str = "", at: datetime | None = None
) -> str:
    with pytest.raises(SignatureError) as e:
        signing.verify(message, armored, principal, allowed, revoked, at=at)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_each_refusal_says_which_it_is(keys: dict[str, Key], signed: str, tmp_path: Path) -> None:
    key = keys["ed25519"]
    fp = signing.fingerprint(base64.b64decode(key.public.split()[1]))
    at = STATEMENT.at
    other = replace(STATEMENT, env="staging").text().encode()
    git = keygen_sign(key, MESSAGE, tmp_path, namespace="git")
    messages = {
        "another statement": refusal(other, signed, "alice", key.allowed()),
        "another namespace": refusal(MESSAGE, git, "alice", key.allowed()),
        "revoked": refusal(MESSAGE, signed, "alice", key.allowed(), f"# gone\n{key.public} laptop lost\n"),
        "unknown": refusal(MESSAGE, signed, "alice", keys["stranger"].allowed()),
        "someone else's": refusal(MESSAGE, signed, "alice", key.allowed("bob,carol")),
        "namespaces": refusal(MESSAGE, signed, "alice", key.allowed(options='namespaces="git,file"')),
        "expired": refusal(MESSAGE, signed, "alice", key.allowed(options='valid-before="20261201Z"'), at=at),
        "not yet": refusal(MESSAGE, signed, "alice", key.allowed(options='valid-after="202612030000"'), at=at),
    }
    assert messages == {
        "another statement": MISMATCH,
        "another namespace": "the signature is for namespace 'git', not 'promoter-approval'",
        "revoked": f"the key {fp} is revoked (in trust/revoked_keys)",
        "unknown": f"the key {fp} is not in trust/allowed_signers for 'alice'",
        "someone else's": f"the key {fp} is not in trust/allowed_signers for 'alice' (it is listed for 'bob', 'carol')",
        "namespaces": f"the key {fp} is in trust/allowed_signers for 'alice' but not for namespace 'promoter-approval'",
        "expired": f"the key {fp} of 'alice' is expired at 2026-12-01 00:00:00Z (valid-before in "
        "trust/allowed_signers), judged at 2026-12-02 04:30:00Z",
        "not yet": f"the key {fp} of 'alice' is not valid before 2026-12-03 00:00:00Z (valid-after in "
        "trust/allowed_signers), judged at 2026-12-02 04:30:00Z",
    }
    # The same key and options within their window, or not judged at a time, pass.
    window = key.allowed(options='namespaces="promoter-*,git",valid-after="20261201",valid-before="20261203Z"')
    assert signing.verify(MESSAGE, signed, "alice", window, at=at).fingerprint == fp
    assert signing.verify(MESSAGE, signed, "alice", window).fingerprint == fp
    # A second line for the key that does allow the namespace is enough (as for ssh-keygen).
    two = key.allowed(options='namespaces="git"') + key.allowed()
    assert signing.verify(MESSAGE, signed, "alice", two).principal == "alice"


def test_principal_patterns_match_as_ssh_keygen_matches_them(keys: dict[str, Key], signed: str, tmp_path: Path) -> None:
    allowed = keys["ed25519"].allowed('"*@example.com,!mallory@example.com,b?b"')
    for principal, accepted in [
        ("alice@example.com", True),
        ("bob", True),
        ("mallory@example.com", False),
        ("alice@example.com.evil", False),
        ("alice@example.org", False),
        ("boob", False),
        ("alice@example.com\nbob", False),  # and the refusal is still one line
    ]:
        assert keygen_verify(MESSAGE, signed, allowed, tmp_path, principal) is accepted, principal
        if accepted:
            assert signing.verify(MESSAGE, signed, principal, allowed).principal == principal
        else:
            assert "is not in trust/allowed_signers for" in refusal(MESSAGE, signed, principal, allowed)


# --- Trust files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("alice ssh-ed25519 AAAA!!!!", "base64 is malformed"),
        ("alice", "expected [options] keytype base64-key"),
        ("alice ssh-rsa {ed25519}", "the key says 'ssh-rsa' but its data is a 'ssh-ed25519' key"),
        ("alice ssh-dss AAAAB3NzaC1kc3MAAAAA", "'ssh-dss' is not supported"),
        ("alice namespaces=git {key}", 'namespaces needs a quoted value, as namespaces="…"'),
        ('alice namespaces="git {key}', "a quote is not closed"),
        ('alice valid-after="2026-12-01" {key}', "valid-after='2026-12-01' is not a time"),
        ('alice valid-before="20261341" {key}', "valid-before='20261341' is not a time"),
        ("alice no-touch-required {key}", "unknown option 'no-touch-required'"),
        ("alice cert-authority {key}", "certificate keys are not supported; list the signer's own key"),
    ],
)
def test_a_malformed_allowed_signers_line_is_named_by_number(
    keys: dict[str, Key], signed: str, bad: str, says: str
) -> None:
    key = keys["ed25519"]
    line = bad.format(key=key.public, ed25519=key.public.split()[1])
    text = f"# who may approve\n\n{line}\n{key.allowed()}"
    with pytest.raises(SignatureError) as e:
        signing.parse_allowed_signers(text)
    assert str(e.value).startswith("trust/allowed_signers line 3: ") and says in str(e.value), str(e.value)
    # verify fails closed on it even though line 4 would accept the signature
    assert refusal(MESSAGE, signed, "alice", text) == str(e.value)


def test_allowed_signers_fields(keys: dict[str, Key]) -> None:
    key = keys["ecdsa384"]
    text = f'  # comment\n"alice,b*" NameSpaces="promoter-approval,x",valid-after="20260102030405Z" {key.public}\r\n'
    [signer] = signing.parse_allowed_signers(text)
    assert signer == signing.AllowedSigner(
        principals=("alice", "b*"),
        key_blob=base64.b64decode(key.public.split()[1]),
        namespaces=("promoter-approval", "x"),
        valid_after=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        valid_before=None,
    )


def test_a_certificate_signer_is_refused_with_what_to_list_instead(keys: dict[str, Key], tmp_path: Path) -> None:
    ca, user = keys["stranger"], keys["ed25519"]
    cert = tmp_path / "user"
    cert.write_bytes(user.path.read_bytes())
    cert.chmod(0o600)
    Path(f"{cert}.pub").write_text(user.public + "\n")
    assert keygen("-q", "-s", ca.path, "-I", "alice", "-n", "alice", f"{cert}.pub").returncode == 0
    # given the certificate, ssh-keygen signs with it (and the private key next to it)
    armored = keygen_sign(Key(Path(f"{cert}-cert.pub"), user.public), MESSAGE, tmp_path)
    with pytest.raises(SignatureError, match="certificate keys are not supported; list the signer's own key"):
        signing.verify(MESSAGE, armored, "alice", user.allowed())


def test_revoked_keys_are_plain_public_keys_and_a_binary_krl_is_refused(keys: dict[str, Key], tmp_path: Path) -> None:
    key, other = keys["ed25519"], keys["rsa3072"]
    text = f"# revoked\n\n{key.public} lost\nrestrict {other.public}\nssh-dss AAAAB3NzaC1kc3MAAAAA\n"
    blobs = {base64.b64decode(k.public.split()[1]) for k in (key, other)}
    assert signing.parse_revoked_keys(text) == frozenset(blobs | {base64.b64decode("AAAAB3NzaC1kc3MAAAAA")})
    with pytest.raises(SignatureError, match=r"^trust/revoked_keys line 2: .*list one public key a line"):
        signing.parse_revoked_keys(f"{key.public}\nnot a key\n")
    krl = tmp_path / "krl"
    assert keygen("-k", "-f", krl, f"{key.path}.pub").returncode == 0
    with pytest.raises(SignatureError, match=r"binary key revocation list \(KRL\).*list plain public keys"):
        signing.parse_revoked_keys(krl.read_bytes().decode("latin-1"))


# --- Private keys ---------------------------------------------------------------------------------


def test_a_passphrase_protected_key_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_key(tmp_path / "locked", "-t", "ed25519", passphrase="open sesame")
    monkeypatch.delenv(signing.PASSPHRASE_VARIABLE, raising=False)
    with pytest.raises(SignatureError) as e:
        signing.sign_file(MESSAGE, key.path)
    assert str(e.value) == (
        f"the signing key {key.path} is protected by a passphrase; use an agent-free unencrypted key or set "
        "PROMOTER_SIGNING_KEY_PASSPHRASE"
    )
    monkeypatch.setenv(signing.PASSPHRASE_VARIABLE, "open sesame")
    # bcrypt is a dependency: cryptography opens such keys with it
    assert signing.verify(MESSAGE, signing.sign_file(MESSAGE, key.path), "alice", key.allowed())
    monkeypatch.setenv(signing.PASSPHRASE_VARIABLE, "wrong")
    with pytest.raises(SignatureError, match="the passphrase does not open"):
        signing.sign_file(MESSAGE, key.path)


def test_a_signing_key_that_is_missing_unreadable_or_no_key_says_so(keys: dict[str, Key], tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match=r"the signing key .*nothing does not exist"):
        signing.sign_file(MESSAGE, tmp_path / "nothing")
    with pytest.raises(SignatureError, match="cannot read the signing key"):
        signing.sign_file(MESSAGE, tmp_path)
    with pytest.raises(SignatureError, match=r"\.pub is not an OpenSSH private key"):
        signing.sign_file(MESSAGE, f"{keys['ed25519'].path}.pub")
    pem = tmp_path / "pem"
    assert keygen("-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", pem).returncode == 0
    with pytest.raises(SignatureError, match="is not an OpenSSH private key"):
        signing.sign_file(MESSAGE, pem)
