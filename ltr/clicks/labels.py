"""Relevance labels from clicks, joined to features: the training data of click-based LTR.

For a document ``d`` shown ``n_d`` times, the IPS label is the mean over its impressions

    label_d = (1 / n_d) * sum over impressions of d at position k of  click / theta_k

Under the position-based model ``E[click] = theta_k * gamma_d`` for every impression, so the
label's expectation is ``gamma_d``, the probability that a user who looks at ``d`` clicks it,
whatever positions the logging ranker gave it and however often it was shown (Joachims et al.
2017; Wang et al. 2016). With ``theta_k = 1`` (``propensity=None``) the label is the
click-through rate, which favours what the logging ranker already put on top.

A listwise loss that is linear in the labels, like ``softmax`` (label-proportional targets), then
optimises in expectation the same objective as with relevance labels: the IPS-weighted softmax
cross-entropy of Ai et al. (2018). ``min_propensity`` clips ``theta_k`` from below, which bounds
the labels' variance at the price of some bias.

A document shown a few times gets a label from a few clicks, each multiplied by up to ``1 /
theta_k``: unbiased, but noisy enough to drown what it says. A prior shrinks it: the label
becomes ``(sum of click / theta_k + s * prior_d) / (n_d + s)``, the IPS mean with ``s`` pseudo
impressions of ``prior_d``, a relevance estimate from the document's features
(:func:`ltr.clicks.propensity.relevance_prior`). Documents with many impressions keep their
IPS label; documents with few lean on what their features predict.

Under trust bias (a propensity with ``click_model="trust"``) clicks are affine in relevance,
``E[click] = alpha_k * gamma_d + beta_k``, and the label is the affine correction of Vardasbi
et al. (2020), the mean over impressions of ``(click - beta_k) / alpha_k``, whose expectation is
again ``gamma_d``. It is negative for a document whose clicks fall short of the false clicks its
positions would draw; ranking metrics and the label-proportional losses need labels >= 0, so
negative labels become 0 (``clip_negative``), which raises the labels of irrelevant documents a
little (by half the mean absolute value of their noise, at most).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltr.clicks.log import ClickLog, Counts, aggregate
from ltr.clicks.propensity import Propensity
from ltr.data.dataset import ListDataset
from ltr.data.parquet import ParquetListWriter
from ltr.data.svmlight import RowChunk
from ltr.errors import ConfigError, DataFormatError


def click_labels(
    log: ClickLog,
    propensity: Propensity | None,
    *,
    min_propensity: float = 0.0,
    clip_negative: bool = True,
    prior: np.ndarray | None = None,
    prior_strength: float = 0.0,
) -> np.ndarray:
    """``[D]`` the label of every (query, document) pair of the log (see the module doc).

    ``min_propensity`` clips ``theta_k`` (trust: ``alpha_k``) from below; ``clip_negative``
    turns the negative labels of the affine correction into 0. With a ``prior`` (``[D]``, e.g.
    :func:`ltr.clicks.propensity.relevance_prior`), each label is shrunk towards it as if the
    prior were ``prior_strength`` more impressions: ``(sum of corrected clicks + s * prior) /
    (n_d + s)``.
    """
    if not (0 <= min_propensity <= 1):
        raise ConfigError(f"min_propensity must be in [0, 1], got {min_propensity}")
    if not (np.isfinite(prior_strength) and prior_strength >= 0):
        raise ConfigError(f"prior_strength must be a number >= 0, got {prior_strength}")
    if (prior is None) != (prior_strength == 0):
        raise ConfigError("give a prior and a prior_strength above 0 together")
    total, impressions = _corrected_sums(
        aggregate(log), propensity, min_propensity, len(log.doc_ids)
    )
    if prior is not None:
        total = total + prior_strength * np.asarray(prior, dtype=np.float64)
        impressions = impressions + prior_strength
    labels = total / impressions
    return np.maximum(labels, 0.0) if clip_negative else labels


def _corrected_sums(
    counts: Counts, propensity: Propensity | None, min_propensity: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[size]`` each pair's sum of corrected clicks (``(click - beta_k) / theta_k``) and its
    impressions."""
    if propensity is None:
        theta, beta = np.ones(len(counts.position)), np.zeros(len(counts.position))
    else:
        theta = np.maximum(propensity.at(counts.position), min_propensity)
        beta = propensity.offset(counts.position)
    corrected = (counts.clicks - counts.impressions * beta) / theta
    total = np.bincount(counts.doc, weights=corrected, minlength=size)
    impressions = np.bincount(counts.doc, weights=counts.impressions, minlength=size)
    return total, impressions.astype(np.float64)


