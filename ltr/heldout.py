"""Whether evaluation data is held out: the data files a model's manifest records as seen in
training (``training["data"]``, which ``ltr train`` fills with the files of each split, a LETOR
fold's included), and, for copies of them under other names, formats or query ids, fingerprints
of the lists themselves (``training["data_sketch"]``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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


SKETCH_SIZE = 256
"""Fingerprints a manifest keeps per split: the smallest of its lists' hashes, i.e. a uniform
sample of its distinct lists (all of them when it has no more)."""

MIN_SHARE = 0.01
"""The estimated share of DATA's lists seen in training from which it is reported."""


def list_fingerprints(features: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """One 64-bit hash per list (``uint64``) of its feature rows as float32, in order: not of its
    query id or labels, so a list copied to another file, format or query id keeps it."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for i, (start, end) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)):
        digest = hashlib.blake2b(rows[start:end].tobytes(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def data_sketch(features: np.ndarray, offsets: np.ndarray) -> dict[str, Any]:
    """What a manifest keeps of one split: its number of distinct lists and the
    :data:`SKETCH_SIZE` smallest of their fingerprints (hex), a uniform sample of them."""
    unique = np.unique(list_fingerprints(features, offsets)).tolist()
    return {"lists": len(unique), "hashes": [f"{h:016x}" for h in unique[:SKETCH_SIZE]]}


def seen_lists(
    training: Mapping[str, Any], fingerprints: np.ndarray
) -> list[tuple[str, int, int, float]]:
    """For each split in :data:`SEEN_SPLITS` the manifest has a sketch of, and whose lists make
    up at least :data:`MIN_SHARE` of the data of ``fingerprints`` (:func:`list_fingerprints`):
    ``(split, sampled fingerprints found in the data, fingerprints sampled, estimated share of
    the data's lists)``. The share is the found fraction of the sample times the split's lists,
    over the data's: exact when the split has no more than :data:`SKETCH_SIZE` lists."""
    sketches = training.get("data_sketch") or {}
    if not isinstance(sketches, Mapping) or not len(fingerprints):
        return []
    data = set(fingerprints.tolist())
    found = []
    for split in SEEN_SPLITS:
        sketch = sketches.get(split)
        if not sketch or not sketch.get("hashes"):
            continue
        sampled = [int(h, 16) for h in sketch["hashes"]]
        hits = sum(h in data for h in sampled)
        share = min(1.0, hits / len(sampled) * int(sketch["lists"]) / len(data))
        if hits and share >= MIN_SHARE:
            found.append((split, hits, len(sampled), share))
    return found


def seen_lists_warning(
    training: Mapping[str, Any],
    fingerprints: np.ndarray,
    what: str = "these metrics",
    model: str = "the model",
) -> str | None:
    """One line saying what share of the data's lists ``model`` saw in training, found by their
    features (:func:`seen_lists`; None when none): copies that :func:`not_held_out_warning`,
    which compares paths, does not catch."""
    found = seen_lists(training, fingerprints)
    if not found:
        return None
    parts = [
        f"about {share:.0%} of the data's {len(fingerprints):,} lists are in its "
        f"{SEEN_SPLITS[split]} data ({hits} of the {sampled} {SEEN_SPLITS[split]} lists it keeps "
        "fingerprints of have the same features as a list here)"
        for split, hits, sampled, share in found
    ]
    return (
        f"warning: {'; '.join(parts)}, so {what} are not a held-out estimate for {model}; "
        "evaluate on its test data or other unseen data for one"
    )
