"""Properties checked over every registered metric, and agreement with a plain-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metrics_reference import REFERENCE, apply_policy, mean_ignoring_nan

from ltr.metrics import METRICS, evaluate_grouped_per_query, resolve_metric
from ltr.types import EmptyListPolicy, TieBreak

NAMES = [f"{base}@{k}" for base in METRICS for k in (1, 3, 10)] + list(METRICS)


def _ragged(
    seed: int, n_lists: int = 30, max_len: int = 12, max_label: int = 4, tied: bool = False
):
    """Random [B, L] lists: ragged lengths (some 0 and 1), some all-zero lists, optional ties."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_len + 1, size=n_lists)
    lengths[:3] = [0, 1, max_len]
    if tied:  # few distinct values -> many exact ties
        scores = rng.integers(0, 3, size=(n_lists, max_len)).astype(np.float64)
    else:
        scores = rng.normal(size=(n_lists, max_len))
    labels = rng.integers(0, max_label + 1, size=(n_lists, max_len)).astype(np.float64)
    labels[3:6] = 0.0  # empty lists (no relevant item)
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    return scores, labels, mask


def _call(name, scores, labels, mask, **kwargs):
    parsed = resolve_metric(name)
    opts = {"max_grade": 4.0} if parsed.base == "err" else {}
    return parsed.spec.metric(
        torch.as_tensor(scores),
        torch.as_tensor(labels),
        mask=torch.as_tensor(mask),
        k=parsed.k,
        **opts,
        **kwargs,
    )


def _reference(name, scores, labels, mask, ties, empty):
    parsed = resolve_metric(name)
    fn = REFERENCE[parsed.base]
    out = []
    for s, y, m in zip(scores, labels, mask, strict=True):
        if not m.any():
            out.append(math.nan)  # fully padded row
            continue
        value, relevant = fn(list(s[m]), list(y[m]), k=parsed.k, ties=ties)
        out.append(apply_policy(value, relevant, empty, parsed.base))
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("ties", ["pessimistic", "position"])
def test_matches_plain_python_reference(name, ties) -> None:
    scores, labels, mask = _ragged(seed=1, tied=True)
    for empty in ("one", "zero", "drop"):
        expected = _reference(name, scores, labels, mask, ties, empty)
        got = _call(name, scores, labels, mask, ties=ties, empty=empty, reduction="none")
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-9, equal_nan=True)
        mean = _call(name, scores, labels, mask, ties=ties, empty=empty)
        assert float(mean) == pytest.approx(mean_ignoring_nan(expected), abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_padding_invariance(name) -> None:
    scores, labels, mask = _ragged(seed=2, tied=True)
    base = _call(name, scores, labels, mask, reduction="none")
    extra = 5
    b = scores.shape[0]
    # extra padded slots with huge scores and labels inside the max_grade range (ERR checks it),
    # and the existing padded slots overwritten likewise
    big_scores = np.concatenate([np.where(mask, scores, 1e9), np.full((b, extra), 1e12)], axis=1)
    big_labels = np.concatenate([np.where(mask, labels, 4.0), np.full((b, extra), 4.0)], axis=1)
    big_mask = np.concatenate([mask, np.zeros((b, extra), dtype=bool)], axis=1)
    padded = _call(name, big_scores, big_labels, big_mask, reduction="none")
    torch.testing.assert_close(padded, base, equal_nan=True, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_permutation_invariance_with_distinct_scores(name) -> None:
    scores, labels, mask = _ragged(seed=3)
    rng = np.random.default_rng(4)
    perm = np.stack([rng.permutation(scores.shape[1]) for _ in range(scores.shape[0])])
    take = np.take_along_axis
    base = _call(name, scores, labels, mask, reduction="none")
    shuffled = _call(
        name, take(scores, perm, 1), take(labels, perm, 1), take(mask, perm, 1), reduction="none"
    )
    torch.testing.assert_close(shuffled, base, equal_nan=True, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("empty", list(EmptyListPolicy))
def test_values_in_unit_interval_when_bounded(name, empty) -> None:
    scores, labels, mask = _ragged(seed=5, tied=True)
    got = _call(name, scores, labels, mask, empty=empty, reduction="none").numpy()
    real = got[~np.isnan(got)]
    assert real.size > 0
    assert (real >= 0).all()
    if resolve_metric(name).spec.bounded:
        assert (real <= 1 + 1e-12).all()


@pytest.mark.parametrize("ties", list(TieBreak))
def test_tensor_form_equals_grouped_form(ties) -> None:
    """Ragged flat rows evaluated grouped (chunked, reordered by length) and as one batch."""
    scores, labels, mask = _ragged(seed=6, n_lists=60, max_len=30, tied=True)
    lengths = mask.sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat_scores, flat_labels = scores[mask], labels[mask]  # row-major: each list's rows in order
    for empty in EmptyListPolicy:
        grouped = evaluate_grouped_per_query(
            flat_scores,
            flat_labels,
            offsets,
            metrics=NAMES,
            empty=empty,
            ties=ties,
            max_cells=64,  # many small chunks
        )
        for name in NAMES:
            tensor = _call(name, scores, labels, mask, ties=ties, empty=empty, reduction="none")
            np.testing.assert_allclose(grouped[name], tensor.numpy(), atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", list(METRICS))
def test_float32_and_float64_agree(name) -> None:
    scores, labels, mask = _ragged(seed=7)
    f64 = _call(name, scores, labels, mask, reduction="none")
    f32 = _call(name, scores.astype(np.float32), labels.astype(np.float32), mask, reduction="none")
    assert f32.dtype == torch.float32 and f64.dtype == torch.float64
    np.testing.assert_allclose(f32.numpy(), f64.numpy(), atol=1e-5, equal_nan=True)
