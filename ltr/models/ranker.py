"""The servable model: feature normaliser followed by a scorer, as one ``nn.Module``.

Keeping the normaliser inside the module means training, ONNX export, serving and batch scoring
all apply exactly the same transform.
"""

from __future__ import annotations

from torch import Tensor, nn


class RankingModel(nn.Module):
    """``scorer(normalizer(features), mask, initial_rank, context)``.

    Padded slots are zero-filled (``masked_fill``, which never propagates NaN) *before* the
    normaliser, so it only ever sees finite inputs there; the scorers zero-fill again after it, so a
    normaliser that maps 0 to something non-finite at a padded slot still cannot reach real scores.
    """

    def __init__(self, scorer: nn.Module, normalizer: nn.Module | None = None) -> None:
        super().__init__()
        self.normalizer = normalizer if normalizer is not None else nn.Identity()
        self.scorer = scorer

    def forward(
        self,
        features: Tensor,
        mask: Tensor,
        initial_rank: Tensor | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """Normalise the features, then score each candidate.

        Args:
            features: ``[B, L, F]`` float raw candidate features (anything at padded slots).
            mask: ``[B, L]`` bool, True = real candidate.
            initial_rank: optional ``[B, L]`` int initial ranks, passed to the scorer.
            context: optional ``[B, C]`` float context, passed to the scorer.

        Returns:
            ``[B, L]`` scores; values at padded slots are undefined.
        """
        x = features.masked_fill(~mask.unsqueeze(-1), 0.0)  # (B, L, F)
        x = self.normalizer(x)  # (B, L, F)
        return self.scorer(x, mask, initial_rank, context)  # (B, L)
