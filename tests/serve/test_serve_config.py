"""Server config: YAML <- environment <- options, every shipped preset loads, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltr.errors import ConfigError
from ltr.serve.config import ServeConfig, env_overrides, load_serve_config

PRESETS = sorted((Path(__file__).resolve().parents[2] / "configs" / "serve").glob("*.yaml"))


def test_presets_exist_and_load() -> None:
    assert PRESETS, "configs/serve/*.yaml"
    for path in PRESETS:
        assert isinstance(load_serve_config(path, env={}), ServeConfig)


def test_file_then_environment_then_options(tmp_path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("port: 6000\nthreads: 2\nbatching:\n  max_delay_ms: 4\n  max_batch_size: 8\n")
    env = {
        "LTR_SERVE_PORT": "6001",
        "LTR_SERVE_BATCHING__MAX_DELAY_MS": "1.5",
        "OTHER": "x",
    }
    config = load_serve_config(path, {"port": 6002}, env=env)
    assert config.port == 6002  # option beats environment beats file
    assert config.batching.max_delay_ms == 1.5  # environment beats file
    assert (config.threads, config.batching.max_batch_size) == (2, 8)  # file beats defaults
    assert config.batching.queue_capacity == ServeConfig().batching.queue_capacity


def test_env_names_map_to_dotted_keys() -> None:
    got = env_overrides({"LTR_SERVE_TLS__CLIENT_CA": "/ca.pem", "LTR_SERVE_": "x", "LTR_X": "1"})
    assert got == {"tls.client_ca": "/ca.pem"}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"tls.cert": "a.pem"}, "tls.cert and tls.key must be given together"),
        ({"tls.client_ca": "ca.pem"}, "mutual TLS"),
        ({"backend": "tensorrt"}, "backend must be one of"),
        ({"batching.max_batch_size": 0}, "max_batch_size"),
        ({"port": 70000}, "TCP port"),
        ({"max_candidates": 0}, "max_candidates"),
        ({"portt": 1}, "unknown key"),
    ],
)
def test_bad_settings_are_config_errors(overrides, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_serve_config(None, overrides, env={})


def test_serve_without_a_model_is_a_one_line_error(capsys, monkeypatch) -> None:
    from ltr.cli import main

    monkeypatch.delenv("LTR_SERVE_MODEL", raising=False)
    assert main(["serve", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "ltr serve: error: no model to serve; pass --model DIR_OR_URI or set model in the config"
    )


@pytest.mark.parametrize("missing", ["model", "challenger"])
def test_a_missing_model_folder_is_told_before_the_heavy_imports(tmp_path, missing) -> None:
    """The loader's own message, from a process that has not imported torch, gRPC or ONNX
    Runtime (seconds of imports before it used to come)."""
    import os
    import subprocess
    import sys

    from ltr.artifact import save_linear_model

    model = save_linear_model(tmp_path / "model", ["f1", "f2"], {"f1": 1.0})
    absent = tmp_path / "nosuch" / "model"
    argv = ["serve", "--model", str(absent if missing == "model" else model)]
    if missing == "challenger":
        argv += ["--challenger", str(absent)]
    code = (
        "import sys; from ltr.cli import main; rc = main(sys.argv[1:]); "
        "print(rc, *sorted(m for m in ('torch', 'grpc', 'onnxruntime') if m in sys.modules))"
    )
    repo = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTR_SERVE_")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": repo},
        timeout=120,
    )
    assert proc.stdout.split() == ["2"], proc.stdout + proc.stderr
    assert proc.stderr == f"ltr serve: error: no model at {absent}: the path does not exist\n"
