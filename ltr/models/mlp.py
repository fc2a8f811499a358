"""A pointwise MLP scorer: each candidate is scored from its own features alone (baseline).

``features [B, L, F]`` (padded slots set to 0) ``(++ context [B, C] copied to every item)`` ->
``Linear -> act -> dropout`` per hidden size -> ``Linear(-> 1)`` -> scores ``[B, L]``.
The initial rank is ignored. Being pointwise it is trivially permutation-equivariant and padded
slots cannot influence real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ltr.errors import ConfigFieldError
from ltr.models._validate import check_choice, check_dropout, check_int, check_scorer_inputs
from ltr.nn.blocks import ACTIVATIONS, make_activation


@dataclass(frozen=True)
class MLPConfig:
    """Hyper-parameters of :class:`MLPScorer`."""

    num_features: int
    """F, the number of features per candidate."""
    hidden_sizes: tuple[int, ...] = (128, 64)
    """Widths of the hidden layers (empty = a linear model). Lists are accepted and stored as a
    tuple."""
    dropout: float = 0.1
    """Dropout after each hidden activation (training only)."""
    activation: str = "relu"
    """Hidden activation, a key of :data:`ltr.nn.blocks.ACTIVATIONS`."""
    context_dim: int = 0
    """Size C of a per-list context vector concatenated to every item's features (0 = none)."""

    def __post_init__(self) -> None:
        owner = "MLPConfig"
        check_int(owner, "num_features", self.num_features, 1)
        if not isinstance(self.hidden_sizes, list | tuple):
            raise ConfigFieldError(
                owner, "hidden_sizes", f"must be a list of layer widths, got {self.hidden_sizes!r}"
            )
        for i, size in enumerate(self.hidden_sizes):
            check_int(owner, f"hidden_sizes[{i}]", size, 1)
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        check_dropout(owner, "dropout", self.dropout)
        check_choice(owner, "activation", self.activation, ACTIVATIONS)
        check_int(owner, "context_dim", self.context_dim, 0)


class MLPScorer(nn.Module):
    """Score each candidate independently with a multi-layer perceptron."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.num_features + config.context_dim
        for size in config.hidden_sizes:
            layers += [nn.Linear(width, size), make_activation(config.activation)]
            layers.append(nn.Dropout(config.dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(
        self,
        features: Tensor,
        mask: Tensor,
        initial_rank: Tensor | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """Score each candidate.

        Args:
            features: ``[B, L, F]`` float candidate features (anything at padded slots).
            mask: ``[B, L]`` bool, True = real candidate.
            initial_rank: ignored (accepted for the common scorer signature).
            context: ``[B, C]`` float per-list context; required iff ``config.context_dim > 0``.

        Returns:
            ``[B, L]`` scores; values at padded slots are undefined.
        """
        c = self.config
        check_scorer_inputs(
            "MLPScorer", features, mask, c.num_features, context=context, context_dim=c.context_dim
        )
        x = features.masked_fill(~mask.unsqueeze(-1), 0.0)  # (B, L, F)
        if c.context_dim > 0:
            assert context is not None
            ctx = context.unsqueeze(1).expand(-1, x.shape[1], -1)  # (B, L, C)
            x = torch.cat([x, ctx], dim=-1)  # (B, L, F + C)
        return self.net(x).squeeze(-1)  # (B, L)
