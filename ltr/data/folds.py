"""LETOR cross-validation folds built from query partitions S1..S5.

The official LETOR 3.0/4.0 folds rotate five partitions: fold k trains on the three partitions
starting at S_k (cyclically), validates on the next and tests on the one after::

    Fold1: train S1 S2 S3, vali S4, test S5        Fold4: train S4 S5 S1, vali S2, test S3
    Fold2: train S2 S3 S4, vali S5, test S1        Fold5: train S5 S1 S2, vali S3, test S4
    Fold3: train S3 S4 S5, vali S1, test S2
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NUM_FOLDS = 5


@dataclass(frozen=True)
class Fold:
    """Files of one cross-validation fold."""

    number: int
    train: tuple[Path, ...]
    valid: tuple[Path, ...]
    test: tuple[Path, ...]


def partition_path(root: str | Path, index: int) -> Path:
    """Path of partition ``S{index}`` under ``root`` (.txt.xz, .txt, .txt.gz or .parquet)."""
    root = Path(root)
    for name in (f"S{index}.txt.xz", f"S{index}.txt", f"S{index}.txt.gz", f"S{index}.parquet"):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"partition S{index} not found under {root} (expected S{index}.txt.xz)")


def letor_fold(root: str | Path, fold: int) -> Fold:
    """The official LETOR fold ``fold`` (1..5) from partitions under ``root``."""
    if not 1 <= fold <= NUM_FOLDS:
        raise ValueError(f"fold must be between 1 and {NUM_FOLDS}, got {fold}")
    order = [(fold - 1 + i) % NUM_FOLDS + 1 for i in range(NUM_FOLDS)]
    parts = [partition_path(root, i) for i in order]
    return Fold(fold, tuple(parts[:3]), (parts[3],), (parts[4],))
