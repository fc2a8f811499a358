"""Whether evaluation data is held out: the data files a model's manifest records as seen in
training (``training["data"]``, which ``ltr train`` fills with the files of each split, a LETOR
fold's included)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
"""Where training also looks for a relative data path (bundled data, as
:func:`ltr.train.datamodule.resolve_data_path` does)."""

SEEN_SPLITS = {"train": "training", "valid": "validation"}
"""Splits whose files the model saw: it was fitted on ``train``; ``valid`` chose its epoch."""


def _recorded(path: str) -> list[Path]:
    """Where a path recorded in a manifest may be here: as it is when absolute, else relative to
    the current folder or to the repository root (the training run's folder is not recorded)."""
    p = Path(path)
    return [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]


def seen_in_training(
    training: Mapping[str, Any], paths: Iterable[str | Path]
) -> list[tuple[str, str]]:
    """``(path, split)`` for each of ``paths`` that the manifest's ``training`` facts list under
    a split in :data:`SEEN_SPLITS`, compared as resolved absolute paths; ``path`` as given."""
    data = training.get("data") or {}
    if not isinstance(data, Mapping):
        return []
    seen: dict[Path, str] = {}
    for split in SEEN_SPLITS:
        for recorded in data.get(split) or []:
            for candidate in _recorded(str(recorded)):
                seen.setdefault(candidate.resolve(), split)
    found = []
    for path in paths:
        split = seen.get(Path(path).resolve())
        if split is not None:
            found.append((str(path), split))
    return found


def not_held_out_warning(
    training: Mapping[str, Any],
    paths: Iterable[str | Path],
    what: str = "these metrics",
    model: str = "the model",
) -> str | None:
    """One line saying which of ``paths`` ``model`` saw in training (None when none), so that
    ``what`` (the results computed on them) is not a held-out estimate."""
    found = seen_in_training(training, paths)
    if not found:
        return None
    files = ", ".join(f"{path} (its {SEEN_SPLITS[split]} data)" for path, split in found)
    return (
        f"warning: {model} was trained with {files}, so {what} are not a held-out estimate; "
        "evaluate on its test data or other unseen data for one"
    )
