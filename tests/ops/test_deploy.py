"""The deployment files under scheduler/deploy/: they parse, the probes ask the
port and path the daemon serves by default, and the dashboard's queries name
metrics the daemon exports."""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from microcred_sync.ops.metrics import Metrics
from microcred_sync.settings import Settings
from microcred_sync.state.store import StateStore

DEPLOY = Path(__file__).resolve().parents[2] / "scheduler" / "deploy"
HEALTH_PATH = "/healthz"


def _documents(name: str) -> list[dict[str, Any]]:
    text = (DEPLOY / "kubernetes" / name).read_text(encoding="utf-8")
    return [document for document in yaml.safe_load_all(text) if document]


def _deployment() -> dict[str, Any]:
    [deployment] = [
        d for d in _documents("deployment.yaml") if d["kind"] == "Deployment"
    ]
    return deployment


def test_deployment_probes_the_default_health_port_and_path() -> None:
    """Liveness and readiness ask /healthz on [daemon] http_port's default."""
    port = Settings().daemon.http_port
    container = _deployment()["spec"]["template"]["spec"]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": HEALTH_PATH, "port": port}
    assert {"containerPort": port, "name": "http"} in container["ports"]
    assert container["args"] == ["schedule"]


def test_deployment_runs_two_unprivileged_replicas_with_config_and_secrets() -> None:
    """Two replicas, not root; settings and jobs from the ConfigMap, secrets from
    the Secret mounted where the ConfigMap's settings look for them."""
    deployment = _deployment()
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    [configmap] = _documents("configmap.yaml")
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert volumes["secrets"]["secret"]["secretName"] == "microcred-sync-secrets"
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    settings = tomllib.loads(configmap["data"]["settings.toml"])
    assert settings["secrets_dir"] in mounts
    assert settings["daemon"]["http_host"] == "0.0.0.0"
    assert settings["daemon"]["http_port"] == Settings().daemon.http_port
    for key in ("settings.toml", "jobs.yaml"):
        assert any(m.get("subPath") == key for m in mounts.values())
    # The settings and jobs in the ConfigMap are valid for the service itself.
    Settings.model_validate({k: v for k, v in settings.items()})
    assert yaml.safe_load(configmap["data"]["jobs.yaml"])["jobs"]


def test_systemd_unit_and_containerfile_run_the_daemon_unprivileged() -> None:
    """The unit starts `schedule` as its own user and stops it with SIGTERM; the
    image is python:3.11-slim, runs as a non-root user, exposes the port."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "microcred-sync.service").read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["ExecStart"].endswith("microcred-sync schedule")
    assert service["User"] != "root" and service["KillSignal"] == "SIGTERM"
    containerfile = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert re.findall(r"^FROM (\S+)", containerfile, re.M)[-1] == "python:3.11-slim"
    [user] = re.findall(r"^USER (\S+)", containerfile, re.M)
    assert not user.startswith(("root", "0:", "0"))
    assert f"EXPOSE {Settings().daemon.http_port}" in containerfile
    assert 'CMD ["schedule"]' in containerfile


def test_dashboard_queries_name_metrics_the_daemon_exports(tmp_path: Path) -> None:
    """Every microcred_* series a panel or variable queries is one that the
    daemon's registry exports (counters as _total, histograms as _bucket...)."""
    dashboard = json.loads(
        (DEPLOY / "grafana" / "microcred-sync.json").read_text(encoding="utf-8")
    )
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
    ]
    queries += [
        v["definition"] for v in dashboard["templating"]["list"] if "definition" in v
    ]
    named = {name for query in queries for name in re.findall(r"microcred_\w+", query)}
    assert len(named) >= 8

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.create_schema()
    try:
        metrics = Metrics(store.engine, {"example-corp-statements": "example-corp"})
        exported: set[str] = set()
        for family in metrics.registry.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
            }.get(family.type, ("",))
            exported |= {family.name + suffix for suffix in suffixes}
    finally:
        store.close()
    assert named <= exported, named - exported
