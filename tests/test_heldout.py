"""Which evaluation files a model saw in training, from manifests that name them relatively (as
``ltr train`` wrote them before it recorded absolute paths)."""

from __future__ import annotations

import numpy as np

from ltr.heldout import SKETCH_SIZE, data_sketch, list_fingerprints, seen_in_training, seen_lists


def test_relative_names_are_found_from_here_or_from_the_repository(
    mq2008_dir, tmp_path, monkeypatch
):
    (tmp_path / "mine.txt").write_text("1 qid:1 1:1\n")
    (tmp_path / "other.txt").write_text("1 qid:1 1:1\n")
    bundled = {split: [f"data/mq2008/S{i}.txt.xz"] for split, i in (("valid", 4), ("test", 5))}
    training = {"data": {"train": ["mine.txt", "data/mq2008/S1.txt.xz"], **bundled}}
    monkeypatch.chdir(tmp_path)
    given = [tmp_path / "mine.txt", tmp_path / "other.txt", "./mine.txt"]
    given += [mq2008_dir / f"S{i}.txt.xz" for i in (1, 4, 5)]
    assert seen_in_training(training, given) == [
        (str(tmp_path / "mine.txt"), "train"),
        ("./mine.txt", "train"),
        (str(mq2008_dir / "S1.txt.xz"), "train"),  # the repository's, not this folder's
        (str(mq2008_dir / "S4.txt.xz"), "valid"),
    ]
    assert seen_in_training({"data": {}}, given) == seen_in_training({}, given) == []


def test_the_share_of_lists_seen_is_estimated_from_a_sample_of_fingerprints():
    """1,000 training lists (256 fingerprints kept); the data holds 300 of them and 700 others.
    The share is estimated as (found / 256) * 1,000 / 1,000; the number found is hypergeometric
    (mean 76.8, sd 6.3), so the estimate is within 0.1 of 0.3 by about four sd."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=2000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    features = rng.normal(size=(offsets[-1], 5)).astype(np.float32)
    train = slice(0, offsets[1000])
    training = {"data_sketch": {"train": data_sketch(features[train], offsets[:1001])}}
    assert training["data_sketch"]["train"]["lists"] == 1000
    assert len(training["data_sketch"]["train"]["hashes"]) == SKETCH_SIZE == 256
    fingerprints = list_fingerprints(features, offsets)
    data = np.concatenate([fingerprints[700:1000], fingerprints[1000:1700]])
    [(split, hits, sampled, share)] = seen_lists(training, data)
    assert (split, sampled) == ("train", 256) and abs(share - 0.3) < 0.1
    assert share == hits / 256
    assert seen_lists(training, fingerprints[1000:]) == []  # none seen
    # with no more lists than fingerprints kept, the share is exact
    small = {"data_sketch": {"valid": data_sketch(features[: offsets[100]], offsets[:101])}}
    [(split, hits, sampled, share)] = seen_lists(small, fingerprints[50:250])
    assert (split, hits, sampled, share) == ("valid", 50, 100, 0.25)
    # a list's fingerprint is of its rows, in order
    assert (
        list_fingerprints(features[:4][::-1], np.array([0, 4]))[0]
        != list_fingerprints(features[:4], np.array([0, 4]))[0]
    )
