"""Streaming reader for SVMlight / LETOR / RankLib ranking files.

Accepted line format (one query-document pair per line, rows of a query contiguous)::

    <label> qid:<query id> <index>:<value> <index>:<value> ... # <comment>

* Feature indices are 1-based and sparse (missing indices are 0). ``NULL`` / ``nan`` values (as in
  LETOR 3.0 ``Feature-null``) are read as NaN; infinite values are an error.
* The document id is taken from the comment when it contains ``docid = X`` (LETOR); otherwise it
  is left empty (``None``).
* LightGBM style: rows without ``qid:`` plus a separate group-size file (one integer per line,
  the number of consecutive rows in each query), e.g. ``rank.train`` + ``rank.train.query``.
* Plain text, ``.xz`` and ``.gz`` files are recognised by their first bytes.

A malformed line raises :class:`~ltr.errors.DataFormatError` naming the file, the line number and
what was wrong; nothing is skipped silently.
"""

from __future__ import annotations

import codecs
import gzip
import io
import lzma
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltr.errors import DataFormatError

_DOCID = re.compile(r"docid\s*=\s*(\S+)")
_NAN_TOKENS = frozenset({"null", "nan", "none", "na"})
DEFAULT_CHUNK_ROWS = 65_536


def _open_bytes(path: Path) -> io.BufferedIOBase:
    """Open a plain, xz- or gzip-compressed file for reading its (decompressed) bytes."""
    with path.open("rb") as fh:
        head = fh.read(6)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    return path.open("rb")


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a plain, xz- or gzip-compressed text file for reading, by its magic bytes."""
    return io.TextIOWrapper(_open_bytes(Path(path)), encoding="utf-8")


# Binary formats a user may hand over where text is wanted, by their first bytes.
_MAGIC = (
    (b"PAR1", "Parquet"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "zip"),
    (b"BZh", "bzip2-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
)


def binary_kind(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` holds, when it is not UTF-8 text.

    Returns None for text (no NUL byte, valid UTF-8 but for a character cut at the end of
    ``head``), else the format its magic bytes name (``"Parquet"``, ``"xz-compressed"``, ...), else
    ``"binary"``.
    """
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        text = b"\x00" not in head
    except UnicodeDecodeError:
        text = False
    if text:
        return None
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "binary")


