"""Names are identifiers, never paths: a property test over app and environment names (every string
either is a DNS-1123 label, whose folder and workflow ID are exactly its own, or is refused with one
line), the ID forms the CLI accepts, and revisions that could be read as options."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promoter import names
from promoter.errors import BadInput

LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOSTILE = [
    "../staging/demo",
    "demo/",
    "./demo",
    "",
    ".",
    "..",
    "Demo",
    "-demo",
    "demo-",
    "de mo",
    "demo\n",
    "x" * 64,
    "d" * 10_000,
    "démo",
    "demo;rm",
    "promote-",
    "a/b",
]


@given(st.one_of(st.text(max_size=80), st.from_regex(LABEL, fullmatch=True), st.sampled_from(HOSTILE)))
def test_a_name_is_a_label_with_its_own_folder_or_one_line_refused(value: str) -> None:
    try:
        checked = names.check(value)
    except BadInput as e:
        assert not LABEL.match(value) or value.endswith("\n")
        message = str(e)
        assert "\n" not in message and len(message) < 300, message
        return
    assert LABEL.match(value) and checked == value
    assert names.app_folder("dev", value) == f"environments/dev/{value}"
    assert names.workflow_id(value) == f"promote-{value}"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_names_are_refused(value: str) -> None:
    with pytest.raises(BadInput):
        names.workflow_id(value)
    with pytest.raises(BadInput):
        names.app_folder(value, "demo")


def test_a_long_name_says_how_long_it_may_be() -> None:
    with pytest.raises(BadInput, match="is 10000 characters long; a name has at most 63"):
        names.check("d" * 10_000)


def test_promotion_ids_and_app_names_both_name_a_promotion() -> None:
    assert names.promotion_id("demo") == "promote-demo"
    assert names.promotion_id("promote-demo") == "promote-demo"
    for bad in ("promote-../x", "promote-", "../x"):
        with pytest.raises(BadInput, match="a promotion ID is promote-<app>"):
            names.promotion_id(bad)


@pytest.mark.parametrize("rev", ["--output=/tmp/x", "-n", "main..evil", "a b", "x" * 300, ""])
def test_a_revision_is_never_an_option(rev: str) -> None:
    with pytest.raises(BadInput, match="is not a commit"):
        names.check_revision(rev)
    assert names.check_revision("main~1") == "main~1"
