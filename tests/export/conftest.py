"""Fixtures for the export tests: MQ2008 partitions and a tiny model artifact."""

from __future__ import annotations

import pytest

from ltr.data import load_dataset
from tests.serve._helpers import make_artifact


@pytest.fixture(scope="session")
def s1_data(mq2008_dir):
    return load_dataset(mq2008_dir / "S1.txt.xz")


@pytest.fixture(scope="session")
def s5_data(mq2008_dir):
    return load_dataset(mq2008_dir / "S5.txt.xz")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, s1_data):
    return make_artifact(tmp_path_factory.mktemp("export") / "model", s1_data, seed=21)
