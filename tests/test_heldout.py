"""Which evaluation files a model saw in training, from manifests that name them relatively (as
``ltr train`` wrote them before it recorded absolute paths)."""

from __future__ import annotations

from ltr.heldout import seen_in_training


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
