"""Every module of the package can be imported first, on its own: no import cycle
waits for the one entry point that happens to break it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import microcred_sync
names = sorted(
    info.name
    for info in pkgutil.walk_packages(microcred_sync.__path__, "microcred_sync.")
    if ".migrations." not in info.name and not info.name.endswith("__main__")
)
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m.startswith("microcred_sync")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}")
print(len(names))
print("\\n".join(failed))
"""


def test_every_module_imports_on_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    count, *failed = done.stdout.splitlines()
    assert int(count) > 50
    assert [line for line in failed if line] == []
