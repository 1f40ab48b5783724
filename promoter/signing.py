"""Git-compatible SSH signatures for approvals: OpenSSH's `sshsig` format, in pure Python.

An approver signs a `Statement` (what the approval opens) with an ordinary SSH key, either with
`ssh-keygen -Y sign -n promoter-approval -f KEY statement.txt` or through `sign_file`; `verify` checks the
signature against the repository's `trust/allowed_signers` (git's format, see ALLOWED SIGNERS in
ssh-keygen(1)) and `trust/revoked_keys` (plain public keys, one a line). Both ways interoperate with
`ssh-keygen -Y verify`.

The formats, from OpenSSH's PROTOCOL.sshsig:

    blob        = "SSHSIG" uint32(1) string(public key) string(namespace) string(reserved) string(hash) string(sig)
    signed data = "SSHSIG" string(namespace) string(reserved) string(hash) string(H(message))
    armor       = "-----BEGIN SSH SIGNATURE-----", base64(blob) in lines of 70, "-----END SSH SIGNATURE-----"

Where ssh-keygen and this module differ, this module is stricter: every line of the trust files must parse
(a malformed one fails every verification instead of being skipped), keys must be in canonical encoding,
RSA keys must have at least 2048 bits, the reserved field must be empty, and certificate keys are refused.
A valid-after/valid-before time without a `Z` is read as UTC (ssh-keygen reads it in the machine's time zone,
which would make a verdict depend on the worker that reached it).

Everything here is pure and deterministic (no clock, no global state) so that workflows may call `verify`;
`sign_file` is the only function that reads a file or the environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
    load_ssh_public_key,
)

from promoter.errors import BadInput

NAMESPACE = "promoter-approval"
PASSPHRASE_VARIABLE = "PROMOTER_SIGNING_KEY_PASSPHRASE"

_MAGIC: Final = b"SSHSIG"
_VERSION: Final = 1
_BEGIN: Final = "-----BEGIN SSH SIGNATURE-----"
_END: Final = "-----END SSH SIGNATURE-----"
_MESSAGE_HASHES: Final = MappingProxyType({"sha256": hashlib.sha256, "sha512": hashlib.sha512})
# ECDSA signs with the hash that goes with its curve (RFC 5656).
_ECDSA_HASHES: Final = MappingProxyType(
    {
        "ecdsa-sha2-nistp256": hashes.SHA256(),
        "ecdsa-sha2-nistp384": hashes.SHA384(),
        "ecdsa-sha2-nistp521": hashes.SHA512(),
    }
)
_RSA_HASHES: Final = MappingProxyType({"rsa-sha2-256": hashes.SHA256(), "rsa-sha2-512": hashes.SHA512()})
_KEY_TYPES: Final = frozenset({"ssh-ed25519", "ssh-rsa", *_ECDSA_HASHES})
_RSA_MINIMUM_BITS: Final = 2048
_CERTIFICATES: Final = "certificate keys are not supported; list the signer's own key"
_KEY_TYPES_TOLD: Final = "use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa"


class SignatureError(BadInput):
    """A signature, key, statement or trust file that does not do: one line saying what is wrong and what to fix."""


# --- The statement an approver signs -----------------------------------------------------------------

_HEADER: Final = "promoter-approval v1"
_DECISIONS: Final = ("approve", "reject")


@dataclass(frozen=True)
class Statement:
    """What an approver signs: everything that decides what the approval opens."""

    promotion: str  # workflow ID
    run: str  # workflow run ID
    env: str
    commit: str  # the promoted commit (full sha)
    head: str  # the PR's head commit: what will merge, whole (a push onto the PR, anywhere, changes it)
    trees: tuple[tuple[str, str], ...]  # (folder path, git tree id) at the PR head, sorted by path
    decision: str  # "approve" | "reject"
    approver: str
    at: datetime  # timezone-aware UTC, whole seconds
    comment: str = ""

    def text(self) -> str:
        """The canonical statement, one `key value` a line; the bytes signed are `text().encode()`.

        The comment is a JSON string (ASCII only), so nothing in it can start a line of its own.
        """
        for name in ("promotion", "run", "env", "commit", "head", "approver"):
            _one_line(name, getattr(self, name))
        paths = [path for path, _ in self.trees]
        if paths != sorted(set(paths)):
            raise SignatureError("the statement's trees must be sorted by path, each path once")
        for path, tree in self.trees:
            _one_line("tree path", path)
            _one_line("tree id", tree)
            if " " in tree:
                raise SignatureError(f"the statement's tree id for {path!r} has a space in it; give the git tree id")
        if self.decision not in _DECISIONS:
            raise SignatureError(f"the statement's decision is {self.decision!r}; it must be approve or reject")
        if self.at.utcoffset() is None or self.at.microsecond:
            raise SignatureError("the statement's time must be timezone-aware and in whole seconds")
        lines = [
            _HEADER,
            f"promotion {self.promotion}",
            f"run {self.run}",
            f"env {self.env}",
            f"commit {self.commit}",
            f"head {self.head}",
            *(f"tree {path} {tree}" for path, tree in self.trees),
            f"decision {self.decision}",
            f"approver {self.approver}",
            f"at {self.at.astimezone(UTC).replace(tzinfo=None).isoformat()}Z",
            f"comment {json.dumps(self.comment)}",
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Statement:
        """The statement `text()` wrote, refusing anything that is not exactly such a text."""
        lines = text.split("\n")
        if len(lines) < 11 or lines[0] != _HEADER or lines[-1] != "":
            raise SignatureError(f"not a promoter approval statement: it must start with {_HEADER!r}")
        fields = [line.partition(" ") for line in lines[1:-1]]  # (key, " ", value)
        keys = [key for key, _, _ in fields]
        trees = []
        for key, _, value in fields:
            if key == "tree":
                path, _, tree = value.rpartition(" ")  # a tree id has no space; a path may
                trees.append((path, tree))
        expected = ["promotion", "run", "env", "commit", "head", *["tree"] * len(trees)]
        expected += ["decision", "approver", "at", "comment"]
        if keys != expected or any(not sep for _, sep, _ in fields):
            raise SignatureError(f"not a promoter approval statement: its lines must be {', '.join(expected)}")
        values = {key: value for key, _, value in fields if key != "tree"}
        try:
            at = datetime.strptime(values["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            comment = json.loads(values["comment"])
        except ValueError:
            raise SignatureError("the statement's at or comment line is malformed") from None
        if not isinstance(comment, str):
            raise SignatureError("the statement's comment must be a JSON string")
        statement = cls(
            promotion=values["promotion"],
            run=values["run"],
            env=values["env"],
            commit=values["commit"],
            head=values["head"],
            trees=tuple(trees),
            decision=values["decision"],
            approver=values["approver"],
            at=at,
            comment=comment,
        )
        if statement.text() != text:  # one text per statement: no other spelling of a time or comment passes
            raise SignatureError("the statement is not in canonical form; sign exactly what promoter printed")
        return statement


def _one_line(name: str, value: str) -> None:
    """Refuse an empty value, or one with a character that could break or disguise a line."""
    if not value:
        raise SignatureError(f"the statement's {name} is empty")
    if value != value.strip():
        raise SignatureError(f"the statement's {name} {value!r} starts or ends with white space")
    # Cc: control characters (newlines among them), Cf: invisible formatting (bidi overrides),
    # Zl/Zp: line and paragraph separators, Cs: lone surrogates (not encodable).
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value):
        raise SignatureError(f"the statement's {name} {value!r} has a newline or control character in it")


# --- SSH wire format --------------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(n: int) -> bytes:
    """A non-negative integer as an SSH mpint: big-endian, with a 0 byte in front when the top bit is set."""
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return _string(b"\0" + raw if raw and raw[0] & 0x80 else raw)


class _Reader:
    """Reads SSH wire-format fields; any shortfall is a SignatureError saying `what` is malformed."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.at, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.at:
            raise SignatureError(f"{self.what} is malformed (cut short)")
        self.at += n
        return self.data[self.at - n : self.at]

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode()
        except UnicodeDecodeError:
            raise SignatureError(f"{self.what} is malformed (a name is not UTF-8)") from None

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise SignatureError(f"{self.what} is malformed (a negative number)")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.at != len(self.data):
            raise SignatureError(f"{self.what} is malformed (data after its end)")


# --- Keys -------------------------------------------------------------------------------------------


def fingerprint(public_key_blob: bytes) -> str:
    """The key's fingerprint as `ssh-keygen -l` prints it: SHA256, base64 without padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public_key_blob).digest()).decode().rstrip("=")


def _blob_of(key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    """The SSH wire-format blob of a public key (the base64 part of its `.pub` line)."""
    return base64.b64decode(key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1])


def _key_type(blob: bytes) -> str:
    return _Reader(blob, "the public key").text()


def _public_key(blob: bytes) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The key in a blob, which must be a supported type in canonical encoding (as ssh-keygen writes it)."""
    key_type = _key_type(blob)
    if key_type.endswith("-cert-v01@openssh.com"):
        raise SignatureError(_CERTIFICATES)
    if key_type not in _KEY_TYPES:
        raise SignatureError(f"the key type {key_type!r} is not supported; {_KEY_TYPES_TOLD}")
    try:
        key = load_ssh_public_key(key_type.encode() + b" " + base64.b64encode(blob))
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"the {key_type} key is malformed") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise SignatureError(f"the key type {key_type!r} is not supported; {_KEY_TYPES_TOLD}")
    if _blob_of(key) != blob:
        raise SignatureError(f"the {key_type} key is not in canonical encoding; copy it from its .pub file")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _RSA_MINIMUM_BITS:
        raise SignatureError(f"the RSA key has {key.key_size} bits; use ed25519, or RSA of {_RSA_MINIMUM_BITS} or more")
    return key


