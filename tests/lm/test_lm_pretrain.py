"""``ltr pretrain`` / ``ltr generate`` end to end on a slice of the bundled Tiny Shakespeare."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from mlflow import MlflowClient

from ltr.artifact import ArtifactError
from ltr.cli import main
from ltr.errors import ConfigError
from ltr.lm.artifact import load_lm
from ltr.lm.config import PretrainConfig, load_pretrain_config
from ltr.lm.pretrain import pretrain

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "lm").glob("*.yaml"))
BLOCK = 32


@pytest.fixture(scope="module")
def corpus(shakespeare_30k) -> Path:
    return shakespeare_30k


def overrides(tmp: Path, corpus: Path, **extra) -> dict:
    base = {
        "model.kind": "causal",
        "model.block_size": BLOCK,
        "model.d_model": 32,
        "model.num_heads": 2,
        "model.num_layers": 2,
        "model.d_ff": 64,
        "model.dropout": 0.0,
        "data.files": [str(corpus)],
        "data.tokenizer_kind": "char",
        "data.batch_size": 16,
        "data.steps_per_epoch": 40,
        "data.max_valid_windows": 20,
        "optim.lr": 3e-3,
        "optim.warmup_steps": 10,
        "trainer.max_epochs": 3,
        "trainer.progress_bar": False,
        "tracking.tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "tracking.experiment": "lm-tests",
        "tracking.registered_model": "lm-tests-model",
        "output_dir": str(tmp / "out"),
        "sample_tokens": 40,
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory, corpus):
    tmp = tmp_path_factory.mktemp("causal")
    config = load_pretrain_config(None, overrides(tmp, corpus))
    return tmp, config, pretrain(config, verbose=False)


def test_held_out_loss_is_the_cross_entropy_of_the_last_tenth(causal_run, corpus) -> None:
    result = causal_run[2]
    loaded = load_lm(result.artifact_dir)
    tok, model = loaded.tokenizer, loaded.model
    text = corpus.read_text()
    ids = torch.tensor(tok.encode(text))  # one character a token; one file: no [EOS]
    assert len(ids) == len(text) == result.train_tokens + result.valid_tokens
    valid = ids[int(len(ids) * 0.9) :]  # the held-out last tenth
    assert len(valid) == result.valid_tokens
    # 20 consecutive windows of BLOCK tokens, each predicting the next token
    x = torch.stack([valid[i * BLOCK : (i + 1) * BLOCK] for i in range(20)])
    y = torch.stack([valid[i * BLOCK + 1 : (i + 1) * BLOCK + 1] for i in range(20)])
    with torch.no_grad():
        expected = F.cross_entropy(model(x).reshape(-1, tok.vocab_size), y.reshape(-1)).item()
    assert result.valid_metrics["val/loss"] == pytest.approx(expected, rel=1e-5)
    assert result.scored_tokens == 20 * BLOCK
    assert result.valid_metrics["val/ppl"] == pytest.approx(math.exp(expected), rel=1e-5)
    # it learned something: well under a uniform guess over the characters
    assert expected < 0.8 * math.log(tok.vocab_size)


def test_run_is_tracked_and_the_model_loads_back_from_mlflow(causal_run, monkeypatch) -> None:
    tmp, config, result = causal_run
    client = MlflowClient(tracking_uri=config.tracking.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.kind"] == "causal"
    vocab = load_lm(result.artifact_dir).tokenizer.vocab_size
    assert run.data.params["model.vocab_size"] == str(vocab)  # the resolved value is logged
    assert config.model.vocab_size == 0  # ... and the caller's config is left as it was
    assert run.data.metrics["final/loss"] == pytest.approx(result.valid_metrics["val/loss"])
    history = client.get_metric_history(result.run_id, "val/loss")
    assert len(history) == result.epochs
    # the cosine schedule ends at lr * min_lr_ratio when the last epoch ends
    last_lr = client.get_metric_history(result.run_id, "train/lr")[-1]
    assert last_lr.step == 2 and last_lr.value == pytest.approx(3e-3 * 0.05)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", config.tracking.tracking_uri)
    local = load_lm(result.artifact_dir)
    ids = torch.tensor([local.tokenizer.encode("ROMEO: what")])
    assert result.alias_uri == "models:/lm-tests-model@candidate"
    for uri in (f"runs:/{result.run_id}/lm", result.alias_uri):
        torch.testing.assert_close(load_lm(uri).model(ids), local.model(ids))
    # the registered model is also a pyfunc text encoder: unit vectors, encode_texts' values
    texts = ["First Citizen:", "Before we proceed any further, hear me speak."]
    vectors = mlflow.pyfunc.load_model(result.alias_uri).predict(pd.DataFrame({"text": texts}))
    with torch.no_grad():
        for text, vector in zip(texts, vectors, strict=True):
            hidden = local.model.hidden(torch.tensor([local.tokenizer.encode(text)[:BLOCK]]))[0]
            mean = hidden.mean(0)
            np.testing.assert_allclose(vector, (mean / mean.norm()).numpy(), atol=1e-5)
    assert (tmp / "out" / "sample.txt").read_text() == result.sample
    assert len(local.tokenizer.encode(result.sample)) <= config.sample_tokens


def test_cli_generate_continues_the_prompt(causal_run, capsys) -> None:
    _, _, result = causal_run
    argv = ["generate", "--model", str(result.artifact_dir), "--prompt", "First"]
    assert main([*argv, "--max-new-tokens", "30", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("First") and len(first.rstrip("\n")) == 5 + 30
    assert main([*argv, "--max-new-tokens", "30", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first  # seeded
    assert main([*argv, "--max-new-tokens", "30", "--seed", "3", "--no-cache"]) == 0
    assert capsys.readouterr().out == first  # the key/value cache changes nothing
    assert main([*argv, "--max-new-tokens", "30", "--seed", "3", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == first
    assert main([*argv, "--device", "cuda:99"]) == 2  # none here, one on a GPU machine
    assert "'cuda:99' asked for" in capsys.readouterr().err
    assert main([*argv, "--max-new-tokens", "30", "--temperature", "0", "--num-samples", "2"]) == 0
    greedy = capsys.readouterr().out.split("--- sample ")
    assert greedy[1][1:] == greedy[2][1:]  # greedy decoding is the same for both samples
    model = str(result.artifact_dir)
    assert main(["generate", "--model", model, "--prompt", "Fir€st", "--max-new-tokens", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == "First\n" and "does not know '€'" in err
    # no prompt: the text starts after a line break, which is not printed
    assert main(["generate", "--model", model, "--max-new-tokens", "25", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert len(out) == 25 + 1  # 25 characters and print's line end


def test_masked_model_with_rotary_positions_pretrains_and_fills_masks(
    tmp_path, corpus, capsys
) -> None:
    options = {"model.kind": "masked", "model.positional": "rotary", "trainer.max_epochs": 2}
    config = load_pretrain_config(None, overrides(tmp_path, corpus, **options))
    result = pretrain(config, verbose=False)
    assert result.sample is None
    loaded = load_lm(result.artifact_dir).model
    assert loaded.config.positional == "rotary" and loaded.rotary is not None
    m = result.valid_metrics
    assert 0 < m["val/accuracy"] < 1 and m["val/loss"] < math.log(result_vocab(result))
    assert main(["generate", "--model", str(result.artifact_dir), "--prompt", "Fir[MASK]t"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[MASK] 1: ") and out.count("\n") == 1
    assert out.count(", ") == 4  # five candidates by default
    # every candidate the vocabulary has, but no special token (they decode to '')
    vocab = result_vocab(result)
    argv = ["generate", "--model", str(result.artifact_dir), "--prompt", "Fir[MASK]t"]
    assert main([*argv, "--top-k", str(vocab)]) == 0
    out = capsys.readouterr().out
    assert out.count(", ") == vocab - 6 - 1 and "'' " not in out
    # sampling options do nothing for a masked model: said, not ignored
    assert main([*argv, "--temperature", "0", "--num-samples", "3"]) == 2
    assert "--temperature, --num-samples: " in capsys.readouterr().err


def result_vocab(result) -> int:
    return load_lm(result.artifact_dir).tokenizer.vocab_size


def test_cli_pretrain_prints_the_resolved_config(capsys) -> None:
    assert main(["pretrain", "--print-config", "--model.kind", "masked"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["kind"] == "masked"
    assert printed["data"]["files"] == ["data/tinyshakespeare/input.txt.xz"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model.activation", "gelux"], "model: unknown activation 'gelux'; valid names"),
        (["--model.d_model", "10"], r"model: d_model \(10\) must be divisible by num_heads"),
        (
            ["--model.positional", "rotary", "--model.d_model", "12", "--model.num_heads", "4"],
            "model: rotary positions .* must be even, got 3",
        ),
    ],
)
def test_cli_pretrain_print_config_refuses_a_model_it_could_not_build(options, message, capsys):
    """Checked when the config is loaded (the layers built on the meta device), not after the
    tokenizer is trained and the corpus encoded; ``--print-config`` prints no such config."""
    assert main(["pretrain", "--print-config", *options]) == 2
    out, err = capsys.readouterr()
    assert out == "" and re.search(message, err), err


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_presets_load(path: Path) -> None:
    config = load_pretrain_config(path)
    assert isinstance(config, PretrainConfig)
    assert all((REPO / f).exists() for f in config.data.files)


def test_errors_name_what_is_wrong(tmp_path, corpus) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_pretrain_config(None, {"model.layers": 2})
    with pytest.raises(ConfigError, match="vocab_size"):
        pretrain(load_pretrain_config(None, overrides(tmp_path, corpus, **{"model.vocab_size": 7})))
    with pytest.raises(ArtifactError, match=r"lm_model\.json"):
        load_lm(tmp_path)
    with pytest.raises(ConfigError):
        load_pretrain_config(None, {"data.valid_fraction": 1.5})


@pytest.mark.slow
def test_pretrain_with_ddp_on_two_cpu_processes(tmp_path, corpus) -> None:
    options = overrides(tmp_path, corpus, **{"trainer.max_epochs": 2})
    options.update({"trainer.strategy": "ddp", "trainer.devices": 2, "trainer.accelerator": "cpu"})
    argv = [sys.executable, "-m", "ltr", "pretrain", "--quiet"]
    for key, value in options.items():
        argv += [f"--{key}", json.dumps(value)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=options["tracking.tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("lm-tests").experiment_id])
    assert len(runs) == 1, "only global rank 0 may create an MLflow run"
    assert runs[0].data.params["world_size"] == "2"
    history = client.get_metric_history(runs[0].info.run_id, "val/loss")
    assert [m.step for m in history] == [0, 1]
    # each process takes half of every epoch's batches; the schedule still ends where it should
    last_lr = client.get_metric_history(runs[0].info.run_id, "train/lr")[-1]
    assert last_lr.step == 1 and last_lr.value == pytest.approx(3e-3 * 0.05)
    loaded = load_lm(tmp_path / "out" / "model")
    assert loaded.training["best_epoch"] in (0, 1)
    assert "held-out (640 of" in proc.stdout  # 20 windows of 32 tokens, scored on rank 0