PRIOR_STRENGTHS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
"""The strengths :func:`choose_prior_strength` tries by default (0 = plain IPS)."""


@dataclass(frozen=True)
class PriorChoice:
    """What :func:`choose_prior_strength` measured: the held-out squared error of each strength."""

    strength: float
    """The strength with the smallest held-out error (the smallest such, on a tie)."""
    strengths: tuple[float, ...]
    errors: tuple[float, ...]
    """Mean over held-out impressions of ``(click - theta_k * label_d)^2``, per strength."""
    folds: int
    impressions: int
    """Held-out impressions scored (those of documents with impressions in the other folds)."""


def choose_prior_strength(
    log: ClickLog,
    propensity: Propensity,
    features: np.ndarray,
    *,
    strengths: tuple[float, ...] = PRIOR_STRENGTHS,
    folds: int = 5,
    seed: int = 0,
    min_propensity: float = 0.0,
    progress: bool = False,
) -> PriorChoice:
    """The prior strength whose labels best predict held-out clicks (PBM), by cross-validation
    over the log's sessions, with no judgment needed.

    The sessions are dealt at random into ``folds`` folds. For each fold, the relevance prior
    (:func:`ltr.clicks.propensity.relevance_prior`, ``features``: ``[D, F]`` by pair code) is
    fitted to the other folds' sessions, and each strength ``s`` makes labels from them as
    :func:`click_labels` does; those labels predict the fold's clicks,
    ``P(click at k) = theta_k * label_d``, scored by the squared error. Under the PBM a held-out
    impression's expected squared error is ``Var(click) + theta_k^2 (label_d - gamma_d)^2``, so
    the strength with the smallest error is the one whose labels are nearest the true relevance
    (weighted by ``theta_k^2``), up to the noise of the held-out clicks.

    Raises:
        ConfigError: fewer than 2 folds, more folds than sessions, a strength below 0, or a
            trust-bias propensity (the prior is fitted under the PBM).
        DataFormatError: every document was shown in one session only (nothing to score).
    """
    from tqdm.auto import tqdm

    from ltr.clicks.propensity import relevance_prior

    grid = strength_grid(strengths)
    if propensity.click_model != "pbm":
        raise ConfigError("the prior strength is chosen under the PBM, not trust bias")
    fold_of_row = session_folds(log, folds, seed)
    size = len(log.doc_ids)
    squared = np.zeros(len(grid))
    scored = 0
    for fold in tqdm(range(folds), desc="choosing the prior strength", disable=not progress):
        held = fold_of_row == fold
        train, test = aggregate(log.subset(~held)), aggregate(log.subset(held))
        total, impressions = _corrected_sums(train, propensity, min_propensity, size)
        prior = relevance_prior(train, propensity, features)
        seen = impressions[test.doc] > 0  # a document unseen in training says nothing about s
        doc, n, c = test.doc[seen], test.impressions[seen], test.clicks[seen]
        theta = propensity.at(test.position[seen])
        for i, s in enumerate(grid):
            label = (total[doc] + s * prior[doc]) / (impressions[doc] + s)
            p = theta * label
            squared[i] += (c * (1.0 - p) ** 2 + (n - c) * p**2).sum()
        scored += int(n.sum())
    return prior_choice(grid, squared, scored, folds)


def strength_grid(strengths: tuple[float, ...]) -> np.ndarray:
    """The strengths to try, checked and sorted (so that a tie goes to the smallest)."""
    grid = np.unique(np.asarray(strengths, dtype=np.float64))
    if len(grid) == 0 or not (np.isfinite(grid).all() and (grid >= 0).all()):
        raise ConfigError(f"prior strengths must be numbers >= 0, got {list(strengths)}")
    return grid


def session_folds(log: ClickLog, folds: int, seed: int) -> np.ndarray:
    """``[N]`` the cross-validation fold of each impression: its session's, dealt at random."""
    if not 2 <= folds <= log.num_sessions:
        raise ConfigError(f"folds must be in [2, {log.num_sessions}] (the sessions), got {folds}")
    return (np.random.default_rng(seed).permutation(log.num_sessions) % folds)[log.session]


