"""Logging set-up: run context on every line, JSON when asked, secrets redacted.

Every handler gets ``RedactionFilter``, which masks anything that looks like a
credential (``password=...``, bearer tokens, URL user info) at every level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)=([^\s&,;]+)"),
    re.compile(r"(?i)\b(authorization:\s*)(\S+\s+)?(\S+)"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"(://)([^/@\s:]+):([^/@\s]+)@"),
)
MASK = "[secure]"


def redact(text: str) -> str:
    """``text`` with credential-looking parts replaced by ``[secure]``."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _SECRET_PATTERNS[3].sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)


class RedactionFilter(logging.Filter):
    """Masks secrets in the formatted message of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the run context as top-level keys."""

    CONTEXT = ("run_id", "job", "partner")

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.CONTEXT:
            if hasattr(record, name):
                event[name] = getattr(record, name)
        if record.exc_info:
            event["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines: time, level, logger, run context, message."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in JsonFormatter.CONTEXT
            if hasattr(record, name)
        )
        base = f"{self.formatTime(record)} {record.levelname:<7} {record.name}"
        line = (
            f"{base} [{context}] {record.getMessage()}"
            if context
            else (f"{base} {record.getMessage()}")
        )
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that puts run id, job and partner on every line."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def run_logger(name: str, *, run_id: str, job: str, partner: str) -> RunLogger:
    """A logger for one run of one job."""
    context = {"run_id": run_id, "job": job, "partner": partner}
    return RunLogger(logging.getLogger(name), context)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send microcred-sync's logs to stderr, redacted, in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactionFilter())
    package = logging.getLogger("microcred_sync")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False