def _not_svmlight(path: Path, kind: str) -> DataFormatError:
    if kind == "Parquet":
        return DataFormatError(
            f"{path} is a Parquet file (it starts with b'PAR1'), not LETOR/SVMlight text; "
            "commands that take data read Parquet files named *.parquet directly, so it needs "
            "no conversion"
        )
    return DataFormatError(
        f"{path} is not a LETOR/SVMlight text file ({kind} content); give a text file of "
        "'<label> qid:<id> <index>:<value> ...' lines, plain or compressed with xz or gzip"
    )


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a LETOR/SVMlight (or group-size) text file, plain or
    compressed. Every reader of these files goes through here.

    Raises:
        DataFormatError: the file is binary (Parquet, another compression, ...) or its text is
            not UTF-8.
    """
    path = Path(path)
    with _open_bytes(path) as raw:
        kind = binary_kind(raw.read(4096))
    if kind is not None:
        raise _not_svmlight(path, kind)
    lineno = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                yield lineno, line
    except UnicodeDecodeError:  # text is decoded in blocks: the fault is after, not at, lineno
        raise DataFormatError(
            f"{path}: not valid UTF-8 text after line {lineno}; re-encode the file as UTF-8"
        ) from None


@dataclass
class RowChunk:
    """A block of rows holding whole queries only.

    Attributes:
        qids: ``[n]`` query id of each row (str objects).
        doc_ids: ``[n]`` document id of each row (str or None).
        labels: ``[n]`` float32 relevance grades.
        features: ``[n, F]`` float32 dense features.
    """

    qids: np.ndarray
    doc_ids: np.ndarray
    labels: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _read_group_sizes(path: str | Path) -> list[int]:
    sizes = []
    for lineno, line in _lines(path):
        text = line.strip()
        if not text:
            continue
        try:
            size = int(text)
        except ValueError:
            raise DataFormatError(
                f"{path}, line {lineno}: group size {text!r} is not an integer"
            ) from None
        if size <= 0:
            raise DataFormatError(f"{path}, line {lineno}: group size must be positive, got {size}")
        sizes.append(size)
    return sizes


def scan_num_features(path: str | Path) -> int:
    """Return the largest feature index used in the file (one fast pass, no full parse)."""
    largest = 0
    for _, line in _lines(path):
        data = line.split("#", 1)[0]
        for token in data.split()[1:]:
            key, sep, _ = token.partition(":")
            if sep and key != "qid" and key.isdigit():
                largest = max(largest, int(key))
    return largest


class _LineParser:
    """Parses one line into (label, qid, doc_id, indices, values); raises with file/line context."""

    def __init__(self, path: str | Path, num_features: int):
        self.path = path
        self.num_features = num_features

    def error(self, lineno: int, message: str) -> DataFormatError:
        return DataFormatError(f"{self.path}, line {lineno}: {message}")

    def parse(self, line: str, lineno: int) -> tuple[float, str | None, str | None, list, list]:
        data, _, comment = line.partition("#")
        tokens = data.split()
        if not tokens:
            raise self.error(lineno, "no label (the line holds only a comment)")
        try:
            label = float(tokens[0])
        except ValueError:
            raise self.error(lineno, f"label {tokens[0]!r} is not a number") from None
        if not math.isfinite(label) or label < 0:
            raise self.error(lineno, f"label must be a finite number >= 0, got {tokens[0]!r}")
        qid = None
        indices: list[int] = []
        values: list[float] = []
        start = 1
        if len(tokens) > 1 and tokens[1].startswith("qid:"):
            qid = tokens[1][4:]
            if not qid:
                raise self.error(lineno, "empty query id after 'qid:'")
            start = 2
        previous = 0
        for token in tokens[start:]:
            key, sep, raw = token.partition(":")
            if not sep:
                raise self.error(lineno, f"token {token!r} is not of the form index:value")
            if key == "qid":
                raise self.error(lineno, "'qid:' must come right after the label")
            try:
                index = int(key)
            except ValueError:
                raise self.error(lineno, f"feature index {key!r} is not an integer") from None
            if index < 1:
                raise self.error(lineno, f"feature index {index} is below 1 (indices are 1-based)")
            if index > self.num_features:
                raise self.error(
                    lineno,
                    f"feature index {index} is above the feature count {self.num_features}",
                )
            if index <= previous:
                raise self.error(
                    lineno, f"feature index {index} repeats or is out of increasing order"
                )
            previous = index
            if raw.lower() in _NAN_TOKENS:
                value = math.nan
            else:
                try:
                    value = float(raw)
                except ValueError:
                    raise self.error(
                        lineno, f"value {raw!r} of feature {index} is not a number"
                    ) from None
                if math.isinf(value):
                    raise self.error(lineno, f"value of feature {index} is infinite")
            indices.append(index - 1)
            values.append(value)
        match = _DOCID.search(comment)
        doc_id = match.group(1) if match else None
        return label, qid, doc_id, indices, values


def iter_svmlight(
    path: str | Path,
    *,
    num_features: int | None = None,
    group_file: str | Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[RowChunk]:
    """Stream a ranking file as :class:`RowChunk` blocks of about ``chunk_rows`` rows.

    Every chunk holds whole queries (a query is never split across chunks), so a chunk can be
    written as one Parquet row group or scored on its own.

    Args:
        path: the SVMlight/LETOR file (plain, .xz or .gz).
        num_features: dense width F. ``None`` scans the file once first to find the largest index.
        group_file: LightGBM-style group sizes, for files whose rows carry no ``qid:``.
        chunk_rows: target rows per chunk (a chunk may be larger to keep a query whole).

    Raises:
        DataFormatError: a malformed line (file, line number and fault in the message), rows of a
            query that are not contiguous, or group sizes that do not add up to the row count.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    if num_features is None:
        num_features = scan_num_features(path)
        if num_features == 0:
            raise DataFormatError(f"{path}: no feature found in the file")
    groups = _read_group_sizes(group_file) if group_file is not None else None
    parser = _LineParser(path, num_features)

    qids: list[str] = []
    doc_ids: list[str | None] = []
    labels: list[float] = []
    rows: list[tuple[list[int], list[float]]] = []
    seen: set[str] = set()
    current: str | None = None
    if groups is not None and not groups:
        raise DataFormatError(f"{group_file}: the group file lists no group")
    group_index, group_left = 0, (groups[0] if groups else 0)
    row_number = 0

    def flush() -> RowChunk:
        dense = np.zeros((len(labels), num_features), dtype=np.float32)
        for r, (idx, val) in enumerate(rows):
            if idx:
                dense[r, idx] = val
        chunk = RowChunk(
            qids=np.array(qids, dtype=object),
            doc_ids=np.array(doc_ids, dtype=object),
            labels=np.asarray(labels, dtype=np.float32),
            features=dense,
        )
        for buffer in (qids, doc_ids, labels, rows):
            buffer.clear()
        return chunk

    for lineno, line in _lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label, qid, doc_id, idx, val = parser.parse(line, lineno)
        if groups is not None:
            if qid is not None:
                raise DataFormatError(
                    f"{path}, line {lineno}: the row carries 'qid:' but a group-size file "
                    "was given too; use one or the other"
                )
            if group_left == 0:
                group_index += 1
                if group_index >= len(groups):
                    raise DataFormatError(
                        f"{path}, line {lineno}: more rows than the group file "
                        f"{group_file} accounts for ({sum(groups)} rows)"
                    )
                group_left = groups[group_index]
            group_left -= 1
            qid = str(group_index)
        elif qid is None:
            raise DataFormatError(
                f"{path}, line {lineno}: no 'qid:' on the line and no group-size file was "
                "given (pass the group file for LightGBM-style data)"
            )
        if qid != current:
            if qid in seen:
                raise DataFormatError(
                    f"{path}, line {lineno}: query {qid!r} appears again after other "
                    "queries; rows of a query must be contiguous"
                )
            seen.add(qid)
            # The buffer now holds whole queries only: a good place to cut a chunk.
            if len(labels) >= chunk_rows:
                yield flush()
            current = qid
        qids.append(qid)
        doc_ids.append(doc_id)
        labels.append(label)
        rows.append((idx, val))
        row_number += 1
    if groups is not None and (group_index != len(groups) - 1 or group_left != 0):
        raise DataFormatError(
            f"{path}: the group file {group_file} accounts for {sum(groups)} rows but the data "
            f"file has {row_number}"
        )
    if labels:
        yield flush()


def read_svmlight(
    path: str | Path,
    *,
    num_features: int | None = None,
    group_file: str | Path | None = None,
) -> RowChunk:
    """Read a whole ranking file into one :class:`RowChunk` (see :func:`iter_svmlight`)."""
    chunks = list(iter_svmlight(path, num_features=num_features, group_file=group_file))
    if not chunks:
        raise DataFormatError(f"{path}: the file holds no data rows")
    return concat_chunks(chunks)


def concat_chunks(chunks: list[RowChunk]) -> RowChunk:
    """Concatenate row chunks of equal feature width."""
    widths = {c.features.shape[1] for c in chunks}
    if len(widths) != 1:
        raise DataFormatError(
            f"cannot concatenate data with different feature counts {sorted(widths)}"
        )
    return RowChunk(
        qids=np.concatenate([c.qids for c in chunks]),
        doc_ids=np.concatenate([c.doc_ids for c in chunks]),
        labels=np.concatenate([c.labels for c in chunks]),
        features=np.concatenate([c.features for c in chunks]),
    )
