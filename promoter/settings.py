"""Where the worker and the CLI find Temporal and the repository: environment variables, then the
embedded stack's `stack.json` in the state directory, then defaults."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar, get_args

from promoter import MAX_FILE_BYTES, TASK_QUEUE, secrets
from promoter.errors import BadInput

if TYPE_CHECKING:  # Temporal's client is imported where it is used: `policy check` never needs it
    import ssl

    from temporalio.client import Client
    from temporalio.runtime import Runtime

    from promoter.forges import Forge
    from promoter.gitrepo import GitClone
    from promoter.policy import PolicyEngine

DEFAULT_STATE_DIR = ".promoter"

# The closed sets a setting chooses from, checked as they are loaded (a typo is one line naming them,
# not a failure when the worker first builds the adapter). Each names what its factory registers:
# promoter.forges (forgejo is gitea's API) and promoter.policy.BACKENDS.
ForgeName = Literal["local", "github", "gitlab", "gitea", "forgejo"]
# rebase: GitHub's and Gitea's API take it too (GitLab merges); environment.yaml's merge.method is merge | squash
MergeMethod = Literal["merge", "squash", "rebase"]
PolicyEngineName = Literal["embedded", "opa", "opa-go"]  # opa-go: OPA's own Go engine, in process
FORGES: tuple[ForgeName, ...] = get_args(ForgeName)
MERGE_METHODS: tuple[MergeMethod, ...] = get_args(MergeMethod)
POLICY_ENGINES: tuple[PolicyEngineName, ...] = get_args(PolicyEngineName)


@dataclass
class Settings:
    temporal_address: str = "localhost:7233"
    temporal_http_url: str | None = None  # Temporal's HTTP API: the CLI's status, approve and list start faster
    # Authenticated connections to Temporal (both transports): TLS is on when any of these is set, or
    # when temporal_tls is True; the three files are paths to PEM files (see temporal_tls_config).
    temporal_tls: bool | None = None  # PROMOTER_TEMPORAL_TLS: None means "on when any setting below is set"
    temporal_tls_ca: str | None = None  # the CA bundle the frontend's certificate is checked against
    temporal_tls_cert: str | None = None  # a client certificate (mutual TLS): the worker's or a person's
    temporal_tls_key: str | None = None  # its private key, unencrypted
    temporal_tls_server_name: str | None = None  # the name the server's certificate holds (the address is an IP)
    temporal_api_key: str | None = field(default=None, repr=False)  # sent as `authorization: Bearer`; never printed
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    repo_url: str | None = None
    forge: ForgeName = "local"
    forge_db: str | None = None
    forge_repo: str | None = None  # OWNER/NAME (GitHub, Gitea) or group/project (GitLab)
    forge_url: str | None = None  # the API's base URL; default: the provider's public one
    forge_token: str | None = field(default=None, repr=False)  # never printed, logged or put in history
    github_api_version: str | None = None  # X-GitHub-Api-Version; default: promoter.forges.github.API_VERSION
    opa_token: str | None = field(default=None, repr=False)  # likewise
    merge_method: MergeMethod = "merge"
    ssh_key: str | None = None
    metrics_port: int | None = None  # the worker's /metrics endpoint
    cache_dir: str = str(Path.home() / ".cache" / "promoter")
    ui_url: str | None = None
    opa_url: str | None = None
    prometheus_url: str | None = None  # the Prometheus `verify` checks ask (PROMOTER_PROMETHEUS_URL)
    policy_engine: PolicyEngineName | None = None  # default: opa when opa_url is set, else embedded
    policy_timeout_s: float = 10.0
    review_poll_s: float = 15.0  # how often a waiting gate reads its PR's reviews and head
    # requests an hour a worker's PR watchers may spend on the forge's token; default: the forge's own
    # (`poll_budget` of its class: GitHub 4,000 of its 5,000, GitLab and Gitea 36,000)
    forge_poll_budget: float | None = None
    # workflows a worker keeps in memory between their tasks (the SDK's max_cached_workflows); one evicted
    # is replayed from its history at its next task (docs/benchmarks.md, "A thousand waiting gates").
    # Twice the 1,000 gates a worker is sized for: at the SDK's 1,000, the resolves and drift checks run
    # beside 1,000 open promotions evicted promotions still on their way, whose replays slowed the rest.
    # Memory grows with the workflows open, not with this bound, until they outnumber it
    workflow_cache: int = 2000
    max_file_bytes: int = MAX_FILE_BYTES  # a file of an app folder larger than this is refused
    # the commit of main whose rule files are trusted as they are; a later change to them counts once a
    # key its trust/allowed_signers lists for `git` signed it (docs/policies.md, "Who can change the rules")
    trust_root: str | None = None
    commit_signing_key: str | None = None  # an OpenSSH private key: promoter signs the commits it writes

    @classmethod
    def load(cls, state_dir: str | None = None, stopped_stack: bool = False) -> Settings:
        """The settings from the stack's `stack.json` (when `promoter up` runs) and the environment. With
        `stopped_stack` (`promoter history` only: it reads git alone), a stopped stack's origin and trust
        root (`origin.json`, which `down` keeps) stand in for a running one's, unless PROMOTER_REPO_URL
        names a repository: its trust root is never paired with another repository."""
        s = cls()
        stack = Path(state_dir or os.environ.get("PROMOTER_STATE_DIR") or DEFAULT_STATE_DIR) / "stack.json"
        if not stack.is_file() and stopped_stack and not os.environ.get("PROMOTER_REPO_URL"):
            stack = stack.with_name("origin.json")
        s._read_stack(stack)
        env = os.environ
        s._read_temporal(env)
        s._read_repository(env)
        s._read_worker(env)
        return s

    def _read_stack(self, stack: Path) -> None:
        """The embedded stack's addresses, when `promoter up` wrote them (the environment overrides them)."""
        if not stack.is_file():
            return
        try:
            info = json.loads(stack.read_text())
        except ValueError:
            raise BadInput(f"{stack} is not valid JSON; run `promoter down` and `promoter up` again") from None
        self.temporal_address = info.get("temporal_address", self.temporal_address)
        self.temporal_http_url = info.get("temporal_http_url")
        self.repo_url = info.get("repo_url")
        self.forge_db = info.get("forge_db")
        self.cache_dir = info.get("cache_dir", self.cache_dir)
        self.ui_url = info.get("ui_url")
        self.trust_root = info.get("trust_root")
        self.prometheus_url = info.get("prometheus_url")

    def _read_temporal(self, env: Mapping[str, str]) -> None:
        """Where Temporal is and how to authenticate to it: PROMOTER_TEMPORAL_*, the namespace, the task queue."""
        self.temporal_address = env.get("PROMOTER_TEMPORAL_ADDRESS", self.temporal_address)
        self.temporal_http_url = env.get("PROMOTER_TEMPORAL_HTTP_URL", self.temporal_http_url) or None
        if self.temporal_http_url and not re.match(r"https?://[^/\s]+(/\S*)?$", self.temporal_http_url):
            raise BadInput(
                "PROMOTER_TEMPORAL_HTTP_URL must be an http:// or https:// URL such as http://localhost:7243, "
                f"not {self.temporal_http_url[:60]!r}"
            )
        if env.get("PROMOTER_TEMPORAL_TLS"):
            self.temporal_tls = _flag(env, "PROMOTER_TEMPORAL_TLS")
        self.temporal_tls_ca = env.get("PROMOTER_TEMPORAL_TLS_CA") or self.temporal_tls_ca
        self.temporal_tls_cert = env.get("PROMOTER_TEMPORAL_TLS_CERT") or self.temporal_tls_cert
        self.temporal_tls_key = env.get("PROMOTER_TEMPORAL_TLS_KEY") or self.temporal_tls_key
        self.temporal_tls_server_name = env.get("PROMOTER_TEMPORAL_TLS_SERVER_NAME") or self.temporal_tls_server_name
        self.temporal_api_key = _secret(env, "PROMOTER_TEMPORAL_API_KEY") or self.temporal_api_key
        secrets.register(self.temporal_api_key)
        self.namespace = env.get("PROMOTER_NAMESPACE", self.namespace)
        self.task_queue = env.get("PROMOTER_TASK_QUEUE", self.task_queue)

    def _read_repository(self, env: Mapping[str, str]) -> None:
        """The GitOps repository and its forge, with the tokens (registered as secrets, to be masked)."""
        self.repo_url = env.get("PROMOTER_REPO_URL", self.repo_url)
        self.forge = _choice(env, "PROMOTER_FORGE", FORGES) or self.forge
        self.forge_db = env.get("PROMOTER_FORGE_DB", self.forge_db)
        self.forge_repo = env.get("PROMOTER_FORGE_REPO", self.forge_repo)
        self.forge_url = env.get("PROMOTER_FORGE_URL", self.forge_url)
        self.forge_token = _secret(env, "PROMOTER_FORGE_TOKEN") or self.forge_token
        secrets.register(self.forge_token)
        self.github_api_version = env.get("PROMOTER_GITHUB_API_VERSION") or self.github_api_version
        self.opa_token = _secret(env, "PROMOTER_OPA_TOKEN") or self.opa_token
        secrets.register(self.opa_token)
        secrets.register_environment(env)
        self.merge_method = _choice(env, "PROMOTER_MERGE_METHOD", MERGE_METHODS) or self.merge_method
        self.ssh_key = env.get("PROMOTER_SSH_KEY", self.ssh_key)

    def _read_worker(self, env: Mapping[str, str]) -> None:
        """The worker's own settings: metrics, cache, the policy engine, polling, limits and trust."""
        if env.get("PROMOTER_METRICS_PORT"):
            port = env["PROMOTER_METRICS_PORT"]
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise BadInput(f"PROMOTER_METRICS_PORT must be a port number, not {port!r}")
            self.metrics_port = int(port)
        self.cache_dir = env.get("PROMOTER_CACHE_DIR", self.cache_dir)
        self.ui_url = env.get("PROMOTER_UI_URL", self.ui_url)
        self.opa_url = env.get("PROMOTER_OPA_URL", self.opa_url)
        self.prometheus_url = env.get("PROMOTER_PROMETHEUS_URL") or self.prometheus_url
        if self.prometheus_url and not re.match(r"https?://[^/\s]+(/\S*)?$", self.prometheus_url):
            raise BadInput(
                "PROMOTER_PROMETHEUS_URL must be an http:// or https:// URL such as http://localhost:9090, "
                f"not {self.prometheus_url[:60]!r}"
            )
        if self.prometheus_url and "@" in self.prometheus_url.split("/")[2]:  # user:password@host: masked
            secrets.register(self.prometheus_url.split("/")[2].rsplit("@", 1)[0])
        self.policy_engine = _choice(env, "PROMOTER_POLICY_ENGINE", POLICY_ENGINES) or self.policy_engine
        self.policy_timeout_s = _seconds(env, "PROMOTER_POLICY_TIMEOUT", self.policy_timeout_s)
        self.review_poll_s = _seconds(env, "PROMOTER_REVIEW_POLL", self.review_poll_s)
        if env.get("PROMOTER_FORGE_POLL_BUDGET"):
            self.forge_poll_budget = _per_hour(env, "PROMOTER_FORGE_POLL_BUDGET")
        if env.get("PROMOTER_WORKFLOW_CACHE"):
            text = env["PROMOTER_WORKFLOW_CACHE"]
            if not text.isdigit() or int(text) < 1:
                raise BadInput(f"PROMOTER_WORKFLOW_CACHE must be a number of workflows (1 or more), not {text[:40]!r}")
            self.workflow_cache = int(text)
        if env.get("PROMOTER_MAX_FILE_SIZE"):
            self.max_file_bytes = parse_size(env["PROMOTER_MAX_FILE_SIZE"], "PROMOTER_MAX_FILE_SIZE")
        self.trust_root = env.get("PROMOTER_TRUST_ROOT") or self.trust_root
        if self.trust_root is not None and not re.fullmatch(r"[0-9a-f]{40}", self.trust_root):
            raise BadInput(f"PROMOTER_TRUST_ROOT must be a full 40-character commit id, not {self.trust_root[:60]!r}")
        self.commit_signing_key = env.get("PROMOTER_COMMIT_SIGNING_KEY") or self.commit_signing_key

    def make_policy_engine(self) -> PolicyEngine:
        from promoter.policy import make_engine

        name = self.policy_engine or ("opa" if self.opa_url else "embedded")
        if name == "opa":
            if not self.opa_url:
                raise BadInput("PROMOTER_POLICY_ENGINE=opa needs PROMOTER_OPA_URL (e.g. http://localhost:8181)")
            return make_engine(
                "opa",
                url=self.opa_url,
                timeout_s=self.policy_timeout_s,
                token=self.opa_token,
            )
        return make_engine(name, timeout_s=self.policy_timeout_s)

    def make_forge(self, repo: GitClone) -> Forge:
        """The forge PROMOTER_FORGE names: the local one over `repo` (its records beside origin unless
        PROMOTER_FORGE_DB says), or a hosted one, which needs its repository and a token."""
        from promoter.forges import make_forge

        if self.forge == "local":
            assert self.repo_url is not None
            db_path = self.forge_db or str(Path(self.repo_url).parent / "forge.sqlite")
            return make_forge("local", repo=repo, db_path=db_path, web_url=self.forge_url)  # its pages' address
        if not self.forge_repo:
            raise BadInput(f"PROMOTER_FORGE={self.forge} needs PROMOTER_FORGE_REPO (the repository, e.g. acme/gitops)")
        if not self.forge_token:
            raise BadInput(
                f"PROMOTER_FORGE={self.forge} needs a token: set PROMOTER_FORGE_TOKEN or PROMOTER_FORGE_TOKEN_FILE"
            )
        options: dict[str, object] = {
            "repository": self.forge_repo,
            "token": self.forge_token,
            "merge_method": self.merge_method,
        }
        if self.forge_url:
            options["api_url"] = self.forge_url
        if self.forge == "github" and self.github_api_version:
            options["api_version"] = self.github_api_version
        forge = make_forge(self.forge, **options)
        if self.forge_poll_budget is not None:  # the PR watchers' share of the token (activities.forge)
            forge.poll_budget = self.forge_poll_budget  # type: ignore[attr-defined]
        return forge

    def repository(self, cache: str = "") -> GitClone:
        """The GitOps repository, cloned under the cache directory (in `cache` beneath it: the CLI keeps
        its own clone beside a worker's), authenticated as the forge's token or the SSH key says."""
        from promoter.gitrepo import GIT_USERS, GitClone, auth_env

        if not self.repo_url:
            raise BadInput(
                "no GitOps repository: set PROMOTER_REPO_URL (or start the embedded stack with `promoter up`)"
            )
        return GitClone(
            self.repo_url,
            Path(self.cache_dir) / cache if cache else Path(self.cache_dir),
            auth_env=auth_env(self.forge_token, GIT_USERS.get(self.forge, "promoter"), self.ssh_key),
            max_file_bytes=self.max_file_bytes,
            trust_root=self.trust_root,
        )

    def workflow_url(self, workflow_id: str, run_id: str | None = None) -> str | None:
        if not self.ui_url:
            return None
        url = f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"
        return f"{url}/{run_id}/history" if run_id else url

    def tls_enabled(self) -> bool:
        """PROMOTER_TEMPORAL_TLS when it is set; otherwise on as soon as any TLS setting or an API key is."""
        if self.temporal_tls is not None:
            return self.temporal_tls
        return any(self._tls_settings().values()) or bool(self.temporal_api_key)

    def temporal_tls_config(self) -> TemporalTLS | None:
        """TLS to Temporal, for both transports, its files read and checked (None: plaintext). Checked
        here, where a connection is made, not in `load`: `policy check` never needs Temporal."""
        if not self.tls_enabled():
            given = [name for name, value in self._tls_settings().items() if value]
            if self.temporal_api_key:
                raise BadInput(
                    "PROMOTER_TEMPORAL_API_KEY is sent only over TLS, and PROMOTER_TEMPORAL_TLS=false turns it off "
                    "(Temporal Cloud and any sane deployment accept an API key only over TLS); "
                    "unset PROMOTER_TEMPORAL_TLS"
                )
            if given:
                raise BadInput(f"PROMOTER_TEMPORAL_TLS=false, yet {given[0]} is set; unset one of them")
            return None
        if bool(self.temporal_tls_cert) != bool(self.temporal_tls_key):
            have, lack = (
                ("PROMOTER_TEMPORAL_TLS_CERT", "PROMOTER_TEMPORAL_TLS_KEY")
                if self.temporal_tls_cert
                else ("PROMOTER_TEMPORAL_TLS_KEY", "PROMOTER_TEMPORAL_TLS_CERT")
            )
            raise BadInput(f"{have} is set but {lack} is not; a client certificate needs its private key: set both")
        ca = _pem(self.temporal_tls_ca, "PROMOTER_TEMPORAL_TLS_CA", "certificate bundle")
        cert = _pem(self.temporal_tls_cert, "PROMOTER_TEMPORAL_TLS_CERT", "certificate")
        key = _pem(self.temporal_tls_key, "PROMOTER_TEMPORAL_TLS_KEY", "private key")
        if key is not None and _ENCRYPTED.search(key):
            raise BadInput(
                f"PROMOTER_TEMPORAL_TLS_KEY: {self.temporal_tls_key} is encrypted, and no passphrase can be given; "
                "decrypt it (`openssl pkey -in KEY -out KEY.plain`) into a file only the promoter's user may read"
            )
        return TemporalTLS(
            ca=ca,
            cert=cert,
            key=key,
            server_name=self.temporal_tls_server_name,
            context=_ssl_context(self, ca),
        )

    def _tls_settings(self) -> dict[str, str | None]:
        return {
            "PROMOTER_TEMPORAL_TLS_CA": self.temporal_tls_ca,
            "PROMOTER_TEMPORAL_TLS_CERT": self.temporal_tls_cert,
            "PROMOTER_TEMPORAL_TLS_KEY": self.temporal_tls_key,
            "PROMOTER_TEMPORAL_TLS_SERVER_NAME": self.temporal_tls_server_name,
        }


