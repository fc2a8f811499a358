"""Ranking data: LETOR/SVMlight and Parquet readers, list datasets, collation, normalisation."""

from ltr.data.dataset import ListDataset, ListExample, SampledLists, collate_lists, load_dataset
from ltr.data.folds import Fold, letor_fold
from ltr.data.normalize import FeatureNormalizer
from ltr.data.parquet import ParquetListWriter, read_parquet
from ltr.data.svmlight import RowChunk, iter_svmlight, read_svmlight

__all__ = [
    "FeatureNormalizer",
    "Fold",
    "ListDataset",
    "ListExample",
    "ParquetListWriter",
    "RowChunk",
    "SampledLists",
    "collate_lists",
    "iter_svmlight",
    "letor_fold",
    "load_dataset",
    "read_parquet",
    "read_svmlight",
]
