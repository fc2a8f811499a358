"""``ltr info``: what an artifact is. Parameters and arithmetic are checked against the formulas
of an MLP (weights and biases of each layer; 2 operations per multiply-add), an ensemble against
the sum of its members', and the files it reports against the folder's own."""

from __future__ import annotations

import itertools
import json

import pytest

from ltr.artifact import ONNX, Manifest, build_model, save_linear_model, save_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.drift import profile_features

F = 46


def _mlp(directory, train, hidden: list[int], seed: int = 0):
    """An MLP artifact with ``hidden`` layer widths and a normaliser fitted on ``train``."""
    import torch

    torch.manual_seed(seed)
    manifest = Manifest(
        architecture="mlp",
        model_config={"num_features": F, "hidden_sizes": hidden, "dropout": 0.0},
        feature_names=list(train.feature_names),
        normalizer={"enabled": True, "log1p": True},
        training={
            "run_id": f"run-{seed}",
            "loss": "listnet",
            "best_epoch": 3,
            "data": {"train": ["train.parquet"], "test": ["test.parquet"]},
            "test_metrics": {
                "empty=1": {"map": 0.5, "ndcg@10": 0.75},
                "empty=0": {"map": 0.25, "ndcg@10": 0.5},
            },
        },
    )
    model = build_model(manifest)
    model.normalizer.fit(train.features)
    return save_model(model.eval(), manifest, directory)


def _hand(hidden: list[int], length: int) -> tuple[int, float]:
    """Parameters and MFLOP per list of ``length`` of an MLP F -> hidden... -> 1."""
    widths = [F, *hidden, 1]
    pairs = list(itertools.pairwise(widths))
    parameters = sum(a * b + b for a, b in pairs)
    mflop = 2 * length * sum(a * b for a, b in pairs) / 1e6
    return parameters, mflop


