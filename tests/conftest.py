"""Shared fixtures: paths to bundled data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MQ2008 = REPO / "data" / "mq2008"
LIGHTGBM_EXAMPLE = REPO / "tests" / "data" / "lightgbm-example"


@pytest.fixture(scope="session")
def mq2008_dir() -> Path:
    return MQ2008


@pytest.fixture(scope="session")
def lightgbm_example_dir() -> Path:
    return LIGHTGBM_EXAMPLE
