"""``ltr evaluate`` against LightGBM's own NDCG and an unbatched model forward."""

from __future__ import annotations

import json
import math

import lightgbm as lgb
import numpy as np
import pytest
import torch

from ltr.artifact import Manifest, save_model
from ltr.cli import main
from ltr.data import FeatureNormalizer, load_dataset
from ltr.models import RankingModel, build_scorer


@pytest.fixture(scope="module")
def s1(mq2008_dir):
    return load_dataset(mq2008_dir / "S1.txt.xz")


@pytest.fixture(scope="module")
def s5(mq2008_dir):
    return load_dataset(mq2008_dir / "S5.txt.xz")


def _run_json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_external_scores_match_lightgbm_ndcg(s1, s5, mq2008_dir, tmp_path, capsys):
    train = lgb.Dataset(s1.features, s1.labels, group=s1.list_lengths)
    valid = lgb.Dataset(s5.features, s5.labels, group=s5.list_lengths, reference=train)
    recorded: dict = {}
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [1, 3, 5, 10],
        "num_leaves": 7,
        "learning_rate": 0.1,
        "num_threads": 2,
        "verbose": -1,
        "seed": 1,
    }
    booster = lgb.train(
        params, train, 8, valid_sets=[valid], callbacks=[lgb.record_evaluation(recorded)]
    )
    scores = tmp_path / "scores.txt"
    np.savetxt(scores, booster.predict(s5.features), fmt="%.17g")
    got = _run_json(
        capsys,
        [
            "evaluate",
            "--scores",
            str(scores),
            "--data",
            str(mq2008_dir / "S5.txt.xz"),
            "--format",
            "json",
            "--ties",
            "position",
        ],
    )
    assert set(got) == {"empty=1", "empty=0", "dropped"}
    for k in (1, 3, 5, 10):
        lightgbm_value = recorded["valid_0"][f"ndcg@{k}"][-1]  # gain 2^y-1, empty lists = 1
        assert abs(got["empty=1"][f"ndcg@{k}"] - lightgbm_value) < 1e-6


def test_conventions_are_consistent_with_counts(s5, mq2008_dir, tmp_path, capsys):
    rng = np.random.default_rng(0)
    scores = tmp_path / "random.txt"
    np.savetxt(scores, rng.normal(size=s5.num_rows))
    got = _run_json(
        capsys,
        [
            "evaluate",
            "--scores",
            str(scores),
            "--data",
            str(mq2008_dir / "S5.txt.xz"),
            "--format",
            "json",
        ],
    )
    n = len(s5)
    empty = int(np.sum(np.maximum.reduceat(s5.labels, s5.offsets[:-1]) == 0))
    for metric in ("ndcg@10", "map", "mrr", "err@10"):
        dropped = got["dropped"][metric]
        assert math.isclose(got["empty=0"][metric], dropped * (n - empty) / n, rel_tol=1e-9)
        assert math.isclose(
            got["empty=1"][metric], got["empty=0"][metric] + empty / n, rel_tol=1e-9
        )


