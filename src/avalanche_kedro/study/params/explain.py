"""Messages for parameters that fail their block's model: the key, the file, the allowed values.

Kedro validates typed parameters itself (``kedro.validation``), but its message names neither
the file a value came from nor the values a key allows. The project's context
(:mod:`avalanche_kedro.framework.context`) catches Kedro's error and calls
:func:`parameter_problems` here for one line per bad value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, RootModel, ValidationError

_MISSING = object()


def lookup(params: Mapping[str, Any], key: str) -> Any:
    """``params[key]`` for a dotted key (the flat key first, as Kedro does); missing -> _MISSING."""
    if key in params:
        return params[key]
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


_TYPE_TAGS = {"int", "float", "str", "bool", "list", "dict", "none", "is-instance"}


def _is_union_tag(part: Any) -> bool:
    """Parts of a pydantic error location that name a union member, not a key."""
    return isinstance(part, str) and (
        "[" in part
        or "'" in part
        or part.startswith(("function-", "constrained-"))
        or part in _TYPE_TAGS
    )


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in get_args(annotation):
        found += _models_in(arg)
    return found


def _describe(model: type[BaseModel], path: list[Any]) -> tuple[str | None, list[str] | None]:
    """The description of the field at ``path`` and the keys allowed beside it."""
    current: list[type[BaseModel]] = [model]
    # a whole block (gain_grid: []) is described by its model's first docstring line
    description = (model.__doc__ or "").strip().splitlines()[0] if not path else None
    keys = None
    for part in path:
        nested = []
        for cls in current:
            if issubclass(cls, RootModel):
                nested += _models_in(cls.model_fields["root"].annotation)
                continue
            keys = sorted(cls.model_fields)
            field = cls.model_fields.get(part) if isinstance(part, str) else None
            if field is not None:
                description = field.description or description
                nested += _models_in(field.annotation)
        if not nested and isinstance(part, str):
            # a key of a mapping field (models.<role>, embedded_checkpoints.<name>)
            nested = [m for cls in current for m in _mapping_values(cls)]
        current = nested or current
    return description, keys


def _mapping_values(cls: type[BaseModel]) -> list[type[BaseModel]]:
    if issubclass(cls, RootModel):
        annotation = cls.model_fields["root"].annotation
        if get_origin(annotation) is dict:
            return _models_in(get_args(annotation)[1])
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _errors(key: str, model: type[BaseModel], raw: Any) -> list[dict[str, Any]]:
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            parts = [p for p in error["loc"] if not _is_union_tag(p) and p != "[key]"]
            found.append({"path": parts, "error": error})
        return found
    return []


def parameter_problems(
    params: Mapping[str, Any],
    requirements: Mapping[str, type],
    source_of: Callable[[str], str | None] = lambda key: None,
) -> list[str]:
    """One line per invalid value of ``params`` under ``requirements`` (key -> model class)."""
    lines: list[str] = []
    for key, model in requirements.items():
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        raw = lookup(params, key)
        if raw is _MISSING:
            continue
        found = _errors(key, model, raw)
        paths = [tuple(map(str, f["path"])) for f in found]
        merged: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for entry, path in zip(found, paths, strict=True):
            # a union's member that failed higher up (target_rates: not 'auto') is noise when
            # the list member points at the bad entry itself
            if any(other[: len(path)] == path and len(other) > len(path) for other in paths):
                continue
            merged.setdefault(path, []).append(entry)
        for path, entries in merged.items():
            dotted = ".".join([key, *path])
            first = entries[0]["error"]
            messages = " or ".join(dict.fromkeys(e["error"]["msg"] for e in entries))
            description, keys = _describe(model, [p for p in entries[0]["path"]])
            if first["type"] == "extra_forbidden":
                allowed = f"allowed keys here: {', '.join(keys or [])}"
                messages = "unknown key"
            else:
                allowed = f"allowed: {description}" if description else ""
            source = source_of(dotted)
            where = f" (from {source})" if source else ""
            value = "" if first["type"] == "missing" else f" = {_short(first.get('input'))}"
            lines.append(
                f"{dotted}{value}{where}: {messages}" + (f"; {allowed}" if allowed else "")
            )
    return lines


def _flatten_keys(tree: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(tree, Mapping):
        for name, value in tree.items():
            dotted = f"{prefix}.{name}" if prefix else str(name)
            yield dotted
            yield from _flatten_keys(value, dotted)


def parameter_sources(
    conf_root: str | Path, envs: Iterable[str], runtime_params: Mapping[str, Any] | None = None
) -> Callable[[str], str | None]:
    """A function naming where a dotted parameter key was set: the parameter file of the last
    of ``envs`` that sets it (or its closest parent key), or ``--params``.

    Reads ``parameters*.yml`` (and ``parameters*/**/*.yml``) of each environment folder as
    plain YAML, as Kedro's default ``parameters`` pattern does.
    """
    root = Path(conf_root)
    origin: dict[str, str] = {}
    for env in envs:
        folder = root / env
        files = sorted({*folder.glob("parameters*.yml"), *folder.glob("parameters*/**/*.yml")})
        for path in files:
            try:
                tree = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            shown = path.relative_to(root.parent) if root.parent in path.parents else path
            for dotted in _flatten_keys(tree):
                origin[dotted] = str(shown)
    runtime = set(_flatten_keys(dict(runtime_params or {})))

    def source_of(key: str) -> str | None:
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in runtime:
                return "--params"
            if prefix in origin:
                return origin[prefix]
        return None

    return source_of


__all__ = ["lookup", "parameter_problems", "parameter_sources"]
