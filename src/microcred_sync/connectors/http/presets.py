"""Presets of the ``http`` kind: what a vendor's API always does, filled in before a
connector file is validated. A file's own value wins over its preset's; for
``params`` and ``headers`` the two are merged, the file's names winning.

``workday_raas``: a Workday custom report exposed as a web service (Report as a
Service), read as JSON: ``url`` is the report's
``https://<host>/ccx/service/customreport2/<tenant>/<owner>/<report>``; ``format=json``
is asked; the records are the ``Report_Entry`` list of the one answer (RaaS does
not page); auth is HTTP Basic of an integration system user
(``ISU_Roster@tenant``). Values are read the Workday way (``values: workday``): a
reference field ``{"descriptor": "Lyon", "id": "a1b2..."}`` becomes
``Location.descriptor`` and ``Location.id``; a multi-instance one a list per part;
a date with an offset (``2019-03-04-08:00``) the date alone, a time with an offset
UTC (``2019-03-04T18:00:00Z``). Incremental reads give the cursor to a report
prompt named by ``incremental.since_param`` (``Updated_From``, say).

``bamboohr``: BambooHR's API at ``https://api.bamboohr.com/api/gateway.php/<company>``.
Auth is HTTP Basic with the API key as the user (``username_secret``) and any
password (``x`` is sent). ``url`` is the employee directory
(``.../v1/employees/directory``) or a custom report (``.../v1/reports/custom``,
asked with POST ``{"title": ..., "fields": [<fields>]}`` and ``format=JSON``);
records are the answer's ``employees``, keyed by ``id``. With ``incremental`` a
delta read asks ``/v1/employees/changed?since=<cursor>``, then each inserted or
updated employee's ``fields`` from ``/v1/employees/<id>``; a deleted one reads as
``{id, <status_field>: <deleted_value>}``. The next cursor is the answer's
``latest`` (a full read's: the server's ``Date`` when it began).

``successfactors``: SAP SuccessFactors OData v2
(``https://<api host>/odata/v2/<Entity>``, ``User`` or ``PerPerson`` say).
``$format=json``; ``fields`` become ``$select`` (with ``key`` and
``lastModifiedDateTime``), ``filter`` becomes ``$filter``; records are
``d.results``; pages follow ``d.__next`` (server-side paging, ``$skiptoken``).
OData values are read as such (``values: odata``): ``/Date(1699920000000)/``, an
Edm.DateTime at midnight, is a date (``2023-11-14``), another one a UTC time;
``/Date(1700000000000+0000)/`` (Edm.DateTimeOffset) a UTC time
(``2023-11-14T22:13:20Z``); ``__metadata`` and unexpanded navigation properties
are left out. A delta read adds ``lastModifiedDateTime gt datetimeoffset'<cursor>'``
to ``$filter``; the next cursor is the greatest ``lastModifiedDateTime`` read.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

#: The field SuccessFactors stamps every change of an entity with.
SF_MODIFIED: Final = "lastModifiedDateTime"

_BAMBOO_REPORT_TITLE: Final = "microcred-sync roster"


def _merged(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` under ``data``; ``params`` and ``headers`` merged by name."""
    result = {**defaults, **data}
    for name in ("params", "headers"):
        if isinstance(defaults.get(name), dict) and isinstance(data.get(name), dict):
            result[name] = {**defaults[name], **data[name]}
    return result


def _workday(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "params": {"format": "json"},
        "records": "Report_Entry",
        "values": "workday",
        "pagination": {"style": "none"},
    }


def _bamboohr(data: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "records": "employees",
        "key": "id",
        "headers": {"Accept": "application/json"},
    }
    path = urlsplit(str(data.get("url", ""))).path.rstrip("/")
    if path.endswith("/reports/custom"):
        defaults.update(method="POST", params={"format": "JSON"})
        if "body" not in data:
            fields = list(data.get("fields") or ())
            defaults["body"] = {"title": _BAMBOO_REPORT_TITLE, "fields": fields}
    return defaults


def _successfactors(data: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"$format": "json"}
    fields = list(data.get("fields") or ())
    if fields:
        key = str(data.get("key", ""))
        extra = [name for name in (key, SF_MODIFIED) if name and name not in fields]
        params["$select"] = ",".join([*fields, *extra])
    if data.get("filter"):
        params["$filter"] = str(data["filter"])
    return {
        "params": params,
        "records": "d.results",
        "pagination": {"style": "next_link", "path": "d.__next"},
        "values": "odata",
    }


_PRESETS: Final = {
    "workday_raas": _workday,
    "bamboohr": _bamboohr,
    "successfactors": _successfactors,
}


def apply_preset(data: Any) -> Any:
    """A connector file's content with its preset's defaults filled in; anything
    else (no preset, an unknown one, not a mapping) is left to validation."""
    if not isinstance(data, dict):
        return data
    preset = data.get("preset")
    if not isinstance(preset, str) or preset not in _PRESETS:
        return data
    return _merged(data, _PRESETS[preset](data))


def bamboohr_api_root(url: str) -> str:
    """The ``.../v1/`` a BambooHR URL is under (``ValueError`` if it has none)."""
    parts = urlsplit(url)
    head, marker, _ = parts.path.partition("/v1/")
    if not marker:
        raise ValueError("a BambooHR URL has /v1/ in its path")
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/v1/", "", ""))


def successfactors_delta_filter(base: str | None, since: str) -> str:
    """``$filter`` of a delta read: the file's filter and changes after ``since``."""
    changed = f"{SF_MODIFIED} gt datetimeoffset'{since}'"
    return f"({base}) and {changed}" if base else changed
