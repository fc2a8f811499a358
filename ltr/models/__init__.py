"""Scorers (one architecture per module, its config beside it) and their registry.

Every scorer has the :class:`ltr.types.ScorerFn` signature
``forward(features [B, L, F], mask [B, L], initial_rank=None, context=None) -> scores [B, L]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from torch import nn

from ltr.errors import ConfigError, ConfigFieldError, unknown_name
from ltr.models.mlp import MLPConfig, MLPScorer
from ltr.models.ranker import RankingModel
from ltr.models.setrank import SetRank, SetRankConfig

MODELS: dict[str, tuple[type[Any], type[nn.Module]]] = {
    "setrank": (SetRankConfig, SetRank),
    "mlp": (MLPConfig, MLPScorer),
}
"""Scorer name -> (config dataclass, model class)."""


def _lookup(name: str) -> tuple[type[Any], type[nn.Module]]:
    if name not in MODELS:
        raise unknown_name("model", name, list(MODELS))
    return MODELS[name]


def config_from_dict(name: str, d: Mapping[str, Any], *, where: str = "model") -> Any:
    """Build the config dataclass of scorer ``name`` from a mapping (e.g. parsed YAML).

    Errors name the keys as the user wrote them, under ``where`` (``model.block``), not as
    fields of the config class (``SetRankConfig.block``).

    Raises:
        RegistryError: ``name`` is not in :data:`MODELS`.
        ConfigError: a key is unknown or a required key is missing (the message lists the valid
            keys), or a value is invalid.
    """
    config_cls, _ = _lookup(name)
    valid = [f.name for f in fields(config_cls)]
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} in {where} ({name}); "
            f"valid keys: {', '.join(valid)}"
        )
    required = [
        f.name
        for f in fields(config_cls)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in d
    ]
    if required:
        raise ConfigError(f"model {name!r} needs key(s) {', '.join(required)} in {where}")
    try:
        return config_cls(**d)
    except ConfigFieldError as exc:
        if exc.owner != config_cls.__name__:
            raise
        raise exc.under(where) from None


def build_scorer(name: str, config: Mapping[str, Any] | Any) -> nn.Module:
    """Instantiate scorer ``name`` from its config dataclass or a mapping of its fields.

    Raises:
        RegistryError: ``name`` is not in :data:`MODELS`.
        ConfigError: the config is invalid or of another model's type.
    """
    config_cls, model_cls = _lookup(name)
    if isinstance(config, Mapping):
        config = config_from_dict(name, config)
    elif not isinstance(config, config_cls):
        kind = type(config).__name__ if is_dataclass(config) else repr(config)
        raise ConfigError(
            f"model {name!r} needs a {config_cls.__name__} or a dict of its fields, got {kind}"
        )
    return model_cls(config)


__all__ = [
    "MODELS",
    "MLPConfig",
    "MLPScorer",
    "RankingModel",
    "SetRank",
    "SetRankConfig",
    "build_scorer",
    "config_from_dict",
]
