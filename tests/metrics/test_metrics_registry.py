"""Metric registry, name parser and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltr.errors import ConfigError, LtrError, RegistryError
from ltr.metrics import (
    DEFAULT_METRICS,
    METRICS,
    err,
    evaluate_grouped,
    ndcg,
    parse_metric,
    rank_lists,
    reduce_per_list,
    resolve_metric,
    resolve_metrics,
)

SCORES = torch.tensor([[0.3, 0.1, 0.2], [0.0, 1.0, 0.5]])
LABELS = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
MASK = torch.tensor([[True, True, True], [True, True, False]])


def test_registry_holds_the_documented_metrics() -> None:
    assert set(METRICS) == {"ndcg", "dcg", "map", "mrr", "err", "precision", "recall"}
    assert DEFAULT_METRICS == ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr", "err@10")
    for name in DEFAULT_METRICS:
        resolve_metric(name)


@pytest.mark.parametrize(
    ("name", "base", "k", "canonical"),
    [
        ("ndcg@10", "ndcg", 10, "ndcg@10"),
        ("NDCG@3", "ndcg", 3, "ndcg@3"),
        (" map ", "map", None, "map"),
        ("mrr", "mrr", None, "mrr"),
        ("err@10", "err", 10, "err@10"),
        ("precision@5", "precision", 5, "precision@5"),
        ("recall@10", "recall", 10, "recall@10"),
        ("dcg@5", "dcg", 5, "dcg@5"),
    ],
)
def test_parse_metric_names(name, base, k, canonical) -> None:
    fn, kwargs = parse_metric(name)
    assert fn is METRICS[base].metric
    assert kwargs == {"k": k}
    parsed = resolve_metric(name)
    assert (parsed.base, parsed.k, parsed.name) == (base, k, canonical)


@pytest.mark.parametrize("name", ["ndgc@10", "auc", "", "@10", "ndcg10"])
def test_unknown_metric_lists_valid_names(name) -> None:
    with pytest.raises(RegistryError) as info:
        parse_metric(name)
    message = str(info.value)
    assert isinstance(info.value, LtrError)
    for base in METRICS:
        assert f"{base}[@k]" in message


@pytest.mark.parametrize("name", ["ndcg@0", "ndcg@-1", "ndcg@x", "ndcg@", "map@1.5"])
def test_bad_cutoff_is_a_config_error(name) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        parse_metric(name)


def test_duplicate_and_empty_metric_lists() -> None:
    with pytest.raises(ConfigError, match="twice"):
        resolve_metrics(["ndcg@10", "NDCG@10"])
    with pytest.raises(ConfigError, match="at least one"):
        resolve_metrics([])
    assert [p.name for p in resolve_metrics("map")] == ["map"]


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_is_reduce_of_its_per_list_core(name) -> None:
    spec = METRICS[name]
    ranked = rank_lists(SCORES, LABELS, MASK, "position")
    for policy in ("one", "zero", "drop"):
        direct = spec.metric(
            SCORES, LABELS, mask=MASK, k=2, ties="position", empty=policy, reduction="none"
        )
        core = reduce_per_list(spec.per_list(ranked, k=2), policy, "none")
        torch.testing.assert_close(direct, core, equal_nan=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "positive integer"),
        ({"k": 2.0}, "positive integer"),
        ({"k": True}, "positive integer"),
        ({"gain": "log"}, "unknown gain"),
        ({"empty": "skip"}, "empty-list policy"),
        ({"ties": "random"}, "tie-break"),
        ({"reduction": "max"}, "reduction"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        ndcg(SCORES, LABELS, mask=MASK, **kwargs)


def test_err_rejects_labels_above_max_grade() -> None:
    labels = torch.tensor([[5.0, 0.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(ConfigError, match="max_grade"):
        err(torch.zeros(1, 3), labels, mask=mask)  # default max_grade 4
    # a label of 5 at a padded slot is ignored
    err(torch.zeros(1, 3), labels, mask=torch.tensor([[False, True, True]]))


def test_shape_dtype_and_nan_errors() -> None:
    with pytest.raises(ValueError, match="same"):
        ndcg(SCORES, LABELS[:, :2], mask=MASK)
    with pytest.raises(ValueError, match="bool"):
        ndcg(SCORES, LABELS, mask=MASK.float())
    with pytest.raises(ValueError, match=r"\[batch, list\]"):
        ndcg(SCORES[0], LABELS[0], mask=MASK[0])
    nan_scores = SCORES.clone()
    nan_scores[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ndcg(nan_scores, LABELS, mask=MASK)
    nan_scores = SCORES.clone()
    nan_scores[1, 2] = float("nan")  # at a padded slot: ignored
    ndcg(nan_scores, LABELS, mask=MASK)


def test_grouped_unknown_metric_is_registry_error() -> None:
    with pytest.raises(RegistryError, match="valid names"):
        evaluate_grouped(np.zeros(2), np.zeros(2), np.array([0, 2]), metrics=["ndcg@5", "foo"])
