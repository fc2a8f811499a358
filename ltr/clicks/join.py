"""Clicks joined to a server's impression log: a click log and the features it was served with.

``ltr serve --impressions DIR`` writes one row per returned candidate of every answered list
(:mod:`ltr.serve.impressions`). A front end records which of them users clicked, under the
response's ``impression_id``. :func:`join_clicks` puts the two together:

* the **click log** (``ltr clicks propensity / labels / compare`` read it): every logged
  impression, ``session, qid, doc_id, position``, with ``click`` 1 where the click file has
  ``(session, doc_id)`` and 0 elsewhere; ``max_position`` keeps only the positions users could
  see;
* the **features** (``ltr clicks labels --features``): one row per ``(qid, doc_id)`` in ``ltr``'s
  Parquet schema, with the features of the pair's latest impression (label 0: the labels come
  from the clicks).

Clicks that match no logged impression (a list the sample left out, a click file that covers more
days than the log) are left out and counted, not an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ltr.data.parquet import ParquetListWriter, feature_names_of
from ltr.data.svmlight import RowChunk
from ltr.errors import DataFormatError

LOG_COLUMNS = ["session", "qid", "doc_id", "position"]
CLICK_COLUMNS = ["session", "doc_id"]
SEPARATOR = "\x1f"


@dataclass(frozen=True)
class JoinSummary:
    """What a join found."""

    impressions: int
    sessions: int
    clicks: int
    """Clicks that matched a logged impression (each ``(session, doc_id)`` once)."""
    unmatched_clicks: int
    """Clicks on ``(session, doc_id)`` pairs the log does not hold."""
    pairs: int
    """Distinct ``(qid, doc_id)`` pairs (rows of the feature file)."""


def impression_files(paths: list[Path]) -> list[Path]:
    """The impression files of ``paths``: files as given, folders' ``impressions-*.parquet``."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("impressions-*.parquet"))
            if not found:
                raise DataFormatError(f"{path}: no impressions-*.parquet files in this folder")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such impression log: {path}")
    return files


def _read_impressions(files: list[Path], with_features: bool) -> tuple[pa.Table, list[str]]:
    columns = [*LOG_COLUMNS, "served_at"] + (["features"] if with_features else [])
    tables, names = [], None
    for path in files:
        file_schema = pq.read_schema(path)
        missing = [c for c in columns if file_schema.get_field_index(c) < 0]
        if missing:
            raise DataFormatError(
                f"{path}: not an impression log (no {', '.join(map(repr, missing))} column); "
                "`ltr serve --impressions DIR` writes them"
            )
        if with_features:
            these = feature_names_of_log(file_schema)
            if names is not None and these != names:
                raise DataFormatError(
                    f"{path}: its lists were served with other features ({len(these)}) than "
                    f"{files[0]}'s ({len(names)}); a feature file takes one model's features: "
                    "join the files of each feature schema separately"
                )
            names = these
        tables.append(pq.read_table(path, columns=columns))
    return pa.concat_tables(tables), names or []


def feature_names_of_log(file_schema: pa.Schema) -> list[str]:
    """The feature names an impression file records (``f1..fF`` when absent)."""
    meta = file_schema.metadata or {}
    if b"ltr.feature_names" in meta:
        return feature_names_of(file_schema)
    width = file_schema.field("features").type.list_size
    return [f"f{i}" for i in range(1, width + 1)]


CLICK_SUFFIXES = (".parquet", ".csv", ".tsv")


def click_files(path: Path) -> list[Path]:
    """The click files of ``path``: the file itself, or a folder's ``*.parquet``, ``*.csv``
    and ``*.tsv`` files (sorted; hidden ones, such as files being written, left out), as a
    front end that writes its clicks in parts leaves them."""
    if not path.exists():
        raise FileNotFoundError(f"no such click file or folder: {path}")
    if not path.is_dir():
        return [path]
    found = sorted(
        f
        for f in path.iterdir()
        if f.is_file() and f.suffix.lower() in CLICK_SUFFIXES and not f.name.startswith(".")
    )
    if not found:
        raise DataFormatError(f"{path}: no click files (*.parquet, *.csv, *.tsv) in this folder")
    return found


def read_clicks(path: Path) -> pa.Table:
    """The ``session`` and ``doc_id`` of every click in the file or folder ``path`` (Parquet,
    CSV or TSV; see :func:`click_files`), as strings."""
    return pa.concat_tables(_read_click_file(f) for f in click_files(path))


