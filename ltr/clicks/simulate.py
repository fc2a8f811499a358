"""Simulated users: clicks on a logging ranker's rankings of judged data.

For every query, each of ``sessions`` users is shown a ranking of the query's documents. The
ranking comes from a logging ranker's scores: with ``temperature`` 0 it is the scores' order in
every session; above 0 each session draws a Plackett-Luce ranking with probabilities
``softmax(z / temperature)``, where ``z`` are the query's scores standardised to mean 0 and
standard deviation 1 (the Gumbel-max trick). Varying rankings are what let
:func:`ltr.clicks.propensity.estimate_em` tell position from relevance. Only the first
``top_k`` documents are shown. The user then clicks each shown document with the click model's
probability for its position and judged grade (:class:`~ltr.clicks.model.PositionBasedModel`,
or :class:`~ltr.clicks.model.TrustBiasModel`), or reads it from the top and stops after a click
with some probability (:class:`~ltr.clicks.model.CascadeModel`), or stops when satisfied or
gives up (:class:`~ltr.clicks.model.DynamicBayesianModel`).

Each query draws from its own generator, seeded by ``(seed, query index)``, so a log does not
depend on how the work is split.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ltr.clicks.log import INTEGER_SESSIONS, ClickLogWriter
from ltr.clicks.model import ClickModel
from ltr.data.dataset import ListDataset
from ltr.errors import ConfigError, DataFormatError

FLUSH_ROWS = 1_000_000


def rank_sessions(
    scores: np.ndarray, sessions: int, temperature: float, rng: np.random.Generator
) -> np.ndarray:
    """``[sessions, n]`` document indices in shown order, one ranking per session."""
    n = len(scores)
    spread = scores.std()
    z = (scores - scores.mean()) / spread if spread > 0 else np.zeros(n)
    if temperature == 0:
        order = np.argsort(-z, kind="stable")
        return np.broadcast_to(order, (sessions, n))
    keys = z / temperature + rng.gumbel(size=(sessions, n))
    return np.argsort(-keys, axis=1, kind="stable")


def simulate_clicks(
    data: ListDataset,
    logging_scores: np.ndarray,
    out: str | Path,
    *,
    model: ClickModel,
    sessions: int = 100,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
    metadata: dict | None = None,
    progress: bool = True,
) -> int:
    """Simulate ``sessions`` users per query of ``data`` and write their click log to ``out``.

    Args:
        data: judged lists; ``data.labels`` are the grades the users respond to, and every
            row needs a document id.
        logging_scores: ``[N]`` the logging ranker's score of every row of ``data``.
        model: the click model.
        temperature: 0 = the same ranking in every session; above 0, Plackett-Luce sampling.
        top_k: show only the first ``top_k`` documents (None = all).

    Returns:
        The number of impressions written.
    """
    if sessions < 1:
        raise ConfigError(f"sessions must be at least 1, got {sessions}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"temperature must be a number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    logging_scores = np.asarray(logging_scores, dtype=np.float64)
    if logging_scores.shape != (data.num_rows,):
        raise ValueError(f"{logging_scores.shape} logging scores for {data.num_rows} rows")
    if not np.isfinite(logging_scores).all():
        row = int(np.flatnonzero(~np.isfinite(logging_scores))[0])
        raise DataFormatError(f"the logging score of row {row} is not a finite number")
    check_simulable(data, model)

    def shown_sessions() -> Iterator[Shown]:
        for q in range(len(data)):
            start, end = data.offsets[q], data.offsets[q + 1]
            rng = np.random.default_rng([seed, q])
            ranked = rank_sessions(logging_scores[start:end], sessions, temperature, rng)
            shown = ranked[:, :top_k] if top_k is not None else ranked
            yield Shown(q, np.arange(q * sessions, (q + 1) * sessions), shown, rng)

    meta = {"sessions": sessions, "temperature": temperature, "top_k": top_k, "seed": seed}
    return write_sessions(
        data, out, shown_sessions(), model=model, metadata={**meta, **(metadata or {})},
        progress=progress,
    )  # fmt: skip


@dataclass(frozen=True)
class Shown:
    """What the users of one query were shown: ``rankings[s]`` is session ``s``'s list, as the
    query's row indices (0-based within the query) from the top; ``rng`` draws the clicks."""

    query: int
    sessions: np.ndarray  # [S] session ids (int64 or str)
    rankings: np.ndarray  # [S, m] row indices within the query
    rng: np.random.Generator


def check_simulable(data: ListDataset, model: ClickModel) -> None:
    """Refuse data users cannot be simulated on: a row without a document id, a grade above the
    click model's top grade."""
    missing = np.array([d is None or d == "" for d in data.doc_ids])
    if missing.any():
        q = data.qids[data.query_of_row[int(np.flatnonzero(missing)[0])]]
        raise DataFormatError(
            f"query {q!r} has a row without a document id; a click log names the documents it "
            "shows (LETOR files carry them as '#docid = ...')"
        )
    if data.labels.max() > model.max_grade:
        raise ConfigError(
            f"the data has grade {data.labels.max():g}, above the click model's max_grade "
            f"{model.max_grade:g}"
        )


def write_sessions(
    data: ListDataset,
    out: str | Path,
    shown: Iterable[Shown],
    *,
    model: ClickModel,
    metadata: dict,
    session_type: pa.DataType = INTEGER_SESSIONS,
    progress: bool = True,
) -> int:
    """Draw the clicks of every session in ``shown`` (query by query, in order) under ``model``
    on ``data``'s grades and write the click log to ``out``; returns the impressions written."""
    buffer: list[tuple[np.ndarray, ...]] = []
    buffered = 0
    meta = {**model.to_dict(), **metadata}
    with ClickLogWriter(out, meta, session_type=session_type) as writer:
        for item in tqdm(
            shown, total=len(data), desc="simulating", unit="query", disable=not progress
        ):
            start, end = data.offsets[item.query], data.offsets[item.query + 1]
            rankings = item.rankings
            count, m = rankings.shape
            positions = np.broadcast_to(np.arange(1, m + 1), rankings.shape)
            clicks = model.clicks(data.labels[start:end][rankings], item.rng)
            buffer.append(
                (
                    np.repeat(item.sessions, m),
                    np.full(count * m, data.qids[item.query], dtype=object),
                    data.doc_ids[start:end][rankings].reshape(-1),
                    positions.reshape(-1),
                    clicks.reshape(-1).astype(np.int8),
                )
            )
            buffered += count * m
            if buffered >= FLUSH_ROWS:
                writer.write(*(np.concatenate(c) for c in zip(*buffer, strict=True)))
                buffer, buffered = [], 0
        if buffer:
            writer.write(*(np.concatenate(c) for c in zip(*buffer, strict=True)))
    return writer.rows_written


def logging_scores(
    data: ListDataset, *, feature: str | None = None, scores: pa.Table | None = None
) -> np.ndarray:
    """``[N]`` a logging ranker's scores of ``data``'s rows: one feature's values, or the
    ``score`` column of a table with ``qid``, ``doc_id`` and ``score`` (e.g. ``ltr score``
    output), joined by ``(qid, doc_id)``."""
    if (feature is None) == (scores is None):
        raise ConfigError("give the logging ranker as a feature name or a scores table, not both")
    if feature is not None:
        if feature not in data.feature_names:
            shown = ", ".join(data.feature_names[:5])
            raise ConfigError(
                f"no feature {feature!r} in the data; its {data.num_features} features are "
                f"named {shown}{', ...' if data.num_features > 5 else ''}"
            )
        return data.features[:, data.feature_names.index(feature)].astype(np.float64)
    assert scores is not None
    missing = [c for c in ("qid", "doc_id", "score") if scores.schema.get_field_index(c) < 0]
    if missing:
        raise DataFormatError(f"the scores have no {', '.join(map(repr, missing))} column")
    qids = scores.column("qid").cast("string").to_pylist()
    docs = scores.column("doc_id").cast("string").to_pylist()
    values = scores.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    by_key = dict(zip(zip(qids, docs, strict=True), values, strict=True))
    query_of_row = data.query_of_row
    out = np.empty(data.num_rows)
    for row, doc in enumerate(data.doc_ids):
        key = (data.qids[query_of_row[row]], doc)
        if key not in by_key:
            raise DataFormatError(
                f"no logging score for document {doc!r} of query {key[0]!r}; the scores must "
                "cover every document of the data"
            )
        out[row] = by_key[key]
    return out
