"""The loss registry and the one entry point training configs use: :func:`build_loss`.

A config names a loss, or a weighted combination of losses::

    loss: lambdaloss                                  # one loss, default hyper-parameters
    loss: {lambdaloss: 1.0, mse: 0.1}                 # weighted sum
    loss: {neural_ndcg: {weight: 1.0, temperature: 0.5}, mse: 0.1}

Each value is a weight, or a mapping with an optional ``weight`` (default 1.0) and the loss's own
keyword hyper-parameters.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ltr.errors import ConfigError, unknown_name
from ltr.losses.approx_ndcg import approx_ndcg_loss
from ltr.losses.lambdaloss import lambdaloss_loss
from ltr.losses.listwise import listmle_loss, listnet_loss, softmax_loss
from ltr.losses.neural_ndcg import neural_ndcg_loss
from ltr.losses.pairwise import lambdarank_loss, pairwise_hinge_loss, ranknet_loss
from ltr.losses.pointwise import mse_loss, sigmoid_bce_loss
from ltr.types import LossFn, Reduction

LOSSES: dict[str, LossFn] = {
    "mse": mse_loss,
    "sigmoid_bce": sigmoid_bce_loss,
    "ranknet": ranknet_loss,
    "lambdarank": lambdarank_loss,
    "hinge": pairwise_hinge_loss,
    "softmax": softmax_loss,
    "listnet": listnet_loss,
    "listmle": listmle_loss,
    "approx_ndcg": approx_ndcg_loss,
    "neural_ndcg": neural_ndcg_loss,
    "lambdaloss": lambdaloss_loss,
}
"""Every ranking loss by its config name. Add a loss here and the property tests cover it."""

_CALL_ARGUMENTS = frozenset({"scores", "labels", "mask", "reduction"})


def loss_parameters(name: str) -> dict[str, Any]:
    """The hyper-parameters of loss ``name`` with their defaults (not ``mask``, ``reduction``)."""
    fn = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.name not in _CALL_ARGUMENTS
    }


def get_loss(name: str, **kwargs: Any) -> LossFn:
    """Return registered loss ``name`` with the hyper-parameters in ``kwargs`` bound.

    The hyper-parameters are checked at once (names and values) on a one-item dummy list, so a
    bad config fails when it is loaded, not at the first training step.

    Raises:
        RegistryError: ``name`` is not in :data:`LOSSES` (the message lists the valid names).
        ConfigError: a keyword is not a parameter of that loss, or its value is invalid.
    """
    fn = _lookup(name)
    valid = loss_parameters(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"loss {name!r} has no parameter {', '.join(map(repr, unknown))}; valid parameters: "
            f"{', '.join(valid) or 'none'}"
        )
    bound: LossFn = functools.partial(fn, **kwargs) if kwargs else fn
    one = torch.ones(1, 1)
    bound(one, one, mask=one.bool())  # raises ConfigError for invalid values
    return bound


@dataclass(frozen=True)
class LossTerm:
    """One weighted component of a :class:`CombinedLoss`."""

    name: str
    """Registry name of the loss."""
    weight: float
    """Non-negative finite multiplier."""
    params: Mapping[str, Any]
    """Hyper-parameters bound to the loss."""
    fn: LossFn
    """The loss with :attr:`params` bound."""


class CombinedLoss:
    """Weighted sum of registered losses: ``L = sum_k w_k L_k``.

    Each component is reduced with the same ``reduction`` before weighting, so with
    ``"none"`` the result is the ``[B]`` weighted sum of per-list losses.

    Example:
        >>> loss = CombinedLoss({"lambdaloss": 1.0, "mse": {"weight": 0.1}})
        >>> [t.name for t in loss.terms]
        ['lambdaloss', 'mse']
    """

    def __init__(self, spec: Mapping[str, float | Mapping[str, Any]]) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(
                f"a combined loss needs a non-empty mapping {{loss name: weight}}, got {spec!r}"
            )
        self.terms: tuple[LossTerm, ...] = tuple(_parse_term(n, v) for n, v in spec.items())
        if not any(term.weight > 0 for term in self.terms):
            raise ConfigError(f"a combined loss needs at least one weight > 0, got {dict(spec)!r}")

    def __call__(
        self, scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
    ) -> Tensor:
        """``sum_k w_k * loss_k(scores, labels, mask=mask, reduction=reduction)``."""
        total: Tensor | None = None
        for term in self.terms:
            if term.weight == 0:
                continue
            value = term.weight * term.fn(scores, labels, mask=mask, reduction=reduction)
            total = value if total is None else total + value
        assert total is not None  # guaranteed by __init__
        return total

    def components(
        self, scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
    ) -> dict[str, Tensor]:
        """Each component's unweighted value, by loss name (for logging)."""
        return {t.name: t.fn(scores, labels, mask=mask, reduction=reduction) for t in self.terms}

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{t.name}: {t.weight:g}" + (f" {dict(t.params)}" if t.params else "")
            for t in self.terms
        )
        return f"CombinedLoss({{{parts}}})"


def build_loss(spec: str | Mapping[str, float | Mapping[str, Any]]) -> LossFn:
    """Build the training loss from a config value: a loss name, or ``{name: weight | params}``.

    A string gives the registered loss with default hyper-parameters; a mapping gives a
    :class:`CombinedLoss` (see the module docstring for the format).
    """
    if isinstance(spec, str):
        if spec not in LOSSES and any(c in spec for c in "{}[]:,"):
            # e.g. --loss '{lambdaloss: 1.0, mse: 0.1' (a brace missing): the command line keeps
            # a value that does not parse as YAML as it was written, a string
            raise ConfigError(
                f"loss {spec!r} is neither a loss name nor valid YAML; write a name "
                f"({', '.join(sorted(LOSSES))}), or a mapping of names to weights such as "
                "'{lambdaloss: 1.0, mse: 0.1}' or '{neural_ndcg: {weight: 1.0, temperature: "
                "0.5}}', its braces closed"
            )
        return get_loss(spec)
    if isinstance(spec, Mapping):
        return CombinedLoss(spec)
    raise ConfigError(
        f"loss must be a loss name or a mapping {{name: weight or {{weight: ..., params}}}}, "
        f"got {type(spec).__name__} {spec!r}"
    )


def _lookup(name: str) -> LossFn:
    if not isinstance(name, str) or name not in LOSSES:
        raise unknown_name("loss", str(name), list(LOSSES))
    return LOSSES[name]


def _parse_term(name: str, value: float | Mapping[str, Any]) -> LossTerm:
    """Turn one ``name: weight`` or ``name: {weight: ..., **params}`` entry into a term."""
    if isinstance(value, Mapping):
        params = dict(value)
        weight = params.pop("weight", 1.0)
    else:
        params, weight = {}, value
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ConfigError(f"loss {name!r}: weight must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"loss {name!r}: weight must be finite and >= 0, got {weight!r}")
    return LossTerm(name=name, weight=float(weight), params=params, fn=get_loss(name, **params))