@dataclass(frozen=True)
class TemporalTLS:
    """What a TLS connection to Temporal trusts and presents: PEM bytes for the SDK's gRPC client, and
    the same as an `ssl.SSLContext` for the HTTP API."""

    ca: bytes | None  # None: the system's trusted CAs
    cert: bytes | None  # None: no client certificate (server-side TLS only, or an API key)
    key: bytes | None = field(repr=False)
    server_name: str | None  # the name the server's certificate is checked against, and sent as SNI
    context: ssl.SSLContext = field(repr=False)


_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----")
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")  # PKCS#8, or RSA/EC
_ENCRYPTED = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED")  # PKCS#8, or OpenSSL's
MAX_PEM_BYTES = 1024 * 1024  # a CA bundle is tens of kilobytes; more is not a PEM file (nor /dev/zero)


def _pem(path: str | None, name: str, what: str) -> bytes | None:
    """The PEM file at `path` (a certificate, or a private key), or a line naming the variable and what
    to give it instead."""
    if not path:
        return None
    marker, label, tool = (
        (_PRIVATE_KEY, "-----BEGIN PRIVATE KEY-----", "pkey")
        if what == "private key"
        else (_CERTIFICATE, "-----BEGIN CERTIFICATE-----", "x509")
    )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as e:
        raise BadInput(f"{name}: cannot read {path} ({e.strerror}); point it at a readable PEM file") from None
    if len(data) > MAX_PEM_BYTES or not marker.search(data):
        raise BadInput(
            f"{name}: {path} is not a PEM {what} (no '{label}' line); give the PEM file "
            f"(`openssl {tool} -inform der -in FILE -out FILE.pem` converts a DER one)"
        )
    return data


