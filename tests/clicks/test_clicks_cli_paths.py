"""Wrong paths given to the click commands are one-line errors that say what was wrong, not an
errno."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltr.cli import main

REPO = Path(__file__).resolve().parents[2]
S1 = REPO / "data" / "mq2008" / "S1.txt.xz"


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"ltr {command}: error: ") and err.count("\n") == 1, err
    assert "Errno" not in err
    return err


def test_simulate_refuses_an_out_path_that_is_not_parquet(tmp_path, capsys):
    out = tmp_path / "log.csv"
    argv = ["clicks", "simulate", str(S1), "--ranker-feature", "f25", "--sessions", "1",
            "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "give a .parquet path" in one_line_error(capsys, "clicks")
    assert not out.exists()


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("log") / "log.parquet"
    argv = ["clicks", "simulate", str(S1), "--ranker-feature", "f25", "--sessions", "2",
            "--quiet", "--out", str(path)]  # fmt: skip
    assert main(argv) == 0
    return path


def test_labels_names_a_features_folder_and_a_missing_file(log, tmp_path, capsys):
    argv = ["clicks", "labels", str(log), "--eta", "1", "--out", str(tmp_path / "l.parquet")]
    assert main([*argv, "--features", str(S1.parent)]) == 2
    assert f"--features {S1.parent} is a folder" in one_line_error(capsys, "clicks")
    assert main([*argv, "--features", str(tmp_path / "none.txt")]) == 2
    assert "none.txt: no such file" in one_line_error(capsys, "clicks")
    assert main([*argv, "--features", str(S1), "--quiet"]) == 0
