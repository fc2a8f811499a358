"""Cross-encoders: a query and a document read together, in one sequence, give one score.

A bi-encoder (:mod:`ltr.text.encoder`) encodes the query and the document apart and compares
their vectors, so a document's vector can be computed once and cached. A cross-encoder (monoBERT,
Nogueira & Cho 2019) reads ``query [SEP] document`` as one sequence: every layer lets the
document's tokens attend to the query's, which is what judging relevance asks for, at the price
of one forward pass per (query, document) pair and nothing to cache.

Here the cross-encoder is a pretrained :class:`~ltr.lm.model.TransformerLM` and a linear head
on its pooled final hidden states: the mean over the pair's real tokens for a masked (BERT-style)
model, whose every token sees the whole pair; the last real token for a causal (GPT-style)
model, the only one that has read all of it. ``ltr finetune`` with ``architecture: cross``
trains both; the head is saved with the language model (:func:`ltr.lm.artifact.save_lm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ltr.lm.encode import evaluating, length_batches
from ltr.lm.model import TransformerLM, mean_pool


def new_head(d_model: int, seed: int) -> nn.Linear:
    """The score head ``[d_model] -> 1`` of a cross-encoder, its weights drawn from
    N(0, 0.02²) with ``seed`` (as the language model's own layers), its bias 0."""
    head = nn.Linear(d_model, 1)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.02, generator=generator)
        head.bias.zero_()
    return head


def pair_row(query: np.ndarray, doc: np.ndarray, sep_id: int, block_size: int) -> np.ndarray:
    """``query [SEP] doc`` as one token row of at most ``block_size`` tokens.

    The query keeps at most half the block, so that a long query cannot crowd out the document;
    the document is cut to what is left."""
    q = query[: max(block_size // 2, 1)]
    room = block_size - len(q) - 1
    return np.concatenate([q, np.array([sep_id], dtype=np.int64), doc[: max(room, 0)]])[:block_size]


def pair_scores(model: TransformerLM, head: nn.Module, ids: Tensor, mask: Tensor) -> Tensor:
    """``[N]`` the cross-encoder's score of each token row (``ids``, ``mask``: ``[N, T]``, padding
    after the real tokens), with gradients."""
    hidden = model.hidden(ids, mask).float()  # (N, T, d)
    if model.is_causal:
        last = mask.sum(dim=1) - 1  # (N,) the last real token of each row
        pooled = hidden[torch.arange(len(ids), device=ids.device), last]  # (N, d)
    else:
        pooled = mean_pool(hidden, mask)  # (N, d)
    return head(pooled.to(head.weight.dtype)).squeeze(-1).float()  # (N,)


@torch.no_grad()
def cross_scores(
    model: TransformerLM,
    head: nn.Module,
    queries: Sequence[np.ndarray],
    docs: Sequence[np.ndarray],
    position: np.ndarray,
    *,
    sep_id: int,
    pad_id: int,
    batch_size: int = 64,
    progress: str | None = None,
) -> np.ndarray:
    """``[Q, K]`` float32 score of query ``queries[q]`` with document ``docs[position[q, k]]``
    (token rows), computed on the model's device.

    Pairs are scored in batches of similar length (sorted by length), so that short pairs do not
    pay for the padding of long ones; padding changes no score. ``progress`` names a progress
    bar (none when None)."""
    position = np.asarray(position, dtype=np.int64)
    q_count, k_count = position.shape
    block = model.config.block_size
    rows = [
        pair_row(queries[q], docs[position[q, k]], sep_id, block)
        for q in range(q_count)
        for k in range(k_count)
    ]
    out = np.zeros(len(rows), dtype=np.float32)
    device = next(model.parameters()).device
    with evaluating(model, head):
        for chunk, ids, mask in length_batches(rows, pad_id, batch_size, progress):
            out[chunk] = pair_scores(model, head, ids.to(device), mask.to(device)).cpu().numpy()
    return out.reshape(q_count, k_count)