def prior_choice(grid: np.ndarray, squared: np.ndarray, scored: int, folds: int) -> PriorChoice:
    """The strength of ``grid`` with the least held-out squared error (``squared`` summed over
    ``scored`` impressions)."""
    if scored == 0:
        raise DataFormatError(
            "no document of a held-out fold was shown in the other folds (each one was shown in "
            "one session only), so held-out clicks cannot tell the strengths apart; give a "
            "strength by hand (docs/CLICKS.md)"
        )
    errors = squared / scored
    return PriorChoice(
        strength=float(grid[int(np.argmin(errors))]),
        strengths=tuple(float(s) for s in grid),
        errors=tuple(float(e) for e in errors),
        folds=folds,
        impressions=scored,
    )


@dataclass(frozen=True)
class LabelStats:
    queries: int
    documents: int
    unlogged_documents: int
    """Documents of the feature file's logged queries that no session showed (left out)."""
    clicked_documents: int


def match_rows(log: ClickLog, features: ListDataset) -> np.ndarray:
    """``[N]`` the log's pair code of each row of ``features`` by ``(qid, doc_id)``, or -1 for a
    row the log never showed.

    Raises:
        DataFormatError: a ``(qid, doc_id)`` twice in ``features``, or a logged pair that
            ``features`` lacks.
    """
    pair_of = {
        (log.qids[q], d): i for i, (q, d) in enumerate(zip(log.doc_qid, log.doc_ids, strict=True))
    }
    row_pairs = np.full(features.num_rows, -1, dtype=np.int64)
    seen: set[tuple[str, str]] = set()
    query_of_row = features.query_of_row
    for row, doc in enumerate(features.doc_ids):
        key = (features.qids[query_of_row[row]], doc)
        if key in seen:
            raise DataFormatError(
                f"the feature data holds document {doc!r} of query {key[0]!r} twice; clicks "
                "are joined to features by (qid, doc_id), which must be unique"
            )
        seen.add(key)
        row_pairs[row] = pair_of.get(key, -1)
    found = np.zeros(len(log.doc_ids), dtype=bool)
    found[row_pairs[row_pairs >= 0]] = True
    if not found.all():
        missing = int(np.flatnonzero(~found)[0])
        raise DataFormatError(
            f"{int((~found).sum())} logged documents have no features, e.g. document "
            f"{log.doc_ids[missing]!r} of query {log.qids[log.doc_qid[missing]]!r}; give the "
            "feature file(s) that cover the log's queries"
        )
    return row_pairs


def pair_features(
    log: ClickLog, features: ListDataset, row_pairs: np.ndarray | None = None
) -> np.ndarray:
    """``[D, F]`` the features of every (query, document) pair of the log, by pair code
    (``row_pairs``: :func:`match_rows`' result, when the caller already has it)."""
    if row_pairs is None:
        row_pairs = match_rows(log, features)
    out = np.empty((len(log.doc_ids), features.num_features), dtype=np.float64)
    keep = row_pairs >= 0
    out[row_pairs[keep]] = features.features[keep]
    return out


def write_labelled(
    log: ClickLog,
    labels: np.ndarray,
    features: ListDataset,
    out: str | Path,
    row_pairs: np.ndarray | None = None,
) -> LabelStats:
    """Write the logged documents of ``features`` with ``labels`` as ltr Parquet to ``out``.

    Queries keep the feature file's order, and documents their order within it. Documents no
    session showed are left out (nothing was learnt about them); a logged document that the
    feature file lacks is an error.
    """
    if row_pairs is None:
        row_pairs = match_rows(log, features)
    query_of_row = features.query_of_row
    keep = row_pairs >= 0
    logged_queries = np.zeros(len(features), dtype=bool)
    logged_queries[query_of_row[keep]] = True
    unlogged = int((~keep & logged_queries[query_of_row]).sum())
    rows = np.flatnonzero(keep)
    clicked = np.zeros(len(log.doc_ids), dtype=bool)
    clicked[log.doc[log.click == 1]] = True  # not labels > 0: a prior lifts unclicked labels
    chunk = RowChunk(
        qids=features.qids[query_of_row[rows]],
        doc_ids=features.doc_ids[rows],
        labels=labels[row_pairs[rows]].astype(np.float32),
        features=features.features[rows],
    )
    with ParquetListWriter(out, features.num_features, feature_names=features.feature_names) as w:
        w.write(chunk)
    return LabelStats(
        queries=int(logged_queries.sum()),
        documents=len(rows),
        unlogged_documents=unlogged,
        clicked_documents=int(clicked[row_pairs[rows]].sum()),
    )
