"""Bounded parsing: a YAML alias bomb is refused naming its file, fast and without memory growth; a
recursive alias and absurd nesting are refused too; a file over the size limit is refused naming the
limit; environment.yaml values (durations above all) either load or are refused with one line."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter import yamlsafe
from promoter.environments import parse_environment
from promoter.errors import BadInput
from promoter.render import parse_manifests, render_dir
from tests.support.bombs import bomb


def test_an_alias_bomb_is_refused_naming_the_file_fast_and_flat() -> None:
    text = bomb()
    assert len(text) < 2000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(
            BadInput,
            match=r"environments/dev/demo/lol\.yaml: its YAML aliases expand to more "
            r"than 1,000,000 nodes",
        ):
            parse_manifests({"lol.yaml": text.encode()}, "environments/dev/demo")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0, elapsed  # a fault bound (the old loader never finished), not a speed target
    assert peak < 50 * 1024 * 1024, peak


def test_aliases_within_the_budget_still_load() -> None:
    docs = yamlsafe.load_all("a: &x {k: [1, 2]}\nb: *x\n", "ok.yaml")
    assert docs == [{"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("&a [*a]", "a recursive alias"),
        ("[" * 20_000 + "]" * 20_000, "deep.yaml"),
        ("a: [1\n", "deep.yaml: line 2: invalid YAML"),
    ],
)
def test_odd_yaml_is_one_line(text: str, expected: str) -> None:
    with pytest.raises(BadInput, match=re.escape(expected)) as e:
        yamlsafe.load_all(text, "deep.yaml")
    assert "\n" not in str(e.value)


def test_a_file_over_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_bytes(b"# padding\n" * 2000)
    with pytest.raises(
        BadInput,
        match=r"big\.yaml is 20,000 bytes, over the limit of 10,000 bytes per file "
        r"\(PROMOTER_MAX_FILE_SIZE\)",
    ):
        render_dir(tmp_path, max_bytes=10_000)


def test_a_manifest_with_a_kind_that_is_not_a_string_is_bad_input() -> None:
    with pytest.raises(BadInput, match="every document must be a Kubernetes object"):
        parse_manifests({"x.yaml": b"kind: 5\nmetadata: {name: x}\n"}, "f")


@pytest.mark.parametrize(
    ("soak", "expected"),
    [
        ("99999999999999d", "'99999999999999d' is longer than the maximum of 366d"),
        ("P9999999D", "is longer than the maximum of 366d"),
        ("banana", "'banana' is not a duration"),
        ("-5", "a duration cannot be negative"),
    ],
)
def test_durations_have_a_sane_maximum(soak: str, expected: str) -> None:
    with pytest.raises(BadInput, match=r"^environments/dev/environment\.yaml: soak: .*" + re.escape(expected)):
        parse_environment(f"name: dev\norder: 1\nsoak: {soak}\n", "environments/dev/environment.yaml", "dev")


def test_the_health_timeout_error_names_the_key_not_a_timeout() -> None:
    with pytest.raises(BadInput, match="health.timeout: 'banana' is not a duration"):
        parse_environment("name: dev\norder: 1\nhealth: {timeout: banana}\n", "e.yaml", "dev")


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["5m", "1h30m", "99999999999999d", "P1D", "0s", "7d", "366d", "367d"]),
)
KEYS = st.sampled_from(
    [
        "soak",
        "order",
        "name",
        "local_files",
        "notify",
        "approval",
        "health",
        "cluster",
        "policy",
        "merge",
        "revert",
        "bogus",
    ]
)
SUBKEYS = st.sampled_from(
    [
        "timeout",
        "required",
        "approvers",
        "context",
        "namespace",
        "enforce",
        "wait",
        "method",
        "url",
        "events",
        "automatic",
        "http",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(SUBKEYS, inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_environment_yaml_values_load_or_are_refused_with_one_line(extra: dict[str, object]) -> None:
    doc = {"name": "dev", "order": 1, **extra}
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    try:
        config = parse_environment(text, "environments/dev/environment.yaml", "dev")
    except BadInput as e:
        message = str(e)
        assert message.startswith("environments/dev/environment.yaml"), message
        assert "\n" not in message and len(message) < 400, message
        return
    assert config.name == "dev"
    for d in (config.soak, config.approval.timeout, config.health.timeout, config.merge.wait):
        assert d is None or d.days <= 366