def _ssl_context(settings: Settings, ca: bytes | None) -> ssl.SSLContext:
    """The HTTP API's TLS: the CA bundle (or the system's CAs), the client certificate, the server
    name. Made here also to check the files: a key that is not the certificate's is refused now."""
    import socket
    import ssl

    class NamedContext(ssl.SSLContext):
        """Checks the server's certificate against (and sends as SNI) the configured server name, not
        the URL's host: for an address that is an IP, as the gRPC client's `domain` does."""

        server_name: str | None = None

        def wrap_socket(
            self,
            sock: socket.socket,
            server_side: bool = False,
            do_handshake_on_connect: bool = True,
            suppress_ragged_eofs: bool = True,
            server_hostname: str | bytes | None = None,
            session: ssl.SSLSession | None = None,
        ) -> ssl.SSLSocket:
            name = self.server_name or server_hostname
            return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, name, session)

    context = NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and its name, as create_default_context
    context.server_name = settings.temporal_tls_server_name
    context.set_alpn_protocols(["http/1.1"])
    try:
        if ca is None:
            context.load_default_certs()
        else:
            context.load_verify_locations(cadata=ca.decode("ascii", "replace"))
    except ssl.SSLError as e:
        raise BadInput(
            f"PROMOTER_TEMPORAL_TLS_CA: {settings.temporal_tls_ca} holds no certificate that can be read "
            f"({e.reason or e}); give the PEM bundle of the CA that signs Temporal's certificate"
        ) from None
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        try:
            context.load_cert_chain(settings.temporal_tls_cert, settings.temporal_tls_key)
        except ssl.SSLError as e:
            mismatch = "KEY_VALUES_MISMATCH" in str(e)
            raise BadInput(
                f"PROMOTER_TEMPORAL_TLS_KEY: {settings.temporal_tls_key} is not the private key of "
                f"{settings.temporal_tls_cert}; set PROMOTER_TEMPORAL_TLS_CERT and _KEY to a certificate and its key"
                if mismatch
                else f"PROMOTER_TEMPORAL_TLS_CERT and _KEY: {settings.temporal_tls_cert} and "
                f"{settings.temporal_tls_key} cannot be used ({e.reason or e}); give a PEM certificate and its key"
            ) from None
    return context


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """NAME, or the content of the file NAME_FILE (a mounted secret); never echoed in an error."""
    if env.get(name):
        return env[name].strip()
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as e:
        raise BadInput(f"{name}_FILE: cannot read {path} ({e.strerror})") from None


