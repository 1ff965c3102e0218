"""Reading the operator's YAML files into pydantic models, with one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import ConfigError

ModelT = TypeVar("ModelT")


try:
    # The safe loader on libyaml's parser, when PyYAML was built with it: a
    # project of 200 jobs reads in a third of the time.
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class StrictLoader(_SafeLoader):
    """The safe loader, except that a key given twice in one mapping is an error.

    Plain PyYAML keeps the last value, so a second ``path:`` would silently win.
    Keys brought in by a merge (``<<: *defaults``) may still be overridden.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                # An unhashable key: the base constructor reports it.
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, shown: str) -> Any:
    """The parsed YAML document at ``path``; ``shown`` is the name used in errors.

    Raises ConfigError ``<shown>: line N: <problem>`` for a missing or unreadable
    file, a syntax error or a key given twice in one mapping.
    """
    try:
        with path.open(encoding="utf-8") as stream:
            return yaml.load(stream, Loader=StrictLoader)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(exc, shown)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None


def _yaml_problem(exc: yaml.YAMLError, shown: str) -> str:
    """``<shown>: line N: <problem>``, and where the construct the parser was in
    began when that is another line: an unclosed quote or bracket is found only
    lines later, where the text stops making sense."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or "not valid YAML"
    began, context = getattr(exc, "context_mark", None), getattr(exc, "context", None)
    if began is not None and context and (mark is None or began.line != mark.line):
        problem += f" ({context} that begins on line {began.line + 1})"
    return f"{shown}:{where}: {problem}"


def validate(document: Any, model: type[ModelT], shown: str) -> ModelT:
    """``document`` as ``model``, or ConfigError naming the file, field and problem."""
    if document is None:
        raise ConfigError(f"{shown}: the file is empty")
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(document)
        validated: ModelT = _adapter(model).validate_python(document)
        return validated
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc, shown, document, model)) from None


#: One validator per type: building one costs more than validating a file.
_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def load_model(path: Path, model: type[ModelT], shown: str) -> ModelT:
    """Read and validate one YAML file."""
    return validate(read_yaml(path, shown), model, shown)


def _first_problem(
    exc: ValidationError, shown: str, document: Any = None, model: Any = None
) -> str:
    """One line for the first problem: file, dotted field path, message."""
    error = exc.errors()[0]
    location = list(error["loc"])
    kind = document.get("kind") if isinstance(document, dict) else None
    if location and kind is not None and location[0] == kind:
        # A union chosen by ``kind`` (connector files) puts the kind first.
        location = location[1:]
    field = ".".join(str(part) for part in location if not _is_tag(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        field = "kind"
        message = (
            f"unknown kind {kind!r}" if kind is not None else "missing"
        ) + f" (known: {_known_tags(error, model)})"
    count = exc.error_count()
    more = (
        f" (and {count - 1} more problem{'s' if count > 2 else ''})"
        if count > 1
        else ""
    )
    return f"{shown}: {field or '(top level)'}: {message}{more}"


def _known_tags(error: Any, model: Any) -> str:
    """The kinds a union accepts: from pydantic's error (an unknown kind), or
    from the model's own schema (no kind at all)."""
    tags = str(error.get("ctx", {}).get("expected_tags", ""))
    if not tags and model is not None:
        schema = _adapter(model).core_schema
        if schema.get("type") == "tagged-union":
            tags = ", ".join(str(tag) for tag in schema["choices"])
    return tags.replace("'", "") or "see the documentation"


def _is_tag(part: object) -> bool:
    """Discriminator tags pydantic puts in locations (``csv``) are not fields."""
    return isinstance(part, str) and part.startswith("function-")
