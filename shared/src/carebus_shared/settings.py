"""Typed settings from environment variables, with errors that name the variable.

A settings class is a msgspec Struct. Each field is read from ``<PREFIX><FIELD>`` (upper
case) unless its type carries ``msgspec.Meta(extra={"env": "NAME"})``, which names the
variable outright (``NATS_URL``, ``DATABASE_URL`` are shared by every service).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, get_args, get_origin

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(ValueError):
    """A bad or missing environment variable; the message names it and what is expected."""


def env_name(prefix: str, field: msgspec.structs.FieldInfo) -> str:
    """The environment variable a settings field is read from."""
    if get_origin(field.type) is Annotated:
        for meta in get_args(field.type)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.extra and "env" in meta.extra:
                return str(meta.extra["env"])
    return f"{prefix}{field.name.upper()}"


def _describe(tp: Any) -> str:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return getattr(tp, "__name__", None) or str(tp)


def load_settings(cls: type[S], prefix: str, environ: Mapping[str, str] | None = None) -> S:
    """Build ``cls`` from the environment; raise SettingsError naming every bad variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in msgspec.structs.fields(cls):
        name = env_name(prefix, field)
        raw = env.get(name)
        if raw is None or raw == "":
            if field.required:
                problems.append(f"{name} is required ({_describe(field.type)})")
            continue
        try:
            # strict=False lets msgspec parse "8081" as int and "true" as bool.
            values[field.name] = msgspec.convert(raw, field.type, strict=False)
        except msgspec.ValidationError as exc:
            problems.append(f"{name}={raw!r}: {exc}")
    if problems:
        raise SettingsError("invalid configuration: " + "; ".join(problems))
    return msgspec.convert(values, cls)


def describe_settings(cls: type[msgspec.Struct], prefix: str) -> list[tuple[str, str, str]]:
    """(variable, type, default) rows for the README's configuration table and `--help`."""
    rows = []
    for field in msgspec.structs.fields(cls):
        default = "(required)" if field.required else repr(field.default)
        rows.append((env_name(prefix, field), _describe(field.type), default))
    return rows
