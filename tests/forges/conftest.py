"""Every exchange a forge stand-in of these tests answers is held to the forge's own description: after
each test that uses pytest-httpserver, each (request, response) pair of `httpserver.log` is checked
(tests/support/openapi/): GitHub's with openapi-core against its OpenAPI description; Gitea's (under
`/api/v1/`) with openapi-core against Gitea 1.22's description as read from gitea-js 1.22.0's
`dist/index.d.ts` (paths, path and query parameters, request bodies, answers' types; not each
operation's error statuses nor required fields, which those declarations lose); GitLab's (under
`/api/v4/`) against the merge request documentation's statuses and codes. A test whose stand-in
answers off the description on purpose says why with `@pytest.mark.off_spec("why")`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.openapi import log_mismatches


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "off_spec(why): the test's stand-in answers off the forge's description")


@pytest.fixture(autouse=True)
def _stand_ins_answer_as_the_descriptions_say(request: pytest.FixtureRequest) -> Iterator[None]:
    if "httpserver" not in request.fixturenames or request.node.get_closest_marker("off_spec"):
        yield
        return
    server = request.getfixturevalue("httpserver")  # set up first, so torn down after this check
    yield
    found = log_mismatches(server.log)
    if found:
        pytest.fail("\n".join(found), pytrace=False)
