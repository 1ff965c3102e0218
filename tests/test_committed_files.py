"""Every committed YAML file loads, and the example job runs as the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from microcred_sync.project import load_project
from microcred_sync.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_committed_files_load_and_reference_each_other() -> None:
    """partners, programs, connectors, mappings and jobs are valid and consistent."""
    project = load_project(Settings(root=REPO))
    job = project.job("example-corp-roster")
    assert job.source in project.connectors and job.mapping in project.mappings
    assert project.connectors[job.source].partner == job.partner == "example-corp"
    offered = project.programs_of(job.partner)
    assert {rule.program for rule in project.mappings[job.mapping].enrollments} <= set(
        offered
    )


def test_example_job_end_to_end(tmp_path: Path) -> None:
    """The example export is provisioned once; a rerun changes nothing."""
    root = tmp_path / "repo"
    for folder in ("config", "connectors", "mappings", "scheduler", "examples"):
        shutil.copytree(REPO / folder, root / folder)
    env = {**os.environ, "MICROCRED_ROOT": str(root)}
    command = [sys.executable, "-m", "microcred_sync", "run", "example-corp-roster"]
    first = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "quarantined 8" in first.stdout
    assert "learners created 2285" in first.stdout
    assert "not created, inactive in the source 107" in first.stdout
    second = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False
    )
    assert second.returncode == 0
    assert "platform writes 0" in second.stdout and "unchanged 2392" in second.stdout


def test_example_directory_job_reads_ldap_and_enrolls_by_group() -> None:
    """The directory example: an ldap connector, a mapping whose rules test groups."""
    project = load_project(Settings(root=REPO))
    job = project.job("example-directory-roster")
    connector = project.connectors[job.source or ""]
    assert connector.kind == "ldap" and connector.partner == "example-directory"
    rules = project.mappings[job.mapping or ""].enrollments
    assert rules and all("in_group(record.groups" in rule.when for rule in rules)