_SIZE = re.compile(r"(\d{1,15})\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)", re.IGNORECASE)


def parse_size(text: str, name: str) -> int:
    """`5MB`, `512k`, `1048576`: bytes (k, m and g are powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise BadInput(f"{name} must be a size like 5MB, 512k or a number of bytes, not {text[:40]!r}")
    unit = match.group(2).lower()[:1]
    return int(match.group(1)) * {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


_Choice = TypeVar("_Choice", bound=str)


def _choice(env: Mapping[str, str], name: str, allowed: tuple[_Choice, ...]) -> _Choice | None:
    """NAME when it is one of `allowed` (None when unset or set but empty, as the other settings read
    an empty value); otherwise one line naming them."""
    text = env.get(name)
    if not text:
        return None
    if text not in allowed:
        raise BadInput(f"{name} must be one of {', '.join(allowed)}, not {text[:40]!r}")
    return text


def _flag(env: Mapping[str, str], name: str) -> bool:
    text = env[name].strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise BadInput(f"{name} must be true or false, not {env[name][:40]!r}")
    return text in ("true", "1", "yes", "on")


def _per_hour(env: Mapping[str, str], name: str) -> float:
    text = env[name]
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 1 <= value < float("inf"):
        raise BadInput(f"{name} must be a number of requests an hour (1 or more), such as 4000, not {text[:40]!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, str(default))
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise BadInput(f"{name} must be a positive number of seconds, not {text!r}")
    return value


def metrics_runtime(port: int, host: str = "0.0.0.0") -> Runtime:
    """A Temporal runtime whose Prometheus exporter serves `/metrics` on `port`: the SDK's own metrics
    (workflow and activity task latencies, polls, failures) and the product's (promoter_*), which
    the workflow records through its metric meter."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    hour = 3600.0
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"{host}:{port}",
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={  # gates wait for hours or days, stages for seconds to minutes
                    "promoter_gate_wait": [60, 300, 900, hour, 4 * hour, 12 * hour, 24 * hour, 72 * hour, 168 * hour],
                    "promoter_stage_duration": [1, 2, 5, 10, 30, 60, 300, 900, hour, 4 * hour, 24 * hour],
                },
            )
        )
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """The SDK's client, over TLS (with a client certificate and an API key) when the settings say so:
    the worker's and the CLI's one way to Temporal's gRPC API."""
    from temporalio.client import Client
    from temporalio.service import TLSConfig

    from promoter.converter import DATA_CONVERTER

    tls = settings.temporal_tls_config()
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=DATA_CONVERTER,
            runtime=runtime,
            tls=False
            if tls is None
            else TLSConfig(
                server_root_ca_cert=tls.ca,  # None: the system's CAs
                client_cert=tls.cert,
                client_private_key=tls.key,
                domain=tls.server_name,
            ),
            api_key=settings.temporal_api_key,  # sent as `authorization: Bearer KEY` on every call
        )
    except RuntimeError as e:
        raise _unreachable(settings, tls, secrets.redact(str(e))) from None


