"""SetRank: a permutation-equivariant Transformer scorer over the candidate set.

Pang et al. (2020), "SetRank: Learning a Permutation-Invariant Ranking Model for Information
Retrieval", with PRM's per-request context vector (Pei et al., 2019, "Personalized Re-ranking for
Recommendation") as an option::

    features [B, L, F] --mask padded slots to 0--> Linear(F -> d)
        (+ ordinal embedding of the initial rank, if use_initial_rank)
        (+ Linear(C -> d)(context) broadcast over the list, if context_dim > 0)
        --> num_blocks x MSAB | IMSAB (keys masked by the list mask)
        --> LayerNorm (pre-LN only) --> Linear(d -> 1) --> scores [B, L]

Without the initial rank there is no positional information: shuffling the candidates shuffles
the scores the same way. With it, the model is equivariant to shuffling candidates *together with*
their initial ranks.

Padded slots: their features are replaced by zeros with ``masked_fill`` before anything else
(not multiplied by the mask: ``NaN * 0`` is ``NaN``, and a NaN in a padded value row would reach
real rows through the attention product even at weight 0). Padded keys are masked out of every
attention, so nothing at a padded slot can change a real item's score. Scores at padded slots are
undefined.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ltr.errors import ConfigFieldError
from ltr.models._validate import (
    check_bool,
    check_choice,
    check_dropout,
    check_initial_rank,
    check_int,
    check_scorer_inputs,
)
from ltr.nn.blocks import ACTIVATIONS, IMSAB, MSAB
from ltr.nn.positional import LearnedPositionalEncoding

BLOCKS = ("msab", "imsab")


@dataclass(frozen=True)
class SetRankConfig:
    """Hyper-parameters of :class:`SetRank`."""

    num_features: int
    """F, the number of features per candidate."""
    d_model: int = 64
    """Width of the item representations; must be divisible by ``num_heads``."""
    num_heads: int = 4
    """Attention heads per block."""
    num_blocks: int = 2
    """Number of stacked attention blocks."""
    block: str = "msab"
    """``"msab"`` (full self-attention, O(L^2)) or ``"imsab"`` (induced, O(L * num_inducing))."""
    num_inducing: int = 20
    """Inducing points per IMSAB block (ignored for MSAB)."""
    d_ff: int = 256
    """Hidden width of each block's feed-forward network."""
    dropout: float = 0.1
    """Dropout on sub-layer outputs and the input embedding (training only)."""
    attention_dropout: float = 0.0
    """Dropout on attention weights. Non-zero values force PyTorch's unfused attention kernel,
    which is much slower and O(L^2) in memory on long lists."""
    norm_first: bool = True
    """Pre-LN (LayerNorm before each sub-layer, plus a final one) if True, else post-LN."""
    activation: str = "gelu"
    """Feed-forward activation, a key of :data:`ltr.nn.blocks.ACTIVATIONS`."""
    use_initial_rank: bool = False
    """Add a learned ordinal embedding of each candidate's 1-based initial rank. In training and
    offline evaluation the initial rank is the candidate's position in its query's input order
    (the first-stage ranking; kept through list sampling); the server and ``ltr score`` take it
    from the request / a column."""
    max_rank: int = 200
    """Initial ranks above this share the embedding of ``max_rank``; rank 0 = padded/unknown."""
    context_dim: int = 0
    """Size C of the per-list context vector added to every item (0 = no context). ``ltr train``
    reads it from Parquet data (``data.context_columns``, default the list column ``context``,
    which ``ltr text-features --context-encoder`` writes)."""

    def __post_init__(self) -> None:
        owner = "SetRankConfig"
        check_int(owner, "num_features", self.num_features, 1)
        check_int(owner, "d_model", self.d_model, 1)
        check_int(owner, "num_heads", self.num_heads, 1)
        if self.d_model % self.num_heads != 0:
            raise ConfigFieldError(
                owner,
                "d_model",
                f"({self.d_model}) must be divisible by num_heads ({self.num_heads}); e.g. "
                f"d_model={self.num_heads * max(1, round(self.d_model / self.num_heads))}",
            )
        check_int(owner, "num_blocks", self.num_blocks, 1)
        check_choice(owner, "block", self.block, BLOCKS)
        check_int(owner, "num_inducing", self.num_inducing, 1)
        check_int(owner, "d_ff", self.d_ff, 1)
        check_dropout(owner, "dropout", self.dropout)
        check_dropout(owner, "attention_dropout", self.attention_dropout)
        check_bool(owner, "norm_first", self.norm_first)
        check_choice(owner, "activation", self.activation, ACTIVATIONS)
        check_bool(owner, "use_initial_rank", self.use_initial_rank)
        check_int(owner, "max_rank", self.max_rank, 1)
        check_int(owner, "context_dim", self.context_dim, 0)


class SetRank(nn.Module):
    """Score every candidate of a list by self-attention over the whole list."""

    def __init__(self, config: SetRankConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.input_proj = nn.Linear(c.num_features, c.d_model)
        self.rank_embedding = (
            LearnedPositionalEncoding(c.max_rank + 1, c.d_model, padding_idx=0)
            if c.use_initial_rank
            else None
        )
        self.context_proj = nn.Linear(c.context_dim, c.d_model) if c.context_dim > 0 else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([self._make_block() for _ in range(c.num_blocks)])
        self.final_norm = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.head = nn.Linear(c.d_model, 1)

    def _make_block(self) -> nn.Module:
        c = self.config
        if c.block == "imsab":
            return IMSAB(
                c.d_model,
                c.num_heads,
                c.d_ff,
                c.num_inducing,
                c.dropout,
                c.norm_first,
                c.activation,
                attn_dropout=c.attention_dropout,
            )
        return MSAB(
            c.d_model,
            c.num_heads,
            c.d_ff,
            c.dropout,
            c.norm_first,
            c.activation,
            attn_dropout=c.attention_dropout,
        )

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
            initial_rank: ``[B, L]`` int 1-based initial rank; required iff
                ``config.use_initial_rank`` (ignored otherwise). Values ``<= 0`` and padded slots
                map to the "unknown" embedding 0; values above ``max_rank`` clip to ``max_rank``.
            context: ``[B, C]`` float per-list context; required iff ``config.context_dim > 0``
                (ignored otherwise).

        Returns:
            ``[B, L]`` scores; values at padded slots are undefined.
        """
        c = self.config
        check_scorer_inputs(
            "SetRank", features, mask, c.num_features, context=context, context_dim=c.context_dim
        )
        x = features.masked_fill(~mask.unsqueeze(-1), 0.0)  # (B, L, F)
        h = self.input_proj(x)  # (B, L, d)
        if self.rank_embedding is not None:
            check_initial_rank("SetRank", initial_rank, mask)
            assert initial_rank is not None
            rank = initial_rank.long().clamp(0, c.max_rank).masked_fill(~mask, 0)  # (B, L)
            h = h + self.rank_embedding(rank)  # (B, L, d)
        if self.context_proj is not None:
            assert context is not None
            h = h + self.context_proj(context).unsqueeze(1)  # (B, L, d) + (B, 1, d)
        h = self.dropout(h)
        for block in self.blocks:
            h = block(h, mask=mask)  # (B, L, d)
        h = self.final_norm(h)
        return self.head(h).squeeze(-1)  # (B, L)
