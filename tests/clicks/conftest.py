"""Synthetic judged lists for the click tests."""

from __future__ import annotations

import numpy as np

from ltr.clicks.log import ClickLog, read_log
from ltr.clicks.simulate import simulate_clicks
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


def simulated_log(
    tmp_path, data: ListDataset, scores: np.ndarray, model, *, sessions: int, **kwargs
) -> ClickLog:
    """Simulate ``sessions`` users per query of ``data`` (temperature 1 unless given) into
    ``tmp_path/log.parquet`` and read the log back."""
    path = tmp_path / "log.parquet"
    kwargs.setdefault("temperature", 1.0)
    simulate_clicks(data, scores, path, model=model, sessions=sessions, progress=False, **kwargs)
    return read_log(path)


def pair_grades(log: ClickLog, data: ListDataset) -> np.ndarray:
    """``[D]`` the judged grade of every (query, document) pair of ``log``, by pair code."""
    grade_of = dict(
        zip(zip(data.qids[data.query_of_row], data.doc_ids, strict=True), data.labels, strict=True)
    )
    return np.array(
        [grade_of[(log.qids[q], d)] for q, d in zip(log.doc_qid, log.doc_ids, strict=True)]
    )