def _unreachable(settings: Settings, tls: TemporalTLS | None, text: str) -> BadInput:
    """The SDK's connection error (a Rust debug dump) as one line that says what to fix."""
    where = settings.temporal_address
    if tls is not None and (problem := _grpc_tls_problem(text)) is not None:
        return tls_refused(f"Temporal at {where}", "PROMOTER_TEMPORAL_ADDRESS", tls, *problem)
    # Temporal's own refusal (a gRPC status), or a proxy's (an HTTP status in place of a gRPC answer)
    said = None
    if refused := re.search(r'code: (Unauthenticated|PermissionDenied), message: "([^"]*)"', text):
        said = refused.group(2) or refused.group(1)
    elif proxy := re.search(r"status: (40[13] [A-Za-z ]+)", text):
        said = f"HTTP {proxy.group(1)}"
    if said is not None:
        return BadInput(
            f"Temporal at {where} refused this client ({said}); "
            "set PROMOTER_TEMPORAL_API_KEY (or PROMOTER_TEMPORAL_TLS_CERT and _KEY) to credentials it accepts "
            "for namespace " + settings.namespace
        )
    fix = "start the embedded stack with `promoter up` or set PROMOTER_TEMPORAL_ADDRESS"
    reason = next((r for r in ("Connection refused", "timed out", "dns error") if r in text), None)
    if reason is None and tls is None and any(closed in text for closed in _CLOSED):
        # a TLS-only frontend drops a plaintext client without a word
        reason = "the server closed the connection"
        fix = "if it is served over TLS, set PROMOTER_TEMPORAL_TLS_CA (or PROMOTER_TEMPORAL_TLS=true); else " + fix
    return BadInput(f"cannot reach Temporal at {where} ({reason or text.splitlines()[0]}); {fix}")


