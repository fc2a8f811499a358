"""List datasets, padding/masks, seeded list sampling, LETOR folds."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ltr.data import SampledLists, collate_lists, letor_fold, load_dataset
from ltr.data.dataset import ListDataset
from ltr.errors import DataFormatError


@pytest.fixture(scope="module")
def small() -> ListDataset:
    features = np.arange(18, dtype=np.float32).reshape(6, 3)
    labels = np.array([2, 0, 1, 0, 0, 1], dtype=np.float32)
    return ListDataset(features, labels, np.array([0, 3, 4, 6]), ["a", "b", "c"])


def test_items_are_query_slices(small):
    assert len(small) == 3
    item = small[2]
    np.testing.assert_array_equal(item.features, [[12, 13, 14], [15, 16, 17]])
    assert item.labels.tolist() == [0, 1] and item.rows.tolist() == [4, 5]
    assert small.query_of_row.tolist() == [0, 0, 0, 1, 2, 2]


def test_collate_pads_with_mask(small):
    batch = collate_lists([small[0], small[1], small[2]])
    assert batch.features.shape == (3, 3, 3)
    assert batch.mask.tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    assert batch.labels[2].tolist() == [0, 1, 0]
    assert torch.all(batch.features[1, 1:] == 0)
    assert batch.query_index.tolist() == [0, 1, 2]


def test_initial_ranks_are_input_positions_and_survive_sampling(small, mq2008_dir):
    batch = collate_lists([small[0], small[1], small[2]])
    assert batch.initial_rank.tolist() == [[1, 2, 3], [1, 0, 0], [1, 2, 0]]  # 0 = padded
    data = load_dataset(mq2008_dir / "S1.txt.xz")
    longest = int(np.argmax(data.list_lengths))
    item = SampledLists(data, max_list_length=20, seed=3)[longest]
    start = data.offsets[longest]
    # each kept candidate keeps its position in the full list, not its place in the sample
    assert item.ranks().tolist() == (item.rows - start + 1).tolist()
    assert item.ranks().max() > 20
    sampled = collate_lists([item])
    assert sampled.initial_rank[0].tolist() == (item.rows - start + 1).tolist()


def test_sampling_caps_training_lists_reproducibly(mq2008_dir):
    data = load_dataset(mq2008_dir / "S1.txt.xz")
    longest = int(np.argmax(data.list_lengths))
    view = SampledLists(data, max_list_length=20, seed=3)
    first = view[longest].rows
    assert len(first) == 20 and len(set(first.tolist())) == 20
    assert set(first.tolist()) <= set(data[longest].rows.tolist())
    np.testing.assert_array_equal(SampledLists(data, 20, seed=3)[longest].rows, first)
    view.set_epoch(1)
    assert not np.array_equal(view[longest].rows, first)
    short = int(np.argmin(data.list_lengths))
    assert len(view[short].rows) == data.list_lengths[short]  # short lists untouched
    assert len(data[longest].rows) == data.list_lengths.max()  # the dataset itself never drops


def test_stats_count_from_labels(mq2008_dir):
    stats = load_dataset(mq2008_dir / "S1.txt.xz").stats()
    assert stats["rows"] == 2933 and stats["queries"] == 157 and stats["features"] == 46
    assert stats["labels"] == {"0": 2316, "1": 427, "2": 190}  # published in SOURCE.md


def test_fold_rotation_and_multi_file_load(mq2008_dir):
    fold = letor_fold(mq2008_dir, 2)
    assert [p.name for p in fold.train] == ["S2.txt.xz", "S3.txt.xz", "S4.txt.xz"]
    assert fold.valid[0].name == "S5.txt.xz" and fold.test[0].name == "S1.txt.xz"
    data = load_dataset(fold.train)
    assert data.num_rows == 3635 + 3062 + 2707 and len(data) == 157 * 3
    with pytest.raises(ValueError, match="between 1 and 5"):
        letor_fold(mq2008_dir, 6)


def test_a_query_split_over_two_files_names_the_query_and_both_files(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("1 qid:7 1:1\n0 qid:8 1:2\n")
    second.write_text("0 qid:9 1:1\n2 qid:8 1:3\n")
    message = re.escape(f"query '8' occurs in both {first} and {second}")
    with pytest.raises(DataFormatError, match=message):
        load_dataset([first, second])
    # the same file twice: the rows of each query end up in two places
    with pytest.raises(DataFormatError, match="query '7' appears in two places"):
        load_dataset([first, first])
    assert len(load_dataset([first])) == 2


def test_inconsistent_arrays_are_rejected():
    with pytest.raises(DataFormatError, match="offsets"):
        ListDataset(np.zeros((3, 2)), np.zeros(3), np.array([0, 2, 2, 3]), ["a", "b", "c"])
    with pytest.raises(DataFormatError, match="2 labels for 3"):
        ListDataset(np.zeros((3, 2)), np.zeros(2), np.array([0, 3]), ["a"])
