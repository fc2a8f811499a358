"""Text encoders on candidate lists: tokenised texts, vectors, similarity scores, NDCG.

A language model encodes a text as the unit mean of its final hidden states over its real
tokens (as :func:`ltr.lm.encode.encode_texts`); a query and a document are as similar as the
cosine of their vectors. ``ltr finetune`` trains on these scores and ``ltr text-features`` turns
them into feature columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ltr.lm.encode import evaluating, length_batches, pad_token_rows, pooled_vectors
from ltr.lm.model import TransformerLM
from ltr.lm.tokenizer import TextTokenizer
from ltr.metrics import ndcg
from ltr.text.candidates import CandidateLists
from ltr.text.collection import TextCollection
from ltr.text.cross import cross_scores

NDCG_K = 10


def tokenize_texts(tokenizer: TextTokenizer, texts: Sequence[str], limit: int) -> list[np.ndarray]:
    """Each text's token ids cut to ``limit``; a text with no token becomes ``[SEP]`` alone, so
    that it still has a vector (the mean of nothing is undefined)."""
    rows = tokenizer.encode_batch(list(texts))
    return [np.asarray(row[:limit] or [tokenizer.sep_id], dtype=np.int64) for row in rows]


@dataclass
class TokenizedTexts:
    """A collection's documents and queries as token ids, cut to their maximum lengths.

    A text with no token (an empty document) becomes the single token ``[SEP]``, so that it
    still has a vector (the mean of nothing is undefined)."""

    docs: list[np.ndarray]
    queries: dict[str, np.ndarray]
    pad_id: int
    sep_id: int
    """Between a query and a document read together (a cross-encoder's pair)."""

    @classmethod
    def build(
        cls,
        tokenizer: TextTokenizer,
        collection: TextCollection,
        *,
        max_doc_tokens: int,
        max_query_tokens: int,
    ) -> TokenizedTexts:
        docs = tokenize_texts(tokenizer, collection.doc_texts, max_doc_tokens)
        queries = tokenize_texts(tokenizer, collection.query_texts, max_query_tokens)
        return cls(
            docs,
            dict(zip(collection.query_ids, queries, strict=True)),
            tokenizer.pad_id,
            tokenizer.sep_id,
        )

    def stream(self, separator_id: int) -> np.ndarray:
        """Every document's tokens in one stream, ``separator_id`` between two documents."""
        parts: list[np.ndarray] = []
        for doc in self.docs:
            parts.extend([doc, np.array([separator_id], dtype=np.int64)])
        return np.concatenate(parts[:-1]) if parts else np.zeros(0, dtype=np.int64)

    def pad(self, rows: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """``(ids [N, T], mask [N, T])``: rows padded after their tokens to the longest."""
        return pad_token_rows(rows, self.pad_id)


def encode(model: TransformerLM, ids: Tensor, mask: Tensor) -> Tensor:
    """``[N, d]`` unit vectors: the mean of each row's final hidden states over its real tokens."""
    return pooled_vectors(model, ids, mask)


@torch.no_grad()
def token_vectors(
    model: TransformerLM,
    rows: Sequence[np.ndarray],
    pad_id: int,
    *,
    batch_size: int = 64,
    progress: str | None = None,
) -> Tensor:
    """``[N, d]`` float32 unit vectors of token rows, on the CPU, computed on the model's device.

    Rows are encoded in batches of similar length (sorted by length), so that short texts do not
    pay for the padding of long ones; padding changes no vector (see :func:`encode_texts`).
    ``progress`` names a progress bar (none when None).
    """
    device = next(model.parameters()).device
    out = torch.zeros((len(rows), model.config.d_model))
    with evaluating(model):
        for chunk, ids, mask in length_batches(rows, pad_id, batch_size, progress):
            out[torch.from_numpy(chunk)] = encode(model, ids.to(device), mask.to(device)).cpu()
    return out


def similarities(
    model: TransformerLM,
    queries: Sequence[np.ndarray],
    docs: Sequence[np.ndarray],
    position: np.ndarray,
    pad_id: int,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """``[Q, K]`` cosine similarity of query ``q`` with document ``docs[position[q, k]]`` (token
    rows; each document encoded once, however many lists hold it)."""
    unique = np.unique(position)
    vectors = token_vectors(model, [docs[i] for i in unique], pad_id, batch_size=batch_size)
    query_vectors = token_vectors(model, queries, pad_id, batch_size=batch_size)  # (Q, d)
    found = torch.from_numpy(np.searchsorted(unique, position))  # (Q, K)
    return torch.einsum("qd,qkd->qk", query_vectors, vectors[found]).numpy()


def encoder_scores(
    model: TransformerLM,
    texts: TokenizedTexts,
    lists: CandidateLists,
    *,
    head: nn.Module | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """``[Q, K]`` score of every query of ``lists`` with each of its candidates: the cosine
    similarity of their vectors, or with a cross-encoder's ``head`` the score of the pair read
    together (:mod:`ltr.text.cross`)."""
    queries = [texts.queries[q] for q in lists.query_ids]
    if head is not None:
        return cross_scores(
            model,
            head,
            queries,
            texts.docs,
            lists.doc_index,
            sep_id=texts.sep_id,
            pad_id=texts.pad_id,
            batch_size=batch_size,
        )
    return similarities(
        model, queries, texts.docs, lists.doc_index, texts.pad_id, batch_size=batch_size
    )


def mean_ndcg(scores: np.ndarray, labels: np.ndarray, k: int = NDCG_K) -> float:
    """Mean NDCG@k of candidate lists ranked by ``scores`` (lists with no relevant candidate
    count 1, as everywhere in ``ltr``)."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.float64)
    return float(ndcg(s, y, mask=torch.ones_like(y, dtype=torch.bool), k=k))
