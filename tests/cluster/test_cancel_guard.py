"""The SDK cancels a thread activity by raising its cancel into the thread at any point. Raised inside a
request to the API server (as urllib3 takes or gives back a connection of its pool, under the pool's
lock), it left that lock taken for good: every later request of the worker waited on it forever (all
16 activity threads of a worker with 1,000 promotions in flight). In the worker, each request and the
reading of its answer hold the cancel back (promoter.cluster.resources.CALL_GUARD, the forges'
promoter.forges.http.REQUEST_GUARD and the opa backend's promoter.policy.REQUEST_GUARD): it lands
after the request, never inside it. The SDK's own
cancel of a thread activity (temporalio.testing's ActivityEnvironment raises it as a worker does),
against a server on loopback that answers only once the cancel was sent."""

from __future__ import annotations

import http.server
import threading
import traceback
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

import promoter.worker  # noqa: F401 - the worker's guards, as `promoter worker` sets them
from promoter.cluster.resources import Resources
from promoter.forges.http import ApiClient
from promoter.policy import PolicyBundle
from promoter.policy.opa import OpaEngine
from tests.support.loopback import send_json, serving

CANCEL_SENT = threading.Event()
ASKED = threading.Event()


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ASKED.set()
        if self.path == "/slow" or self.path.startswith("/v1/data/promoter_answer/"):  # OPA: is it loaded?
            assert CANCEL_SENT.wait(30)  # the answer comes only once the cancel is on its way
        send_json(self, 200, b'{"kind": "ConfigMap", "metadata": {"name": "x"}}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    with serving(httpd):
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            CANCEL_SENT.set()  # before the server stops: a request it still holds is answered


def _cancelled_during(server: str, ask: Callable[[], object]) -> list[str]:
    """Run `ask` as a thread activity, cancel it (as the SDK does) while the server holds its answer
    back; the files of the frames the cancel was raised through."""
    env = ActivityEnvironment()
    caught: list[BaseException] = []

    def activity() -> None:
        try:
            ask()
        except BaseException as e:
            caught.append(e)
            raise

    running = threading.Thread(target=lambda: pytest.raises(CancelledError, env.run, activity))
    ASKED.clear()
    CANCEL_SENT.clear()
    running.start()
    assert ASKED.wait(30), "the request never reached the server"
    env.cancel()
    CANCEL_SENT.set()
    running.join(30)
    assert not running.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], CancelledError)
    return [frame.filename for frame in traceback.extract_tb(caught[0].__traceback__)]


def _inside(where: list[str]) -> list[str]:
    return [f for f in where if any(part in f for part in ("urllib3", "http/client.py", "socket.py", "kubernetes"))]


def test_a_cancel_lands_after_a_request_to_the_api_server_never_inside_it(server: str) -> None:
    configuration = client.Configuration()
    configuration.host = server
    api = client.ApiClient(configuration)
    Resources(api)  # as every cluster adapter is built
    where = _cancelled_during(server, lambda: api.rest_client.request("GET", f"{server}/slow", _request_timeout=20))
    assert _inside(where) == [], f"the cancel landed inside the request: {where}"
    # the connection went back to its pool: the same client asks again at once
    answer = api.rest_client.request("GET", f"{server}/again", _request_timeout=5)
    assert answer.status == 200 and b"ConfigMap" in answer.read()


def test_a_cancel_lands_after_a_request_to_a_forge_never_inside_it(server: str) -> None:
    forge = ApiClient("GitHub", server, "Bearer t", attempts=1, timeout_s=20)
    where = _cancelled_during(server, lambda: forge.request("GET", "/slow", what="a PR"))
    assert _inside(where) == [], f"the cancel landed inside the request: {where}"
    assert forge.request("GET", "/again", what="a PR").body["kind"] == "ConfigMap"  # its pool still serves


def test_a_cancel_lands_after_a_request_to_opa_never_inside_it(server: str) -> None:
    session = OpaEngine(server, timeout_s=20).client._session  # the opa backend's every call goes through it
    where = _cancelled_during(server, lambda: session.get(f"{server}/slow", timeout=20))
    assert _inside(where) == [], f"the cancel landed inside the request: {where}"
    assert session.get(f"{server}/again", timeout=5).json()["kind"] == "ConfigMap"  # its pool still serves


def test_a_cancelled_policy_check_on_opa_ends_cancelled_not_as_an_answer(server: str) -> None:
    """The cancel lands as the request ends, inside the backend's error handling: "not loaded, push it"
    or a one-line failure (which `decide` denies) would be an answer; it must go on as the cancel."""
    bundle = PolicyBundle(modules={"promoter/decision.rego": "package promoter\n"}, data={}, metadata={})
    engine = OpaEngine(server, timeout_s=20)
    _cancelled_during(server, lambda: engine.warm(bundle))  # asks whether the server holds the revision
