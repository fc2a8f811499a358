"""RankingModel: the normaliser is part of the model and never sees or leaks padded garbage."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ltr.models import MLPConfig, MLPScorer, RankingModel, SetRank, SetRankConfig


class Standardise(nn.Module):
    """A stand-in normaliser ``(x - mean) / std`` with buffers (like a fitted one)."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.clone())
        return (x - self.mean) / self.std


class LogNormaliser(nn.Module):
    """Maps the zeros at padded slots to -inf: a normaliser that is hostile to padding."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x)


def test_normaliser_is_applied_before_the_scorer() -> None:
    torch.manual_seed(0)
    scorer = SetRank(SetRankConfig(num_features=3, d_model=8, num_heads=2)).eval()
    mean, std = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 4.0])
    model = RankingModel(scorer, Standardise(mean, std)).eval()
    x, mask = torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mask), scorer((x - mean) / std, mask))
    assert set(model.state_dict()) >= {"normalizer.mean", "normalizer.std"}


def test_default_normaliser_is_identity() -> None:
    torch.manual_seed(0)
    scorer = MLPScorer(MLPConfig(num_features=3)).eval()
    x, mask = torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(RankingModel(scorer)(x, mask), scorer(x, mask))


def test_normaliser_sees_zeros_at_padded_slots() -> None:
    norm = Standardise(torch.zeros(3), torch.ones(3))
    model = RankingModel(MLPScorer(MLPConfig(num_features=3)), norm).eval()
    x = torch.randn(1, 4, 3)
    x[0, 3] = float("nan")
    mask = torch.tensor([[True, True, True, False]])
    model(x, mask)
    assert torch.equal(norm.seen[0][0, 3], torch.zeros(3))
    assert torch.equal(norm.seen[0][0, :3], x[0, :3])


def test_non_finite_normaliser_output_at_padded_slots_does_not_leak() -> None:
    torch.manual_seed(0)
    scorer = SetRank(SetRankConfig(num_features=3, d_model=8, num_heads=2, block="msab")).eval()
    model = RankingModel(scorer, LogNormaliser()).eval()
    x = torch.rand(1, 4, 3) + 0.5
    mask = torch.ones(1, 4, dtype=torch.bool)
    padded_x = torch.cat([x, torch.full((1, 2, 3), 7.0)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 2, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        expected = model(x, mask)
        got = model(padded_x, padded_mask)
    torch.testing.assert_close(got[:, :4], expected, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(got).all()


def test_a_hand_set_linear_artifact_scores_the_weighted_sum(tmp_path) -> None:
    import numpy as np
    import pytest

    from ltr.artifact import load_model, save_linear_model
    from ltr.data.dataset import ListDataset
    from ltr.errors import ConfigError
    from ltr.inference import score_lists

    names = ["bm25", "tf", "len"]
    path = save_linear_model(tmp_path / "bm25-baseline", names, {"bm25": 2.0, "len": -0.5})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3)).astype(np.float32) * 10
    data = ListDataset(x, np.zeros(7, np.float32), np.array([0, 3, 7]), ["a", "b"], None, names)
    loaded = load_model(path)
    got = score_lists(loaded.model, data)
    np.testing.assert_allclose(got, 2.0 * x[:, 0] - 0.5 * x[:, 2], rtol=1e-6, atol=1e-5)
    assert loaded.manifest.training["linear_weights"] == {"bm25": 2.0, "len": -0.5}
    with pytest.raises(ConfigError, match="no feature 'f25' among the 3 features"):
        save_linear_model(tmp_path / "x", names, {"f25": 1.0})