def _key_field(key_type: str, b64: str, *, any_type: bool = False) -> bytes:
    """The blob of a `keytype base64` pair from a trust file. With any_type, keys of types this module
    cannot verify are taken as they are (a revoked DSA key is fine to list: it can never match)."""
    try:
        blob = base64.b64decode(b64, validate=True)
    except binascii.Error:
        raise SignatureError(f"the {key_type} key's base64 is malformed") from None
    if _key_type(blob) != key_type:
        raise SignatureError(f"the key says {key_type!r} but its data is a {_key_type(blob)!r} key")
    if not (any_type and key_type not in _KEY_TYPES):
        _public_key(blob)
    return blob


def _is_key_type(field: str) -> bool:
    """Whether a trust-file field is a key type (else it is an options field)."""
    return field in _KEY_TYPES or field.endswith("@openssh.com") or field.startswith(("ssh-", "ecdsa-", "sk-"))


def _load_private_key(
    data: bytes, passphrase: bytes | None, what: str, passphrase_hint: str = "give its passphrase"
) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """The key in an OpenSSH private key file's content; `what` names it in errors."""
    try:
        key = load_ssh_private_key(data, None)
    except TypeError:  # "Key is password-protected"
        if passphrase is None:
            raise SignatureError(f"{what} is protected by a passphrase; {passphrase_hint}") from None
        try:
            key = load_ssh_private_key(data, passphrase)
        except UnsupportedAlgorithm:  # cryptography decrypts OpenSSH keys with the bcrypt package
            raise SignatureError(
                f"{what} is protected by a passphrase, and opening it needs the Python package bcrypt; "
                "install bcrypt or use an unencrypted key"
            ) from None
        except ValueError:
            raise SignatureError(f"the passphrase does not open {what}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(
            f"{what} is not an OpenSSH private key; make one with ssh-keygen -t ed25519 (or convert with ssh-keygen -p)"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SignatureError(f"{what} is of a type that cannot sign here; {_KEY_TYPES_TOLD}")
    return key


def public_key_line(private_key: bytes, passphrase: bytes | None = None) -> str:
    """The `keytype base64` line of the private key's public half, for seeding trust/allowed_signers."""
    key = _load_private_key(private_key, passphrase, "the private key")
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


# --- Signing ----------------------------------------------------------------------------------------


def _signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    """What the key signs. The reserved field is empty, as ssh-keygen always makes it."""
    digest = _MESSAGE_HASHES[hash_algorithm](message).digest()
    return _MAGIC + _string(namespace.encode()) + _string(b"") + _string(hash_algorithm.encode()) + _string(digest)


def _armor(blob: bytes) -> str:
    body = base64.b64encode(blob).decode()
    return "\n".join([_BEGIN, *(body[i : i + 70] for i in range(0, len(body), 70)), _END]) + "\n"


def sign(message: bytes, private_key: bytes, namespace: str = NAMESPACE, passphrase: bytes | None = None) -> str:
    """The armored SSH signature of message (what `ssh-keygen -Y sign -n NAMESPACE` writes), hashed with sha512.

    private_key is the content of an OpenSSH private key file."""
    return _sign(message, _load_private_key(private_key, passphrase, "the private key"), namespace)


def _sign(
    message: bytes, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, namespace: str
) -> str:
    if not namespace:
        raise SignatureError("the signature namespace is empty")
    public_blob = _blob_of(key.public_key())
    _public_key(public_blob)  # a key type and size that verify accepts
    key_type = _key_type(public_blob)
    data = _signed_data(namespace, "sha512", message)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = _string(b"ssh-ed25519") + _string(key.sign(data))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_ECDSA_HASHES[key_type])))
        signature = _string(key_type.encode()) + _string(_mpint(r) + _mpint(s))
    else:
        signature = _string(b"rsa-sha2-512") + _string(key.sign(data, padding.PKCS1v15(), hashes.SHA512()))
    blob = _MAGIC + struct.pack(">I", _VERSION) + _string(public_blob) + _string(namespace.encode())
    blob += _string(b"") + _string(b"sha512") + _string(signature)
    return _armor(blob)


