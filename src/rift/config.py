"""One configuration object per command, built from defaults < preset < YAML file < explicit flags.

Each command's options are a dataclass; its fields become the command-line flags (``learning_rate`` ->
``--learning-rate``) and the keys of ``--config FILE.yaml``, so the two can never drift apart. The resolved
configuration is saved beside every run.

A command whose work is done by registered components (``rift train``'s objective and adversary, ``rift attack``'s
attacks) declares only its generic options; each component declares its own in an ``Options`` dataclass of its
file. The command's class says which components some values choose (``components``) and which there are
(``every_component``); its flags are its own and every component's, and ``build_config`` makes the object of the
command's class composed with the chosen components' options (``compose``), refusing in one line an option the user
gave that none of them reads. The composed object reads, saves and compares as one flat set of options.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from rift.errors import RiftError
from rift.files import write_atomic


RESOLVED = "_rift_resolved"  # marks an options object that build_config made


@dataclasses.dataclass
class NoOptions:
    """The options of a component that has none of its own."""


def option(default: Any = None, help: str = "", *, choices=None, required: bool = False, metavar=None,
           at_least: float | None = None, above: float | None = None, at_most: float | None = None,
           path: str | None = None, aliases: tuple[str, ...] = ()):
    """A field of an options object. ``choices`` is a tuple or a function giving one; ``at_least`` / ``above`` /
    ``at_most`` bound a number (of every item of a list);
    ``path`` is "dir" or "file" for an output location, checked before any work starts; ``aliases`` are other
    spellings of the flag (``--attack`` and ``--attacks``)."""
    metadata = {"help": help, "choices": choices, "required": required, "metavar": metavar, "at_least": at_least,
                "above": above, "at_most": at_most, "path": path, "aliases": aliases}
    if isinstance(default, list):  # a mutable default: every instance gets its own copy
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def choices_of(meta) -> tuple | None:
    """An option's choices: a tuple, or a function that gives them (the registered names of a kind of component,
    which a user's own registration extends)."""
    choices = meta.get("choices")
    return tuple(choices()) if callable(choices) else choices


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


def _components(cls, method: str, *args) -> list:
    """``cls``'s components: ``(label, component class)`` pairs, e.g. ``("--method rift", RIFTObjective)``; none for
    a command without components."""
    return list(getattr(cls, method)(*args)) if hasattr(cls, method) else []


@functools.cache
def compose(cls, option_classes: tuple[type, ...]) -> type:
    """``cls`` with the fields of ``option_classes`` (the chosen components' ``Options``) after its own: a subclass
    of ``cls``, so that ``isinstance`` holds. Two components may declare the same option only with one default."""
    own = {f.name: f for f in dataclasses.fields(cls)}
    added: dict[str, tuple[Any, dataclasses.Field]] = {}
    for options in option_classes:
        hints = _field_types(options)
        for field in dataclasses.fields(options):
            if field.name in own:
                raise RiftError(f"{options.__qualname__}.{field.name}: a component's option cannot be one of "
                                f"{cls.__name__}'s own")
            if field.name in added:
                if default_value(added[field.name][1]) != default_value(field):
                    raise RiftError(f"{options.__qualname__}.{field.name}: another chosen component declares it "
                                    "with another default")
                continue
            added[field.name] = (hints[field.name], field)
    if not added:
        return cls
    fields = [(name, hint, dataclasses.field(default=field.default, default_factory=field.default_factory,
                                             metadata=field.metadata)) for name, (hint, field) in added.items()]
    composed = dataclasses.make_dataclass(cls.__name__, fields, bases=(cls,))
    composed.__module__, composed.__qualname__ = cls.__module__, cls.__qualname__
    return composed


def _option_classes(components: list) -> tuple[type, ...]:
    return tuple(dict.fromkeys(component.Options for _, component in components))


