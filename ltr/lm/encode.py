"""Text encoder: a pretrained language model turns texts into fixed-size vectors.

This is the bridge from the language-model core to ranking: the vectors of a query and of its
candidate texts (or their similarity) become feature columns or a per-query context vector for
the reranker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ltr.errors import ConfigError
from ltr.lm.model import TransformerLM, mean_pool
from ltr.lm.tokenizer import TextTokenizer


@torch.no_grad()
def encode_texts(
    model: TransformerLM,
    tokenizer: TextTokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    normalize: bool = True,
    show_progress: bool = False,
) -> np.ndarray:
    """Mean-pooled final hidden states of each text (first ``block_size`` tokens).

    Texts are batched with padding after the real tokens; padding changes nothing (keys are
    masked, and the pooling averages real tokens only), so a text gets the same vector whatever
    batch it is in. An empty text has no token and is an error.

    Args:
        texts: ``N`` strings.
        normalize: scale every vector to unit length (dot product = cosine similarity).

    Returns:
        ``[N, d_model]`` float32.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    block = model.config.block_size
    was_training = model.training
    model.eval()
    out = np.zeros((len(texts), model.config.d_model), dtype=np.float32)
    try:
        steps = range(0, len(texts), batch_size)
        for start in tqdm(steps, desc="encoding", unit="batch", disable=not show_progress):
            chunk = texts[start : start + batch_size]
            ids = [row[:block] for row in tokenizer.encode_batch(list(chunk))]
            for i, row in enumerate(ids):
                if not row:
                    raise ConfigError(f"text {start + i} is empty: there is nothing to encode")
            batch, mask = pad_token_rows(ids, tokenizer.pad_id)  # (B, T), (B, T)
            out[start : start + len(ids)] = pooled_vectors(model, batch, mask, normalize).numpy()
    finally:
        model.train(was_training)
    return out


@contextmanager
def evaluating(*modules: torch.nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and back into training mode after it, those
    that were training (switching walks every module: not done when none was training)."""
    training = [m for m in modules if m.training]
    for m in training:
        m.eval()
    try:
        yield
    finally:
        for m in training:
            m.train()


def length_batches(
    rows: Sequence[Sequence[int]], pad_id: int, batch_size: int, progress: str | None = None
) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]:
    """``(indices, ids [B, T], mask [B, T])`` batches of ``rows`` in order of length, so that
    short rows do not pay for the padding of long ones; ``progress`` names a progress bar (none
    when None)."""
    order = np.argsort([len(row) for row in rows], kind="stable")
    steps = range(0, len(rows), batch_size)
    for start in tqdm(steps, desc=progress, unit="batch", disable=progress is None):
        chunk = order[start : start + batch_size]
        yield (chunk, *pad_token_rows([rows[i] for i in chunk], pad_id))


def pad_token_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """``(ids [N, T], mask [N, T])``: token rows padded after their tokens to the longest row
    (``mask`` True = a real token)."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (N, T)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)  # (N, T)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


def pooled_vectors(
    model: TransformerLM, ids: Tensor, mask: Tensor, normalize: bool = True
) -> Tensor:
    """``[N, d]``: the mean of each row's final hidden states over its real tokens (unit length
    when ``normalize``): the text vector of :func:`encode_texts`, with gradients."""
    pooled = mean_pool(model.hidden(ids, mask).float(), mask)  # (N, d)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled
