"""Derived ids: stable, and exactly the UUID v5 the standard defines."""

from __future__ import annotations

import uuid

import pytest

from microcred_sync.changes import (
    NAMESPACE,
    derived_id,
    enrollment_id,
    learner_id,
)


@pytest.mark.parametrize(
    "name",
    ["learner/example-corp/000123", "enrollment/é/ü", "", "x" * 1000, "a/\u0000"],
)
def test_derived_id_is_the_standard_uuid5(name: str) -> None:
    assert derived_id(name) == str(uuid.uuid5(NAMESPACE, name))
    parsed = uuid.UUID(derived_id(name))
    assert parsed.version == 5
    assert parsed.variant == uuid.RFC_4122


def test_ids_depend_on_partner_key_and_program() -> None:
    assert learner_id("a", "1") == learner_id("a", "1")
    assert learner_id("a", "1") != learner_id("b", "1")
    assert learner_id("a", "1") != learner_id("a", "01")
    first = learner_id("a", "1")
    assert enrollment_id(first, "p") != enrollment_id(first, "q")
