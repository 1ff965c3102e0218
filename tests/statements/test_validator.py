"""The independent validator itself: it accepts ADL's statements, refuses broken
ones, and sees every statement the builders return."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from microcred_sync.statements import xapi

from .conftest import CONFORMANCE, XapiValidator, adl_examples


def _template(name: str) -> dict[str, Any]:
    path = CONFORMANCE / "statements" / f"{name}.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_adl_examples_pass(xapi_validator: XapiValidator) -> None:
    """ADL's SCORM profile statements and the conformance suite's default statement
    give no warning: the validator does not refuse what is right."""
    for statement in [*adl_examples(), _template("default")]:
        assert xapi_validator.warnings(statement) == []


@pytest.mark.parametrize("name", ["no_actor", "no_verb", "no_object"])
def test_broken_statements_are_refused(
    xapi_validator: XapiValidator, name: str
) -> None:
    """The conformance suite's statements without actor, verb or object warn."""
    assert xapi_validator.warnings(_template(name)) != []


def test_two_identifiers_are_refused(xapi_validator: XapiValidator) -> None:
    """XA-02: an actor with both mbox and account is what the validator refuses."""
    statement = _template("default")
    statement["actor"]["account"] = {
        "homePage": "https://corp.example.com/",
        "name": "1",
    }
    warnings = xapi_validator.warnings(statement)
    assert [warning["type"] for warning in warnings] == ["IfiCountWarning"]


def test_validated_fails_the_test_with_the_statement(
    validated: Callable[[Any], Any],
) -> None:
    """A statement with a warning fails the test that made it, showing both."""
    statement = _template("no_actor")
    statement["id"] = "9a7b6c5d-0000-5000-8000-000000000000"
    with pytest.raises(pytest.fail.Exception) as failed:
        validated(statement)
    assert "test_validated_fails_the_test_with_the_statement" in str(failed.value)
    assert "9a7b6c5d-0000-5000-8000-000000000000" in str(failed.value)
    assert "statement.actor" in str(failed.value)


def test_builders_are_validated(xapi_validator: XapiValidator) -> None:
    """Each builder call goes through the validator (the conftest wrapper)."""
    context = xapi.StatementContext(partner="p", identity="mbox", platform="x")
    learner = xapi.LearnerIdentity(learner_id="l-1", email="a@example.org")
    before = xapi_validator.count
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    xapi.voiding_statement(
        context, "0b9f6a52-3c1e-5d7a-9a43-1f2e3d4c5b6a", learner, moment
    )
    assert xapi_validator.count == before + 1