def _read_click_file(path: Path) -> pa.Table:
    if path.suffix.lower() in (".csv", ".tsv"):
        options = pcsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        table = pcsv.read_csv(path, parse_options=options)
    else:
        table = pq.read_table(path)
    missing = [c for c in CLICK_COLUMNS if c not in table.column_names]
    if missing:
        raise DataFormatError(
            f"{path}: the click file has no {', '.join(map(repr, missing))} column; it needs one "
            "row per click with the response's impression_id as `session` and the clicked "
            "candidate's `doc_id`"
        )
    table = table.select(CLICK_COLUMNS)
    for name in CLICK_COLUMNS:
        if table.column(name).null_count:
            raise DataFormatError(f"{path}: {table.column(name).null_count} clicks have no {name}")
    # as strings: parts whose ids a CSV reader typed as numbers still concatenate
    return pa.table({name: table.column(name).cast(pa.string()) for name in CLICK_COLUMNS})


def click_keys(table: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(
        table.column("session").cast(pa.string()),
        table.column("doc_id").cast(pa.string()),
        SEPARATOR,
    )


def join_clicks(
    impressions: list[Path],
    clicks: Path,
    out: Path,
    *,
    features_out: Path | None = None,
    max_position: int | None = None,
) -> JoinSummary:
    """Write the click log ``out`` (and with ``features_out`` the feature file) from the
    impression files or folders ``impressions`` and the click file ``clicks`` (Parquet, CSV or
    TSV with ``session`` and ``doc_id``). Both are written under a temporary name and renamed."""
    if max_position is not None and max_position < 1:
        raise DataFormatError(f"--max-position must be at least 1, got {max_position}")
    log, names = _read_impressions(impression_files(impressions), features_out is not None)
    if max_position is not None:
        log = log.filter(pc.less_equal(log.column("position"), max_position))
    if log.num_rows == 0:
        raise DataFormatError("the impression log holds no rows (at those positions)")
    clicked = pc.unique(click_keys(read_clicks(clicks)).combine_chunks())
    keys = click_keys(log)
    click = pc.is_in(keys, value_set=clicked)
    matched = pc.unique(pc.filter(keys, click).combine_chunks())
    table = pa.table(
        {
            "session": log.column("session"),
            "qid": log.column("qid"),
            "doc_id": log.column("doc_id"),
            "position": log.column("position"),
            "click": pc.cast(click, pa.int8()),
        }
    )
    write_atomically(table, out)
    pairs = 0
    if features_out is not None:
        pairs = _write_features(log, names, features_out)
    return JoinSummary(
        impressions=log.num_rows,
        sessions=len(pc.unique(log.column("session").combine_chunks())),
        clicks=len(matched),
        unmatched_clicks=len(clicked) - len(matched),
        pairs=pairs,
    )


def write_atomically(table: pa.Table, out: Path) -> None:
    """``table`` to ``out``, as CSV when its name ends in ``.csv``, else Parquet; written under a
    temporary name and renamed, so ``out`` is whole or absent."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if out.suffix == ".csv":
            pcsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _write_features(log: pa.Table, names: list[str], out: Path) -> int:
    """One row per (qid, doc_id), the features of its latest impression, queries contiguous."""
    qid = log.column("qid").to_numpy(zero_copy_only=False).astype(str)
    doc = log.column("doc_id").to_numpy(zero_copy_only=False).astype(str)
    served = log.column("served_at").cast(pa.int64()).to_numpy()
    # sort by (qid, doc_id, served_at); the last row of each pair is its latest impression
    order = np.lexsort((served, doc, qid))
    q, d = qid[order], doc[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (q[1:] != q[:-1]) | (d[1:] != d[:-1])
    rows = order[last]
    width = len(names)
    flat = pc.list_flatten(log.column("features").combine_chunks()).to_numpy()
    features = flat.reshape(-1, width)[rows].astype(np.float32)
    chunk = RowChunk(
        qids=qid[rows].astype(object),
        doc_ids=doc[rows].astype(object),
        labels=np.zeros(len(rows), dtype=np.float32),
        features=features,
    )
    with ParquetListWriter(out, width, feature_names=names) as writer:
        writer.write(chunk)
    return len(rows)
