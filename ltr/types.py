"""Shared contracts: the list batch, loss/metric protocols and conventions.

This module imports nothing from the rest of :mod:`ltr` so that every layer (data, models, losses,
metrics, training, serving) can depend on it without depending on each other.

Conventions used everywhere in the package
------------------------------------------
* Shapes are ``[batch, list]`` for scores, labels and masks and ``[batch, list, features]`` for
  features. ``B`` = number of lists (queries), ``L`` = padded list length, ``F`` = feature count.
* ``mask`` is boolean, ``True`` = a real candidate, ``False`` = a padded slot. Validity is never
  encoded in label values.
* Scores at padded slots are undefined (whatever the model produced); consumers must use ``mask``.
* Labels are graded relevance, non-negative floats (``0`` = not relevant).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Literal, Protocol

import torch
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]
"""How a loss or metric combines per-list values.

``"none"`` returns one value per list, shape ``[B]``. ``"mean"`` averages over lists that contain at
least one real item (fully padded rows are ignored); ``"sum"`` adds them.
"""


class EmptyListPolicy(StrEnum):
    """What a metric reports for a list with no relevant item (all labels 0), where IDCG is 0.

    * ``ONE``  -- the list counts as perfectly ranked (LightGBM, allRank, RankLib's NDCG).
    * ``ZERO`` -- the list counts as 0 (TF-Ranking, Rax, ``trec_eval``-style NDCG).
    * ``DROP`` -- the list is left out of the mean (its per-list value is NaN with ``"none"``).
    """

    ONE = "one"
    ZERO = "zero"
    DROP = "drop"


class TieBreak(StrEnum):
    """How metrics order candidates whose scores are exactly equal.

    * ``PESSIMISTIC`` (default) -- among tied scores, lower labels are ranked first, so a model that
      outputs a constant can never profit from the order the data happens to be stored in.
    * ``POSITION`` -- stable sort: the candidate that comes first in the list is ranked first
      (what LightGBM's ``ndcg`` evaluation does).
    """

    PESSIMISTIC = "pessimistic"
    POSITION = "position"


@dataclass(frozen=True)
class ListBatch:
    """A padded batch of candidate lists.

    Attributes:
        features: ``[B, L, F]`` float32 candidate features (padded slots are 0).
        labels: ``[B, L]`` float32 graded relevance (padded slots are 0).
        mask: ``[B, L]`` bool, ``True`` for real candidates.
        initial_rank: optional ``[B, L]`` int64 1-based rank of each candidate in an initial
            ranking (0 at padded slots); used by models with the initial-rank signal.
        context: optional ``[B, C]`` float32 per-list context vector (PRM personalisation).
        query_index: optional ``[B]`` int64 index of each list in its dataset, so that scores can be
            mapped back to rows.
        rows: optional ``[B, L]`` int64 row of each candidate in its dataset's flat arrays (-1 at
            padded slots): how per-row values such as a teacher's scores reach a batch.
    """

    features: Tensor
    labels: Tensor
    mask: Tensor
    initial_rank: Tensor | None = None
    context: Tensor | None = None
    query_index: Tensor | None = None
    rows: Tensor | None = None

    def __post_init__(self) -> None:
        if self.features.dim() != 3:
            raise ValueError(
                f"features must be [batch, list, features], got {tuple(self.features.shape)}"
            )
        b, n, _ = self.features.shape
        for name in ("labels", "mask", "initial_rank", "rows"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (b, n):
                raise ValueError(f"{name} must have shape {(b, n)}, got {tuple(value.shape)}")
        if self.mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got {self.mask.dtype}")
        if self.context is not None and (self.context.dim() != 2 or self.context.shape[0] != b):
            raise ValueError(
                f"context must be [batch, context_dim], got {tuple(self.context.shape)}"
            )

    def to(self, device: torch.device | str) -> ListBatch:
        """Move every tensor to ``device``."""
        moved = {
            f.name: (v.to(device) if isinstance(v := getattr(self, f.name), Tensor) else v)
            for f in fields(self)
        }
        return replace(self, **moved)

    @property
    def batch_size(self) -> int:
        return int(self.features.shape[0])


class LossFn(Protocol):
    """A ranking loss: ``loss(scores, labels, *, mask, reduction) -> Tensor``.

    ``scores`` and ``labels`` are ``[B, L]``; ``mask`` is ``[B, L]`` bool. The result is a scalar
    for ``"mean"``/``"sum"`` and ``[B]`` for ``"none"``. Lists with no real item contribute 0.
    """

    def __call__(
        self, scores: Tensor, labels: Tensor, *, mask: Tensor, reduction: Reduction = "mean"
    ) -> Tensor: ...


class ScorerFn(Protocol):
    """A list scorer: maps a :class:`ListBatch`-shaped input to ``[B, L]`` scores."""

    def __call__(
        self,
        features: Tensor,
        mask: Tensor,
        initial_rank: Tensor | None = None,
        context: Tensor | None = None,
    ) -> Tensor: ...
