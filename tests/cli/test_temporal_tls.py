"""Authenticated connections to Temporal through a real TLS terminator: Debian's HAProxy in front of the
session's dev server, every bind `verify required` (mutual TLS) with certificates made here.

- `grpc`: mode tcp, the worker's way in (its own client certificate).
- `grpc_keyed` and `http_api`: mode http (h2 to the dev server's gRPC port; HTTP/1.1 to its HTTP API),
  the people's CLI's ways in, which also answer 401 unless `authorization: Bearer KEY` carries the API
  key: HAProxy checks the header the SDK and the HTTP transport send.

Without a client certificate every transport and the worker refuse with one line; with one, a real
promotion runs to a two-person gate, approved once over gRPC and once over the HTTP API; a wrong API
key is refused with one line, and no key is ever printed. The server's certificate names only
`temporal.test`, so every client also needs PROMOTER_TEMPORAL_TLS_SERVER_NAME (the address is an IP)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from promoter import api, secrets
from promoter.errors import BadInput
from promoter.models import PromotionState, PromotionStatus
from promoter.settings import Settings, _unreachable, connect
from promoter.sim.kube import KubeSim
from promoter.stack import free_port, port_open, wait_until
from promoter.worker import build_worker
from tests.support.gitops import PROMOTER, Origin
from tests.support.workflows import awaiting

SERVER_NAME = "temporal.test"
API_KEY = "tls-test-api-key-7f3a9c"
ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "prod", "order": 2, "approval": {"required": 2, "approvers": ["alice", "group:sre"], "timeout": "24h"}},
]
APP = "tlsapp"  # not `demo`: the session's dev server is shared with the other tests' promotions


# ------------------------------------------------------------------------------ certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """A test CA and the certificates it signs: X.509 v3 with the extensions rustls (the SDK's TLS) and
    OpenSSL (HAProxy's, Python's) check: a CA with basicConstraints and keyCertSign, a server
    certificate with its subjectAltName and serverAuth, client certificates with clientAuth."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            self._builder(_name("promoter test CA"), self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca = folder / "ca.pem"
        self.ca.write_bytes(_pem_cert(self.cert))

    def _builder(self, subject: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(_name("promoter test CA"))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(minutes=5))
            .not_valid_after(self.now + datetime.timedelta(days=1))
        )

    def issue(self, name: str, server: bool) -> tuple[Path, Path]:
        """(certificate, key) files for `name`: a server's (its DNS name in subjectAltName) or a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (
            self._builder(_name(name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert_file.write_bytes(_pem_cert(cert))
        key_file.write_bytes(_pem_key(key))
        key_file.chmod(0o600)
        return cert_file, key_file


# ------------------------------------------------------------------------------ HAProxy


def http_api_port(env: WorkflowEnvironment) -> int:
    """The session dev server's HTTP API port. `start_local` does not pass `--http-port`, so the server
    took a free one: among the ports the dev server process (our child) listens on, the one that
    answers Temporal's HTTP API."""
    grpc_port = int(env.client.service_client.config.target_host.rsplit(":", 1)[1])
    for child in psutil.Process().children(recursive=True):
        try:
            ports = {c.laddr.port for c in child.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
        if grpc_port not in ports:
            continue
        for port in sorted(ports - {grpc_port}):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/namespaces/default", timeout=2) as r:
                    if "namespaceInfo" in json.loads(r.read()):
                        return int(port)
            except (OSError, ValueError):
                continue  # one of the server's internal gRPC ports
    raise AssertionError("the dev server answers its HTTP API on none of its ports")


@dataclass
class Front:
    grpc: str  # mode tcp: mutual TLS only (the worker's)
    grpc_keyed: str  # mode http (h2): mutual TLS and the API key
    http_url: str  # mode http: mutual TLS and the API key
    pki: Pki
    worker_cert: tuple[Path, Path]
    alice_cert: tuple[Path, Path]
    state_dir: Path  # an empty state directory: no embedded stack's stack.json


HAPROXY = """\
global
  log stderr format raw local0 warning

defaults
  log global
  timeout connect 5s
  timeout client 5m
  timeout server 5m

frontend grpc
  mode tcp
  bind 127.0.0.1:{grpc} ssl crt {server} ca-file {ca} verify required alpn h2
  default_backend temporal_grpc_tcp

backend temporal_grpc_tcp
  mode tcp
  server temporal {temporal_grpc}

frontend grpc_keyed
  mode http
  bind 127.0.0.1:{grpc_keyed} ssl crt {server} ca-file {ca} verify required alpn h2
  http-request deny deny_status 401 unless {{ req.hdr(authorization) -m str "Bearer {key}" }}
  default_backend temporal_grpc_h2

backend temporal_grpc_h2
  mode http
  server temporal {temporal_grpc} proto h2

frontend http_api
  mode http
  bind 127.0.0.1:{http} ssl crt {server} ca-file {ca} verify required alpn http/1.1
  http-request deny deny_status 401 unless {{ req.hdr(authorization) -m str "Bearer {key}" }}
  default_backend temporal_http

backend temporal_http
  mode http
  server temporal {temporal_http}
"""


@pytest.fixture(scope="module")
def front(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    haproxy = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin")
    assert haproxy, "HAProxy is missing: scripts/setup-system installs it (apt-get install haproxy)"
    folder = tmp_path_factory.mktemp("tls")
    pki = Pki(folder)
    server_cert, server_key = pki.issue(SERVER_NAME, server=True)
    server = folder / "server.pem"  # HAProxy's `crt`: the certificate and its key in one file
    server.write_bytes(server_cert.read_bytes() + server_key.read_bytes())
    ports = {"grpc": free_port(), "grpc_keyed": free_port(), "http": free_port()}
    config = folder / "haproxy.cfg"
    config.write_text(
        HAPROXY.format(
            **ports,
            server=server,
            ca=pki.ca,
            key=API_KEY,
            temporal_grpc=dev_env.client.service_client.config.target_host,
            temporal_http=f"127.0.0.1:{http_api_port(dev_env)}",
        )
    )
    log = folder / "haproxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        for port in ports.values():
            wait_until(lambda p=port: port_open(f"127.0.0.1:{p}") or proc.poll() is not None, 20, "HAProxy")
            assert proc.poll() is None, log.read_text()[-2000:]
        state = folder / "state"
        state.mkdir()
        yield Front(
            grpc=f"127.0.0.1:{ports['grpc']}",
            grpc_keyed=f"127.0.0.1:{ports['grpc_keyed']}",
            http_url=f"https://127.0.0.1:{ports['http']}",
            pki=pki,
            worker_cert=pki.issue("promoter-worker", server=False),
            alice_cert=pki.issue("alice", server=False),
            state_dir=state,
        )
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------ the CLI and the worker


def environment(front: Front, **settings: str) -> dict[str, str]:
    """The process environment with no PROMOTER_* of the caller's, and `settings` (PROMOTER_ left off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOTER_")}
    env.update({"PROMOTER_STATE_DIR": str(front.state_dir), "COLUMNS": "200"})
    env.update({f"PROMOTER_{name.upper()}": value for name, value in settings.items()})
    return env


def trusting(front: Front) -> dict[str, str]:
    """The CA bundle and the server's name: what every client here needs, with or without a certificate."""
    return {"temporal_tls_ca": str(front.pki.ca), "temporal_tls_server_name": SERVER_NAME}


def person(front: Front, transport: str, task_queue: str = "", key: str = API_KEY) -> dict[str, str]:
    """alice's CLI settings over `grpc` or `http`: her client certificate and the API key."""
    cert, private = front.alice_cert
    settings = {
        **trusting(front),
        "temporal_tls_cert": str(cert),
        "temporal_tls_key": str(private),
        "temporal_api_key": key,
        "temporal_address": front.grpc_keyed,
        "temporal_http_url": front.http_url if transport == "http" else "",
    }
    return {**settings, "task_queue": task_queue} if task_queue else settings


async def promoter(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`promoter ARGS` in a thread: the worker of these tests runs on this event loop, and must go on
    answering while a command waits for it (an approval waits for the update's outcome)."""
    return await asyncio.to_thread(
        subprocess.run,
        [*PROMOTER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


async def end(handle: Any) -> None:
    """Terminate the promotion if it still runs: the session's dev server is shared, and a gate left
    open would hold the next test's promotion of the app."""
    try:
        running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    except RPCError:
        return  # never started
    if running:
        await handle.terminate("the TLS test ended before its promotion did")


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and r.stdout == "", r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


FIX = "set PROMOTER_TEMPORAL_TLS_CERT and _KEY to a client certificate it trusts"


def refused_for_lack_of_a_certificate(said: str, where: str) -> None:
    """The client reads HAProxy's certificate_required alert or, when HAProxy's close wins the race,
    only the closed connection: either line says why and gives the same fix."""
    alert = "the server refused the handshake: it requires a client certificate"
    closed = "the server closed the connection during the handshake: it likely requires a client certificate"
    lines = [f"error: cannot reach {where} over TLS ({why}, and none is set); {FIX}" for why in (alert, closed)]
    assert said in lines, said


# ------------------------------------------------------------------------------ the tests


async def test_without_a_client_certificate_every_transport_and_the_worker_refuse_with_one_line(front: Front) -> None:
    grpc = environment(front, **trusting(front), temporal_address=front.grpc, temporal_http_url="")
    http = {**grpc, "PROMOTER_TEMPORAL_HTTP_URL": front.http_url}
    for args in (["list"], ["status", f"promote-{APP}"]):
        refused_for_lack_of_a_certificate(one_line(await promoter(grpc, *args)), f"Temporal at {front.grpc}")
        said = one_line(await promoter(http, *args))
        refused_for_lack_of_a_certificate(said, f"Temporal's HTTP API at {front.http_url}")
    worker = await promoter(grpc, "worker")  # it connects first: no repository needed to get this far
    refused_for_lack_of_a_certificate(one_line(worker), f"Temporal at {front.grpc}")


async def test_a_promotion_through_haproxy_approved_over_grpc_and_over_the_http_api(
    front: Front,
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    executor: concurrent.futures.ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    origin = origin_factory(ENVS, apps=(APP,))  # make_gitops names the app's objects after it
    commit = origin.bump(app=APP, tag="2.0.0")  # dev moves on; prod is to follow
    sims = clusters(["dev", "prod"])
    worker_cert, worker_key = front.worker_cert
    settings = Settings(  # the worker's identity: its own certificate, through the mode-tcp bind
        temporal_address=front.grpc,
        temporal_tls_ca=str(front.pki.ca),
        temporal_tls_cert=str(worker_cert),
        temporal_tls_key=str(worker_key),
        temporal_tls_server_name=SERVER_NAME,
        task_queue=str(uuid.uuid4()),
        repo_url=origin.url,
        forge_db=str(origin.path.parent / "forge.sqlite"),
        cache_dir=str(tmp_path / "cache"),
        review_poll_s=0.1,
    )
    client = await connect(settings)
    over_grpc = environment(front, **person(front, "grpc", settings.task_queue))
    over_http = environment(front, **person(front, "http", settings.task_queue))
    said: list[subprocess.CompletedProcess[str]] = []
    wid = f"promote-{APP}"
    handle = dev_env.client.get_workflow_handle(wid, result_type=PromotionStatus)
    try:
        async with build_worker(client, settings, executor):
            started = await promoter(over_grpc, "promote", APP, "--json", "--as", "dana")
            said.append(started)
            assert started.returncode == 0, started.stderr
            assert json.loads(started.stdout)["commit"] == commit
            await api.wait_for(handle, awaiting("prod"), timeout_s=60)
            status = await promoter(over_http, "status", wid, "--json")
            said.append(status)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["stages"][1]["state"] == "awaiting_approval"
            first = await promoter(over_grpc, "approve", wid, "--env", "prod", "--as", "sam")
            second = await promoter(over_http, "approve", wid, "--env", "prod", "--as", "alice")
            said += [first, second]
            assert first.returncode == 0, first
            assert first.stdout.strip() == f"{wid}: prod approved by sam; needs 1 more approval(s) from alice, sue"
            assert second.returncode == 0, second
            assert second.stdout.strip() == f"{wid}: prod approved by alice; the gate is open"
            result = await asyncio.wait_for(handle.result(), 60)
            listed = await promoter(over_http, "list", "--json", "--app", APP)
            said.append(listed)
    finally:
        await end(handle)
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [a.approver for a in result.stages[1].approvals] == ["sam", "alice"]
    assert f"{APP}:2.0.0" in str(sims["prod"].objects[("apps", "deployments", "apps", APP)]["spec"])
    assert json.loads(listed.stdout)[0]["state"] == "succeeded"
    assert all(API_KEY not in r.stdout + r.stderr for r in said)


async def test_the_api_key_is_sent_and_a_wrong_one_is_refused_without_being_shown(front: Front) -> None:
    for transport in ("grpc", "http"):  # the right key: HAProxy lets the request through to Temporal
        right = await promoter(environment(front, **person(front, transport)), "list", "--app", APP)
        assert right.returncode == 0 and API_KEY not in right.stdout + right.stderr, right.stderr
    wrong = "wrong-api-key-0d1e2f"
    fix = (
        "set PROMOTER_TEMPORAL_API_KEY (or PROMOTER_TEMPORAL_TLS_CERT and _KEY) to credentials it accepts for "
        "namespace default"
    )
    refused = one_line(await promoter(environment(front, **person(front, "grpc", key=wrong)), "list"))
    assert refused == f"error: Temporal at {front.grpc_keyed} refused this client (HTTP 401 Unauthorized); {fix}"
    refused = one_line(await promoter(environment(front, **person(front, "http", key=wrong)), "list"))
    assert refused == f"error: Temporal's HTTP API at {front.http_url} refused this client (HTTP 401); {fix}"
    from_file = front.state_dir.parent / "api-key"  # PROMOTER_TEMPORAL_API_KEY_FILE, a mounted secret
    from_file.write_text(API_KEY + "\n")
    settings = person(front, "http")
    del settings["temporal_api_key"]
    read = await promoter(environment(front, **settings, temporal_api_key_file=str(from_file)), "list")
    assert read.returncode == 0, read.stderr


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            {"PROMOTER_TEMPORAL_TLS_CERT": "{cert}"},
            "PROMOTER_TEMPORAL_TLS_CERT is set but PROMOTER_TEMPORAL_TLS_KEY is not; a client certificate needs "
            "its private key: set both",
        ),
        (
            {"PROMOTER_TEMPORAL_TLS_KEY": "{key}"},
            "PROMOTER_TEMPORAL_TLS_KEY is set but PROMOTER_TEMPORAL_TLS_CERT is not",
        ),
        (
            {"PROMOTER_TEMPORAL_TLS_CA": "{missing}"},
            "PROMOTER_TEMPORAL_TLS_CA: cannot read {missing} (No such file or directory); point it at a readable PEM",
        ),
        (
            {"PROMOTER_TEMPORAL_TLS_CA": "{key}"},
            "PROMOTER_TEMPORAL_TLS_CA: {key} is not a PEM certificate bundle (no '-----BEGIN CERTIFICATE-----' line)",
        ),
        (
            {"PROMOTER_TEMPORAL_TLS_CERT": "{cert}", "PROMOTER_TEMPORAL_TLS_KEY": "{cert}"},
            "PROMOTER_TEMPORAL_TLS_KEY: {cert} is not a PEM private key (no '-----BEGIN PRIVATE KEY-----' line)",
        ),
        (
            {"PROMOTER_TEMPORAL_TLS_CERT": "{cert}", "PROMOTER_TEMPORAL_TLS_KEY": "{other_key}"},
            "PROMOTER_TEMPORAL_TLS_KEY: {other_key} is not the private key of {cert}",
        ),
        (
            {"PROMOTER_TEMPORAL_API_KEY": API_KEY, "PROMOTER_TEMPORAL_TLS": "false"},
            "PROMOTER_TEMPORAL_API_KEY is sent only over TLS, and PROMOTER_TEMPORAL_TLS=false turns it off "
            "(Temporal Cloud and any sane deployment accept an API key only over TLS)",
        ),
    ],
    ids=["cert-without-key", "key-without-cert", "unreadable", "not-pem", "key-not-pem", "not-its-key", "key-no-tls"],
)
def test_bad_tls_settings_are_refused_with_one_line_that_names_the_variable(
    settings: dict[str, str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = Pki(tmp_path)
    cert, key = pki.issue("alice", server=False)
    _, other_key = pki.issue("bob", server=False)
    files = {"cert": str(cert), "key": str(key), "other_key": str(other_key), "missing": str(tmp_path / "missing")}
    for name in [n for n in os.environ if n.startswith("PROMOTER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PROMOTER_STATE_DIR", str(tmp_path))
    for name, value in settings.items():
        monkeypatch.setenv(name, value.format(**files))
    loaded = Settings.load()
    with pytest.raises(BadInput) as refused:
        loaded.temporal_tls_config()
    message = str(refused.value)
    assert message.startswith(said.format(**files)) and "\n" not in message, message
    assert API_KEY not in message and API_KEY not in repr(loaded)


def test_tls_is_on_when_any_setting_or_the_api_key_is_or_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Settings().tls_enabled() and Settings().temporal_tls_config() is None
    assert Settings(temporal_tls_server_name=SERVER_NAME).tls_enabled()
    assert Settings(temporal_tls=True).tls_enabled()
    system = Settings(temporal_tls=True).temporal_tls_config()  # the system's CAs, no client certificate
    assert system is not None and system.ca is None and system.cert is None
    monkeypatch.setenv("PROMOTER_TEMPORAL_API_KEY", API_KEY)
    keyed = Settings.load()
    assert keyed.tls_enabled() and keyed.temporal_api_key == API_KEY  # an API key alone turns TLS on
    assert (
        API_KEY not in repr(keyed) and secrets.redact(f"authorization: Bearer {API_KEY}") == "authorization: Bearer ***"
    )


@pytest.mark.parametrize(
    "sdk_said",
    [
        "Failed client connect: Transport(Error(Connect, Custom { kind: InvalidData, error: "
        "AlertReceived(CertificateRequired) })) received fatal alert: CertificateRequired",
        "Failed client connect: tonic::transport::Error(Transport, hyper::Error(Io, Kind(BrokenPipe)))",
        # TLS 1.3: the handshake ends on the client's side before the server checks it; HAProxy then
        # closes the connection before the first request goes out (seen once in a loaded CI run)
        "Failed client connect: `get_system_info` call error after connection: Status { code: Cancelled, "
        'message: "operation was canceled", source: Some(tonic::transport::Error(Transport, '
        'hyper::Error(Canceled, "connection was not ready"))) }',
    ],
    ids=["alert", "broken-pipe", "not-ready"],
)
def test_each_way_the_sdk_tells_a_missing_certificate_gives_the_same_fix(sdk_said: str) -> None:
    settings = Settings(temporal_address="127.0.0.1:7", temporal_tls=True)
    said = f"error: {_unreachable(settings, settings.temporal_tls_config(), sdk_said)}"
    refused_for_lack_of_a_certificate(said, "Temporal at 127.0.0.1:7")