def sign_file(message: bytes, key_path: str | Path, namespace: str = NAMESPACE) -> str:
    """`sign` with the private key in the file key_path; its passphrase, if any, is PROMOTER_SIGNING_KEY_PASSPHRASE."""
    try:
        data = Path(key_path).read_bytes()
    except FileNotFoundError:
        raise SignatureError(
            f"the signing key {key_path} does not exist; give the path of an SSH private key"
        ) from None
    except OSError as e:
        raise SignatureError(f"cannot read the signing key {key_path}: {e.strerror or e}") from None
    passphrase = os.environ.get(PASSPHRASE_VARIABLE)
    hint = f"use an agent-free unencrypted key or set {PASSPHRASE_VARIABLE}"
    key = _load_private_key(data, passphrase.encode() if passphrase else None, f"the signing key {key_path}", hint)
    return _sign(message, key, namespace)


# --- Armor ------------------------------------------------------------------------------------------


def _blob_from_base64(body: str) -> bytes:
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        blob = b""
    if not blob.startswith(_MAGIC):
        raise SignatureError("not an SSH signature: expected the base64 of an SSHSIG blob")
    return blob


def _dearmor(armored: str) -> bytes:
    lines = [line.strip() for line in armored.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        raise SignatureError(f"not an SSH signature: expected {_BEGIN} … {_END}")
    return _blob_from_base64("".join(lines[1:-1]))


def armor_to_line(armored: str) -> str:
    """The signature's base64 on one line (to fit a git trailer)."""
    blob = _dearmor(armored)
    _parse(blob)
    return base64.b64encode(blob).decode()


def line_to_armor(line: str) -> str:
    """The armored signature back from `armor_to_line`'s line (whitespace inside it is ignored)."""
    blob = _blob_from_base64("".join(line.split()))
    _parse(blob)
    return _armor(blob)


def key_of(line: str) -> bytes:
    """The public key blob that made a signature given as `armor_to_line`'s line (SignatureError when it
    is none)."""
    return _parse(_blob_from_base64("".join(line.split()))).key_blob


@dataclass(frozen=True)
class _Signature:
    key_blob: bytes
    namespace: str
    hash_algorithm: str
    algorithm: str  # the signature's algorithm: the key type, or rsa-sha2-256/512 for an RSA key
    value: bytes


def _parse(blob: bytes) -> _Signature:
    """The fields of an SSHSIG blob, each checked for form (not yet against any key or message)."""
    reader = _Reader(blob, "the SSH signature")
    if reader.take(6) != _MAGIC or reader.uint32() != _VERSION:
        raise SignatureError("not an SSH signature of version 1")
    key_blob, namespace, reserved = reader.string(), reader.text(), reader.string()
    hash_algorithm, inner = reader.text(), reader.string()
    reader.end()
    if reserved:
        raise SignatureError("the SSH signature is malformed (its reserved field is not empty)")
    if hash_algorithm not in _MESSAGE_HASHES:
        raise SignatureError(f"the SSH signature hashes with {hash_algorithm!r}; only sha256 and sha512 are accepted")
    key = _public_key(key_blob)
    signature = _Reader(inner, "the SSH signature")
    algorithm, value = signature.text(), signature.string()
    signature.end()
    if algorithm == "ssh-rsa":
        raise SignatureError("the signature is ssh-rsa (SHA-1), which is refused; sign again with rsa-sha2-512")
    allowed = _RSA_HASHES if isinstance(key, rsa.RSAPublicKey) else (_key_type(key_blob),)
    if algorithm not in allowed:
        raise SignatureError(f"the SSH signature is malformed ({algorithm!r} signature by a {_key_type(key_blob)} key)")
    return _Signature(key_blob, namespace, hash_algorithm, algorithm, value)


def _signature_matches(signature: _Signature, message: bytes) -> bool:
    """Whether the signature's key signed this message under its namespace."""
    key = _public_key(signature.key_blob)
    data = _signed_data(signature.namespace, signature.hash_algorithm, message)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature.value, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            pair = _Reader(signature.value, "the ECDSA signature")
            r, s = pair.mpint(), pair.mpint()
            pair.end()
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_ECDSA_HASHES[signature.algorithm]))
        else:
            # OpenSSH accepts an RSA signature with its leading zero bytes left out.
            value = signature.value.rjust((key.key_size + 7) // 8, b"\0")
            key.verify(value, data, padding.PKCS1v15(), _RSA_HASHES[signature.algorithm])
    except InvalidSignature:
        return False
    return True


# --- Trust files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSigner:
    principals: tuple[str, ...]  # patterns (`*`, `?`, `!` to exclude), as ssh_config(5) PATTERNS
    key_blob: bytes  # the SSH wire-format public key
    namespaces: tuple[str, ...] | None  # patterns; None: any namespace
    valid_after: datetime | None
    valid_before: datetime | None


def _field(line: str) -> tuple[str, str]:
    """The first whitespace-separated field of line and the rest; double quotes keep spaces in a field,
    and \\" is a quote inside them (as OpenSSH reads options)."""
    line = line.lstrip(" \t")
    quoted, i = False, 0
    while i < len(line) and (quoted or line[i] not in " \t"):
        if line.startswith('\\"', i):
            i += 1
        elif line[i] == '"':
            quoted = not quoted
        i += 1
    if quoted:
        raise SignatureError("a quote is not closed")
    return line[:i], line[i:]


def _key_and_options(rest: str, *, any_type: bool = False) -> tuple[bytes, str]:
    """The key blob and the options field ("" when none) of `[options] keytype base64 [comment]`."""
    options, rest = _field(rest)
    if _is_key_type(options):
        options, key_type = "", options
    else:
        key_type, rest = _field(rest)
    b64, _ = _field(rest)
    if not _is_key_type(key_type) or not b64:
        raise SignatureError("expected [options] keytype base64-key [comment]")
    if key_type.endswith("-cert-v01@openssh.com"):
        raise SignatureError(_CERTIFICATES)
    return _key_field(key_type, b64, any_type=any_type), options


def _split_options(options: str) -> list[str]:
    """Options split at the commas outside double quotes."""
    parts, quoted, start = [], False, 0
    for i, ch in enumerate(options):
        if ch == '"' and options[i - 1 : i] != "\\":
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(options[start:i])
            start = i + 1
    return [*parts, options[start:]]


def _unquote(name: str, value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise SignatureError(f'{name} needs a quoted value, as {name}="…"')
    return value[1:-1].replace('\\"', '"')


def _time(name: str, value: str) -> datetime:
    """A YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z] time, read as UTC with or without the Z."""
    digits = value.removesuffix("Z")
    layout = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(digits))
    try:
        if layout is None or not (digits.isascii() and digits.isdigit()):
            raise ValueError
        return datetime.strptime(digits, layout).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"{name}={value!r} is not a time; write YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]") from None


