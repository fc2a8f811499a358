"""Config loading: YAML, dotted overrides, validation, and every shipped preset."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ltr.cli import main
from ltr.config import load_config, parse_overrides
from ltr.errors import ConfigError, RegistryError
from ltr.models import build_scorer
from ltr.models._validate import check_int
from ltr.train.config import TrainConfig, load_train_config
from ltr.train.datamodule import split_files

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_overrides_parse_yaml_values():
    parsed = parse_overrides(
        ["--model.num_blocks", "4", "--trainer.deterministic=false", "--loss", "{mse: 0.5}"]
    )
    assert parsed == {"model.num_blocks": 4, "trainer.deterministic": False, "loss": {"mse": 0.5}}
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(["--trainer.max_epochs"])
    # two values for one option: the error shows the YAML list that works
    argv = ["--data.batch_size", "8", "--data.files", "a.txt", "b.txt"]
    with pytest.raises(ConfigError, match=r"got 'b.txt'; --data.files takes one value") as e:
        parse_overrides(argv)
    shown = str(e.value).rsplit(", --data.files ", 1)[1].strip("'")
    assert parse_overrides(["--data.files", shown]) == {"data.files": ["a.txt", "b.txt"]}
    with pytest.raises(ConfigError, match=r"^expected an option like --section.key, got 'x'$"):
        parse_overrides(["x"])


def test_yaml_plus_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: setrank, num_blocks: 2}\ntrainer: {max_epochs: 7}\n")
    cfg = load_train_config(path, {"model.num_blocks": 4, "optim.lr": 0.01})
    assert cfg.model == {"name": "setrank", "num_blocks": 4}
    assert cfg.trainer.max_epochs == 7 and cfg.optim.lr == 0.01
    assert isinstance(cfg, TrainConfig)


def test_overrides_leave_the_callers_dict_alone():
    # A section given whole, then one of its keys: the second lands in the config's copy, not
    # in the caller's dict (which a second config built from it would otherwise inherit).
    overrides = {"model": {"name": "setrank", "num_blocks": 1}, "model.num_blocks": 3}
    assert load_train_config(None, overrides).model["num_blocks"] == 3
    assert overrides["model"] == {"name": "setrank", "num_blocks": 1}
    assert load_train_config(None, {"model": overrides["model"]}).model["num_blocks"] == 1


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads ``1e-3`` as a string; a float option takes it as 0.001, from a
    file and from the command line alike, and still refuses words."""
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 1e-3, weight_decay: 5E-2}\n")
    cfg = load_train_config(path, parse_overrides(["--optim.min_lr_ratio", "2e-1"]))
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.min_lr_ratio) == (1e-3, 5e-2, 0.2)
    for word in ("1e", "e-3", "1e-3x", "nan", "inf"):
        with pytest.raises(ConfigError, match=r"optim\.lr must be a number"):
            load_train_config(None, {"optim.lr": word})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"trainer.max_epoch": 3},
            r"unknown key\(s\) 'max_epoch' in trainer; valid keys: .*max_epochs",
        ),
        ({"trainer.max_epochs": "ten"}, "trainer.max_epochs must be an integer"),
        ({"optim.lr": -1.0}, "optim.lr must be positive"),
        ({"optim.schedule": "linear"}, "optim.schedule must be one of 'cosine', 'constant'"),
        ({"data.fold": 9}, "data.fold must be between 1 and 5"),
    ],
)
def test_invalid_values_say_what_is_wrong(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, overrides)


# What a user audit typed: a typo'd model key, loss and block, and a loss missing its brace.
AUDIT = [
    (
        ["--model.num_block", "4"],
        r"unknown key\(s\) 'num_block' in model \(setrank\); valid keys: .*num_blocks",
    ),
    (["--loss", "listmel"], r"unknown loss 'listmel'; valid names: .*listmle"),
    (["--model.block", "imsabb"], r"model\.block must be one of imsab, msab; got 'imsabb'"),
    (
        ["--loss", "{lambdaloss: 1.0, mse: 0.1"],
        r"loss '\{lambdaloss: 1\.0, mse: 0\.1' is neither a loss name nor valid YAML",
    ),
]
SETRANK = str(Path(__file__).resolve().parents[2] / "configs" / "setrank_imsab.yaml")


