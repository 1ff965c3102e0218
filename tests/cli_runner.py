"""The command line as an operator runs it: ``python -m microcred_sync`` in a child
process, on one project folder, for tests of what the commands print and exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class Project(Protocol):
    """Anything with a project folder: ``ProjectDir``, ``SinkProject``..."""

    @property
    def root(self) -> Path: ...


def cli(
    project: Project, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command ``args`` with ``MICROCRED_ROOT`` at the project and ``env``
    on top of this process's environment; its exit code, stdout and stderr (two
    minutes at most, then ``TimeoutExpired``)."""
    environment = {**os.environ, "MICROCRED_ROOT": str(project.root), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "microcred_sync", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
