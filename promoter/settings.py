"""Where the worker and the CLI find Temporal and the repository: environment variables, then the
embedded stack's `stack.json` in the state directory, then defaults."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from promoter import MAX_FILE_BYTES, TASK_QUEUE, secrets
from promoter.errors import BadInput

if TYPE_CHECKING:  # Temporal's client is imported where it is used: `policy check` never needs it
    from temporalio.client import Client
    from temporalio.runtime import Runtime

    from promoter.gitrepo import GitClone
    from promoter.policy import PolicyEngine

DEFAULT_STATE_DIR = ".promoter"


@dataclass
class Settings:
    temporal_address: str = "localhost:7233"
    temporal_http_url: str | None = None  # Temporal's HTTP API: the CLI's status, approve and list start faster
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    repo_url: str | None = None
    forge: str = "local"  # local | github | gitlab | gitea
    forge_db: str | None = None
    forge_repo: str | None = None  # OWNER/NAME (GitHub, Gitea) or group/project (GitLab)
    forge_url: str | None = None  # the API's base URL; default: the provider's public one
    forge_token: str | None = field(default=None, repr=False)  # never printed, logged or put in history
    opa_token: str | None = field(default=None, repr=False)  # likewise
    merge_method: str = "merge"  # merge | squash
    ssh_key: str | None = None
    metrics_port: int | None = None  # the worker's /metrics endpoint
    cache_dir: str = str(Path.home() / ".cache" / "promoter")
    ui_url: str | None = None
    opa_url: str | None = None
    policy_engine: str | None = None  # embedded | opa; default: opa when opa_url is set
    policy_timeout_s: float = 10.0
    review_poll_s: float = 15.0  # how often a waiting gate reads its PR's reviews and head
    max_file_bytes: int = MAX_FILE_BYTES  # a file of an app folder larger than this is refused

    @classmethod
    def load(cls, state_dir: str | None = None) -> Settings:
        s = cls()
        stack = Path(state_dir or os.environ.get("PROMOTER_STATE_DIR") or DEFAULT_STATE_DIR) / "stack.json"
        if stack.is_file():
            try:
                info = json.loads(stack.read_text())
            except ValueError:
                raise BadInput(f"{stack} is not valid JSON; run `promoter down` and `promoter up` again") from None
            s.temporal_address = info.get("temporal_address", s.temporal_address)
            s.temporal_http_url = info.get("temporal_http_url")
            s.repo_url = info.get("repo_url")
            s.forge_db = info.get("forge_db")
            s.cache_dir = info.get("cache_dir", s.cache_dir)
            s.ui_url = info.get("ui_url")
        env = os.environ
        s.temporal_address = env.get("PROMOTER_TEMPORAL_ADDRESS", s.temporal_address)
        s.temporal_http_url = env.get("PROMOTER_TEMPORAL_HTTP_URL", s.temporal_http_url) or None
        if s.temporal_http_url and not re.match(r"https?://[^/\s]+(/\S*)?$", s.temporal_http_url):
            raise BadInput(
                "PROMOTER_TEMPORAL_HTTP_URL must be an http:// or https:// URL such as http://localhost:7243, "
                f"not {s.temporal_http_url[:60]!r}"
            )
        s.namespace = env.get("PROMOTER_NAMESPACE", s.namespace)
        s.task_queue = env.get("PROMOTER_TASK_QUEUE", s.task_queue)
        s.repo_url = env.get("PROMOTER_REPO_URL", s.repo_url)
        s.forge = env.get("PROMOTER_FORGE", s.forge)
        s.forge_db = env.get("PROMOTER_FORGE_DB", s.forge_db)
        s.forge_repo = env.get("PROMOTER_FORGE_REPO", s.forge_repo)
        s.forge_url = env.get("PROMOTER_FORGE_URL", s.forge_url)
        s.forge_token = _secret(env, "PROMOTER_FORGE_TOKEN") or s.forge_token
        secrets.register(s.forge_token)
        s.opa_token = _secret(env, "PROMOTER_OPA_TOKEN") or s.opa_token
        secrets.register(s.opa_token)
        secrets.register_environment(env)
        s.merge_method = env.get("PROMOTER_MERGE_METHOD", s.merge_method)
        s.ssh_key = env.get("PROMOTER_SSH_KEY", s.ssh_key)
        if env.get("PROMOTER_METRICS_PORT"):
            port = env["PROMOTER_METRICS_PORT"]
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise BadInput(f"PROMOTER_METRICS_PORT must be a port number, not {port!r}")
            s.metrics_port = int(port)
        s.cache_dir = env.get("PROMOTER_CACHE_DIR", s.cache_dir)
        s.ui_url = env.get("PROMOTER_UI_URL", s.ui_url)
        s.opa_url = env.get("PROMOTER_OPA_URL", s.opa_url)
        s.policy_engine = env.get("PROMOTER_POLICY_ENGINE", s.policy_engine)
        s.policy_timeout_s = _seconds(env, "PROMOTER_POLICY_TIMEOUT", s.policy_timeout_s)
        s.review_poll_s = _seconds(env, "PROMOTER_REVIEW_POLL", s.review_poll_s)
        if env.get("PROMOTER_MAX_FILE_SIZE"):
            s.max_file_bytes = parse_size(env["PROMOTER_MAX_FILE_SIZE"], "PROMOTER_MAX_FILE_SIZE")
        return s

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
        )

    def workflow_url(self, workflow_id: str, run_id: str | None = None) -> str | None:
        if not self.ui_url:
            return None
        url = f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"
        return f"{url}/{run_id}/history" if run_id else url


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
    from temporalio.client import Client

    from promoter.converter import DATA_CONVERTER

    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=DATA_CONVERTER,
            runtime=runtime,
        )
    except RuntimeError as e:
        text = str(e)
        reason = next((r for r in ("Connection refused", "timed out", "dns error") if r in text), text.splitlines()[0])
        raise BadInput(
            f"cannot reach Temporal at {settings.temporal_address} ({reason}); "
            "start the embedded stack with `promoter up` or set PROMOTER_TEMPORAL_ADDRESS"
        ) from None
