"""Checks shared by the scorer configs (``__post_init__``) and the scorers' ``forward``.

Config errors are :class:`~ltr.errors.ConfigFieldError`, which name ``owner.field`` (the config
class; :func:`ltr.models.config_from_dict` names the user's section instead). At ``forward``
time, an input that disagrees with the configuration (feature count, context size, a missing
initial rank) is a ``ConfigError`` (the model and the data were set up differently); inputs that
are inconsistent with each other (mask shape, tensor ranks, dtypes) are ``ValueError``, like
:class:`ltr.types.ListBatch`.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor

from ltr.errors import ConfigError, ConfigFieldError


def check_int(owner: str, name: str, value: object, minimum: int) -> None:
    """Require ``value`` to be an ``int`` (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigFieldError(owner, name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigFieldError(owner, name, f"must be >= {minimum}, got {value}")


def check_bool(owner: str, name: str, value: object) -> None:
    """Require ``value`` to be a ``bool``."""
    if not isinstance(value, bool):
        raise ConfigFieldError(owner, name, f"must be true or false, got {value!r}")


def check_dropout(owner: str, name: str, value: object) -> None:
    """Require a probability in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigFieldError(owner, name, f"must be a number in [0, 1), got {value!r}")


def check_choice(owner: str, name: str, value: object, valid: Collection[str]) -> None:
    """Require ``value`` to be one of ``valid``."""
    if value not in valid:
        raise ConfigFieldError(
            owner, name, f"must be one of {', '.join(sorted(valid))}; got {value!r}"
        )


def _checks_enabled() -> bool:
    # Skipped while tracing/exporting, so the exported graph holds no Python-side shape guards.
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling())


def check_scorer_inputs(
    model: str,
    features: Tensor,
    mask: Tensor,
    num_features: int,
    *,
    context: Tensor | None = None,
    context_dim: int = 0,
) -> None:
    """Validate ``features [B, L, F]``, ``mask [B, L]`` and (if used) ``context [B, C]``."""
    if not _checks_enabled():
        return
    if features.dim() != 3:
        raise ValueError(f"features must be [batch, list, features], got {tuple(features.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = real item), got {mask.dtype}")
    if tuple(mask.shape) != tuple(features.shape[:2]):
        raise ValueError(
            f"mask must have shape {tuple(features.shape[:2])} to match features, "
            f"got {tuple(mask.shape)}"
        )
    if features.shape[2] != num_features:
        raise ConfigError(
            f"{model} expects {num_features} features per item (num_features), "
            f"got {features.shape[2]}"
        )
    if context_dim > 0:
        if context is None:
            raise ConfigError(
                f"{model} was configured with context_dim={context_dim} but no context was given; "
                "pass context [batch, context_dim] or set context_dim=0"
            )
        if context.dim() != 2 or tuple(context.shape) != (features.shape[0], context_dim):
            raise ConfigError(
                f"{model} expects context of shape {(features.shape[0], context_dim)}, "
                f"got {tuple(context.shape)}"
            )


def check_initial_rank(model: str, initial_rank: Tensor | None, mask: Tensor) -> None:
    """Validate ``initial_rank [B, L]`` (integer) for a model that uses it."""
    if not _checks_enabled():
        return
    if initial_rank is None:
        raise ConfigError(
            f"{model} was configured with use_initial_rank=True but no initial_rank was given; "
            "pass initial_rank [batch, list] or set use_initial_rank=False"
        )
    if initial_rank.dtype.is_floating_point or initial_rank.dtype == torch.bool:
        raise ValueError(f"initial_rank must be an integer tensor, got {initial_rank.dtype}")
    if tuple(initial_rank.shape) != tuple(mask.shape):
        raise ValueError(
            f"initial_rank must have shape {tuple(mask.shape)} to match the mask, "
            f"got {tuple(initial_rank.shape)}"
        )