def every_option(cls) -> dict[str, tuple[dataclasses.Field, Any, list[str]]]:
    """Every option a command takes, by name: its field, type and the labels of the components that read it (none
    for the command's own), the command's first, then each registered component's in registration order."""
    hints = _field_types(cls)
    found = {f.name: (f, hints[f.name], []) for f in dataclasses.fields(cls)}
    for label, component in _components(cls, "every_component"):
        hints = _field_types(component.Options)
        for field in dataclasses.fields(component.Options):
            found.setdefault(field.name, (field, hints[field.name], []))[2].append(label)
    return found


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


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, components: bool = True) -> None:
    """One flag per option: the command's own, then (``components``) each component's in a group of its own, which
    imports every component's module. Defaults are suppressed so that only flags the user typed reach the
    namespace."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    hints = _field_types(cls)
    options = every_option(cls) if components else {f.name: (f, hints[f.name], []) for f in dataclasses.fields(cls)}
    defaults = _component_defaults(cls) if components else {}
    for name, (field, hint, owners) in options.items():
        target = parser
        if owners:
            title = owner_text(owners)
            target = groups.get(title) or groups.setdefault(title, parser.add_argument_group(f"options of {title}"))
        _add_argument(target, field, hint, defaults.get(name))


def _component_defaults(cls) -> dict[str, str]:
    """For each option that components declare with different defaults, the defaults said per component:
    ``"5 for --method pgd; 3 for --method freelb"``."""
    found: dict[str, dict[str, list[str]]] = {}
    for label, component in _components(cls, "every_component"):
        for field in dataclasses.fields(component.Options):
            value = default_value(field)
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            found.setdefault(field.name, {}).setdefault(text, []).append(label)
    return {name: "; ".join(f"{value} for {owner_text(labels)}" for value, labels in by_value.items())
            for name, by_value in found.items() if len(by_value) > 1}


def _add_argument(parser, field: dataclasses.Field, hint, default_text: str | None = None) -> None:
    element, is_list = _base_type(hint)
    flag = "--" + field.name.replace("_", "-")
    meta = field.metadata
    flags = [flag, *(alias for alias in meta.get("aliases", ()) if alias != flag)]
    kwargs: dict[str, Any] = dict(default=argparse.SUPPRESS, help=meta.get("help", ""), dest=field.name)
    choices = choices_of(meta)
    if choices and is_list:  # argparse would compare the whole list: check_values checks each item
        kwargs["help"] += f" (from: {', '.join(choices)})"
    elif choices:
        kwargs["choices"] = choices
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    if element is bool:
        kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="BOOL")
    elif is_list:
        kwargs.update(type=_comma_list(element), metavar=meta.get("metavar") or "A,B,...")
    else:
        kwargs["type"] = element
    default = default_value(field)
    if default_text is not None:
        kwargs["help"] += f" (default: {default_text})"
    elif default is not None and element is not bool:
        kwargs["help"] += f" (default: {','.join(map(str, default)) if is_list else default})"
    bounds = _bounds_text(meta)
    if bounds:
        kwargs["help"] += f" ({bounds})"
    parser.add_argument(*flags, **kwargs)


def default_value(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _number_text(value: float) -> str:
    """A bound or value as people write it: whole numbers in full (a seed's 4294967295), others briefly (1e-05)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds_text(meta) -> str:
    parts = []
    if meta.get("above") is not None:
        parts.append(f"> {_number_text(meta['above'])}")
    if meta.get("at_least") is not None:
        parts.append(f">= {_number_text(meta['at_least'])}")
    if meta.get("at_most") is not None:
        parts.append(f"<= {_number_text(meta['at_most'])}")
    return " and ".join(parts)


def _number(element: type, value: Any, parse_text: bool):
    """``value`` as an ``element`` (int or float): numbers, and (``parse_text``, for YAML, which reads 1e-4 as a
    string) strings that spell one; an int must be a whole number, never a bool."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str) and not parse_text:
        raise ValueError("expected a number, got a string")
    if isinstance(value, str):
        value = value.strip()
        try:
            value = int(value) if element is int else float(value)
        except ValueError:
            value = float(value)  # "2.0" for an int; raises for text that is not a number
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"expected a finite number, got {value!r}")
    if element is int:
        if value != int(value):
            raise ValueError("expected a whole number")
        return int(value)
    return float(value)


def _convert(element: type, value: Any, parse_text: bool):
    if element in (int, float):
        return _number(element, value, parse_text)
    if element is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and parse_text:
            return _parse_bool(value)
        raise ValueError(f"expected true or false, got {value!r}")
    if element is str:
        if isinstance(value, os.PathLike):  # a path given through the API
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    return element(value)


def _coerce(hint, key: str, value: Any, source: str | None):
    """``value`` of option ``key`` checked and converted to its declared type; a one-line error names the source.
    Text is parsed (``"1e-4"``, ``"a,b"``) only from a file (``source``); values given directly must have the type."""
    parse_text = source is not None
    element, is_list = _base_type(hint)
    if value is None:
        return None
    try:
        if is_list:
            items = value.split(",") if isinstance(value, str) and parse_text else value
            if not isinstance(items, (list, tuple)):
                raise ValueError(f"expected a list, got {value!r}")
            return [_convert(element, item.strip() if isinstance(item, str) else item, parse_text) for item in items]
        return _convert(element, value, parse_text)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        where = _flag(key) if source is None else f"{source}: {key}"
        raise RiftError(f"{where}: cannot use {value!r} ({error})") from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_values(config, check_paths: bool = True) -> None:
    """Every bounded number within its bounds, every choice one of its choices, then every output location usable:
    one line for the first that is not, before any data is read or model loaded."""
    fields = dataclasses.fields(config)
    for field in fields:
        meta, value = field.metadata, getattr(config, field.name)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            choices = choices_of(meta)
            if choices and item not in choices:
                raise RiftError(f"{_flag(field.name)}: {item!r} is not one of: {', '.join(map(str, choices))}")
            bounds = _bounds_text(meta)
            if bounds and isinstance(item, (int, float)) and not (
                    (meta.get("above") is None or item > meta["above"])
                    and (meta.get("at_least") is None or item >= meta["at_least"])
                    and (meta.get("at_most") is None or item <= meta["at_most"])):
                raise RiftError(f"{_flag(field.name)} must be {bounds}, got {_number_text(item)}")
    for field in fields if check_paths else ():
        value = getattr(config, field.name)
        if field.metadata.get("path") and value is not None:
            check_output_path(value, field.metadata["path"], _flag(field.name))


def check_output_path(value: str, kind: str, flag: str) -> None:
    """An output folder (``kind`` "dir") or file ("file") that can be created and written: a probe file is written
    and removed in the nearest folder that exists."""
    if not str(value).strip():
        raise RiftError(f"{flag}: the path is empty")
    if "\0" in str(value):
        raise RiftError(f"{flag}: the path contains a NUL character")
    path = Path(value).expanduser().absolute()
    try:
        _check_writable(path, kind, flag, value)
    except OSError as error:  # a folder on the way that this user may not even look into
        raise RiftError(f"{flag} {value}: cannot write there ({error.strerror or error})") from None


def _check_writable(path: Path, kind: str, flag: str, value: str) -> None:
    if kind == "file" and path.is_dir():
        raise RiftError(f"{flag} {value}: is a folder, not a file")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise RiftError(f"{flag} {value}: exists and is not a folder")
    # nothing is created here: the nearest existing folder must take new files
    folder = path if kind == "dir" else path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise RiftError(f"{flag} {value}: {folder} is a file, so the path cannot be created")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise RiftError(f"{flag} {value}: cannot write in {folder} ({error.strerror or error})") from None
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise RiftError(f"{flag} {value}: the file is read-only")


def load_yaml(path: str | Path, option_names: bool = True) -> dict[str, Any]:
    """A YAML file's mapping; its keys read as option names (``max-length`` is ``max_length``) unless
    ``option_names`` is False."""
    path = Path(path)
    if not path.is_file():
        raise RiftError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise RiftError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RiftError(f"{path}: expected a mapping of option names to values")
    return {str(key).replace("-", "_") if option_names else str(key): value for key, value in data.items()}


def build_config(cls, cli_values: dict[str, Any], presets: dict[str, dict[str, Any]] | None = None,
                 check_paths: bool = True, unread: str = "refuse"):
    """defaults < preset < YAML (``config`` key) < flags the user typed. Unknown YAML keys are an error. For a
    command with components, the object is ``cls`` composed with the chosen components' options; an option given
    (flag, keyword or YAML key) that none of them reads is refused in one line, or with ``unread="drop"`` left out
    (options shared by differing runs: rift bench's for every cell, a saved configuration re-read). A preset's
    values are used where read. ``check_paths`` False re-reads a saved configuration, whose output folder may be
    elsewhere now."""
    hints = _field_types(cls)
    own = {f.name: (f, hints[f.name], []) for f in dataclasses.fields(cls)}

    def known(keys) -> dict[str, tuple[dataclasses.Field, Any, list[str]]]:
        # the command's own options need no component imported (nor the torch components import)
        return own if set(keys) <= set(own) else every_option(cls)

    options = known(cli_values)
    unknown = sorted(set(cli_values) - set(options))
    if unknown:  # given through the API (argparse gives only known ones)
        raise RiftError(f"unknown option(s) {', '.join(unknown)} for {cls.__name__}")
    values: dict[str, Any] = {}
    file_values: dict[str, Any] = {}
    config_path = cli_values.get("config")
    if config_path:
        file_values = load_yaml(config_path)
        options = known(set(cli_values) | set(file_values))
        unknown = sorted(set(file_values) - set(options))
        if unknown:
            raise RiftError(f"{config_path}: unknown option(s) {', '.join(unknown)}")
        file_values = {k: _coerce(options[k][1], k, v, str(config_path)) for k, v in file_values.items()}
    preset = cli_values.get("preset", file_values.get("preset"))
    if preset:
        if not presets or preset not in presets:
            raise RiftError(f"unknown preset {preset!r}; choose from {', '.join(sorted(presets or {})) or 'none'}")
        values.update(presets[preset])
    values.update(file_values)
    values.update({k: _coerce(options[k][1], k, v, None) for k, v in cli_values.items()})
    # the command's own options are checked before the chosen components (and the torch they import) are loaded
    check_values(cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__}), check_paths=False)
    chosen = _components(cls, "components", values)
    composed = compose(cls, _option_classes(chosen))
    names = {f.name for f in dataclasses.fields(composed)}
    # the command's own options that the chosen components make pointless (an adversary for a method without one)
    pointless = set(cls.pointless_options(values)) if hasattr(cls, "pointless_options") else set()
    given = {name for name in set(cli_values) | set(file_values) if name not in names or name in pointless}
    if given and unread == "refuse":
        name = sorted(given)[0]
        owners = every_option(cls)[name][2]
        # the chosen components of the kinds that read it (the --method for another method's option), else all
        kinds = {label.partition(" ")[0] for label in owners}
        what = ", ".join([label for label, _ in chosen if label.partition(" ")[0] in kinds]
                         or [label for label, _ in chosen]) or "the chosen components"
        raise RiftError(f"{_flag(name)} is not read by {what}" + (f"; it is an option of {owner_text(owners)}"
                                                                   if owners else ""))
    missing = [f.name for f in dataclasses.fields(composed) if f.metadata.get("required") and values.get(f.name) is None]
    if missing:
        raise RiftError("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    config = composed(**{k: v for k, v in values.items() if k in names})
    check_values(config, check_paths)
    if hasattr(config, "check"):
        config.check()
    config.__dict__[RESOLVED] = True  # its preset and file are applied: the API takes it as it is
    return config


def owner_text(labels: list[str]) -> str:
    """Component labels said briefly: ``["--method rift", "--method rift-clean"]`` -> ``"--method rift, rift-clean"``."""
    by_flag: dict[str, list[str]] = {}
    for label in labels:
        flag, _, name = label.partition(" ")
        by_flag.setdefault(flag, []).append(name)
    return "; ".join(f"{flag} {', '.join(names)}" for flag, names in by_flag.items())


def save_config(config, path: str | Path) -> None:
    write_atomic(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


def changed_options(config, saved_path: str | Path, may_change: set[str]) -> list[str]:
    """The options of ``config`` that differ from those saved in ``saved_path``, besides those in ``may_change``:
    what forbids continuing a run (training, attack) in the same folder with other settings."""
    saved_path = Path(saved_path)
    saved = (yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}) if saved_path.exists() else {}
    # an option missing from the saved file did not exist when that run was made: it ran with the default
    defaults = {f.name: default_value(f) for f in dataclasses.fields(config)}
    current = dataclasses.asdict(config)
    return sorted(k for k in current if k not in may_change and saved.get(k, defaults[k]) != current[k])
