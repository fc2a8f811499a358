"""Transformer language models on the shared :mod:`ltr.nn` blocks: GPT-style and BERT-style.

One class, two kinds (Radford et al., 2019; Devlin et al., 2019):

* ``causal``: a decoder. Every block is an ``MSAB`` with a causal mask, so the logits at
  position ``t`` depend on tokens ``0..t`` only; trained to predict token ``t + 1``.
* ``masked``: an encoder. The same blocks without the causal mask (every token sees every real
  token); trained to recover the tokens hidden by ``[MASK]`` (see :func:`ltr.lm.data.mask_tokens`).

Both: token embedding + position encoding (learned or sinusoidal, added to the embedding; or
rotary, turning each attention head's queries and keys instead) -> ``num_layers`` pre-LN blocks
-> final LayerNorm -> a linear head over the vocabulary whose weight is the token embedding
(``tie_weights``). :meth:`TransformerLM.hidden` gives the final hidden states, which is what a
text encoder feeds to the reranker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ltr.errors import ConfigError
from ltr.nn import (
    MSAB,
    KVCache,
    LearnedPositionalEncoding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)

IGNORE_INDEX = -100
"""Label of positions that carry no loss (padding, unmasked tokens of a masked LM)."""

KINDS = ("causal", "masked")
POSITIONALS = ("learned", "sinusoidal", "rotary")


@dataclass
class LMConfig:
    """Architecture of a :class:`TransformerLM`."""

    kind: Literal["causal", "masked"] = "causal"
    """``causal`` (GPT-style decoder) or ``masked`` (BERT-style encoder)."""
    vocab_size: int = 0
    """Set from the tokenizer when training (0 = not yet known)."""
    block_size: int = 128
    """Longest sequence the model takes (number of positions)."""
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    activation: str = "gelu"
    positional: Literal["learned", "sinusoidal", "rotary"] = "learned"
    """``learned`` or ``sinusoidal`` absolute positions added to the token embeddings, or
    ``rotary``: each head's queries and keys turned by their positions, so attention sees only
    how far apart two tokens are (no parameters; the head size must be even)."""
    tie_weights: bool = True
    """The output head reuses the token embedding matrix (fewer parameters, better small LMs)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"model.kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.positional not in POSITIONALS:
            raise ConfigError(
                f"model.positional must be one of {list(POSITIONALS)}, got {self.positional!r}"
            )
        for name in ("block_size", "d_model", "num_heads", "num_layers", "d_ff"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        if self.vocab_size < 0:
            raise ConfigError(f"model.vocab_size must be >= 0, got {self.vocab_size}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


class TransformerLM(nn.Module):
    """A GPT-style (``kind="causal"``) or BERT-style (``kind="masked"``) language model."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ConfigError("model.vocab_size must be set (it comes from the tokenizer)")
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb: nn.Module | None = None
        self.rotary: RotaryEmbedding | None = None
        if c.positional == "learned":
            self.pos_emb = LearnedPositionalEncoding(c.block_size, c.d_model)
        elif c.positional == "sinusoidal":
            self.pos_emb = SinusoidalPositionalEncoding(c.d_model, c.block_size)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            MSAB(c.d_model, c.num_heads, c.d_ff, c.dropout, activation=c.activation)
            for _ in range(c.num_layers)
        )
        if c.positional == "rotary":  # after the blocks, which check that heads divide d_model
            self.rotary = RotaryEmbedding(c.d_model // c.num_heads, c.block_size)
        self.ln_f = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_weights:
            self.head.weight = self.tok_emb.weight

    @property
    def is_causal(self) -> bool:
        return self.config.kind == "causal"

    def _init_weights(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual output projections scaled by 1/sqrt(2L)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        residual_std = 0.02 / math.sqrt(2 * self.config.num_layers)
        for block in self.blocks:
            nn.init.normal_(block.mab.attn.out_proj.weight, std=residual_std)
            nn.init.normal_(block.mab.ffn.proj.weight, std=residual_std)

    def num_parameters(self) -> int:
        """Trainable parameters, a tied head counted once."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty key/value cache for ``batch_size`` sequences of up to ``block_size`` tokens.

        Pass it to :meth:`hidden` / :meth:`forward` of a causal model to feed a sequence in
        pieces: each call runs only the new tokens, which continue the ones cached before.
        """
        if not self.is_causal:
            raise ConfigError(
                "a key/value cache needs a causal model: a masked model's tokens see "
                "later tokens, so earlier positions change with every new one"
            )
        c = self.config
        weight = self.tok_emb.weight
        return KVCache(
            c.num_layers,
            batch_size,
            c.num_heads,
            c.d_model // c.num_heads,
            c.block_size,
            dtype=weight.dtype,
            device=weight.device,
        )

    def hidden(
        self, ids: Tensor, mask: Tensor | None = None, *, cache: KVCache | None = None
    ) -> Tensor:
        """Final hidden states (after the last LayerNorm).

        Args:
            ids: ``[B, T]`` int64 token ids, ``T <= block_size``.
            mask: ``[B, T]`` bool, True = real token, False = padding; ``None`` = all real.
                Padding must come after the real tokens of a row for a causal model.
            cache: from :meth:`new_cache`: ``ids`` continue the ``cache.length`` tokens cached
                so far (at positions ``cache.length ..``), and their keys and values are added
                to it. Takes no ``mask``.

        Returns:
            ``[B, T, d_model]``; rows at padded positions are undefined.
        """
        t = ids.shape[1]
        past = 0 if cache is None else cache.length
        if past + t > self.config.block_size:
            held = (
                f"{past} cached and {t} new tokens do not fit in"
                if past
                else f"a sequence of {t} tokens is longer than"
            )
            raise ConfigError(
                f"{held} the model's block_size ({self.config.block_size}); "
                "truncate it or train with a larger block_size"
            )
        positions = torch.arange(past, past + t, device=ids.device)  # (T,)
        x = self.tok_emb(ids)  # (B, T, d)
        rotation = None
        if self.rotary is not None:
            rotation = self.rotary(positions)  # this call's positions, turned by every layer
        else:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            layer = None if cache is None else cache.layer(i)
            x = block(x, mask=mask, is_causal=self.is_causal, cache=layer, rotation=rotation)
        if cache is not None:
            cache.advance(t)
        return self.ln_f(x)  # (B, T, d)

    def forward(
        self, ids: Tensor, mask: Tensor | None = None, *, cache: KVCache | None = None
    ) -> Tensor:
        """Logits over the vocabulary at every position.

        Args:
            ids: ``[B, T]`` int64 token ids.
            mask: ``[B, T]`` bool, True = real token; ``None`` = all real.
            cache: see :meth:`hidden`.

        Returns:
            ``[B, T, vocab_size]``. For a causal model position ``t`` predicts token ``t + 1``;
            for a masked model it predicts the original token at ``t``.
        """
        return self.head(self.hidden(ids, mask, cache=cache))  # (B, T, V)


def check_buildable(config: LMConfig) -> None:
    """Raise the error that building a model of ``config`` would (an unknown activation, heads
    that do not divide ``d_model``, an odd rotary head size), without building one: the layers
    are made on the meta device (shapes only, no memory). ``vocab_size`` 0 (taken from the
    tokenizer later) stands for any size."""
    with torch.device("meta"):
        TransformerLM(replace(config, vocab_size=config.vocab_size or 1))


def token_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy ``-log softmax(logits)[label]`` over positions whose label is not -100.

    Args:
        logits: ``[B, T, V]``.
        labels: ``[B, T]`` int64 target ids; :data:`IGNORE_INDEX` (-100) = no loss here.

    Returns:
        Scalar: the mean over labelled positions (per token, not per row). Perplexity is its
        exponential.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),  # (B*T, V)
        labels.reshape(-1),  # (B*T,)
        ignore_index=IGNORE_INDEX,
    )


def mean_pool(hidden: Tensor, mask: Tensor | None) -> Tensor:
    """Average the hidden states of the real tokens of each row (a sentence embedding).

    Args:
        hidden: ``[B, T, d]``.
        mask: ``[B, T]`` bool, True = real token; ``None`` = all real.

    Returns:
        ``[B, d]``.
    """
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)  # (B, d)