def _allowed_signer(line: str) -> AllowedSigner:
    principals, rest = _field(line)
    if len(principals) >= 2 and principals[0] == principals[-1] == '"':
        principals = principals[1:-1]
    key_blob, options = _key_and_options(rest)
    namespaces: tuple[str, ...] | None = None
    valid: dict[str, datetime] = {}
    for option in _split_options(options) if options else []:
        name, _, value = option.partition("=")
        name = name.lower()  # option names are case-insensitive
        if name == "cert-authority":
            raise SignatureError(_CERTIFICATES)
        if name == "namespaces":
            namespaces = tuple(_unquote(name, value).split(","))
        elif name in ("valid-after", "valid-before"):
            valid[name] = _time(name, _unquote(name, value))
        else:
            raise SignatureError(f"unknown option {option!r}; known are namespaces, valid-after, valid-before")
    return AllowedSigner(
        tuple(principals.split(",")), key_blob, namespaces, valid.get("valid-after"), valid.get("valid-before")
    )


def _lines(text: str) -> list[tuple[int, str]]:
    """The numbered lines of a trust file that are not blank or comments."""
    numbered = ((n, line.strip(" \t\r")) for n, line in enumerate(text.split("\n"), 1))
    return [(n, line) for n, line in numbered if line and not line.startswith("#")]


