"""Multi-head attention over ``torch.nn.functional.scaled_dot_product_attention``.

One module serves sets (SetRank's MSAB/IMSAB, no positional order) and token sequences (GPT's
causal self-attention, BERT's bidirectional one): masks are passed per call.

Mask conventions (the same everywhere in :mod:`ltr`):

* ``key_padding_mask`` is ``[B, Lk]`` bool, ``True`` = a real key, ``False`` = a padded slot.
* ``is_causal=True`` lets query ``i`` see keys ``j <= i`` (top-left aligned, as in
  ``scaled_dot_product_attention``).
* A query that would see no key at all (every key padded, e.g. a fully padded list) is allowed to
  see every key instead. Its output is garbage but finite, and since it only ever feeds padded
  positions it never reaches a real row. This keeps softmax free of ``0/0 = NaN``.

Masks are built with tensor operations only (no Python branching on tensor values), so the module
traces and exports to ONNX.

For decoding a causal sequence token by token, a :class:`KVCache` keeps the keys and values of
the positions already seen, so each step projects only the new tokens (see
:func:`ltr.lm.generate.generate`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltr.errors import ConfigError
from ltr.nn.positional import Rotation, rotate


def attention_mask(
    key_padding_mask: Tensor | None, q_len: int, k_len: int, *, is_causal: bool = False
) -> Tensor | None:
    """Build the boolean ``attn_mask`` for ``scaled_dot_product_attention`` (True = may attend).

    Args:
        key_padding_mask: ``[B, Lk]`` bool, True = real key; ``None`` = every key is real.
        q_len: number of queries ``Lq``.
        k_len: number of keys ``Lk``.
        is_causal: also forbid query ``i`` from seeing keys ``j > i``.

    Returns:
        ``None`` when there is nothing to mask beyond what ``is_causal`` expresses on its own;
        otherwise a bool mask broadcastable to ``[B, nh, Lq, Lk]``: ``[B, 1, 1, Lk]`` for padding
        only, ``[B, 1, Lq, Lk]`` with causality. Rows with no allowed key are opened to all keys.
    """
    if key_padding_mask is None:
        return None  # is_causal alone never empties a row: key 0 is always visible
    allowed = key_padding_mask[:, None, None, :]  # (B, 1, 1, Lk)
    if is_causal:
        device = key_padding_mask.device
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril()  # (Lq, Lk)
        allowed = allowed & causal  # (B, 1, Lq, Lk)
    # a query with no visible key would softmax over nothing (NaN): let it see everything instead
    return allowed | ~allowed.any(dim=-1, keepdim=True)


class KVCache:
    """Keys and values of the positions a model has already seen, one buffer per attention layer.

    Buffers are allocated once for ``capacity`` positions. A forward pass over ``T`` new
    positions writes each layer's keys and values after the ``length`` positions stored so far
    (:meth:`LayerCache.update`) and then :meth:`advance` commits them, so every layer of one pass
    sees the same ``length``.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_size: int,
        capacity: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        shape = (num_layers, batch_size, num_heads, capacity, head_size)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, nh, C, hs)
        self.values = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, nh, C, hs)
        self.capacity = capacity
        self.length = 0

    def layer(self, index: int) -> LayerCache:
        """The view of this cache that attention layer ``index`` reads and writes."""
        return LayerCache(self, index)

    def advance(self, steps: int) -> None:
        """Commit ``steps`` positions written by every layer of the last forward pass."""
        if self.length + steps > self.capacity:
            raise ConfigError(
                f"the key/value cache holds {self.capacity} positions; "
                f"{self.length} + {steps} do not fit"
            )
        self.length += steps


