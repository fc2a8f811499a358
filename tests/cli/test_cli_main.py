"""What every ``ltr`` command shares: how it ends when its reader goes away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ltr.data import load_dataset

REPO = Path(__file__).resolve().parents[2]


def test_a_closed_pipe_ends_a_command_quietly(mq2008_dir, tmp_path):
    """``ltr evaluate ... | head -1``: the reader is gone before the table is written. The
    command stops with 141 (as if killed by SIGPIPE) and no traceback."""
    s5 = mq2008_dir / "S5.txt.xz"
    scores = tmp_path / "scores.txt"
    scores.write_text("0\n" * load_dataset(s5).num_rows)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "ltr", "evaluate", "--scores", str(scores), "--data", str(s5)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    )
    proc.stdout.close()  # before the command has written anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