def parse_allowed_signers(text: str, source: str = "trust/allowed_signers") -> list[AllowedSigner]:
    """The lines of git's allowed_signers file: `principals [options] keytype base64-key [comment]`."""
    signers = []
    for n, line in _lines(text):
        try:
            signers.append(_allowed_signer(line))
        except SignatureError as e:
            raise SignatureError(f"{source} line {n}: {e}") from None
    return signers


def parse_revoked_keys(text: str, source: str = "trust/revoked_keys") -> frozenset[bytes]:
    """The key blobs of a revoked-keys file: one public key a line, as in authorized_keys."""
    if text.startswith("SSHKRL") or "\0" in text:
        raise SignatureError(
            f"{source} is a binary key revocation list (KRL), which is not supported; "
            "list plain public keys in it, one a line"
        )
    revoked = set()
    for n, line in _lines(text):
        try:
            revoked.add(_key_and_options(line, any_type=True)[0])
        except SignatureError as e:
            raise SignatureError(f"{source} line {n}: {e}; list one public key a line") from None
    return frozenset(revoked)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    """OpenSSH's pattern-list match: some pattern matches name and no negated one (`!pattern`) does."""
    hit = False
    for pattern in patterns:
        if _glob(name, pattern.removeprefix("!")):
            if pattern.startswith("!"):
                return False
            hit = True
    return hit


