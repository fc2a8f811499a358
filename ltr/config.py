"""Typed configuration: dataclasses, YAML loading and dotted command-line overrides.

A YAML file mirrors a dataclass (nested sections are nested dataclasses); ``--section.key value``
overrides any entry. Values given on the command line are parsed as YAML scalars, so
``--trainer.max_epochs 5``, ``--model.use_initial_rank true`` and ``--loss '{mse: 0.1}'`` all work.
Unknown keys are errors that list the valid ones; nothing is silently ignored. Sections typed
``dict`` (such as a model's own parameters) accept any key and are validated by their consumer.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ltr.errors import ConfigError, ConfigFieldError

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty mapping."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such config file: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
"""A number in exponent notation, such as ``1e-3``, which YAML 1.1 (PyYAML) leaves a string."""


def parse_overrides(tokens: Sequence[str]) -> dict[str, Any]:
    """Turn ``["--a.b", "1", "--c=x"]`` into ``{"a.b": 1, "c": "x"}`` (values parsed as YAML)."""
    result: dict[str, Any] = {}
    i = 0
    previous: tuple[str, str] | None = None  # the last option and its value
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or len(token) == 2:
            hint = ""
            if previous is not None:  # most likely a second value for the option before
                option, first = previous
                hint = (
                    f"; --{option} takes one value: give several as a YAML list, "
                    f"--{option} '[{first}, {token}]'"
                )
            raise ConfigError(f"expected an option like --section.key, got {token!r}{hint}")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise ConfigError(f"option --{key} needs a value")
            value = tokens[i + 1]
            i += 1
        previous = (key, value)
        try:
            result[key.replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            result[key.replace("-", "_")] = value
        i += 1
    return result


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted keys set (``{"a.b": 1}`` sets ``data["a"]["b"]``)."""
    out = _deep_copy(data)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"cannot set {dotted}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _deep_copy(value)  # a section given whole stays the caller's
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` as ``{dotted.key: value}``: nested non-empty mappings are opened, anything else
    (lists, empty mappings) stays whole."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and coercing simple types."""
    data = data or {}
    section = where or "the config"  # the user's name for it, never the dataclass's
    if not isinstance(data, dict):
        raise ConfigError(f"{section} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(repr(k) for k in unknown)} in "
            f"{section}; valid keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except ConfigFieldError as exc:
        if where and exc.owner == cls.__name__:  # a field of cls: name it by the user's key
            raise exc.under(where) from None
        raise
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{where} must be one of {', '.join(repr(a) for a in args)}, got {value!r}"
            )
        return value
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            value = [value]
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> T:
    """Build config ``cls`` from a YAML file (or the defaults) with dotted overrides applied."""
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or {})
    return from_dict(cls, data)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-serialisable dict of a (nested) dataclass config."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def asks_for_gpu(device: str) -> bool:
    """Whether a ``device`` setting names a GPU outright (``cuda``, ``cuda:N``); ``cpu`` and
    ``auto`` do not, so they suit the CPU-only ONNX backend too. Here, not beside the device
    code, so that settings are checked without importing torch."""
    return device.strip().lower() not in ("cpu", "auto")
