"""``ltr text-features`` refuses an encoder fine-tuned on some of its validation or test queries
(the same collection split another way), whatever the encoder's cross-fitting.

The expected overlaps are counted here from :func:`split_queries` with the two seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltr.cli import main
from ltr.errors import ConfigError
from ltr.lm.artifact import load_lm, save_lm
from ltr.text.collection import load_collection, split_queries
from ltr.text.config import TextDataConfig
from ltr.text.features import build_text_features

FRACTIONS = (0.6, 0.2, 0.2)


def expected_overlap(synthetic, tuned_seed: int, run_seed: int) -> dict[str, int]:
    ids = load_collection(synthetic.root).query_ids
    seen = set(split_queries(ids, FRACTIONS, seed=tuned_seed)[0])
    _, valid, test = split_queries(ids, FRACTIONS, seed=run_seed)
    return {"valid": len(seen & set(valid)), "test": len(seen & set(test))}


def fake_finetuned(encoder_dir: Path, out: Path, collection: Path, seed: int, listed: bool):
    """The tiny encoder saved with the training facts ``ltr finetune`` records (``listed``:
    with its training queries, as now; without: as encoders fine-tuned before)."""
    lm = load_lm(encoder_dir)
    training = {
        "finetuned_from": str(encoder_dir),
        "architecture": "bi",
        "collection": str(collection),
        "split": {"fractions": list(FRACTIONS), "seed": seed},
    }
    if listed:
        ids = load_collection(collection).query_ids
        training["data_split"] = None
        training["train_queries"] = split_queries(ids, FRACTIONS, seed=seed)[0]
    return save_lm(lm.model, lm.tokenizer, out, training)


@pytest.mark.parametrize("listed", [True, False])
def test_encoder_tuned_on_another_split_is_refused(tmp_path, synthetic, encoder_dir, listed):
    ft = fake_finetuned(encoder_dir, tmp_path / "ft", synthetic.root, seed=0, listed=listed)
    want = expected_overlap(synthetic, 0, 1)
    assert want["valid"] + want["test"] > 0  # the two splits do share queries
    config = TextDataConfig(collection=str(synthetic.root), candidates=5, split_seed=1)
    with pytest.raises(ConfigError) as err:
        build_text_features(config, {"ft": str(ft)}, tmp_path / "feat", cache_documents=False)
    message = str(err.value)
    for part, n in want.items():
        if n:
            assert f"{n} of this run's {part} queries" in message
    assert "split_seed 0" in message and "--allow-query-overlap" in message
    assert not (tmp_path / "feat" / "train.parquet").exists()


def test_same_split_or_another_collection_passes(tmp_path, synthetic, encoder_dir):
    ft = fake_finetuned(encoder_dir, tmp_path / "ft", synthetic.root, seed=1, listed=True)
    config = TextDataConfig(collection=str(synthetic.root), candidates=5, split_seed=1)
    result = build_text_features(config, {"ft": str(ft)}, tmp_path / "a", cache_documents=False)
    assert result.overlap == {} and result.overlap_warnings() == []
    other = fake_finetuned(encoder_dir, tmp_path / "o", Path("/elsewhere/cranfield"), 0, False)
    result = build_text_features(config, {"ft": str(other)}, tmp_path / "b", cache_documents=False)
    assert result.overlap == {}


def test_allow_query_overlap_writes_with_a_warning(tmp_path, synthetic, encoder_dir, capsys):
    ft = fake_finetuned(encoder_dir, tmp_path / "ft", synthetic.root, seed=0, listed=True)
    want = expected_overlap(synthetic, 0, 1)
    argv = [
        "text-features", "--data.collection", str(synthetic.root), "--data.candidates", "5",
        "--data.split_seed", "1", "--encoder", f"ft={ft}", "--out", str(tmp_path / "feat"),
        "--no-document-cache", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltr text-features: error: encoder ft was fine-tuned on ")
    assert err.count("\n") == 1
    assert main([*argv, "--allow-query-overlap"]) == 0
    err = capsys.readouterr().err
    assert "warning: sim_ft: encoder ft was fine-tuned on" in err
    facts = json.loads((tmp_path / "feat" / "features.json").read_text())
    assert facts["finetuning_query_overlap"] == {"ft": want}


def test_real_finetune_records_its_queries_and_is_refused_on_another_split(
    tmp_path, synthetic, config_file, capsys
):
    path = config_file
    assert main(["finetune", "--config", str(path), "--quiet"]) == 0
    training = load_lm(tmp_path / "ft" / "model").training
    ids = load_collection(synthetic.root).query_ids
    assert training["train_queries"] == split_queries(ids, FRACTIONS, seed=0)[0]
    capsys.readouterr()
    argv = ["text-features", "--config", str(path), "--out", str(tmp_path / "feat"), "--quiet"]
    argv += ["--encoder", f"ft={tmp_path / 'ft' / 'model'}", "--no-document-cache"]
    assert main([*argv, "--data.split_seed", "1"]) == 2
    want = expected_overlap(synthetic, 0, 1)
    err = capsys.readouterr().err
    assert f"fine-tuned on {want['valid']} of this run's valid queries" in err
    assert main(argv) == 0  # its own split
