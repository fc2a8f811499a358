"""Grouped evaluation: offsets, chunking, the three conventions, and batch evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metrics_reference import ndcg as ref_ndcg
from metrics_reference import reciprocal_rank as ref_rr

from ltr.errors import ConfigError, DataFormatError
from ltr.metrics import (
    CONVENTIONS,
    DEFAULT_METRICS,
    evaluate_all_conventions,
    evaluate_batch,
    evaluate_grouped,
    evaluate_grouped_per_query,
    group_offsets,
    ndcg,
    padded_chunks,
)

LOG2_3 = math.log2(3)


def test_group_offsets_from_query_ids_and_sizes() -> None:
    # query ids 7, 7, 3, 3, 3, 9 -> runs of 2, 3, 1 rows starting at 0, 2, 5
    ids = np.array([7, 7, 3, 3, 3, 9])
    assert group_offsets(query_ids=ids).tolist() == [0, 2, 5, 6]
    assert group_offsets(group_sizes=np.array([2, 3, 1])).tolist() == [0, 2, 5, 6]
    assert group_offsets(query_ids=np.array(["b", "b", "a"])).tolist() == [0, 2, 3]
    assert group_offsets(query_ids=np.array([], dtype=int)).tolist() == [0]


def test_group_offsets_errors() -> None:
    with pytest.raises(DataFormatError, match="not contiguous"):
        group_offsets(query_ids=np.array([1, 1, 2, 1]))
    with pytest.raises(ConfigError, match="exactly one"):
        group_offsets()
    with pytest.raises(ConfigError, match="exactly one"):
        group_offsets(query_ids=np.array([1]), group_sizes=np.array([1]))
    with pytest.raises(DataFormatError, match="non-negative integers"):
        group_offsets(group_sizes=np.array([2, -1]))
    with pytest.raises(DataFormatError, match="non-negative integers"):
        group_offsets(group_sizes=np.array([1.5]))


def test_offsets_must_cover_the_rows() -> None:
    with pytest.raises(DataFormatError, match="add up"):
        evaluate_grouped(np.zeros(5), np.zeros(5), np.array([0, 2, 4]))
    with pytest.raises(DataFormatError, match="equal length"):
        evaluate_grouped(np.zeros(5), np.zeros(4), np.array([0, 5]))


def test_chunks_bound_memory_and_cover_every_query() -> None:
    lengths = np.array([5, 1, 0, 3, 8, 2, 2])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.arange(offsets[-1], dtype=np.float64)
    seen = []
    for chunk in padded_chunks(rows, rows, offsets, max_cells=8):
        n_lists, width = chunk.mask.shape
        assert n_lists * width <= 8 or n_lists == 1
        for i, q in enumerate(chunk.queries):
            got = chunk.scores[i][chunk.mask[i]].numpy()
            np.testing.assert_array_equal(got, rows[offsets[q] : offsets[q + 1]])
        seen.extend(chunk.queries.tolist())
    assert sorted(seen) == list(range(lengths.size))


# Three queries: q0 labels 1, 0 with scores 1, 2 (NDCG = 1/log2 3, RR = 1/2);
# q1 all labels 0 (empty); q2 labels 0, 2 with scores 0, 5 (perfect: NDCG 1, RR 1).
SCORES = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 5.0])
LABELS = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 2.0])
QIDS = np.array([10, 10, 11, 11, 12, 12])


def test_all_conventions_hand() -> None:
    got = evaluate_all_conventions(
        SCORES, LABELS, group_offsets(query_ids=QIDS), metrics=["ndcg", "mrr"]
    )
    assert set(got) == {"empty=1", "empty=0", "dropped"} == set(CONVENTIONS)
    v0 = 1 / LOG2_3
    assert got["empty=1"]["ndcg"] == pytest.approx((v0 + 1 + 1) / 3)
    assert got["empty=0"]["ndcg"] == pytest.approx((v0 + 0 + 1) / 3)
    assert got["dropped"]["ndcg"] == pytest.approx((v0 + 1) / 2)
    assert got["empty=1"]["mrr"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert got["empty=0"]["mrr"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert got["dropped"]["mrr"] == pytest.approx((1 / 2 + 1) / 2)


def test_per_query_values_and_default_metrics() -> None:
    offsets = group_offsets(query_ids=QIDS)
    per_q = evaluate_grouped_per_query(SCORES, LABELS, offsets, empty="drop")
    assert list(per_q) == list(DEFAULT_METRICS)
    np.testing.assert_allclose(per_q["ndcg@10"], [1 / LOG2_3, np.nan, 1.0], equal_nan=True)
    np.testing.assert_allclose(per_q["ndcg@1"], [0.0, np.nan, 1.0], equal_nan=True)
    means = evaluate_grouped(SCORES, LABELS, offsets, empty="drop")
    for name, values in per_q.items():
        assert means[name] == pytest.approx(np.nanmean(values))


def test_zero_length_queries_are_left_out_under_every_policy() -> None:
    # group sizes 2, 0, 4: the empty group is NaN and never counted.
    offsets = group_offsets(group_sizes=np.array([2, 0, 4]))
    for policy in ("one", "zero", "drop"):
        per_q = evaluate_grouped_per_query(SCORES, LABELS, offsets, metrics=["ndcg"], empty=policy)
        assert math.isnan(per_q["ndcg"][1])
    one = evaluate_grouped(SCORES, LABELS, offsets, metrics=["ndcg"], empty="one")
    # q0 = 1/log2 3; q2 = labels 0, 0, 0, 2 with scores 3, 4, 0, 5: perfect -> 1.
    assert one["ndcg"] == pytest.approx((1 / LOG2_3 + 1) / 2)


def test_grouped_matches_reference_on_larger_random_data() -> None:
    """Many queries of mixed lengths through small chunks against the plain-Python reference."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 60, size=300)
    offsets = group_offsets(group_sizes=sizes)
    scores = rng.integers(0, 20, size=offsets[-1]).astype(float)  # ties
    labels = rng.integers(0, 3, size=offsets[-1]).astype(float) * (rng.random(offsets[-1]) < 0.3)
    got = evaluate_grouped_per_query(
        scores, labels, offsets, metrics=["ndcg@5", "mrr"], empty="zero", max_cells=500
    )
    for q in range(sizes.size):
        s, y = list(scores[offsets[q] : offsets[q + 1]]), list(labels[offsets[q] : offsets[q + 1]])
        nd, _ = ref_ndcg(s, y, k=5)
        rr, _ = ref_rr(s, y)
        assert got["ndcg@5"][q] == pytest.approx(nd, abs=1e-12)
        assert got["mrr"][q] == pytest.approx(rr, abs=1e-12)


