"""One configuration object per command, built from defaults < preset < YAML file < explicit flags.

Each command's options are a dataclass; its fields become the command-line flags (``learning_rate`` ->
``--learning-rate``) and the keys of ``--config FILE.yaml``, so the two can never drift apart. The resolved
configuration is saved beside every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from rift.errors import RiftError


def option(default: Any = None, help: str = "", *, choices: tuple | None = None, required: bool = False, metavar=None):
    metadata = {"help": help, "choices": choices, "required": required, "metavar": metavar}
    if isinstance(default, list):  # a mutable default: every instance gets its own copy
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _base_type(annotation) -> tuple[type, bool]:
    """(element type, is_list) of an annotation such as ``int | None`` or ``list[str] | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _comma_list(element: type):
    def parse(text: str) -> list:
        return [element(item.strip()) for item in text.split(",") if item.strip()]

    return parse


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per field. Defaults are suppressed so that only flags the user typed reach the namespace."""
    hints = _field_types(cls)
    for field in dataclasses.fields(cls):
        element, is_list = _base_type(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        meta = field.metadata
        kwargs: dict[str, Any] = dict(default=argparse.SUPPRESS, help=meta.get("help", ""), dest=field.name)
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if element is bool:
            kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
        elif is_list:
            kwargs.update(type=_comma_list(element), metavar=meta.get("metavar") or "A,B,...")
        else:
            kwargs["type"] = element
        default = default_value(field)
        if default is not None and element is not bool:
            kwargs["help"] += f" (default: {','.join(map(str, default)) if is_list else default})"
        parser.add_argument(flag, **kwargs)


def default_value(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _coerce(cls, key: str, value: Any, source: str):
    hints = _field_types(cls)
    element, is_list = _base_type(hints[key])
    if value is None:
        return None
    try:
        if is_list:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [element(item.strip() if isinstance(item, str) else item) for item in items]
        if element is bool:
            return _parse_bool(value)
        return element(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        raise RiftError(f"{source}: {key}: cannot use {value!r} ({error})") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RiftError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise RiftError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RiftError(f"{path}: expected a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def build_config(cls, cli_values: dict[str, Any], presets: dict[str, dict[str, Any]] | None = None):
    """defaults < preset < YAML (``config`` key) < flags the user typed. Unknown YAML keys are an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    file_values: dict[str, Any] = {}
    config_path = cli_values.get("config")
    if config_path:
        file_values = load_yaml(config_path)
        unknown = sorted(set(file_values) - names)
        if unknown:
            raise RiftError(f"{config_path}: unknown option(s) {', '.join(unknown)}")
        file_values = {k: _coerce(cls, k, v, str(config_path)) for k, v in file_values.items()}
    preset = cli_values.get("preset", file_values.get("preset"))
    if preset:
        if not presets or preset not in presets:
            raise RiftError(f"unknown preset {preset!r}; choose from {', '.join(sorted(presets or {})) or 'none'}")
        values.update(presets[preset])
    values.update(file_values)
    values.update(cli_values)
    missing = [f.name for f in dataclasses.fields(cls) if f.metadata.get("required") and values.get(f.name) is None]
    if missing:
        raise RiftError("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    return cls(**{k: v for k, v in values.items() if k in names})


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")


def changed_options(config, saved_path: str | Path, may_change: set[str]) -> list[str]:
    """The options of ``config`` that differ from those saved in ``saved_path``, besides those in ``may_change``:
    what forbids continuing a run (training, attack) in the same folder with other settings."""
    saved_path = Path(saved_path)
    saved = (yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}) if saved_path.exists() else {}
    # an option missing from the saved file did not exist when that run was made: it ran with the default
    defaults = {f.name: default_value(f) for f in dataclasses.fields(config)}
    current = dataclasses.asdict(config)
    return sorted(k for k in current if k not in may_change and saved.get(k, defaults[k]) != current[k])
