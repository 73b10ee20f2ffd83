"""``reminders config show``: every effective setting, secrets masked, with its source."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from tasks.settings import Settings, env_name

__all__ = ["settings_sources"]


def _leaves(model: BaseModel, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            out += _leaves(value, f"{path}.")
        else:
            out.append((path, value))
    return out


def _in_file(data: dict[str, Any], path: str) -> bool:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _env_sets(path: str) -> str | None:
    """The environment variable that sets ``path`` (itself or an enclosing section)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        name = env_name(".".join(parts[:i]))
        if name in os.environ:
            return name
    return None


def settings_sources(settings: Settings) -> list[tuple[str, str, str]]:
    """(dotted key, value with secrets masked, source) for every leaf setting; the source is
    ``env NAME``, ``file PATH`` or ``default`` (first wins, as in tasks.settings)."""
    toml = Path(os.environ.get("REMINDERS_CONFIG", "reminders.toml"))
    data: dict[str, Any] = {}
    if toml.is_file():
        with toml.open("rb") as handle:
            data = tomllib.load(handle)
    rows = []
    for path, value in _leaves(settings):
        shown = "•••" if isinstance(value, SecretStr) else repr(value)
        if isinstance(value, dict) and any(isinstance(v, SecretStr) for v in value.values()):
            shown = "{…secrets masked…}"
        env = _env_sets(path)
        source = f"env {env}" if env else f"file {toml}" if _in_file(data, path) else "default"
        rows.append((path, shown, source))
    return rows