def _reference_ndcg10(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")[:10]
    dcg = sum((2 ** labels[i] - 1) / math.log2(r + 2) for r, i in enumerate(order))
    ideal = sorted(labels, reverse=True)[:10]
    idcg = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 1.0


def test_model_scores_equal_an_unbatched_forward(s1, s5, mq2008_dir, tmp_path, capsys):
    torch.manual_seed(0)
    scorer = build_scorer("setrank", {"num_features": 46, "d_model": 16, "num_heads": 2})
    model = RankingModel(scorer, FeatureNormalizer(46).fit(s1.features)).eval()
    manifest = Manifest("setrank", scorer.config.__dict__, list(s1.feature_names))
    save_model(model, manifest, tmp_path / "model")

    got = _run_json(
        capsys,
        [
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(mq2008_dir / "S5.txt.xz"),
            "--format",
            "json",
        ],
    )
    per_query = []
    with torch.no_grad():
        for q in range(len(s5)):
            item = s5[q]
            x = torch.from_numpy(item.features)[None]  # (1, n, F): one list, no padding
            out = model(x, torch.ones(1, len(item.labels), dtype=torch.bool))[0].numpy()
            per_query.append(_reference_ndcg10(out, item.labels))
    assert abs(got["empty=1"]["ndcg@10"] - float(np.mean(per_query))) < 1e-6


def test_table_output_names_conventions(mq2008_dir, tmp_path, capsys):
    scores = tmp_path / "s.txt"
    np.savetxt(scores, np.arange(2874, dtype=float))
    assert main(["evaluate", "--scores", str(scores), "--data", str(mq2008_dir / "S5.txt.xz")]) == 0
    out = capsys.readouterr().out
    assert "empty=1" in out and "empty=0" in out and "dropped" in out
    assert "ndcg@10" in out and "156 queries" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [("1.0\n2.0\n", "holds 2 scores but the data has 2874 rows"), ("0.5\nabc\n", "line 2: 'abc'")],
)
def test_bad_score_files_are_reported(mq2008_dir, tmp_path, capsys, content, message):
    scores = tmp_path / "bad.txt"
    scores.write_text(content)
    argv = ["evaluate", "--scores", str(scores), "--data", str(mq2008_dir / "S5.txt.xz")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("S5.txt.xz", "S5.txt.xz is not a text file of one score per line (xz-compressed content)"),
        ("missing.txt", "no such scores file: "),
        ("folder", "folder is a folder, not a text file of one score per line"),
        ("latin1.txt", "latin1.txt is not a text file of one score per line: not valid UTF-8"),
    ],
)
def test_unreadable_score_files_are_named(mq2008_dir, tmp_path, capsys, name, message):
    (tmp_path / "S5.txt.xz").write_bytes((mq2008_dir / "S5.txt.xz").read_bytes())
    (tmp_path / "folder").mkdir()
    (tmp_path / "latin1.txt").write_bytes(b"0.5\n" * 5000 + b"0.5 caf\xe9\n")
    argv = ["evaluate", "--scores", str(tmp_path / name), "--data", str(mq2008_dir / "S5.txt.xz")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_unknown_model_path_is_reported(mq2008_dir, tmp_path, capsys):
    argv = ["evaluate", "--model", str(tmp_path / "nope"), "--data", str(mq2008_dir / "S5.txt.xz")]
    assert main(argv) == 2
    assert "no model at" in capsys.readouterr().err


def test_tls_options_without_a_server_are_refused(mq2008_dir, tmp_path, capsys):
    argv = ["evaluate", "--scores", str(tmp_path / "s.txt"), "--data",
            str(mq2008_dir / "S5.txt.xz"), "--ca", "ca.pem", "--key", "k.pem"]  # fmt: skip
    assert main(argv) == 2
    assert "--ca and --key: only for --server" in capsys.readouterr().err


def test_err_max_grade_scales_err_as_the_formula_says(tmp_path, capsys):
    # one query: a label-2 document ranked first, then a label-0 one. ERR@10 = R(2) with
    # R(l) = (2^l - 1) / 2^g: 3/4 for g = 2 (the data's default), 3/16 for g = 4
    data = tmp_path / "d.txt"
    data.write_text("2 qid:1 1:1\n0 qid:1 1:0\n")
    scores = tmp_path / "s.txt"
    scores.write_text("1\n0\n")
    base = ["evaluate", "--scores", str(scores), "--data", str(data), "--format", "json"]
    default = _run_json(capsys, base)
    assert default["empty=1"]["err@10"] == pytest.approx(3 / 4)
    four = _run_json(capsys, [*base, "--err-max-grade", "4"])
    assert four["empty=1"]["err@10"] == pytest.approx(3 / 16)
    assert four["empty=1"]["ndcg@10"] == default["empty=1"]["ndcg@10"]  # only ERR changes
    assert main([*base, "--err-max-grade", "0"]) == 2
    assert "--err-max-grade must be > 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mq2008_dir):
    """Tiny SetRanks trained by ``ltr train``'s code for one epoch, in a folder where ``data``
    links to the bundled MQ2008: on S1 (S4 validation, S5 test), and on LETOR fold 1 (S1-S3,
    S4, S5) from ``letor_root``; both name their data relative to that folder."""
    from ltr.train.config import load_train_config
    from ltr.train.run import train
    from tests.train.conftest import tiny_overrides

    root = tmp_path_factory.mktemp("trained")
    (root / "data").symlink_to(mq2008_dir)
    splits = {"train": "S1", "valid": "S4", "test": "S5"}
    runs = {
        "s1": {f"data.{split}": [f"data/{name}.txt.xz"] for split, name in splits.items()},
        "fold1": {f"data.{split}": [] for split in splits}
        | {"data.letor_root": "data", "data.fold": 1},
    }
    models = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name, data in runs.items():
            extra = {**data, "trainer.max_epochs": 1, "tracking.enabled": False}
            extra["output_dir"] = str(root / name)
            config = load_train_config(None, tiny_overrides(root, mq2008_dir, **extra))
            models[name] = str(train(config, verbose=False).artifact_dir)
    return models


@pytest.mark.parametrize("run", ["s1", "fold1"])
def test_evaluating_on_data_the_model_saw_in_training_warns(trained, run, mq2008_dir, capsys):
    s1, s4, s5 = (str(mq2008_dir / f"S{i}.txt.xz") for i in (1, 4, 5))
    model = trained[run]
    assert main(["evaluate", "--model", model, "--data", s1]) == 0
    err = capsys.readouterr().err
    assert err == (
        f"warning: the model was trained with {s1} (its training data), so these metrics are "
        "not a held-out estimate; evaluate on its test data or other unseen data for one\n"
    )
    assert main(["evaluate", "--model", model, "--data", s5]) == 0
    assert capsys.readouterr().err == ""  # its test data: held out
    assert main(["evaluate", "--model", model, "--data", s5, s4]) == 0
    assert f"trained with {s4} (its validation data), so" in capsys.readouterr().err


def _renamed_copy(source, target):
    """``source`` (LETOR, xz) as plain text with every query id changed."""
    import lzma
    import re

    with lzma.open(source, "rt") as f:
        text = f.read()
    target.write_text(re.sub(r"qid:(\S+)", r"qid:copy-\1", text))
    return str(target)


def test_copies_of_training_lists_are_found_by_their_features(
    trained, mq2008_dir, tmp_path, capsys
):
    """A copy under another name, format and query ids is not caught by its path; its lists'
    fingerprints find it. S1's 157 lists are fewer than the 256 fingerprints kept, so the share
    is exact; fold 1's training split has 471 lists, of which 256 are kept."""
    s1, s2, s5 = (mq2008_dir / f"S{i}.txt.xz" for i in (1, 2, 5))
    n1, n5 = (len(load_dataset(p)) for p in (s1, s5))
    copy = _renamed_copy(s1, tmp_path / "renamed.txt")
    assert main(["convert", copy, str(tmp_path / "s1.parquet"), "--quiet"]) == 0
    parquet = str(tmp_path / "s1.parquet")
    for data in ([copy], [parquet]):
        assert main(["evaluate", "--model", trained["s1"], "--data", *data]) == 0
        assert capsys.readouterr().err == (
            f"warning: about 100% of the data's {n1} lists are in its training data ({n1} of "
            f"the {n1} training lists it keeps fingerprints of have the same features as a list "
            "here), so these metrics are not a held-out estimate for the model; evaluate on its "
            "test data or other unseen data for one\n"
        )
    assert main(["evaluate", "--model", trained["s1"], "--data", parquet, str(s5)]) == 0
    assert f"about {n1 / (n1 + n5):.0%} of the data's {n1 + n5} lists are in its training" in (
        capsys.readouterr().err
    )
    assert main(["evaluate", "--model", trained["s1"], "--data", str(s5)]) == 0
    assert capsys.readouterr().err == ""  # held out
    # fold 1 trained on S1-S3: a renamed S2 is found from the sample of its lists
    copy2 = _renamed_copy(s2, tmp_path / "renamed2.txt")
    assert main(["evaluate", "--model", trained["fold1"], "--data", copy2]) == 0
    err = capsys.readouterr().err
    assert "% of the data's" in err and "lists are in its training data (" in err
    assert "of the 256 training lists it keeps fingerprints of" in err


def test_importance_and_report_on_training_data_warn(trained, mq2008_dir, tmp_path, capsys):
    s1, s5 = (str(mq2008_dir / f"S{i}.txt.xz") for i in (1, 5))
    model = trained["s1"]
    for data, warned in ((s1, True), (s5, False)):
        argv = ["importance", "--model", model, "--data", data, "--repeats", "1", "--quiet",
                "--features", *[f"f{i}" for i in range(1, 4)]]  # fmt: skip
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert (f"trained with {s1} (its training data), so these importances are not" in err) is (
            warned
        ), err
        argv = ["report", "--data", data, "--model", f"tiny={model}", "--no-mlflow", "--output",
                str(tmp_path / "report"), "--bootstrap", "10", "--permutations", "10"]  # fmt: skip
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert (f"warning: model 'tiny' was trained with {s1} (its training data)" in err) is (
            warned
        ), err
