"""Every metric on small lists, checked against arithmetic written out here."""

from __future__ import annotations

import math

import pytest
import torch

from ltr.metrics import (
    dcg,
    err,
    mean_average_precision,
    mean_reciprocal_rank,
    ndcg,
    precision,
    recall,
)
from ltr.types import EmptyListPolicy, TieBreak

LOG2_3 = math.log2(3)  # rank 2 discount is 1 / log2(3)
LOG2_5 = math.log2(5)  # rank 4
LOG2_6 = math.log2(6)  # rank 5

# List A, already in score order: ranks 1..5 hold labels 2, 0, 1, 0, 1.
SCORES_A = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]], dtype=torch.float64)
LABELS_A = torch.tensor([[2.0, 0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
MASK_A = torch.ones(1, 5, dtype=torch.bool)


def _a(fn, **kwargs) -> float:
    return float(fn(SCORES_A, LABELS_A, mask=MASK_A, **kwargs))


def test_dcg_and_ndcg_exp2_gain() -> None:
    # exp2 gains 2^y - 1 by rank: 3, 0, 1, 0, 1; discounts 1, 1/log2 3, 1/2, 1/log2 5, 1/log2 6.
    dcg3 = 3 * 1 + 0 / LOG2_3 + 1 / 2  # = 3.5
    dcg_all = dcg3 + 0 / LOG2_5 + 1 / LOG2_6
    # ideal order 2, 1, 1, 0, 0 -> gains 3, 1, 1, 0, 0
    idcg3 = 3 + 1 / LOG2_3 + 1 / 2
    assert _a(dcg, k=3) == pytest.approx(3.5, abs=1e-12)
    assert _a(dcg) == pytest.approx(dcg_all, abs=1e-12)
    assert _a(ndcg, k=3) == pytest.approx(dcg3 / idcg3, abs=1e-12)
    assert _a(ndcg) == pytest.approx(dcg_all / idcg3, abs=1e-12)  # gains 0 beyond rank 3
    assert _a(ndcg, k=1) == pytest.approx(3 / 3, abs=1e-12)
    assert _a(ndcg, k=2) == pytest.approx(3 / (3 + 1 / LOG2_3), abs=1e-12)


def test_dcg_and_ndcg_linear_gain() -> None:
    # linear gains y by rank: 2, 0, 1, 0, 1; ideal 2, 1, 1, 0, 0.
    dcg3 = 2 + 0 + 1 / 2
    idcg3 = 2 + 1 / LOG2_3 + 1 / 2
    assert _a(dcg, k=3, gain="linear") == pytest.approx(2.5, abs=1e-12)
    assert _a(ndcg, k=3, gain="linear") == pytest.approx(dcg3 / idcg3, abs=1e-12)
    assert _a(ndcg, gain="linear") == pytest.approx((dcg3 + 1 / LOG2_6) / idcg3, abs=1e-12)


def test_cutoff_beyond_list_length_is_whole_list() -> None:
    assert _a(ndcg, k=50) == pytest.approx(_a(ndcg), abs=1e-12)
    # P@10 of a 5-item list divides by min(10, 5) = 5: relevant at ranks 1, 3, 5 -> 3/5.
    assert _a(precision, k=10) == pytest.approx(3 / 5, abs=1e-12)


def test_map_hand() -> None:
    # relevant (label > 0) at ranks 1, 3, 5: P@1 = 1, P@3 = 2/3, P@5 = 3/5; R = 3.
    assert _a(mean_average_precision) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3, abs=1e-12)
    # AP@3 keeps the hits at ranks 1 and 3 and still divides by R = 3 (trec_eval map_cut).
    assert _a(mean_average_precision, k=3) == pytest.approx((1 + 2 / 3) / 3, abs=1e-12)
    # threshold 1: only the label-2 item at rank 1 is relevant -> AP = 1/1.
    assert _a(mean_average_precision, threshold=1.0) == pytest.approx(1.0, abs=1e-12)


def test_mrr_hand() -> None:
    # list B: labels by rank 0, 0, 1, 2 -> first relevant at rank 3.
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    labels = torch.tensor([[0.0, 0.0, 1.0, 2.0], [0.0, 2.0, 0.0, 0.0]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    per_list = mean_reciprocal_rank(scores, labels, mask=mask, reduction="none")
    torch.testing.assert_close(per_list, torch.tensor([1 / 3, 1 / 2]))
    # MRR@2: the first list's hit at rank 3 is beyond the cut-off -> 0; the second keeps 1/2.
    at2 = mean_reciprocal_rank(scores, labels, mask=mask, k=2)
    assert float(at2) == pytest.approx((0 + 1 / 2) / 2, abs=1e-7)
    # threshold 1: the first list's first label > 1 is at rank 4.
    thr = mean_reciprocal_rank(scores, labels, mask=mask, threshold=1.0, reduction="none")
    torch.testing.assert_close(thr, torch.tensor([1 / 4, 1 / 2]))


def test_precision_recall_hand() -> None:
    # relevant at ranks 1, 3, 5 of 5; R = 3.
    assert _a(precision, k=1) == pytest.approx(1 / 1, abs=1e-12)
    assert _a(precision, k=2) == pytest.approx(1 / 2, abs=1e-12)
    assert _a(precision, k=3) == pytest.approx(2 / 3, abs=1e-12)
    assert _a(precision) == pytest.approx(3 / 5, abs=1e-12)
    assert _a(recall, k=1) == pytest.approx(1 / 3, abs=1e-12)
    assert _a(recall, k=4) == pytest.approx(2 / 3, abs=1e-12)
    assert _a(recall) == pytest.approx(3 / 3, abs=1e-12)


def test_err_hand() -> None:
    # max_grade 2: R(y) = (2^y - 1) / 4 -> R(2) = 3/4, R(1) = 1/4, R(0) = 0.
    # ranks 1..5: R = 3/4, 0, 1/4, 0, 1/4; probability of reaching rank r = prod_{i<r} (1 - R_i).
    reach3 = (1 - 3 / 4) * (1 - 0)  # = 1/4
    reach5 = reach3 * (1 - 1 / 4) * (1 - 0)  # = 3/16
    err3 = (1 / 1) * (3 / 4) + (1 / 3) * (1 / 4) * reach3  # 0.75 + 1/48
    err5 = err3 + (1 / 5) * (1 / 4) * reach5  # + 3/320
    assert _a(err, k=3, max_grade=2) == pytest.approx(err3, abs=1e-12)
    assert _a(err, max_grade=2) == pytest.approx(err5, abs=1e-12)
    # default max_grade 4: R(2) = 3/16, R(1) = 1/16.
    reach3_g4 = 1 - 3 / 16
    assert _a(err, k=3) == pytest.approx(3 / 16 + (1 / 3) * (1 / 16) * reach3_g4, abs=1e-12)


def test_constant_model_ties_pessimistic_vs_position() -> None:
    # Constant scores, labels in stored order 2, 0, 1.
    scores = torch.zeros(1, 3)
    labels = torch.tensor([[2.0, 0.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    idcg = 3 + 1 / LOG2_3  # ideal gains 3, 1, 0
    # PESSIMISTIC ranks the worst labels first: 0, 1, 2 -> gains 0, 1, 3.
    worst = (0 + 1 / LOG2_3 + 3 / 2) / idcg
    # POSITION keeps the stored order: 2, 0, 1 -> gains 3, 0, 1.
    stored = (3 + 0 + 1 / 2) / idcg
    pess = ndcg(scores, labels, mask=mask, ties=TieBreak.PESSIMISTIC)
    pos = ndcg(scores, labels, mask=mask, ties=TieBreak.POSITION)
    assert float(pess) == pytest.approx(worst, abs=1e-6)
    assert float(pos) == pytest.approx(stored, abs=1e-6)
    # MRR: first relevant at rank 2 (pessimistic) vs rank 1 (position).
    assert float(mean_reciprocal_rank(scores, labels, mask=mask)) == pytest.approx(1 / 2)
    assert float(mean_reciprocal_rank(scores, labels, mask=mask, ties="position")) == 1.0


def test_partial_ties_only_reorder_tied_items() -> None:
    # scores 1, 5, 5, 0 with labels 2, 0, 1, 1: items 1 and 2 tie at the top.
    scores = torch.tensor([[1.0, 5.0, 5.0, 0.0]])
    labels = torch.tensor([[2.0, 0.0, 1.0, 1.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    # pessimistic: 0 (label 0) before 1 (label 1) -> labels by rank 0, 1, 2, 1
    # position: index 1 before index 2 -> labels by rank 0, 1, 2, 1 as well
    # MRR is 1/2 either way; swap the tied labels to make the rules differ.
    labels_swapped = torch.tensor([[2.0, 1.0, 0.0, 1.0]])
    pess = mean_reciprocal_rank(scores, labels_swapped, mask=mask, ties="pessimistic")
    pos = mean_reciprocal_rank(scores, labels_swapped, mask=mask, ties="position")
    assert float(pess) == pytest.approx(1 / 2)  # labels by rank 0, 1, 2, 1
    assert float(pos) == pytest.approx(1 / 1)  # labels by rank 1, 0, 2, 1
    assert float(mean_reciprocal_rank(scores, labels, mask=mask)) == pytest.approx(1 / 2)


def test_padded_items_never_count_even_with_huge_scores() -> None:
    # Real items: labels 0, 1 with scores 2, 1; a padded slot with score 1e9 and label 4.
    scores = torch.tensor([[2.0, 1.0, 1e9]])
    labels = torch.tensor([[0.0, 1.0, 4.0]])
    mask = torch.tensor([[True, True, False]])
    # ranking 0, 1: DCG = 0 + 1/log2 3; IDCG = 1 -> NDCG = 1/log2 3.
    assert float(ndcg(scores, labels, mask=mask)) == pytest.approx(1 / LOG2_3, abs=1e-6)
    assert float(mean_reciprocal_rank(scores, labels, mask=mask)) == pytest.approx(1 / 2)
    assert float(precision(scores, labels, mask=mask, k=3)) == pytest.approx(1 / 2)


# Batch mixing: list 0 has NDCG v0, list 1 has real items but all labels 0 (empty), list 2 is fully
# padded, list 3 is perfectly ranked (NDCG 1).
MIX_SCORES = torch.tensor([[1.0, 2.0, 0.0], [3.0, 2.0, 1.0], [9.0, 9.0, 9.0], [5.0, 1.0, 0.0]])
MIX_LABELS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
MIX_MASK = torch.tensor([[True, True, False], [True, True, True], [False] * 3, [True, True, True]])
V0 = 1 / LOG2_3  # list 0: ranks 0 then 1 -> DCG 1/log2 3, IDCG 1
NAN = float("nan")


@pytest.mark.parametrize(
    ("policy", "per_list", "mean"),
    [
        (EmptyListPolicy.ONE, [V0, 1.0, NAN, 1.0], (V0 + 1 + 1) / 3),
        (EmptyListPolicy.ZERO, [V0, 0.0, NAN, 1.0], (V0 + 0 + 1) / 3),
        (EmptyListPolicy.DROP, [V0, NAN, NAN, 1.0], (V0 + 1) / 2),
    ],
)
def test_empty_list_conventions(policy, per_list, mean) -> None:
    kw = {"mask": MIX_MASK, "empty": policy}
    got = ndcg(MIX_SCORES, MIX_LABELS, **kw, reduction="none")
    torch.testing.assert_close(got, torch.tensor(per_list), equal_nan=True)
    assert float(ndcg(MIX_SCORES, MIX_LABELS, **kw)) == pytest.approx(mean, abs=1e-6)
    assert float(ndcg(MIX_SCORES, MIX_LABELS, **kw, reduction="sum")) == pytest.approx(
        sum(v for v in per_list if not math.isnan(v)), abs=1e-6
    )
    # MRR follows the same policy: list 0 has its hit at rank 2 (RR 1/2), list 3 at rank 1.
    rr = [0.5 if i == 0 else v for i, v in enumerate(per_list)]
    got_rr = mean_reciprocal_rank(MIX_SCORES, MIX_LABELS, **kw, reduction="none")
    torch.testing.assert_close(got_rr, torch.tensor(rr), equal_nan=True)


def test_dcg_keeps_zero_for_empty_lists_except_drop() -> None:
    # DCG of list 0 = 1/log2 3, list 1 (all zero) = 0, list 3 = 1/log2 2 = 1.
    one = dcg(MIX_SCORES, MIX_LABELS, mask=MIX_MASK, empty="one", reduction="none")
    torch.testing.assert_close(one, torch.tensor([V0, 0.0, NAN, 1.0]), equal_nan=True)
    dropped = dcg(MIX_SCORES, MIX_LABELS, mask=MIX_MASK, empty="drop")
    assert float(dropped) == pytest.approx((V0 + 1) / 2, abs=1e-6)


def test_all_rows_padded_mean_is_nan() -> None:
    mask = torch.zeros(2, 3, dtype=torch.bool)
    assert math.isnan(float(ndcg(torch.ones(2, 3), torch.ones(2, 3), mask=mask)))
    assert float(ndcg(torch.ones(2, 3), torch.ones(2, 3), mask=mask, reduction="sum")) == 0.0