# hyper's "connection was not ready": the peer closed it after the handshake, before the first request
_CLOSED = ("connection closed", "broken pipe", "Connection reset", "BrokenPipe", "ConnectionReset", "was not ready")


def _grpc_tls_problem(text: str) -> tuple[str, str] | None:
    """(kind, detail) of a TLS failure in the SDK's (rustls') error text, for `tls_refused`."""
    if alert := re.search(r"received fatal alert: (\w+)", text):
        return ("certificate required" if alert.group(1) == "CertificateRequired" else "alert"), alert.group(1)
    if invalid := re.search(r"InvalidCertificate\((\w+)", text):
        if invalid.group(1).startswith("NotValidForName"):
            expected = re.search(r'expected: \w+\("?([^")]+)', text)  # DnsName("host") or IpAddress(1.2.3.4)
            return "name", expected.group(1) if expected else ""
        unknown = invalid.group(1) in ("UnknownIssuer", "BadSignature")  # BadSignature: another CA of that name
        return ("unknown issuer" if unknown else "server certificate"), invalid.group(1)
    if any(w in text for w in ("InvalidContentType", "CorruptMessage", "InvalidMessage")):
        return "not tls", ""
    if "H2NotNegotiated" in text:
        return "not grpc", ""
    if any(closed in text for closed in _CLOSED):
        return "closed", ""
    return None


