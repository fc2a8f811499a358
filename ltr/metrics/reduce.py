"""Per-list metric values, the empty-list policy and the reduction over lists, in one place.

Two kinds of list get special treatment:

* a list with **no real item** (a fully padded row) has no value: it is NaN with
  ``reduction="none"`` and is left out of ``"mean"`` and ``"sum"`` under every policy;
* a list with real items but **no relevant item** (an *empty* list; for graded metrics all labels
  are 0, for binary metrics no label exceeds the threshold) gets its value from
  :class:`ltr.types.EmptyListPolicy`: 1 (``ONE``), 0 (``ZERO``) or NaN and left out of the mean
  (``DROP``). Every metric (NDCG, MAP, MRR, ERR, precision, recall) follows the same policy, so a
  model is always compared on the same set of lists. DCG is unnormalised and has no "perfect" value:
  under ``ONE`` and ``ZERO`` an empty list keeps its actual DCG (0); ``DROP`` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ltr.metrics.core import check_empty, check_reduction
from ltr.types import EmptyListPolicy, Reduction


@dataclass(frozen=True)
class PerList:
    """One metric's raw value per list, before the empty-list policy is applied.

    Attributes:
        values: ``[B]`` the formula's value; meaningful only where ``relevant`` is True.
        relevant: ``[B]`` bool, the list has at least one relevant real item.
        nonempty: ``[B]`` bool, the list has at least one real item.
        one_value: the value an empty list gets under ``EmptyListPolicy.ONE`` (1 for normalised
            metrics; 0 for DCG, whose value on an empty list is 0 and which has no maximum).
    """

    values: Tensor
    relevant: Tensor
    nonempty: Tensor
    one_value: float = 1.0

    def counted(self, empty: EmptyListPolicy | str) -> Tensor:
        """``[B]`` bool: the lists that take part in ``"mean"``/``"sum"`` under ``empty``."""
        if check_empty(empty) == EmptyListPolicy.DROP:
            return self.nonempty & self.relevant
        return self.nonempty

    def resolve(self, empty: EmptyListPolicy | str) -> Tensor:
        """``[B]`` values after the policy: empty lists -> 1 / 0 / NaN, fully padded rows -> NaN."""
        empty = check_empty(empty)
        fill = {EmptyListPolicy.ONE: self.one_value, EmptyListPolicy.ZERO: 0.0}.get(
            empty, float("nan")
        )
        values = torch.where(self.relevant, self.values, torch.full_like(self.values, fill))
        return torch.where(self.nonempty, values, torch.full_like(values, float("nan")))  # [B]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PerList:
        """Move (and optionally cast the values of) this result."""
        return PerList(
            values=self.values.to(device=device, dtype=dtype),
            relevant=self.relevant.to(device),
            nonempty=self.nonempty.to(device),
            one_value=self.one_value,
        )


def concat(parts: list[PerList]) -> PerList:
    """Concatenate per-list results along the list axis (all parts from the same metric)."""
    if not parts:
        raise ValueError("concat needs at least one PerList")
    return PerList(
        values=torch.cat([p.values for p in parts]),
        relevant=torch.cat([p.relevant for p in parts]),
        nonempty=torch.cat([p.nonempty for p in parts]),
        one_value=parts[0].one_value,
    )


def reduce_per_list(
    per_list: PerList, empty: EmptyListPolicy | str, reduction: Reduction | str
) -> Tensor:
    """Apply the empty-list policy, then reduce over lists.

    Args:
        per_list: raw values with their ``[B]`` relevance and non-emptiness flags.
        empty: what an empty list (no relevant item) counts as.
        reduction: ``"none"`` -> ``[B]`` values (NaN for dropped lists and fully padded rows);
            ``"mean"`` -> scalar mean over counted lists (NaN if none counts);
            ``"sum"`` -> scalar sum over counted lists.

    Returns:
        ``[B]`` or a scalar tensor.
    """
    reduction = check_reduction(reduction)
    values = per_list.resolve(empty)  # [B]
    if reduction == "none":
        return values
    counted = per_list.counted(empty)  # [B]
    total = torch.where(counted, values, torch.zeros_like(values)).sum()
    if reduction == "sum":
        return total
    return total / counted.sum().to(values.dtype)  # 0 / 0 = NaN when no list counts