def _glob(name: str, pattern: str) -> bool:
    """Whether pattern matches all of name: `*` is any run of characters, `?` any one, the rest themselves.

    Walks both once, going back only to just after the last `*` (so no pattern takes exponential time)."""
    n = p = 0
    star, star_n = -1, 0  # the last `*` seen and where in name its run ends so far
    while n < len(name):
        if p < len(pattern) and pattern[p] in ("?", name[n]):
            n, p = n + 1, p + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, star_n, p = p, n, p + 1
        elif star >= 0:  # let the last `*` take one more character and try again after it
            star_n += 1
            n, p = star_n, star + 1
        else:
            return False
    return all(ch == "*" for ch in pattern[p:])


# --- Verifying --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    principal: str
    fingerprint: str


def verify(
    message: bytes,
    armored: str,
    principal: str,
    allowed_signers: str,
    revoked_keys: str = "",
    namespace: str = NAMESPACE,
    at: datetime | None = None,
) -> Verified:
    """Accept the armored signature of message by principal, as `ssh-keygen -Y verify` would, or raise
    SignatureError saying why not. `at` is the time the signature is judged at for the keys' valid-after and
    valid-before (None: not judged)."""
    if not principal:
        raise SignatureError("no principal to verify the signature for; give the approver's identity")
    signature = _parse(_dearmor(armored))
    if signature.namespace != namespace:
        raise SignatureError(f"the signature is for namespace {signature.namespace!r}, not {namespace!r}")
    key = fingerprint(signature.key_blob)
    if signature.key_blob in parse_revoked_keys(revoked_keys):
        raise SignatureError(f"the key {key} is revoked (in trust/revoked_keys)")
    of_key = [s for s in parse_allowed_signers(allowed_signers) if s.key_blob == signature.key_blob]
    listed = [s for s in of_key if _matches(principal, s.principals)]
    if not listed:
        others = ", ".join(repr(p) for s in of_key for p in s.principals)
        elsewhere = f" (it is listed for {others})" if others else ""
        raise SignatureError(f"the key {key} is not in trust/allowed_signers for {principal!r}{elsewhere}")
    listed = [s for s in listed if s.namespaces is None or _matches(namespace, s.namespaces)]
    if not listed:
        raise SignatureError(
            f"the key {key} is in trust/allowed_signers for {principal!r} but not for namespace {namespace!r}"
        )
    if at is not None:
        if at.utcoffset() is None:
            raise SignatureError("the time a signature is judged at must be timezone-aware")
        # OpenSSH: valid from valid-after through valid-before, both included.
        timely = [
            s
            for s in listed
            if (s.valid_after is None or s.valid_after <= at) and (s.valid_before is None or at <= s.valid_before)
        ]
        if not timely:
            first = listed[0]
            if first.valid_after is not None and at < first.valid_after:
                when = f"not valid before {first.valid_after:%Y-%m-%d %H:%M:%S}Z (valid-after"
            else:
                assert first.valid_before is not None  # neither bound failed otherwise
                when = f"expired at {first.valid_before:%Y-%m-%d %H:%M:%S}Z (valid-before"
            judged = f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
            raise SignatureError(
                f"the key {key} of {principal!r} is {when} in trust/allowed_signers), judged at {judged}"
            )
    if not _signature_matches(signature, message):
        raise SignatureError(
            "the signature does not match the statement: it was made for another promotion, environment, commit, "
            "tree, decision or time"
        )
    return Verified(principal, key)


