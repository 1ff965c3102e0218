"""Secrets by name: from the environment, else from a file in the secrets directory.

Connector files name a secret (``password_secret: EXAMPLE_LDAP_PASSWORD``); they never
hold one. A secret is returned as ``SecretStr`` so that it prints as ``**********``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr

from .errors import ConfigError
from .logging import register_secret

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_secret(name: str, secrets_dir: Path | None) -> SecretStr:
    """The secret called ``name``; raises ConfigError (without any value) if absent."""
    if not _NAME.match(name):
        raise ConfigError(f"secret name {name!r} is not a valid variable name")
    if name in os.environ:
        return _known(os.environ[name])
    if secrets_dir is not None:
        candidate = secrets_dir / name
        if candidate.is_file():
            return _known(candidate.read_text(encoding="utf-8").rstrip("\r\n"))
    where = f"the environment or {secrets_dir}" if secrets_dir else "the environment"
    raise ConfigError(f"secret {name} is not set in {where}", secret_name=name)


def _known(value: str) -> SecretStr:
    """``value`` as a secret, which log lines will show masked from now on."""
    register_secret(value)
    return SecretStr(value)
