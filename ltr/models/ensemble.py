"""Several trained ranking models scored as one: the mean of their (standardised) scores.

Neural rankers trained from different seeds reach similar quality by different routes, and the
mean of their scores ranks better than a typical one of them (``docs/BENCHMARKS.md``, *Seed
ensembles*). Each member keeps its own feature normaliser, so members need only share the
feature schema and the model inputs (initial ranks, context vector).

Two ways to combine, ``combine``:

* ``zscore`` (default): each member's scores are standardised within each list (mean 0, standard
  deviation 1 over the list's real candidates) before the mean, so that a member whose scores
  happen to spread wider does not outvote the others. A listwise loss fixes scores only up to a
  shift, and their spread differs from seed to seed.
* ``mean``: the plain mean of the members' scores, for members whose scores share one scale
  (pointwise regressors of the label).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ltr.errors import ConfigError

COMBINES = ("zscore", "mean")
ENSEMBLE = "ensemble"
"""The architecture name an ensemble's manifest carries."""
_VARIANCE_FLOOR = 1e-6  # a list whose scores are (nearly) all equal standardises to about 0


def standardize(scores: Tensor, mask: Tensor) -> Tensor:
    """Scores ``[..., B, L]`` shifted and scaled to mean 0 and standard deviation 1 over each
    list's real candidates (``mask [B, L]``); 0 at padded slots, and for a list of one."""
    m = mask.to(scores.dtype)  # (B, L)
    count = m.sum(-1, keepdim=True).clamp(min=1.0)  # (B, 1)
    s = scores.masked_fill(~mask, 0.0)  # (..., B, L)
    mean = s.sum(-1, keepdim=True) / count  # (..., B, 1)
    centred = (s - mean) * m  # (..., B, L)
    variance = centred.square().sum(-1, keepdim=True) / count  # (..., B, 1)
    return centred / torch.sqrt(variance + _VARIANCE_FLOOR)


class RankingEnsemble(nn.Module):
    """The mean of ``members``' scores (each a :class:`~ltr.models.RankingModel` or an ensemble),
    standardised per list first when ``combine`` is ``zscore``.

    Same signature as every model: ``forward(features [B, L, F], mask [B, L], initial_rank,
    context) -> scores [B, L]``; values at padded slots are 0.
    """

    def __init__(self, members: Sequence[nn.Module], combine: str = "zscore") -> None:
        super().__init__()
        if combine not in COMBINES:
            raise ConfigError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 models, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    @property
    def normalizer(self) -> nn.Module:
        """The first member's feature normaliser (what the raw inputs look like to it)."""
        return self.members[0].normalizer

    def forward(
        self,
        features: Tensor,
        mask: Tensor,
        initial_rank: Tensor | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        scores = torch.stack(
            [member(features, mask, initial_rank, context) for member in self.members]
        )  # (K, B, L)
        if self.combine == "zscore":
            scores = standardize(scores, mask)  # (K, B, L)
        else:
            scores = scores.masked_fill(~mask, 0.0)  # (K, B, L)
        return scores.mean(0)  # (B, L)
