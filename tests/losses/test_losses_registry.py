"""The loss registry, get_loss, CombinedLoss and build_loss."""

from __future__ import annotations

import math

import pytest
import torch

from ltr.errors import ConfigError, RegistryError
from ltr.losses import LOSSES, CombinedLoss, build_loss, get_loss, loss_parameters

# One list: scores [1.0, 0.0], labels [1, 0]; a second list with one real item and a pad.
SCORES = torch.tensor([[1.0, 0.0], [0.5, 3.0]])
LABELS = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
MASK = torch.tensor([[True, True], [True, False]])

MSE = [((1 - 1) ** 2 + (0 - 0) ** 2) / 2, (0.5 - 2) ** 2]  # [0, 2.25]
RANKNET = [math.log(1 + math.exp(-1.0)), 0.0]  # one pair, diff 1; second list has no pair


def test_registry_names() -> None:
    assert set(LOSSES) == {
        "mse", "sigmoid_bce", "ranknet", "lambdarank", "hinge", "softmax", "listnet",
        "listmle", "approx_ndcg", "neural_ndcg", "lambdaloss",
    }  # fmt: skip


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(RegistryError) as info:
        get_loss("lambda_mart")
    message = str(info.value)
    assert "lambda_mart" in message
    for name in LOSSES:
        assert name in message
    with pytest.raises(RegistryError, match="neural_ndcg"):
        build_loss({"nope": 1.0})


def test_a_mapping_that_is_not_valid_yaml_is_called_so() -> None:
    """``--loss '{lambdaloss: 1.0, mse: 0.1'`` (a brace missing) reaches build_loss as the string
    the user wrote: it is called not valid YAML, with the forms a loss takes, not an unknown
    name."""
    with pytest.raises(ConfigError) as info:
        build_loss("{lambdaloss: 1.0, mse: 0.1")
    message = str(info.value)
    assert "'{lambdaloss: 1.0, mse: 0.1' is neither a loss name nor valid YAML" in message
    assert "'{lambdaloss: 1.0, mse: 0.1}'" in message  # the mapping form, closed
    for name in LOSSES:
        assert name in message
    with pytest.raises(RegistryError, match="unknown loss 'listmel'"):  # a name: as before
        build_loss("listmel")


def test_get_loss_binds_kwargs() -> None:
    ranknet = get_loss("ranknet", sigma=3.0)
    expected = math.log(1 + math.exp(-3.0 * 1.0))  # softplus(-sigma * (1 - 0))
    value = ranknet(SCORES, LABELS, mask=MASK, reduction="none")
    torch.testing.assert_close(value, torch.tensor([expected, 0.0]))
    hinge = get_loss("hinge", margin=4.0)
    torch.testing.assert_close(hinge(SCORES, LABELS, mask=MASK, reduction="sum"), torch.tensor(3.0))


def test_get_loss_bad_kwarg_names_loss_and_valid_parameters() -> None:
    with pytest.raises(ConfigError) as info:
        get_loss("neural_ndcg", temprature=1.0)
    message = str(info.value)
    assert "neural_ndcg" in message and "temprature" in message
    for param in ("temperature", "sinkhorn_iterations", "k"):
        assert param in message
    with pytest.raises(ConfigError, match=r"'mse'.*valid parameters: none"):
        get_loss("mse", sigma=1.0)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ranknet", {"sigma": -1.0}),
        ("approx_ndcg", {"temperature": 0.0}),
        ("neural_ndcg", {"temperature": float("nan")}),
        ("neural_ndcg", {"sinkhorn_iterations": -1}),
        ("neural_ndcg", {"k": 0}),
        ("lambdaloss", {"mu": -0.5}),
        ("hinge", {"margin": "1"}),
        ("sigmoid_bce", {"max_label": 0}),
    ],
)
def test_get_loss_bad_values_fail_at_once(name: str, params: dict) -> None:
    with pytest.raises(ConfigError, match=name):
        get_loss(name, **params)


def test_loss_parameters() -> None:
    assert loss_parameters("lambdaloss") == {"sigma": 1.0, "mu": 10.0}
    assert loss_parameters("listmle") == {}


def test_combination_equals_weighted_sum() -> None:
    loss = CombinedLoss({"ranknet": 0.5, "mse": {"weight": 2.0}})
    expected = [0.5 * r + 2.0 * m for r, m in zip(RANKNET, MSE, strict=True)]
    torch.testing.assert_close(
        loss(SCORES, LABELS, mask=MASK, reduction="none"), torch.tensor(expected)
    )
    torch.testing.assert_close(loss(SCORES, LABELS, mask=MASK), torch.tensor(sum(expected) / 2))
    parts = loss.components(SCORES, LABELS, mask=MASK, reduction="none")
    torch.testing.assert_close(parts["mse"], torch.tensor(MSE))
    torch.testing.assert_close(parts["ranknet"], torch.tensor(RANKNET))


def test_build_loss_passes_per_loss_params_and_default_weight() -> None:
    loss = build_loss({"ranknet": {"sigma": 2.0}, "hinge": {"weight": 0.25, "margin": 3.0}})
    ranknet = [math.log(1 + math.exp(-2.0)), 0.0]  # weight defaults to 1
    hinge = [max(0.0, 3.0 - 1.0), 0.0]
    expected = [r + 0.25 * h for r, h in zip(ranknet, hinge, strict=True)]
    torch.testing.assert_close(
        loss(SCORES, LABELS, mask=MASK, reduction="none"), torch.tensor(expected)
    )


def test_build_loss_from_name() -> None:
    loss = build_loss("mse")
    torch.testing.assert_close(loss(SCORES, LABELS, mask=MASK), torch.tensor(sum(MSE) / 2))


def test_zero_weight_term_is_skipped_but_reported() -> None:
    loss = build_loss({"ranknet": 1.0, "mse": 0})
    torch.testing.assert_close(
        loss(SCORES, LABELS, mask=MASK, reduction="none"), torch.tensor(RANKNET)
    )
    assert set(loss.components(SCORES, LABELS, mask=MASK)) == {"ranknet", "mse"}


@pytest.mark.parametrize(
    "spec",
    [
        {"mse": -1.0},
        {"mse": float("inf")},
        {"mse": float("nan")},
        {"mse": {"weight": -0.1}},
        {"mse": True},
        {"mse": "1"},
        {"mse": 0.0},  # no positive weight at all
        {},
        42,
        ["mse"],
    ],
)
def test_bad_combination_specs(spec) -> None:
    with pytest.raises(ConfigError):
        build_loss(spec)


def test_combined_loss_gradients_flow() -> None:
    scores = SCORES.clone().requires_grad_(True)
    build_loss({"lambdaloss": 1.0, "neural_ndcg": {"weight": 0.5, "temperature": 0.5}})(
        scores, LABELS, mask=MASK
    ).backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0].abs().sum() > 0
    assert scores.grad[1, 1] == 0  # padded slot