CLIENT_CERTIFICATE_FIX = "set PROMOTER_TEMPORAL_TLS_CERT and _KEY to a client certificate it trusts"


def tls_refused(what: str, setting: str, tls: TemporalTLS | None, kind: str, detail: str) -> BadInput:
    """A failed TLS handshake as one line, in the same words for gRPC and for the HTTP API: `what` is
    where (`Temporal at HOST:PORT`), `setting` the variable holding that address, `kind` the failure
    (None for `tls`: an https:// URL with no TLS settings, the system's CAs and no certificate)."""
    ca = "PROMOTER_TEMPORAL_TLS_CA" if tls is not None and tls.ca is not None else "the system's trust store"
    presented = tls is not None and tls.cert is not None
    why, fix = {
        "certificate required": (
            "the server refused the handshake: it requires a client certificate"
            + (", and it did not accept this one" if presented else ", and none is set"),
            CLIENT_CERTIFICATE_FIX,
        ),
        "alert": (f"the server refused the handshake: TLS alert {detail}", CLIENT_CERTIFICATE_FIX),
        "closed": (
            "the server closed the connection during the handshake: it likely "
            + (
                "does not trust this client certificate"
                if presented
                else "requires a client certificate, and none is set"
            ),
            CLIENT_CERTIFICATE_FIX,
        ),
        "unknown issuer": (
            f"the server's certificate is not signed by a CA of {ca}",
            "set PROMOTER_TEMPORAL_TLS_CA to the PEM bundle of the CA that signs it",
        ),
        "name": (
            f"the server's certificate is not valid for the name {detail or 'dialed'}",
            "set PROMOTER_TEMPORAL_TLS_SERVER_NAME to a name it holds (its subjectAltName)",
        ),
        "server certificate": (
            f"the server's certificate is refused: {detail}",
            f"check the server's certificate and {ca}",
        ),
        "not tls": (
            "the server does not speak TLS there",
            f"set {setting} to its TLS address, or unset the PROMOTER_TEMPORAL_TLS* settings for a plaintext one",
        ),
        "not grpc": (
            "the server does not speak gRPC (HTTP/2) there",
            f"set {setting} to the frontend's gRPC address, not its HTTP API's",
        ),
    }.get(kind, (detail, f"check {setting} and the PROMOTER_TEMPORAL_TLS* settings"))
    return BadInput(f"cannot reach {what} over TLS ({why}); {fix}")
