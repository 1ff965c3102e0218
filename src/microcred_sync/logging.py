"""Logging set-up: run context on every line, JSON when asked, secrets redacted.

Every handler gets ``RedactionFilter``, which masks anything that looks like a
credential (``password=...``, bearer tokens, URL user info) at every level, and
``RunContextFilter``, which puts the run id, job and partner of the run in progress
on every line: a flow enters ``run_context`` when its run starts, so the lines of
the connectors and sinks it calls carry them too, whatever logger they use.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)=([^\s&,;]+)"),
    re.compile(r"(?i)\b(authorization:\s*)(\S+\s+)?(\S+)"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"(://)([^/@\s:]+):([^/@\s]+)@"),
)
MASK = "[secure]"

#: Secret values this process has read (``secrets.read_secret`` registers them),
#: masked wherever they appear, whatever the text around them looks like.
_KNOWN_SECRETS: set[str] = set()

#: Shorter values are not masked on their own: they would mask ordinary words.
_SHORTEST_MASKED = 6


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line from now on."""
    if len(value) >= _SHORTEST_MASKED:
        _KNOWN_SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with credential-looking parts and known secrets replaced by
    ``[secure]``."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
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


#: The run this thread (or task) works for, as ``{"run_id", "job", "partner"}``.
_RUN: ContextVar[dict[str, str] | None] = ContextVar("microcred_run", default=None)


@contextmanager
def run_context(*, run_id: str, job: str, partner: str) -> Iterator[None]:
    """Mark every log line written inside the block as one of this run's.

    Context variables do not follow work handed to another thread: code that does
    so passes ``contextvars.copy_context().run`` to the pool.
    """
    token = _RUN.set({"run_id": run_id, "job": job, "partner": partner})
    try:
        yield
    finally:
        _RUN.reset(token)


def current_run() -> dict[str, str] | None:
    """The run id, job and partner of the run in progress here, if any."""
    context = _RUN.get()
    return dict(context) if context else None


class RunContextFilter(logging.Filter):
    """Adds the run in progress to records that do not name one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _RUN.get()
        if context:
            for name, value in context.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
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
    """Send microcred-sync's logs to stderr, redacted, in the chosen format.

    Plain text (the default) reads well on a terminal; ``json`` writes one object
    per line for a log collector.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RunContextFilter())
    handler.addFilter(RedactionFilter())
    package = logging.getLogger("microcred_sync")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False