def _info(capsys, *argv: str) -> dict:
    assert main(["info", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def s1(mq2008_dir):
    return load_dataset(mq2008_dir / "S1.txt.xz")


def test_an_mlp_is_described_by_its_formulas(tmp_path, s1, mq2008_dir, capsys):
    model = _mlp(tmp_path / "mlp", s1, [8, 4])
    info = _info(capsys, str(model))
    parameters, _ = _hand([8, 4], 1)
    assert info["parameters"] == parameters == 46 * 8 + 8 + 8 * 4 + 4 + 4 + 1
    for length in (10, 100, 1000):
        assert info["mflop_per_list"][str(length)] == pytest.approx(_hand([8, 4], length)[1])
    assert info["features"] == list(s1.feature_names) and info["version"] == "run-0"
    assert info["files"]["weights"] == (model / "model.pt").stat().st_size
    assert info["files"]["onnx"] is None and info["feature_profile"] is None

    # as text: what is missing says how to get it
    assert main(["info", str(model)]) == 0
    text = capsys.readouterr().out
    assert "46 (f1, f2, f3, f4, ..., f46)" in text
    assert f"{parameters:,} parameters" in text
    assert "ndcg@10 0.7500, map 0.5000 (empty=1)" in text  # the headline convention
    assert "listnet (best epoch 3)" in text and "train.parquet" in text
    assert "not exported" in text and "ltr drift --save-profile" in text
    assert all(len(line) <= 100 for line in text.splitlines())

    # with a profile and an ONNX graph beside it
    profile_features(s1.features[:500], list(s1.feature_names)).save(model)
    assert main(["export", "--model", str(model), "--data", str(mq2008_dir / "S5.txt.xz")]) == 0
    capsys.readouterr()
    info = _info(capsys, str(model))
    assert info["feature_profile"]["rows"] == 500 and not info["feature_profile"]["scores"]
    profile_features(s1.features[:500], list(s1.feature_names), scores=s1.labels[:500]).save(model)
    assert main(["info", str(model)]) == 0
    assert "500 training rows and the model's scores of them" in capsys.readouterr().out
    assert _info(capsys, str(model))["feature_profile"]["scores"]
    assert info["files"]["onnx"] == (model / ONNX).stat().st_size > 0
    (model / "feature_profile.json").write_text("{")
    info = _info(capsys, str(model))
    assert "is not a feature profile" in info["feature_profile"]["error"]


def test_an_ensemble_is_the_sum_of_its_members(tmp_path, s1, capsys):
    a = _mlp(tmp_path / "a", s1, [8], seed=1)
    b = _mlp(tmp_path / "b", s1, [16, 2], seed=2)
    assert main(["ensemble", "--model", str(a), str(b), "--output", str(tmp_path / "ens"),
                 "--no-mlflow", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    info = _info(capsys, str(tmp_path / "ens"))
    assert info["architecture"] == "ensemble" and info["model_config"]["members"] == 2
    assert info["parameters"] == _hand([8], 1)[0] + _hand([16, 2], 1)[0]
    want = _hand([8], 100)[1] + _hand([16, 2], 100)[1]
    assert info["mflop_per_list"]["100"] == pytest.approx(want)
    assert [m["run_id"] for m in info["members"]] == ["run-1", "run-2"]
    assert main(["info", str(tmp_path / "ens")]) == 0
    text = " ".join(capsys.readouterr().out.split())  # lines wrapped at 100 characters
    assert f"member {a} (mlp, run run-1)" in text and f"member {b} (mlp, run run-2)" in text
    assert "served as ens, version unversioned" in text  # no run, no registry: as the server says


def test_a_linear_scorer_and_a_lambdamart(tmp_path, s1, mq2008_lambdamart, mq2008_dir, capsys):
    linear = save_linear_model(tmp_path / "bm25", list(s1.feature_names), {"f25": 1.0})
    info = _info(capsys, str(linear))
    assert info["parameters"] == F + 1 and info["normalizer"]["enabled"] is False
    assert info["mflop_per_list"]["1000"] == pytest.approx(2 * 1000 * F / 1e6)
    assert main(["info", str(linear)]) == 0
    text = capsys.readouterr().out
    assert "score = 1 x f25" in text and "none (raw features)" in text

    assert main(["lightgbm-model", str(mq2008_lambdamart), str(tmp_path / "lm"),
                 "--like", str(mq2008_dir / "S1.txt.xz")]) == 0  # fmt: skip
    capsys.readouterr()
    info = _info(capsys, str(tmp_path / "lm"))
    assert info["architecture"] == "gbdt" and info["mflop_per_list"] is None
    assert info["model_config"]["num_trees"] == 40  # as the fixture trained it
    assert main(["info", str(tmp_path / "lm")]) == 0
    assert "MFLOP" not in capsys.readouterr().out


def test_what_is_no_model_is_refused(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert "the path does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 2
    assert "holds no model of this kind" in capsys.readouterr().err


def test_a_path_next_to_an_artifact_names_the_artifact_folder(tmp_path, s1, mq2008_dir, capsys):
    names = list(s1.feature_names)
    model = save_linear_model(tmp_path / "runs" / "demo" / "model_run" / "model", names, {"f1": 1})
    inside = model / "ltr_model.json"
    assert main(["info", str(inside)]) == 2
    err = capsys.readouterr().err
    assert f"{inside} is a file inside the model folder {model}; pass the folder" in err
    # a folder with an artifact two levels down; and the same resolver behind --model elsewhere
    for argv in (["info"], ["evaluate", "--data", str(mq2008_dir / "S5.txt.xz"), "--model"]):
        assert main([*argv, str(tmp_path / "runs" / "demo")]) == 2
        err = capsys.readouterr().err
        assert f"but the model folder {model} is below it; pass that folder" in err, err
    # several: the first few are named, the rest counted; four levels down is too deep to look
    for i in range(6):
        save_linear_model(tmp_path / "many" / f"run{i}" / "model", names, {"f1": 1})
    save_linear_model(tmp_path / "deep" / "a" / "b" / "c" / "model", names, {"f1": 1})
    assert main(["info", str(tmp_path / "many")]) == 2
    shown = ", ".join(str(tmp_path / "many" / f"run{i}" / "model") for i in range(4))
    assert f"model folders are below it: {shown} and 2 more; pass one" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "deep")]) == 2
    assert "holds no model of this kind (no ltr_model.json); pass a directory" in (
        capsys.readouterr().err
    )


def test_counting_arithmetic_leaves_the_model_as_it_was(tmp_path, s1):
    from ltr.artifact import load_model
    from ltr.inference import matmul_mflop

    loaded = load_model(_mlp(tmp_path / "m", s1, [4]))
    before = [p.requires_grad for p in loaded.model.parameters()]
    assert matmul_mflop(loaded.model, loaded.manifest, 7) == pytest.approx(_hand([4], 7)[1])
    assert [p.requires_grad for p in loaded.model.parameters()] == before


def test_a_language_model_and_a_cross_encoder(tmp_path, capsys):
    """``ltr info`` tells a language model from a ranker; a cross-encoder is the same LM plus a
    score head of d_model + 1 parameters; the vocabulary is the tokenizer file's."""
    from tokenizers import Tokenizer

    from ltr.lm.artifact import save_lm
    from ltr.lm.model import LMConfig, TransformerLM
    from ltr.lm.tokenizer import train_tokenizer
    from ltr.text.cross import new_head

    tokenizer = train_tokenizer(["to be or not to be, that is the question"], kind="char")
    config = LMConfig(kind="causal", vocab_size=tokenizer.vocab_size, block_size=16, d_model=8,
                      num_heads=2, num_layers=1, d_ff=16, dropout=0.0)  # fmt: skip
    model = TransformerLM(config).eval()
    facts = {"data": ["play.txt"], "best_epoch": 2, "valid_metrics": {"perplexity": 3.5},
             "finetuned_from": "runs/lm/model", "architecture": "bi",
             "crossfit": {"held_out": [list(range(1, 69)), [2, 3]]}}  # fmt: skip
    lm = save_lm(model, tokenizer, tmp_path / "lm", facts)
    info = _info(capsys, str(lm))
    vocab = Tokenizer.from_file(str(lm / "tokenizer.json")).get_vocab_size()
    assert info["architecture"] == "causal LM" and info["tokenizer"]["vocab_size"] == vocab
    assert info["model_config"]["d_model"] == 8
    assert main(["info", str(lm)]) == 0
    text = capsys.readouterr().out
    assert f"char, {vocab:,} tokens" in text and "play.txt" in text
    assert "perplexity 3.5" in text and "best epoch    2" in text
    # a label as wide as its column keeps a space; the architecture is said once; the ids of a
    # cross-fitted model's held-out queries are counted, not listed
    assert "  finetuned from runs/lm/model\n" in text
    assert text.count("architecture") == 1 and "bi" not in text.split()
    assert "held_out [[1, 2, 3, 4, 5, ... (68 in all)], [2, 3]]" in text
    assert main(["info", str(lm / "tokenizer.json")]) == 2  # the language model's folder named
    assert f"inside the model folder {lm}; pass the folder" in capsys.readouterr().err

    cross = save_lm(model, tokenizer, tmp_path / "cross", head=new_head(8, seed=0))
    crossed = _info(capsys, str(cross))
    assert crossed["architecture"] == "cross-encoder"
    assert crossed["parameters"] - info["parameters"] == 8 + 1


def test_compare_names_what_differs_and_by_how_much(tmp_path, s1, capsys):
    """A champion against a candidate with wider layers, better metrics on more data and one
    feature renamed: exactly those facts are listed, numbers with their hand differences."""
    import json as _json

    from ltr.artifact import MANIFEST

    old = _mlp(tmp_path / "champion", s1, [8, 4], seed=1)
    new = _mlp(tmp_path / "candidate", s1, [16, 4], seed=2)
    manifest = _json.loads((new / MANIFEST).read_text())
    manifest["training"]["test_metrics"]["empty=1"]["ndcg@10"] = 0.8
    manifest["training"]["data"]["train"] = ["train.parquet", "more.parquet"]
    manifest["feature_names"][2] = "bm25"
    (new / MANIFEST).write_text(_json.dumps(manifest))
    assert main(["info", str(new), "--compare", str(old), "--format", "json"]) == 0
    diff = _json.loads(capsys.readouterr().out)
    differ = diff["differ"]
    assert set(differ) == {
        "served_name",  # the folder's name, for models not in a registry
        "features",
        "version",
        "model_config.hidden_sizes",
        "parameters",
        "mflop_per_list.10",
        "mflop_per_list.100",
        "mflop_per_list.1000",
        "training.run_id",
        "training.data.train",
        "training.test_metrics.empty=1.ndcg@10",
        "files.weights",
    }
    before, _ = _hand([8, 4], 1)
    after, _ = _hand([16, 4], 1)
    assert differ["parameters"] == [before, after]
    assert differ["mflop_per_list.100"] == pytest.approx(
        [_hand([8, 4], 100)[1], _hand([16, 4], 100)[1]]
    )
    assert differ["training.test_metrics.empty=1.ndcg@10"] == [0.75, 0.8]
    info = _info(capsys, str(new))
    assert diff["same"] + len(differ) == len(_flat_keys(info)) - 2  # all but source and path

    assert main(["info", str(new), "--compare", str(old)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"from {old}\nto   {new}\n12 fact(s) differ")
    assert f"{before:,} -> {after:,} (+{after - before:,})" in text
    assert "(gains bm25; loses f3)" in text
    assert "0.7500 -> 0.8000 (+0.0500)" in text
    assert '["train.parquet"] -> ["train.parquet", "more.parquet"]' in text
    assert "(gains more.parquet)" in text and "[8, 4] -> [16, 4]\n" in text
    assert all(len(line) <= 100 for line in text.splitlines()[2:])  # all but the two sources
    # a model compared with itself: nothing differs
    assert main(["info", str(new), "--compare", str(new), "--format", "json"]) == 0
    assert _json.loads(capsys.readouterr().out)["differ"] == {}


def _flat_keys(info: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in info.items():
        if isinstance(v, dict) and v:
            keys += _flat_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys
