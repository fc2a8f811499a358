"""Transformer building blocks: feed-forward, MAB, and the Set Transformer's MSAB and IMSAB.

Following Lee et al. (2019), "Set Transformer", and Pang et al. (2020), "SetRank":

* ``MAB(X, Y)``: ``H = X + MHA(X, Y, Y)``, ``out = H + FFN(H)``, with LayerNorm before
  (pre-LN, ``norm_first=True``) or after (post-LN) each sub-layer.
* ``MSAB(X) = MAB(X, X)`` with the set's padding mask on the keys; ``O(n^2)`` in the set size.
* ``IMSAB(X) = MAB(X, MAB(I, X))`` with ``I`` = ``M`` learned inducing points; ``O(n * M)``.

Pre-LN blocks leave their output un-normalised: a stack of them needs one final LayerNorm, which
the model that assembles the stack provides. Post-LN blocks end in a LayerNorm already.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ltr.errors import unknown_name
from ltr.nn.attention import LayerCache, MultiHeadAttention
from ltr.nn.positional import Rotation

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}
"""Activation functions by name, for feed-forward layers."""


def make_activation(name: str) -> nn.Module:
    """Instantiate the activation called ``name`` (see :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, list(ACTIVATIONS))
    return ACTIVATIONS[name]()


class FeedForward(nn.Module):
    """Position-wise feed-forward: ``Linear(d, d_ff) -> act -> Linear(d_ff, d) -> dropout``."""

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "gelu"
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.act = make_activation(activation)
        self.proj = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Apply to every position independently.

        Args:
            x: ``[..., d_model]``.

        Returns:
            ``[..., d_model]``.
        """
        return self.dropout(self.proj(self.act(self.fc(x))))


class MAB(nn.Module):
    """Multihead attention block: ``H = X + MHA(X, Y, Y)``; ``out = H + FFN(H)``.

    With ``norm_first=True`` (pre-LN) each sub-layer sees ``LayerNorm`` of its input and the
    residual stream is left un-normalised; with ``norm_first=False`` (post-LN) a ``LayerNorm``
    follows each residual sum. In pre-LN the same attention LayerNorm is applied to ``X`` and to
    ``Y`` (computed once when ``y is x``), so self- and cross-attention share one set of
    parameters and no parameter goes unused in self-attention.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        activation: str = "gelu",
        *,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(d_model, num_heads, dropout, attn_dropout=attn_dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation)
        self.norm_attn = nn.LayerNorm(d_model)
        self.norm_ffn = nn.LayerNorm(d_model)

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        *,
        y_mask: Tensor | None = None,
        is_causal: bool = False,
        cache: LayerCache | None = None,
        rotation: Rotation | None = None,
    ) -> Tensor:
        """Let ``x`` attend to ``y``, then transform each position.

        Args:
            x: ``[B, Lx, d_model]`` queries (and the residual stream).
            y: ``[B, Ly, d_model]`` keys and values.
            y_mask: ``[B, Ly]`` bool, True = real element of ``y``; ``None`` = all real.
            is_causal: position ``i`` of ``x`` sees only positions ``j <= i`` of ``y``.
            cache: earlier positions' keys and values (see :class:`ltr.nn.KVCache`).
            rotation: rotary positions of ``x``'s elements (self-attention only).

        Returns:
            ``[B, Lx, d_model]``.
        """
        if self.norm_first:
            xn = self.norm_attn(x)  # (B, Lx, d)
            yn = xn if y is x else self.norm_attn(y)  # (B, Ly, d)
            attended = self.attn(
                xn, yn, key_padding_mask=y_mask, is_causal=is_causal, cache=cache, rotation=rotation
            )
            h = x + attended  # (B, Lx, d)
            return h + self.ffn(self.norm_ffn(h))  # (B, Lx, d)
        attended = self.attn(
            x, y, key_padding_mask=y_mask, is_causal=is_causal, cache=cache, rotation=rotation
        )
        h = self.norm_attn(x + attended)
        return self.norm_ffn(h + self.ffn(h))  # (B, Lx, d)


class MSAB(nn.Module):
    """Multihead self-attention block ``MAB(X, X)``, keys masked by the set's padding mask."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        activation: str = "gelu",
        *,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.mab = MAB(
            d_model, num_heads, d_ff, dropout, norm_first, activation, attn_dropout=attn_dropout
        )

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: LayerCache | None = None,
        rotation: Rotation | None = None,
    ) -> Tensor:
        """Self-attention over the elements of ``x``.

        Args:
            x: ``[B, L, d_model]``.
            mask: ``[B, L]`` bool, True = real element; ``None`` = all real.
            is_causal: element ``i`` sees only elements ``j <= i`` (sequences, not sets).
            cache: keys and values of the sequence's earlier elements, which ``x`` continues
                (see :class:`ltr.nn.KVCache`).
            rotation: rotary positions of the elements (sequences; see :func:`ltr.nn.rotate`).

        Returns:
            ``[B, L, d_model]``.
        """
        return self.mab(x, x, y_mask=mask, is_causal=is_causal, cache=cache, rotation=rotation)


class IMSAB(nn.Module):
    """Induced multihead self-attention block ``MAB(X, MAB(I, X))``; cost ``O(L * M)``.

    ``M = num_inducing`` learned points ``I`` first summarise the (masked) set, then every element
    attends to that summary. No ``[L, L]`` attention matrix is ever formed. The outer attention
    needs no mask: the summary is built from real elements only. Not usable with a causal mask.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        num_inducing: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        activation: str = "gelu",
        *,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.inducing = nn.Parameter(torch.empty(num_inducing, d_model))  # (M, d)
        nn.init.xavier_uniform_(self.inducing)
        args = (d_model, num_heads, d_ff, dropout, norm_first, activation)
        self.mab_in = MAB(*args, attn_dropout=attn_dropout)
        self.mab_out = MAB(*args, attn_dropout=attn_dropout)

    def forward(self, x: Tensor, *, mask: Tensor | None = None) -> Tensor:
        """Self-attention over ``x`` through the inducing points.

        Args:
            x: ``[B, L, d_model]``.
            mask: ``[B, L]`` bool, True = real element; ``None`` = all real.

        Returns:
            ``[B, L, d_model]``.
        """
        b = x.shape[0]
        i = self.inducing.unsqueeze(0).expand(b, -1, -1)  # (B, M, d)
        h = self.mab_in(i, x, y_mask=mask)  # (B, M, d)
        return self.mab_out(x, h)  # (B, L, d)