def test_evaluate_batch_equals_individual_metrics() -> None:
    scores = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.2, 0.9]])
    labels = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    got = evaluate_batch(scores, labels, mask=mask, metrics=["ndcg@2", "dcg"], empty="zero")
    assert set(got) == {"ndcg@2", "dcg"}
    torch.testing.assert_close(got["ndcg@2"], ndcg(scores, labels, mask=mask, k=2, empty="zero"))
    # q0 ranks labels 0, 1, 2 -> DCG = 0 + 1/log2 3 + 3/2; q1 ranks 0, 1 -> 1/log2 3.
    expected_dcg = ((1 / LOG2_3 + 3 / 2) + 1 / LOG2_3) / 2
    assert float(got["dcg"]) == pytest.approx(expected_dcg, abs=1e-6)


def test_options_reach_only_the_metrics_that_take_them() -> None:
    # q2 label 2 under max_grade 2: R = 3/4 at rank 1 -> ERR = 3/4; gain is NDCG-only.
    offsets = group_offsets(query_ids=QIDS)
    got = evaluate_grouped_per_query(
        SCORES,
        LABELS,
        offsets,
        metrics=["err", "ndcg", "map"],
        max_grade=2,
        gain="linear",
        threshold=1.5,
    )
    assert got["err"][2] == pytest.approx(3 / 4)
    # threshold 1.5: q0's label 1 no longer counts as relevant -> q0 is empty -> 1 under ONE.
    assert got["map"][0] == pytest.approx(1.0)
    assert got["ndcg"][0] == pytest.approx(1 / LOG2_3)  # linear: (1/log2 3) / 1


def test_no_queries_gives_nan_means() -> None:
    got = evaluate_all_conventions(np.zeros(0), np.zeros(0), group_offsets(group_sizes=[]))
    for table in got.values():
        assert list(table) == list(DEFAULT_METRICS)
        assert all(math.isnan(v) for v in table.values())
