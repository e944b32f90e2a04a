"""Reading a run configuration: YAML presets, ``--dotted.key value`` overrides, validation.

Config flows one way: a preset (YAML) gives defaults, command-line overrides replace single fields, the
result is validated here (unknown keys and ill-typed values are errors naming the key and the closest valid
one), then saved as ``config.yaml`` in the run folder and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from typing import Any

import yaml

from ..errors import ConfigError
from ..utils import atomic_write_text
from .schema import RENAMED_KEYS, RunConfig


def _closest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(text: str, kind: type) -> Any:
    """The forms people type for numbers, which YAML 1.1 leaves as strings: ``1e-4``, ``1E-4``, ``5e-4``, ``.5``,
    ``1_000``. Returns ``text`` unchanged when it is not a number."""
    clean = text.strip().replace("_", "")
    try:
        return int(clean) if kind is int else float(clean)
    except ValueError:
        if kind is int:
            try:
                as_float = float(clean)
            except ValueError:
                return text
            return int(as_float) if as_float.is_integer() else text
        return text


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build_dataclass(tp, value, where)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any or tp is dict:
        if tp is dict and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, str):
            value = _number(value, int)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)  # 1e3 steps
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str):
            value = _number(value, float)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def build_dataclass(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Builds ``cls`` from a (nested) dict, validating every key and value type."""
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in valid:
            _check_renamed(path)
            raise ConfigError(f"unknown config key {path!r}{_closest(key, valid)}")
        kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def _check_renamed(path: str) -> None:
    """Raises a ConfigError naming the new key when ``path`` (or a section above it) was renamed."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        old = ".".join(parts[:n])
        if old in RENAMED_KEYS:
            new = RENAMED_KEYS[old]
            rest = ".".join(parts[n:])
            target = f"{new}.{rest}" if rest and " " not in new else new
            raise ConfigError(f"config key {path!r} was renamed: use {target!r}")


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        out.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_all_keys(hints[f.name], key + "."))
    return out


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Sets ``data[a][b][c] = value`` for ``dotted == "a.b.c"``, checking the key path exists in RunConfig."""
    valid = _all_keys(RunConfig)
    if dotted not in valid:
        _check_renamed(dotted)
        raise ConfigError(f"unknown config key {dotted!r}{_closest(dotted, valid)}")
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")


def resolve_preset(name_or_path: str) -> str:
    """A preset file path, or the name of a built-in preset in ``radapter/configs`` (with or without .yaml)."""
    if os.path.isfile(name_or_path):
        return name_or_path
    for candidate in (name_or_path, f"{name_or_path}.yaml"):
        path = os.path.join(PRESET_DIR, candidate)
        if os.path.isfile(path):
            return path
    names = sorted(p[:-5] for p in os.listdir(PRESET_DIR) if p.endswith(".yaml"))
    raise ConfigError(
        f"config {name_or_path!r}: no such file and no built-in preset of that name{_closest(name_or_path, names)}; "
        f"built-in presets: {', '.join(names)}"
    )


def load_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)  # presets may extend another preset
    if base:
        parent = load_yaml(
            resolve_preset(
                base
                if os.path.isabs(base)
                else os.path.join(os.path.dirname(path), base)
                if os.path.isfile(os.path.join(os.path.dirname(path), base))
                else base
            )
        )
        data = deep_update(parent, data)
    return data


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_value(text: str) -> Any:
    """A command-line value as YAML (``1e-3`` → float, ``[0, 0.5]`` → list, ``none`` stays a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) or value is None and text.strip().lower() not in ("null", "~", ""):
        return text
    return value


def load_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Preset (file or built-in name) + ``{"dotted.key": value}`` overrides → a validated RunConfig."""
    data = load_yaml(resolve_preset(preset)) if preset else {}
    if preset:
        # validate the preset's own keys before overriding, so a typo in the file names the file
        try:
            build_dataclass(RunConfig, data)
        except ConfigError as e:
            raise ConfigError(f"{preset}: {e}") from e
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return build_dataclass(RunConfig, data)


def save_config(cfg: RunConfig, path: str) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
