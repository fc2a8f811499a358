"""Fixtures for the serving tests: MQ2008 partitions and a tiny model artifact."""

from __future__ import annotations

import pytest

from ltr.data import load_dataset
from tests.serve._helpers import make_artifact


@pytest.fixture(scope="session")
def s1(mq2008_dir):
    return load_dataset(mq2008_dir / "S1.txt.xz")


@pytest.fixture(scope="session")
def s5(mq2008_dir):
    return load_dataset(mq2008_dir / "S5.txt.xz")


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory, s1, mq2008_dir):
    """A tiny SetRank artifact without model.onnx (its manifest records S5 as test data)."""
    directory = tmp_path_factory.mktemp("tiny") / "tiny-model"
    data = {"test": [str(mq2008_dir / "S5.txt.xz")]}
    return make_artifact(directory, s1, seed=1, data=data)
