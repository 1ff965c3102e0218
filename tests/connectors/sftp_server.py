"""OpenSSH's sshd on 127.0.0.1 in a throwaway configuration, serving SFTP.

The server has its own host key and accepts one client key, both made here with
ssh-keygen; it serves the folders under its ``home`` through ``internal-sftp``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"

#: Where sshd wants its privilege separation directory when started as root.
PRIVSEP_DIR = Path("/run/sshd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_key(path: Path, kind: str = "ed25519") -> None:
    """A key pair at ``path`` and ``path.pub``, without a passphrase."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "test", "-f", str(path)],
        check=True,
    )


@dataclass
class Sshd:
    """A running sshd and what a client needs to reach it."""

    folder: Path
    port: int
    user: str
    process: subprocess.Popen[bytes]

    @property
    def host_key_line(self) -> str:
        """The server's host key as ``keytype base64``, for ``host_keys``."""
        text = (self.folder / "host_ed25519_key.pub").read_text(encoding="utf-8")
        kind, blob = text.split()[:2]
        return f"{kind} {blob}"

    @property
    def client_key(self) -> str:
        """The private key the server accepts (the text a secret would hold)."""
        return (self.folder / "client_key").read_text(encoding="utf-8")

    @property
    def log(self) -> str:
        return (self.folder / "sshd.log").read_text(encoding="utf-8", errors="replace")

    def drop_sessions(self) -> int:
        """Kill the session processes of connected clients (the listener stays):
        every open connection drops. Returns how many were killed."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        for child in children:
            child.kill()
        psutil.wait_procs(children, timeout=5)
        return len(children)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sshd(folder: Path) -> Sshd:
    """Start sshd serving SFTP on a free port; waits until it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    make_key(folder / "host_ed25519_key")
    make_key(folder / "client_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
    port, user = free_port(), getpass.getuser()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_ed25519_key'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                f"AllowUsers {user}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                "",
            ]
        ),
        encoding="utf-8",
    )
    log = (folder / "sshd.log").open("wb")
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = Sshd(folder, port, user, process)
    _wait_for_banner(server)
    return server


def _wait_for_banner(server: Sshd) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"sshd exited: {server.log}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not answer on {server.port}: {server.log}")