@pytest.mark.parametrize(("options", "message"), AUDIT)
def test_print_config_refuses_what_training_would(options, message, capsys):
    """``--print-config`` prints only a config that training would take: the model's keys and
    values, the loss, the metrics are checked when the config is loaded, before any data."""
    assert main(["train", "--config", SETRANK, "--print-config", *options]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize(("options", "message"), AUDIT)
def test_training_refuses_a_bad_setting_before_reading_data(options, message, tmp_path):
    """The config fails to load, so ``ltr train`` stops before its data (here: none) are read."""
    overrides = {**parse_overrides(options), "data.train": [str(tmp_path / "absent.txt")]}
    with pytest.raises((ConfigError, RegistryError), match=message):
        load_train_config(SETRANK, overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eval.metrics": ["ndcg@10", "mapp"]}, "unknown metric 'mapp'"),
        ({"trainer.monitor": "err@3"}, r"trainer\.monitor 'err@3' must be one of eval\.metrics"),
        ({"model.d_model": 10, "model.num_heads": 4}, r"model\.d_model \(10\) must be divisible"),
        ({"model.name": "transformer"}, "unknown model 'transformer'"),
    ],
)
def test_metrics_and_model_are_checked_when_loaded(overrides, message):
    with pytest.raises((ConfigError, RegistryError), match=message):
        load_train_config(SETRANK, overrides)


@dataclass
class _Inner:
    n: int = 1

    def __post_init__(self) -> None:
        check_int(type(self).__name__, "n", self.n, 1)  # as the model configs check fields


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)


def test_errors_name_sections_by_the_users_keys_not_the_classes():
    with pytest.raises(ConfigError, match=r"^inner\.n must be >= 1, got 0$"):
        load_config(_Outer, None, {"inner.n": 0})
    with pytest.raises(ConfigError, match=r"^unknown key\(s\) 'foo' in the config; valid keys"):
        load_train_config(None, {"foo": 1})


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads_and_builds(path):
    cfg = load_train_config(path)
    params = {k: v for k, v in cfg.model.items() if k != "name"}
    scorer = build_scorer(cfg.model["name"], {**params, "num_features": 46})
    assert sum(p.numel() for p in scorer.parameters()) > 0
    assert (Path(__file__).resolve().parents[2] / cfg.data.letor_root).is_dir()


def test_presets_cover_msab_imsab_and_mlp():
    blocks = {
        load_train_config(p).model.get("block", load_train_config(p).model["name"]) for p in CONFIGS
    }
    assert {"msab", "imsab", "mlp"} <= blocks


def test_the_text_preset_is_the_default_setrank_with_the_softmax_loss():
    """``configs/text/setrank.yaml`` (chosen in docs/TEXT.md, "Which loss for text") differs
    from the default only in its loss and its data and tracking names."""
    repo = Path(__file__).resolve().parents[2]
    default = load_train_config(repo / "configs" / "setrank_imsab.yaml")
    text = load_train_config(repo / "configs" / "text" / "setrank.yaml")
    assert (default.loss, text.loss) == ("listmle", "softmax")
    assert text.model == default.model
    assert (text.optim, text.trainer, text.normalizer) == (
        default.optim,
        default.trainer,
        default.normalizer,
    )
    assert text.data.batch_size == default.data.batch_size and text.data.letor_root is None
    with pytest.raises(ConfigError, match="no training data"):
        split_files(text.data)


def test_trainer_threads_set_torch_and_the_processes_it_starts(tmp_path, monkeypatch):
    import os

    import torch

    from ltr.train.config import LightningConfig
    from ltr.train.run import build_trainer

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        build_trainer(LightningConfig(threads=1, accelerator="cpu"), [], tmp_path, verbose=False)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        torch.set_num_threads(2)
        monkeypatch.delenv("OMP_NUM_THREADS")
        build_trainer(LightningConfig(accelerator="cpu"), [], tmp_path, verbose=False)
        assert torch.get_num_threads() == 2 and "OMP_NUM_THREADS" not in os.environ
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match=r"trainer\.threads must be at least 1"):
        load_train_config(None, {"trainer.threads": 0})
