"""Grouped NDCG against LightGBM's own ``ndcg@k`` evaluation on MQ2008.

LightGBM's NDCG uses gain ``2**y - 1`` (its default ``label_gain``), discount ``1 / log2(r + 1)``,
scores a query with no relevant document as 1 and orders equal scores by position (stable sort).
That is ``gain="exp2", empty=ONE, ties=POSITION`` here. A lambdarank model with few trees gives
many exactly tied scores, so the tie rule is exercised.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from ltr.metrics import evaluate_grouped, group_offsets
from ltr.types import EmptyListPolicy, TieBreak

EVAL_AT = [1, 3, 5, 10]
ROUNDS = 6


def _group_sizes(qid: np.ndarray) -> np.ndarray:
    return np.diff(group_offsets(query_ids=qid))


@pytest.fixture(scope="module")
def lightgbm_run(mq2008):
    train = {
        k: np.concatenate([mq2008[s][k] for s in ("S1", "S2", "S3")]) for k in ("x", "y", "qid")
    }
    dtrain = lgb.Dataset(train["x"], train["y"], group=_group_sizes(train["qid"]))
    valid = {
        name: lgb.Dataset(
            mq2008[name]["x"],
            mq2008[name]["y"],
            group=_group_sizes(mq2008[name]["qid"]),
            reference=dtrain,
        )
        for name in ("S4", "S5")
    }
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": EVAL_AT,
        "num_leaves": 7,
        "learning_rate": 0.2,
        "min_data_in_leaf": 20,
        "num_threads": 2,
        "deterministic": True,
        "seed": 0,
        "verbose": -1,
    }
    record: dict = {}
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=ROUNDS,
        valid_sets=list(valid.values()),
        valid_names=list(valid),
        callbacks=[lgb.record_evaluation(record)],
    )
    return booster, record


@pytest.mark.parametrize("partition", ["S4", "S5"])
@pytest.mark.parametrize("iteration", [2, ROUNDS])
def test_grouped_ndcg_matches_lightgbm_eval(mq2008, lightgbm_run, partition, iteration) -> None:
    booster, record = lightgbm_run
    part = mq2008[partition]
    scores = booster.predict(part["x"], raw_score=True, num_iteration=iteration)
    # S4 grouped by query ids, S5 by LightGBM-style group sizes: both paths to offsets.
    if partition == "S4":
        offsets = group_offsets(query_ids=part["qid"])
    else:
        offsets = group_offsets(group_sizes=_group_sizes(part["qid"]))
    ours = evaluate_grouped(
        scores,
        part["y"],
        offsets,
        metrics=[f"ndcg@{k}" for k in EVAL_AT],
        empty=EmptyListPolicy.ONE,
        ties=TieBreak.POSITION,
        gain="exp2",
    )
    for k in EVAL_AT:
        expected = record[partition][f"ndcg@{k}"][iteration - 1]
        assert ours[f"ndcg@{k}"] == pytest.approx(expected, abs=1e-6), k


def test_lightgbm_scores_have_ties_and_rules_differ(mq2008, lightgbm_run) -> None:
    """The comparison above is only sharp if tie-breaking matters on these predictions."""
    booster, _ = lightgbm_run
    part = mq2008["S5"]
    scores = booster.predict(part["x"], raw_score=True, num_iteration=2)
    offsets = group_offsets(query_ids=part["qid"])
    names = [f"ndcg@{k}" for k in EVAL_AT]
    pos = evaluate_grouped(scores, part["y"], offsets, metrics=names, ties="position")
    pess = evaluate_grouped(scores, part["y"], offsets, metrics=names, ties="pessimistic")
    # pessimistic can only lose against any other tie order, and must lose somewhere here
    assert all(pess[n] <= pos[n] + 1e-12 for n in names)
    assert any(pess[n] < pos[n] - 1e-4 for n in names)
