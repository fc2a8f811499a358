"""PNG plots for evaluation reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_name(name: str) -> str:
    """A file-name-safe version of a system name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "system"


def plot_ndcg_at_k(
    curves: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "NDCG@k"
) -> Path:
    """One line per system: NDCG@k for k = 1 .. len(curve).

    Args:
        curves: ``{system: [NDCG@1, NDCG@2, ...]}``.
        path: PNG file to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for name, values in curves.items():
        ks = np.arange(1, len(values) + 1)
        ax.plot(ks, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("k (cut-off)")
    ax.set_ylabel("mean NDCG@k")
    ax.set_title(title)
    longest = max((len(v) for v in curves.values()), default=1)
    ax.set_xticks(np.arange(1, longest + 1, 1 if longest <= 20 else 5))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def plot_delta_histogram(
    delta: np.ndarray,
    path: str | Path,
    *,
    model: str,
    baseline: str,
    metric: str = "ndcg@10",
    bins: int = 40,
) -> Path:
    """Histogram of per-query ``model - baseline`` differences of ``metric`` (NaN skipped)."""
    plt = _pyplot()
    d = np.asarray(delta, dtype=np.float64)
    d = d[~np.isnan(d)]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.hist(d, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(0.0, color="black", linewidth=1)
    if d.size:
        ax.axvline(float(d.mean()), color="tab:red", linestyle="--", label=f"mean {d.mean():+.4f}")
        ax.legend(loc="upper right", fontsize="small")
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    ax.set_title(
        f"{metric}: {model} - {baseline} per query ({wins} better, {losses} worse, "
        f"{d.size - wins - losses} equal)",
        fontsize="medium",
    )
    ax.set_xlabel(f"{metric} difference")
    ax.set_ylabel("queries")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def plot_importance(
    names: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
) -> Path:
    """Horizontal bars, the first name at the top, with ±1 sd whiskers (feature importance)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.28 * len(names)), dpi=100)
    rows = np.arange(len(names))
    ax.barh(rows, means, xerr=stds, color="#4c72b0", ecolor="#333333", capsize=2)
    ax.set_yticks(rows, labels=list(names))
    ax.invert_yaxis()
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
