"""Helpers shared by the pipeline tests (not fixtures)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ltr.artifact import Manifest, build_model, save_model
from ltr.data.parquet import default_feature_names

LTR = str(Path(sys.executable).with_name("ltr"))
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
"""Environment for subprocesses: one torch/OpenMP thread (the test machine's cores are shared)."""
NUM_FEATURES = 46


def ltr(*args) -> subprocess.CompletedProcess:
    """``ltr ARGS`` through the console script's entry point in this process: the same parser,
    exit codes and output, without a second import of torch and Lightning for every call (5-6 s
    for a training command). A test that kills the process still needs a real one."""
    from ltr.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def make_model(directory: Path, *, seed: int = 0, d_model: int = 16, fit_on=None, **config) -> Path:
    """A small SetRank artifact with random weights (and a fitted normaliser when ``fit_on``).

    ``config`` adds SetRank settings, e.g. ``use_initial_rank=True`` or ``context_dim=3``.
    """
    torch.manual_seed(seed)
    manifest = Manifest(
        architecture="setrank",
        model_config={
            "num_features": NUM_FEATURES,
            "d_model": d_model,
            "num_heads": 2,
            "num_blocks": 1,
            "d_ff": 2 * d_model,
            **config,
        },
        feature_names=default_feature_names(NUM_FEATURES),
        normalizer={"enabled": fit_on is not None, "log1p": True},
    )
    model = build_model(manifest)
    if fit_on is not None:
        model.normalizer.fit(fit_on)
    return save_model(model, manifest, directory)


def reference_ranks(scores: np.ndarray, qids: np.ndarray) -> np.ndarray:
    """1-based rank within each query by descending score, ties by position (plain Python)."""
    ranks = np.zeros(len(scores), dtype=np.int64)
    groups: dict[object, list[int]] = {}
    for i, q in enumerate(qids):
        groups.setdefault(q, []).append(i)
    for rows in groups.values():
        ordered = sorted(rows, key=lambda i: (-float(scores[i]), i))
        for r, i in enumerate(ordered, 1):
            ranks[i] = r
    return ranks
