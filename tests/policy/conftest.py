"""Both policy engines, for the tests that judge the library on each: regorus in process and OPA's own
Go engine (opa-golib-python-bindings). One pair per test module, closed after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from promoter.policy import PolicyEngine
from promoter.policy.embedded import EmbeddedEngine
from promoter.policy.goopa import GoOpaEngine


@pytest.fixture(scope="module")
def engines() -> Iterator[list[PolicyEngine]]:
    embedded, opa = EmbeddedEngine(), GoOpaEngine()
    yield [embedded, opa]
    embedded.close()
    opa.close()
