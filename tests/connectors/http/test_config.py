"""Connector files of kind http: presets fill defaults, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from microcred_sync.connectors.http import HttpConnector
from microcred_sync.connectors.kinds import CONNECTOR_KINDS
from microcred_sync.errors import ConfigError
from microcred_sync.files import validate
from microcred_sync.project import load_project
from microcred_sync.settings import Settings

REPO = Path(__file__).resolve().parents[3]

BASE = {
    "kind": "http",
    "partner": "example-group",
    "url": "https://api.example.com/v1/people",
    "records": "data",
    "key": "id",
    "auth": {"type": "bearer", "token_secret": "TOKEN"},
}


def _problem(**changes: object) -> str:
    with pytest.raises(ConfigError) as caught:
        validate({**BASE, **changes}, CONNECTOR_KINDS, "connectors/people.yaml")
    return str(caught.value)


def test_the_example_files_load_with_their_presets() -> None:
    """The committed example connectors, mappings and jobs pass `check`."""
    project = load_project(Settings(root=REPO))
    workday = project.connectors["example-group-workday"]
    bamboo = project.connectors["example-group-bamboohr"]
    sf = project.connectors["example-group-successfactors"]
    assert isinstance(workday, HttpConnector) and workday.records == "Report_Entry"
    assert workday.params == {"format": "json"}
    assert isinstance(bamboo, HttpConnector) and bamboo.method == "POST"
    assert bamboo.body is not None and "workEmail" in bamboo.body["fields"]
    assert isinstance(sf, HttpConnector) and sf.pagination.style == "next_link"
    assert sf.params["$select"].endswith(",lastModifiedDateTime")
    for job in ("workday", "bamboohr", "successfactors"):
        assert (
            project.job(f"example-group-{job}-roster").source == f"example-group-{job}"
        )


def test_a_file_value_wins_over_its_preset() -> None:
    config = HttpConnector.model_validate(
        {**BASE, "preset": "workday_raas", "params": {"Effective_as_of": "2026-03-01"}}
    )
    assert config.params == {"format": "json", "Effective_as_of": "2026-03-01"}
    assert config.records == "data"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"url": "http://api.example.com/v1"},
            "url: plain http is allowed on the loopback",
        ),
        (
            {"url": "https://api.example.com/v1?api_key=abc"},
            "url: query parameter 'api_key'",
        ),
        (
            {"params": {"access_token": "abc"}},
            "params: 'access_token' looks like a credential",
        ),
        ({"headers": {"Authorization": "Bearer x"}}, "headers: header 'Authorization'"),
        ({"records": "data[?"}, "records: 'data[?' is not a JMESPath"),
        ({"auth": {"type": "basic", "username": "u"}}, "auth.password_secret: missing"),
        ({"body": {"a": 1}}, "body: a JSON body goes with method: POST"),
        (
            {"incremental": {"full_read_every_hours": 24}},
            "incremental.since_param: missing",
        ),
        (
            {"preset": "bamboohr", "incremental": {"full_read_every_hours": 24}},
            "fields: a BambooHR delta read",
        ),
    ],
)
def test_mistakes_name_the_file_and_field(changes: dict, expected: str) -> None:
    message = _problem(**changes)
    assert message.startswith("connectors/people.yaml: ")
    assert expected in message, message


def test_plain_http_is_allowed_on_loopback() -> None:
    config = HttpConnector.model_validate({**BASE, "url": "http://127.0.0.1:8080/v1"})
    assert config.url.startswith("http://127.0.0.1")


def test_a_missing_secret_is_named_not_shown(monkeypatch) -> None:
    from microcred_sync.connectors.http import HttpSource

    monkeypatch.delenv("TOKEN", raising=False)
    source = HttpSource("people", REPO, HttpConnector.model_validate(BASE))
    with pytest.raises(ConfigError, match="secret TOKEN is not set"):
        list(source.read())
