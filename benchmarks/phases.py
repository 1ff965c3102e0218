"""What the benchmarks share: each phase in a child process of its own, so that each
peak RSS is its own, reporting its figures as JSON on its last line."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_phase(script: str, phase: str, root: Path) -> dict[str, Any]:
    """Run ``script --phase PHASE --root ROOT`` and return the JSON object it prints
    last; stop the benchmark, showing the child's errors, if it fails."""
    command = [sys.executable, script, "--phase", phase, "--root", str(root)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures
