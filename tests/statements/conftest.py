"""Statement test fixtures: an independent xAPI validator, the OB 3.0 schema, ADL data.

Every statement the builders return in these tests goes through Learning Locker's
``@learninglocker/xapi-validation`` (Node.js, one process for the session): the
builders in ``microcred_sync.statements.xapi`` are wrapped for each test, so a
statement with any warning fails the test that built it, at the line that built it,
with the statement shown; every credential ``badges.open_badge_credential``
returns is checked against 1EdTech's OB 3.0 JSON schema the same way. Tests call
the builders through their modules (``xapi.<builder>``, ``badges.<builder>``).

``scripts/test.sh`` installs Node.js, the validator and the OB 3.0 schema; without
them these tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator

from microcred_sync.statements import badges, xapi

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE = HERE / "node"
OB_SCHEMA = HERE / "schemas" / "ob_v3p0_achievementcredential_schema.json"
#: Public reference data copied into the repository, with its licences.
FIXTURES = REPO / "tests" / "fixtures"
SCORM_PROFILE = FIXTURES / "xapi-scorm-profile"
CONFORMANCE = FIXTURES / "xapi-conformance-templates"

BUILDERS = ("result_statement", "award_statement", "voiding_statement")


def _missing(what: str) -> None:
    message = f"{what} is missing; scripts/test.sh installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class XapiValidator:
    """Learning Locker's validator in a Node.js process, one statement per line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.count = 0

    def warnings(self, statement: Any) -> list[dict[str, str]]:
        """The validator's warnings for ``statement`` (empty when it is valid)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.count += 1
        request = {"key": self.count, "statement": statement}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert answer["key"] == self.count, "the validator answered out of order"
        warnings: list[dict[str, str]] = answer["warnings"]
        return warnings


@pytest.fixture(scope="session")
def xapi_validator() -> Iterator[XapiValidator]:
    """The session's validator process."""
    package = NODE / "node_modules" / "@learninglocker" / "xapi-validation"
    node = shutil.which("node")
    if node is None or not package.is_dir():
        _missing("Node.js or @learninglocker/xapi-validation")
    assert node is not None
    process = subprocess.Popen(
        [node, str(NODE / "validate.js")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        yield XapiValidator(process)
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture
def validated(
    request: pytest.FixtureRequest,
) -> Callable[[Any], Any]:
    """Check a statement with the validator; fail the test, showing it, on a warning."""

    def check(statement: Any) -> Any:
        validator: XapiValidator = request.getfixturevalue("xapi_validator")
        warnings = validator.warnings(statement)
        if warnings:
            shown = json.dumps(statement, indent=2, sort_keys=True)
            pytest.fail(
                f"{request.node.nodeid}: statement "
                f"{statement.get('id', '(no id)')} fails Learning Locker's "
                f"validator: {warnings}\n{shown}"
            )
        return statement

    return check


@pytest.fixture(autouse=True)
def _every_statement_validated(
    monkeypatch: pytest.MonkeyPatch, validated: Callable[[Any], Any]
) -> None:
    """Wrap the builders so each statement they return is validated at once."""
    for name in BUILDERS:
        builder = getattr(xapi, name)

        @functools.wraps(builder)
        def checked(*args: Any, __builder: Any = builder, **kwargs: Any) -> Any:
            return validated(__builder(*args, **kwargs))

        monkeypatch.setattr(xapi, name, checked)


@pytest.fixture(autouse=True)
def _every_credential_checked(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Wrap the credential builder so each credential it returns passes the schema."""
    builder = badges.open_badge_credential

    @functools.wraps(builder)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check: Callable[[Any], Any] = request.getfixturevalue("valid_credential")
        return check(builder(*args, **kwargs))

    monkeypatch.setattr(badges, "open_badge_credential", checked)


@pytest.fixture(scope="session")
def ob_schema() -> dict[str, Any]:
    """1EdTech's AchievementCredential (OpenBadgeCredential) JSON schema."""
    if not OB_SCHEMA.is_file():
        _missing("the Open Badges 3.0 JSON schema")
    schema: dict[str, Any] = json.loads(OB_SCHEMA.read_text(encoding="utf-8"))
    Draft201909Validator.check_schema(schema)
    return schema


@pytest.fixture
def valid_credential(ob_schema: dict[str, Any]) -> Callable[[Any], Any]:
    """Check a credential against the OB 3.0 schema; fail listing every error."""
    validator = Draft201909Validator(
        ob_schema, format_checker=Draft201909Validator.FORMAT_CHECKER
    )

    def check(credential: Any) -> Any:
        errors = sorted(validator.iter_errors(credential), key=str)
        if errors:
            listed = "\n".join(
                f"- {'/'.join(map(str, error.absolute_path))}: {error.message}"
                for error in errors
            )
            pytest.fail(f"credential fails the OB 3.0 schema:\n{listed}")
        return credential

    return check


def adl_examples() -> list[dict[str, Any]]:
    """ADL's SCORM-in-xAPI example statements (Apache-2.0, see their LICENSE)."""
    folder = SCORM_PROFILE / "statements"
    if not folder.is_dir():
        pytest.fail(f"ADL's SCORM profile data is missing at {folder}")
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*/*.json"))
    ]
