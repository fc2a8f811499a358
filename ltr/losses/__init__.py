"""Ranking losses: pure functions ``loss(scores, labels, *, mask, reduction="mean", **params)``.

Shapes are ``[batch, list]``; ``mask`` is bool with ``True`` = real item. ``reduction="none"``
gives one value per list (``[B]``, 0 for fully padded rows); ``"mean"`` averages over lists with
at least one real item; ``"sum"`` adds them. Look losses up by name in :data:`LOSSES`, bind
hyper-parameters with :func:`get_loss`, or build a training loss (one name or a weighted
combination) with :func:`build_loss`.
"""

from ltr.losses.approx_ndcg import approx_ndcg_loss
from ltr.losses.lambdaloss import lambdaloss_loss
from ltr.losses.listwise import listmle_loss, listnet_loss, softmax_loss
from ltr.losses.neural_ndcg import neural_ndcg_loss
from ltr.losses.pairwise import lambdarank_loss, pairwise_hinge_loss, ranknet_loss
from ltr.losses.pointwise import mse_loss, sigmoid_bce_loss
from ltr.losses.registry import (
    LOSSES,
    CombinedLoss,
    LossTerm,
    build_loss,
    get_loss,
    loss_parameters,
)

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "LossTerm",
    "approx_ndcg_loss",
    "build_loss",
    "get_loss",
    "lambdaloss_loss",
    "lambdarank_loss",
    "listmle_loss",
    "listnet_loss",
    "loss_parameters",
    "mse_loss",
    "neural_ndcg_loss",
    "pairwise_hinge_loss",
    "ranknet_loss",
    "sigmoid_bce_loss",
    "softmax_loss",
]
