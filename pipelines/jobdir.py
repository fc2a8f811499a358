"""The output directory of a batch-scoring job: manifest, partitions, resume bookkeeping.

Layout::

    _manifest.json        the job: input files (path, size, mtime), model digest, backend,
                          options and the partition plan; written before any partition
    part-00000.parquet    complete partitions (written as .part-00000.parquet.tmp, then renamed)
    _input.parquet        LETOR input converted to Parquet (kept until the job completes)
    _SUCCESS              written last, with the row counts

Names starting with ``_`` or ``.`` are skipped by Arrow and Spark dataset readers, so the
directory reads as a plain Parquet dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from ltr.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from ltr.predictor import Predictor

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
STAGED_INPUT = "_input.parquet"
PART = "part-{:05d}.parquet"


def prepare_output(output: Path, *, resume: bool, overwrite: bool) -> dict | None:
    """Check (and for ``overwrite``, clear) the output directory; return the manifest to resume."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"the output {output} is a file; give a directory")
    entries = list(output.iterdir()) if output.exists() else []
    if not entries:
        output.mkdir(parents=True, exist_ok=True)
        return None
    if not (output / MANIFEST).exists():
        if all(_is_job_file(e.name) for e in entries):  # a crash before the manifest was written
            for entry in entries:
                entry.unlink()
            return None
        raise ConfigError(
            f"the output directory {output} is not empty and holds no `ltr score` job; "
            "choose another --output"
        )
    if overwrite:
        for entry in entries:
            if _is_job_file(entry.name):
                entry.unlink()
        return None
    if not resume:
        raise ConfigError(
            f"the output {output} already exists; pass --resume to complete that job or "
            "--overwrite to start over"
        )
    for entry in entries:
        if entry.name.startswith(".part-") and entry.name.endswith(".tmp"):
            entry.unlink()  # a partition that a crash left half-written
    return json.loads((output / MANIFEST).read_text())


@contextmanager
def removed_if_left_empty(output: Path) -> Iterator[None]:
    """Around a job that writes ``output``: if it fails, remove the folders it made for
    ``output`` (``output`` and any missing parents :func:`prepare_output` creates) that are
    still empty, so a job that failed before writing anything leaves nothing behind. A folder
    that was there before, or that holds anything, is never removed."""
    made = []
    folder = output
    while not folder.exists() and folder != folder.parent:
        made.append(folder)  # deepest first
        folder = folder.parent
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()  # fails unless the folder is empty
            except OSError:
                break
        raise


def _is_job_file(name: str) -> bool:
    return (
        name in (MANIFEST, SUCCESS, STAGED_INPUT)
        or (name.startswith("part-") and name.endswith(".parquet"))
        or (name.startswith(".") and name.endswith(".tmp"))
    )


UNRECORDED = {"compression": "snappy"}
"""What a job manifest written before a setting was recorded had it at (the default then)."""


def check_same_job(existing: dict, job: dict, output: Path) -> None:
    """Raise unless the manifest of the job being resumed describes the same job."""
    if "backend" in existing and existing["backend"] != job.get("backend"):
        # before the model: its digest covers model.onnx only for the onnx backend
        raise ConfigError(
            f"cannot resume {output}: its job was started with the {existing['backend']} backend, "
            f"not {job.get('backend')}; pass --backend {existing['backend']} to resume it or "
            "--overwrite to start over"
        )
    for key, value in job.items():
        if existing.get(key, UNRECORDED.get(key)) != value:
            raise ConfigError(
                f"cannot resume {output}: its job was started with another {key.replace('_', ' ')}"
                " (input, model or options changed); pass --overwrite to start over"
            )


def completed_partitions(output: Path, expected: list[int]) -> set[int]:
    """Indices of the partitions already written (each must hold its expected row count)."""
    done: set[int] = set()
    for path in sorted(output.glob("part-*.parquet")):
        try:
            k = int(path.stem.split("-", 1)[1])
        except ValueError:
            continue
        rows = pq.ParquetFile(path).metadata.num_rows
        if k >= len(expected) or rows != expected[k]:
            raise DataFormatError(
                f"{path} does not belong to this job ({rows} rows); the output directory was "
                "changed by something else: pass --overwrite to start over"
            )
        done.add(k)
    return done


def fingerprint_files(files: list[Path]) -> list[list]:
    """``[[absolute path, size, mtime_ns], ...]``: enough to notice a changed input."""
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def model_digest(predictor: Predictor) -> str:
    """SHA-256 over the artifact files the predictor scores with (manifest, weights, ONNX)."""
    from ltr.artifact import MANIFEST as MODEL_MANIFEST
    from ltr.artifact import ONNX, WEIGHTS

    names = [MODEL_MANIFEST, WEIGHTS] + ([ONNX] if predictor.backend == "onnx" else [])
    digest = hashlib.sha256()
    for name in names:
        path = predictor.loaded.path / name
        if path.exists():
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_scored(output: str | Path) -> pa.Table:
    """Read a finished ``ltr score`` output directory as one table, in partition order."""
    output = Path(output)
    if not (output / SUCCESS).exists():
        raise DataFormatError(f"{output} holds no finished `ltr score` output (no {SUCCESS})")
    parts = sorted(output.glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])
