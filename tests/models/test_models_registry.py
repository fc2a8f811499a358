"""The explicit model registry: build_scorer, config_from_dict and their errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ltr.errors import ConfigError, RegistryError
from ltr.models import (
    MODELS,
    MLPConfig,
    MLPScorer,
    SetRank,
    SetRankConfig,
    build_scorer,
    config_from_dict,
)


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(
        RegistryError, match="unknown model 'transformer'; valid names: mlp, setrank"
    ):
        build_scorer("transformer", {"num_features": 3})
    with pytest.raises(RegistryError, match="valid names: mlp, setrank"):
        config_from_dict("SetRank", {"num_features": 3})


def test_unknown_config_key_lists_valid_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown key.*d_modle.*valid keys: num_features, d_model"
    ):
        build_scorer("setrank", {"num_features": 3, "d_modle": 32})


def test_invalid_values_are_named_by_the_users_key() -> None:
    """A config class checks its own fields and can only call them ``SetRankConfig.block``;
    built from a user's section, the error names the key the user wrote."""
    with pytest.raises(
        ConfigError, match=r"^model\.block must be one of imsab, msab; got 'imsabb'"
    ):
        config_from_dict("setrank", {"num_features": 3, "block": "imsabb"})
    with pytest.raises(ConfigError, match=r"^teacher\.hidden_sizes\[1\] must be >= 1, got 0"):
        config_from_dict("mlp", {"num_features": 3, "hidden_sizes": [4, 0]}, where="teacher")
    with pytest.raises(ConfigError, match=r"^model\.d_model \(10\) must be divisible"):
        build_scorer("setrank", {"num_features": 3, "d_model": 10, "num_heads": 4})
    with pytest.raises(ConfigError, match=r"^SetRankConfig\.block must be one of"):
        SetRankConfig(num_features=3, block="imsabb")  # built in Python: the class is the name


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"model 'mlp' needs key.*num_features"):
        config_from_dict("mlp", {"hidden_sizes": [4]})


def test_config_of_another_model_is_rejected() -> None:
    with pytest.raises(ConfigError, match="needs a SetRankConfig or a dict of its fields, got MLP"):
        build_scorer("setrank", MLPConfig(num_features=3))


def test_invalid_value_surfaces_as_config_error() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        build_scorer("setrank", {"num_features": 3, "d_model": 10, "num_heads": 4})


def test_dict_and_dataclass_build_the_configured_model() -> None:
    from_dict = build_scorer("setrank", {"num_features": 5, "block": "imsab", "num_blocks": 3})
    assert isinstance(from_dict, SetRank)
    assert from_dict.config == SetRankConfig(num_features=5, block="imsab", num_blocks=3)
    assert len(from_dict.blocks) == 3
    mlp = build_scorer("mlp", MLPConfig(num_features=5, hidden_sizes=(7,)))
    assert isinstance(mlp, MLPScorer)
    assert mlp.net[0].out_features == 7
    assert config_from_dict("mlp", {"num_features": 2, "hidden_sizes": [3]}).hidden_sizes == (3,)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_builds_from_minimal_dict_and_scores(name: str) -> None:
    config_cls, model_cls = MODELS[name]
    assert dataclasses.is_dataclass(config_cls)
    model = build_scorer(name, {"num_features": 3})
    assert isinstance(model, model_cls)
    out = model(torch.randn(2, 4, 3), torch.ones(2, 4, dtype=torch.bool))
    assert out.shape == (2, 4)
