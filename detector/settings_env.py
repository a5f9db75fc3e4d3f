"""Reading the settings: the environment, a dotenv file and command-line overrides, checked so
that every error names its variable (pydantic-settings would silently ignore a misspelt name
and report a bad JSON value without naming it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from detector.errors import SettingsError
from detector.settings import ENV_PREFIX, Settings, iter_setting_fields, known_env_names


def load_settings(env_file: Path | None = None,
                  overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    """Read and validate the settings, raising SettingsError naming the offending variable.

    Precedence, highest first: `overrides` ({section: {field: value}}, e.g. command-line
    flags), the environment, `env_file` (DETECTOR_* lines of a dotenv file; other names in it
    are left alone), the defaults.
    """
    from_file = _read_env_file(env_file) if env_file else {}
    _check_names(os.environ, "")
    _check_names(from_file, f"{env_file}: ")
    _check_json_settings(os.environ, "")
    _check_json_settings(from_file, f"{env_file}: ")
    environ = {k.upper() for k in os.environ}
    fields = {env: (section, field) for env, section, field in _env_fields()}
    layered: dict[str, dict[str, Any]] = {}
    for name, raw in from_file.items():
        if name in fields and name not in environ:
            section, field = fields[name]
            layered.setdefault(section, {})[field] = _from_text(raw, section, field)
    for section, values in (overrides or {}).items():
        layered.setdefault(section, {}).update(values)
    try:
        return Settings(**layered)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _env_fields() -> Iterator[tuple[str, str, str]]:
    for section, field in Settings.model_fields.items():
        for name in field.annotation.model_fields:  # type: ignore[union-attr]
            yield f"{ENV_PREFIX}{section}_{name}".upper(), section, name


def _read_env_file(path: Path) -> dict[str, str]:
    """The DETECTOR_* assignments of a dotenv file (names upper-cased)."""
    from dotenv import dotenv_values  # noqa: PLC0415 - only when a file is given

    if not path.is_file():
        raise SettingsError(f"--env-file: {path}: no such file")
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--env-file: {path}: cannot read it ({exc})") from None
    return {k.upper(): v or "" for k, v in values.items() if k.upper().startswith(ENV_PREFIX)}


def _from_text(raw: str, section: str, field: str) -> Any:
    """A variable's text as the environment source would hand it on: JSON for dict fields."""
    default = Settings.model_fields[section].annotation.model_fields[field]  # type: ignore
    return json.loads(raw) if isinstance(default.get_default(call_default_factory=True),
                                         dict | list) else raw


def _check_names(variables: Mapping[str, str], where: str) -> None:
    known = known_env_names()
    unknown = sorted(k for k in variables
                     if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
    if unknown:
        raise SettingsError(f"{where}{unknown[0]}: unknown setting (every setting is listed "
                            "in config.example.env)")


def _check_json_settings(variables: Mapping[str, str], where: str) -> None:
    """JSON-valued settings fail inside pydantic-settings without naming the variable."""
    for env_name, _, default, _ in iter_setting_fields():
        raw = variables.get(env_name)
        if raw is not None and isinstance(default, dict | list):
            try:
                json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{where}{env_name}: not valid JSON ({exc.msg})") from None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    message = first["msg"].removeprefix("Value error, ")
    if len(loc) == 1 and first.get("type") == "value_error":
        # A cross-field check of a section: its message starts with the field it blames.
        blamed = message.split(":")[0].split()[0]
        loc.append(blamed)
        message = message.removeprefix(f"{blamed}: ")
    name = f"{ENV_PREFIX}{'_'.join(loc)}".upper() if loc else "settings"
    if first.get("type") not in ("value_error", "missing") and "input" in first:
        shown = first["input"]
        if isinstance(shown, str | int | float) and "password" not in name.lower():
            message = f"{message} (got {shown!r})"
    return f"{name}: {message}"
