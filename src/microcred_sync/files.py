"""Reading the operator's YAML files into pydantic models, with one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import ConfigError

ModelT = TypeVar("ModelT")


def read_yaml(path: Path, shown: str) -> Any:
    """The parsed YAML document at ``path``; ``shown`` is the name used in errors."""
    try:
        with path.open(encoding="utf-8") as stream:
            return yaml.safe_load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: file not found", file=shown) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{shown}:{where}: {problem}", file=shown) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text", file=shown) from None


def validate(document: Any, model: type[ModelT], shown: str) -> ModelT:
    """``document`` as ``model``, or ConfigError naming the file, field and problem."""
    if document is None:
        raise ConfigError(f"{shown}: the file is empty", file=shown)
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(document)
        return TypeAdapter(model).validate_python(document)
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc, shown), file=shown) from None


def load_model(path: Path, model: type[ModelT], shown: str) -> ModelT:
    """Read and validate one YAML file."""
    return validate(read_yaml(path, shown), model, shown)


def _first_problem(exc: ValidationError, shown: str) -> str:
    """One line for the first problem: file, dotted field path, message."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"] if not _is_tag(part))
    message = error["msg"].removeprefix("Value error, ")
    count = exc.error_count()
    more = (
        f" (and {count - 1} more problem{'s' if count > 2 else ''})"
        if count > 1
        else ""
    )
    return f"{shown}: {field or '(top level)'}: {message}{more}"


def _is_tag(part: object) -> bool:
    """Discriminator tags pydantic puts in locations (``csv``) are not fields."""
    return isinstance(part, str) and part.startswith("function-")
