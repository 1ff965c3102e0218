"""A real Ralph LRS for the tests and the benchmark: users made with `ralph auth`,
the file-system backend in a temporary folder, uvicorn on 127.0.0.1.

Ralph runs from its own virtualenv (``.venv-ralph``, made by ``scripts/test.sh``):
its pins (click, among others) do not fit ours.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

REPO = Path(__file__).resolve().parents[2]
RALPH_VENV = REPO / ".venv-ralph"
LAUNCHER = Path(__file__).with_name("ralph_launcher.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LrsUser:
    """A basic-auth user of Ralph, storing into its own target folder."""

    username: str
    password: str
    #: The authority Ralph puts on this user's statements.
    mbox: str


class Ralph:
    """One Ralph process, which can be stopped and started again on its port."""

    def __init__(self, users: list[LrsUser], base: Path | None = None) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="microcred-ralph-"))
        self.port = free_port()
        self.users = {user.username: user for user in users}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RALPH_")},
            "RALPH_RUNSERVER_BACKEND": "fs",
            "RALPH_APP_DIR": str(self.base / "app"),
            "RALPH_AUTH_FILE": str(self.base / "auth.json"),
            "RALPH_HISTORY_FILE": str(self.base / "history.json"),
            "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(self.base / "data"),
            # Reads return only the statements of the reader's own authority.
            "RALPH_LRS_RESTRICT_BY_AUTHORITY": "true",
        }
        self._create_users()

    @classmethod
    def available(cls) -> bool:
        return (RALPH_VENV / "bin" / "ralph").exists()

    @property
    def endpoint(self) -> str:
        """The LRS's base URL, as a sink's ``endpoint``."""
        return f"http://127.0.0.1:{self.port}/xAPI"

    def _create_users(self) -> None:
        for user in self.users.values():
            command = [
                str(RALPH_VENV / "bin" / "ralph"),
                "auth",
                "--username",
                user.username,
                "--password",
                user.password,
                "--scope",
                "statements/write",
                "--scope",
                "statements/read/mine",
                "--agent-ifi-mbox",
                user.mbox,
                "--target",
                user.username,
                "--write-to-disk",
            ]
            subprocess.run(command, env=self.env, check=True, capture_output=True)
            # The backend appends to <target>/fs_lrs.jsonl; the folder must exist.
            (self.base / "data" / user.username).mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        """Start the API and wait until it answers its heartbeat."""
        python = str(RALPH_VENV / "bin" / "python")
        self._log = (self.base / "ralph.log").open("ab")
        self.process = subprocess.Popen(
            [python, str(LAUNCHER), str(self.port)],
            env=self.env,
            cwd=self.base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"Ralph exited at start; see {self.base}/ralph.log")
            try:
                url = f"http://127.0.0.1:{self.port}/__lbheartbeat__"
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("Ralph did not start in time")

    def stop(self) -> None:
        """Stop the API (the stored statements stay in its folder)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def stored_lines(self, username: str) -> list[str]:
        """The raw lines of a user's statements file (what Ralph stored)."""
        path = self.base / "data" / username / "fs_lrs.jsonl"
        if not path.exists():
            return []
        return path.read_text(encoding="utf-8").splitlines()