class LayerCache:
    """One attention layer's slice of a :class:`KVCache`."""

    def __init__(self, cache: KVCache, index: int) -> None:
        self.cache = cache
        self.index = index

    @property
    def past(self) -> int:
        """Positions stored before the current forward pass."""
        return self.cache.length

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' keys and values; return those of every position so far.

        Args:
            k: ``[B, nh, T, hs]`` keys of the ``T`` new positions.
            v: ``[B, nh, T, hs]`` their values.

        Returns:
            ``(keys, values)``, both ``[B, nh, past + T, hs]``.
        """
        cache = self.cache
        start, end = cache.length, cache.length + k.shape[2]
        if end > cache.capacity:
            raise ConfigError(
                f"the key/value cache holds {cache.capacity} positions; "
                f"{start} + {k.shape[2]} do not fit"
            )
        cache.keys[self.index, :, :, start:end] = k
        cache.values[self.index, :, :, start:end] = v
        return cache.keys[self.index, :, :, :end], cache.values[self.index, :, :, :end]


class MultiHeadAttention(nn.Module):
    """Multi-head attention ``softmax(Q K^T / sqrt(hs)) V`` with padding and causal masks.

    ``query`` supplies the queries; ``key_value`` supplies both keys and values (pass the same
    tensor for self-attention). In training mode only, ``dropout`` applies to the output
    projection and ``attn_dropout`` to the attention weights. Keep ``attn_dropout`` at 0 for long
    lists on CPU: any attention dropout makes PyTorch fall back from the fused kernel to one that
    materialises the full ``[Lq, Lk]`` weight matrix (10x slower and 25x the memory at 10,000
    items, see docs/BENCHMARKS.md).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            raise ConfigError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}); "
                "choose a d_model that is a multiple of num_heads"
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_size = d_model // num_heads
        self.attn_dropout = attn_dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        query: Tensor,
        key_value: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
        cache: LayerCache | None = None,
        rotation: Rotation | None = None,
    ) -> Tensor:
        """Attend from ``query`` to ``key_value``.

        Args:
            query: ``[B, Lq, d_model]``.
            key_value: ``[B, Lk, d_model]``.
            key_padding_mask: ``[B, Lk]`` bool, True = real key; ``None`` = all real.
            is_causal: query ``i`` sees only keys ``j <= i``.
            cache: keys and values of earlier positions of the same sequence (self-attention,
                no padding). ``key_value``'s keys and values are appended to it, the queries
                attend to every stored position, and with ``is_causal`` query ``i`` is position
                ``past + i``.
            rotation: rotary positions of the new positions (self-attention, ``Lq == Lk``):
                queries and keys are turned by them (:func:`ltr.nn.rotate`) before the keys are
                cached, so cached keys keep the angles of their own positions.

        Returns:
            ``[B, Lq, d_model]``.
        """
        b, lq, d = query.shape
        lk = key_value.shape[1]
        nh, hs = self.num_heads, self.head_size
        q = self.q_proj(query).view(b, lq, nh, hs).transpose(1, 2)  # (B, nh, Lq, hs)
        k = self.k_proj(key_value).view(b, lk, nh, hs).transpose(1, 2)  # (B, nh, Lk, hs)
        v = self.v_proj(key_value).view(b, lk, nh, hs).transpose(1, 2)  # (B, nh, Lk, hs)
        if rotation is not None:
            q, k = rotate(q, rotation), rotate(k, rotation)
        causal = is_causal
        if cache is not None:
            if key_padding_mask is not None:
                raise ConfigError(
                    "a key/value cache holds unpadded sequences; pass no padding mask"
                )
            past = cache.past
            k, v = cache.update(k, v)  # (B, nh, past + Lk, hs)
            # query i is position past + i and sees keys 0..past + i: bottom-right aligned, which
            # for past == 0 is the usual causal mask and for one query is no mask at all
            causal = is_causal and past == 0
            mask = None
            if is_causal and past > 0 and lq > 1:
                mask = torch.ones(lq, past + lk, dtype=torch.bool, device=q.device).tril(past)
        else:
            mask = attention_mask(key_padding_mask, lq, lk, is_causal=is_causal)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=causal and mask is None,
        )  # (B, nh, Lq, hs)
        y = y.transpose(1, 2).reshape(b, lq, d)  # (B, Lq, d)
        return self.resid_dropout(self.out_proj(y))