# --- Git commits ------------------------------------------------------------------------------------
# A commit signed with an SSH key carries its armored signature (namespace `git`) in a `gpgsig` header
# after `committer`, each line after the first indented by one space; the signature is over the commit
# object without that header, as `git commit -S` (gpg.format ssh) writes it and `git verify-commit`
# checks it.

GIT_NAMESPACE = "git"


def commit_signature(raw: bytes) -> tuple[bytes, str] | None:
    """(what was signed, the armored signature) of a raw commit object; None when it is not SSH-signed."""
    head, sep, message = raw.partition(b"\n\n")
    lines = head.split(b"\n")
    kept: list[bytes] = []
    signature: list[bytes] = []
    inside = False
    for line in lines:
        if line.startswith(b"gpgsig "):
            inside = True
            signature.append(line[len(b"gpgsig ") :])
        elif inside and line.startswith(b" "):
            signature.append(line[1:])
        else:
            inside = False
            kept.append(line)
    if not signature:
        return None
    text = b"\n".join(signature).decode("utf-8", "replace")
    if _BEGIN not in text:
        return None  # a GPG (or X.509) signature: not one this module verifies
    return b"\n".join(kept) + sep + message, text + "\n"


def sign_commit(raw: bytes, private_key: bytes, passphrase: bytes | None = None) -> bytes:
    """The raw commit object signed as `git commit -S` with gpg.format ssh signs it (it must be unsigned)."""
    if commit_signature(raw) is not None or b"\ngpgsig " in raw.partition(b"\n\n")[0]:
        raise SignatureError("the commit is already signed")
    armored = _sign(raw, _load_private_key(private_key, passphrase, "the commit signing key"), GIT_NAMESPACE)
    head, sep, message = raw.partition(b"\n\n")
    header = b"gpgsig " + armored.rstrip("\n").replace("\n", "\n ").encode()
    return head + b"\n" + header + sep + message


def _committed_at(raw: bytes) -> datetime | None:
    for line in raw.partition(b"\n\n")[0].split(b"\n"):
        if line.startswith(b"committer "):
            try:
                return datetime.fromtimestamp(int(line.rsplit(b" ", 2)[1]), UTC)
            except (ValueError, IndexError):
                return None
    return None


def commit_signer(raw: bytes, allowed_signers: str, revoked_keys: str = "") -> Verified:
    """Who signed the raw commit object, as `git verify-commit` with gpg.ssh.allowedSignersFile says it:
    a key listed in allowed_signers for the namespace `git`, valid at the commit's committer time, not
    revoked, whose signature matches. SignatureError (one line) otherwise."""
    found = commit_signature(raw)
    if found is None:
        raise SignatureError("the commit is not signed with an SSH key")
    payload, armored = found
    signature = _parse(_dearmor(armored))
    key = fingerprint(signature.key_blob)
    if signature.namespace != GIT_NAMESPACE:
        raise SignatureError(f"the commit's signature is for namespace {signature.namespace!r}, not 'git'")
    if signature.key_blob in parse_revoked_keys(revoked_keys):
        raise SignatureError(f"the commit was signed by the key {key}, which is revoked (in trust/revoked_keys)")
    at = _committed_at(raw)
    listed = [
        s
        for s in parse_allowed_signers(allowed_signers)
        if s.key_blob == signature.key_blob
        and (s.namespaces is None or _matches(GIT_NAMESPACE, s.namespaces))
        and (at is None or s.valid_after is None or s.valid_after <= at)
        and (at is None or s.valid_before is None or at <= s.valid_before)
    ]
    principals = [p for s in listed for p in s.principals if not p.startswith("!")]
    if not principals:
        raise SignatureError(
            f"the commit was signed by the key {key}, which trust/allowed_signers does not list for git"
        )
    if not _signature_matches(signature, payload):
        raise SignatureError(f"the commit's signature by the key {key} does not match the commit")
    return Verified(principals[0], key)
