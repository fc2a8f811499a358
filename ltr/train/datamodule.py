"""The DataModule: list datasets from LETOR or Parquet files, batched with padding and masks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pyarrow as pa
import torch
from torch.utils.data import DataLoader

from ltr.data.dataset import ListDataset, SampledLists, collate_lists, load_dataset
from ltr.data.folds import letor_fold
from ltr.data.list_inputs import resolve
from ltr.errors import ConfigError
from ltr.train.config import DataConfig
from ltr.types import ListBatch

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_data_path(path: str | Path) -> Path:
    """A data path as given, or relative to the repository root (bundled data)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    candidate = REPO_ROOT / p
    return candidate if candidate.exists() else p


def split_files(config: DataConfig) -> dict[str, list[Path]]:
    """Files of each split, from explicit lists or from ``letor_root`` + ``fold``."""
    if config.train:
        return {
            "train": [resolve_data_path(p) for p in config.train],
            "valid": [resolve_data_path(p) for p in config.valid],
            "test": [resolve_data_path(p) for p in config.test],
        }
    if config.letor_root is None:
        raise ConfigError("no training data: set data.train (files) or data.letor_root + data.fold")
    fold = letor_fold(resolve_data_path(config.letor_root), config.fold)
    return {"train": list(fold.train), "valid": list(fold.valid), "test": list(fold.test)}


def unread_context(config: DataConfig, context_dim: int) -> int:
    """C when a model without a context vector (``context_dim`` 0) is about to be trained on
    Parquet files that all carry the list column ``context`` of C values (``ltr text-features
    --context-encoder`` writes one), which it will not read; else 0."""
    import pyarrow.parquet as pq

    from ltr.data.list_inputs import CONTEXT

    if context_dim or not config.train:
        return 0
    sizes = set()
    for path in split_files(config)["train"]:
        try:
            kind = pq.read_schema(path).field(CONTEXT).type
        except (OSError, KeyError, ValueError, pa.ArrowException):
            return 0  # not Parquet, no context column, or not there (training will say so)
        if not pa.types.is_fixed_size_list(kind):
            return 0
        sizes.add(kind.list_size)
    return sizes.pop() if len(sizes) == 1 else 0


class ListDataModule(L.LightningDataModule):
    """Loads the splits once (eagerly) and serves padded list batches.

    Training batches are shuffled and, with ``max_list_length``, long lists are sampled down
    (seeded, new subsets every epoch); validation and test batches always hold whole lists. With
    ``context_dim`` C > 0 every split reads each query's context vector from
    ``config.context_columns`` (Parquet only).
    """

    def __init__(self, config: DataConfig, *, seed: int = 0, context_dim: int = 0):
        super().__init__()
        self.config = config
        files = split_files(config)
        self.files = files
        self.context = resolve(
            {"context_dim": context_dim},
            context_columns=config.context_columns,
            context_option="data.context_columns",
        )
        self.train_set: ListDataset = load_dataset(files["train"], context=self.context)
        width = self.train_set.num_features
        self.valid_set = self._load(files["valid"], width)
        self.test_set = self._load(files["test"], width)
        for name, ds in (("valid", self.valid_set), ("test", self.test_set)):
            if ds is not None and ds.num_features != width:
                raise ConfigError(
                    f"{name} data has {ds.num_features} features but training data has {width}"
                )
        self.train_view = SampledLists(self.train_set, config.max_list_length, seed=seed)

    def _load(self, paths: list[Path], width: int) -> ListDataset | None:
        return load_dataset(paths, num_features=width, context=self.context) if paths else None

    def transfer_batch_to_device(self, batch: ListBatch, device: torch.device, dataloader_idx: int):
        return batch.to(device)  # ListBatch is a frozen dataclass: move it as a whole

    def set_epoch(self, epoch: int) -> None:
        self.train_view.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_view,
            batch_size=self.config.batch_size,
            shuffle=True,
            collate_fn=collate_lists,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )

    def _eval_loader(self, dataset: ListDataset | None) -> DataLoader | list:
        if dataset is None:
            return []
        return DataLoader(
            dataset,
            batch_size=self.config.eval_batch_size,
            shuffle=False,
            collate_fn=collate_lists,
            num_workers=self.config.num_workers,
        )

    def val_dataloader(self):
        return self._eval_loader(self.valid_set)

    def test_dataloader(self):
        return self._eval_loader(self.test_set)
