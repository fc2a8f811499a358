"""Synthetic judged lists for the click tests."""

from __future__ import annotations

import numpy as np

from ltr.data.dataset import ListDataset


def judged_lists(
    queries: int, docs: int, *, seed: int = 0, with_doc_ids: bool = True
) -> tuple[ListDataset, np.ndarray]:
    """``queries`` lists of ``docs`` documents with grades 0-2, and logging scores that prefer
    relevant documents without following them exactly (grade plus unit Gaussian noise)."""
    rng = np.random.default_rng(seed)
    n = queries * docs
    grades = rng.integers(0, 3, size=n).astype(np.float32)
    features = rng.normal(size=(n, 3)).astype(np.float32)
    features[:, 0] = grades + rng.normal(size=n)
    offsets = np.arange(0, n + 1, docs)
    doc_ids = np.array([f"d{i % docs}" for i in range(n)], dtype=object) if with_doc_ids else None
    data = ListDataset(
        features, grades, offsets, [f"q{q}" for q in range(queries)], doc_ids, ["a", "b", "c"]
    )
    return data, features[:, 0].astype(np.float64)
