"""Text test collections: documents, queries and graded judgments, read from a folder.

A collection folder holds three files (see ``/work/shared/data/*/SOURCE.md`` for real ones):

* ``docs.jsonl`` (or ``docs.jsonl.xz`` / ``docs.jsonl.gz``): one JSON object per line with
  ``doc_id`` and ``text``, optionally ``title``;
* ``queries.jsonl``: objects with ``query_id`` and ``text``;
* ``qrels.tsv``: tab-separated with a header naming at least ``query_id``, ``doc_id`` and
  ``relevance`` (in any order; other columns are ignored).

A collection with several query splits names them ``queries_{split}.jsonl`` and
``qrels_{split}.tsv`` (SciFact: ``train``, ``dev``, ``test``). Ids are strings; JSON numbers are
converted with ``str``. A malformed file raises :class:`~ltr.errors.DataFormatError` naming the
file, the line and the fault; nothing is skipped silently.
"""

from __future__ import annotations

import gzip
import json
import lzma
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ltr.errors import ConfigError, DataFormatError

DOC_FILES = ("docs.jsonl", "docs.jsonl.xz", "docs.jsonl.gz")
QRELS_COLUMNS = ("query_id", "doc_id", "relevance")
_SPLIT = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class TextCollection:
    """Documents, queries and judgments of one text test collection.

    Attributes:
        name: the folder name, plus ``/split`` for a split (``"scifact/dev"``).
        doc_ids: ``[N]`` document ids, in file order.
        doc_texts: ``[N]`` title and text joined by a newline (either alone when the other is
            empty).
        query_ids: ``[Q]`` query ids, in file order.
        query_texts: ``[Q]`` query texts.
        qrels: ``query_id -> {doc_id: relevance}``; a query with no judgment has no entry and
            unjudged documents count as relevance 0.
    """

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, float]]

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.doc_texts):
            raise ConfigError(
                f"{len(self.doc_ids)} doc ids but {len(self.doc_texts)} doc texts; give one text "
                "per document"
            )
        if len(self.query_ids) != len(self.query_texts):
            raise ConfigError(
                f"{len(self.query_ids)} query ids but {len(self.query_texts)} query texts; give "
                "one text per query"
            )

    def doc_position(self) -> dict[str, int]:
        """``doc_id -> index`` in :attr:`doc_ids` (built on each call: keep the result)."""
        return {doc_id: i for i, doc_id in enumerate(self.doc_ids)}

    def labels(self, query_id: str, doc_ids: Sequence[str]) -> np.ndarray:
        """``[len(doc_ids)]`` float32 relevance of documents for a query, 0 for unjudged ones."""
        if query_id not in self.qrels and query_id not in self.query_ids:
            raise ConfigError(f"query id {query_id!r} is not in collection {self.name!r}")
        judged = self.qrels.get(query_id, {})
        return np.fromiter(
            (judged.get(d, 0.0) for d in doc_ids), dtype=np.float32, count=len(doc_ids)
        )

    def subset(self, query_ids: Sequence[str]) -> TextCollection:
        """The same documents with only the given queries, in the given order."""
        text = dict(zip(self.query_ids, self.query_texts, strict=True))
        unknown = [q for q in query_ids if q not in text]
        if unknown:
            raise ConfigError(
                f"query id {unknown[0]!r} is not in collection {self.name!r} ({len(unknown)} "
                "unknown ids); pick ids from its query_ids"
            )
        if len(set(query_ids)) != len(query_ids):
            raise ConfigError("subset query ids contain duplicates; give each id once")
        return TextCollection(
            name=self.name,
            doc_ids=self.doc_ids,
            doc_texts=self.doc_texts,
            query_ids=list(query_ids),
            query_texts=[text[q] for q in query_ids],
            qrels={q: self.qrels[q] for q in query_ids if q in self.qrels},
        )


# ---------------------------------------------------------------------------------- reading files
def _open(path: Path) -> IO[str]:
    if path.name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("rt", encoding="utf-8")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a plain, xz or gzip UTF-8 text file, blank lines skipped."""
    try:
        with _open(path) as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not valid UTF-8 ({exc.reason}); re-encode it") from None
    except (lzma.LZMAError, gzip.BadGzipFile, EOFError) as exc:
        raise DataFormatError(f"{path}: the compressed file is damaged ({exc})") from None


def _as_id(value: Any, path: Path, number: int, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataFormatError(f"{path}, line {number}: {key} must be a string or an integer")


def _records(path: Path, id_key: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, id, object)`` per line of a JSON-lines file; checks ``id_key``, ``text``."""
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}, line {number}: expected a JSON object")
        for key in (id_key, "text"):
            if key not in record:
                raise DataFormatError(f"{path}, line {number}: the object has no {key!r} field")
        if not isinstance(record["text"], str):
            raise DataFormatError(f"{path}, line {number}: 'text' must be a string")
        yield number, _as_id(record[id_key], path, number, id_key), record


def read_texts(path: Path, id_key: str) -> dict[str, str]:
    """``id -> text`` of a docs or queries file (title and text joined for documents)."""
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, key, record in _records(path, id_key):
        if key in texts:
            raise DataFormatError(
                f"{path}, line {number}: duplicate {id_key} {key!r} (first on line "
                f"{first_line[key]})"
            )
        title = record.get("title")
        if title is not None and not isinstance(title, str):
            raise DataFormatError(f"{path}, line {number}: 'title' must be a string")
        parts = [p for p in ((title or "").strip(), record["text"].strip()) if p]
        texts[key] = "\n".join(parts)
        first_line[key] = number
    return texts


def _read_qrels(
    path: Path, docs: dict[str, str], queries: dict[str, str], docs_path: Path, queries_path: Path
) -> dict[str, dict[str, float]]:
    """``query_id -> {doc_id: relevance}`` of a qrels file, checked against docs and queries."""
    qrels: dict[str, dict[str, float]] = {}
    unknown_docs: list[tuple[int, str]] = []
    unknown_queries: list[tuple[int, str]] = []
    rows = _lines(path)
    number, header_line = next(rows, (1, ""))
    header = [h.strip() for h in header_line.split("\t")]
    missing = [c for c in QRELS_COLUMNS if c not in header]
    if missing:
        raise DataFormatError(
            f"{path}, line {number}: the header lacks column {', '.join(missing)}; it needs "
            "query_id, doc_id and relevance, tab-separated"
        )
    iq, idoc, irel = (header.index(c) for c in QRELS_COLUMNS)
    for number, line in rows:
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != len(header):
            raise DataFormatError(
                f"{path}, line {number}: {len(fields)} tab-separated fields, the header has "
                f"{len(header)}"
            )
        query_id, doc_id = fields[iq], fields[idoc]
        try:
            relevance = float(fields[irel])
        except ValueError:
            relevance = math.nan
        if not math.isfinite(relevance):
            raise DataFormatError(
                f"{path}, line {number}: relevance {fields[irel]!r} is not a finite number"
            )
        if doc_id not in docs:
            unknown_docs.append((number, doc_id))
        if query_id not in queries:
            unknown_queries.append((number, query_id))
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            raise DataFormatError(
                f"{path}, line {number}: query {query_id!r} judges doc {doc_id!r} twice"
            )
        judged[doc_id] = relevance
    for unknown, kind, where in (
        (unknown_docs, "doc_id", docs_path),
        (unknown_queries, "query_id", queries_path),
    ):
        if unknown:
            number, key = unknown[0]
            raise DataFormatError(
                f"{path}, line {number}: {kind} {key!r} is not in {where.name} ({len(unknown)} "
                f"rows, {len({k for _, k in unknown})} distinct unknown ids)"
            )
    return qrels


def load_collection(
    root: str | Path, *, split: str | None = None, judged_only: bool = True
) -> TextCollection:
    """Load a text test collection from a folder (the layout is in the module docstring).

    Args:
        root: the collection folder.
        split: read ``queries_{split}.jsonl`` and ``qrels_{split}.tsv`` instead of
            ``queries.jsonl`` and ``qrels.tsv``.
        judged_only: drop queries without any judgment. Without it, a missing qrels file means
            no judgments (SciFact's ``test`` split).

    Raises:
        ConfigError: ``root`` is not a folder, ``split`` is not a plain name, or no query is
            judged while ``judged_only``.
        DataFormatError: a file is missing or malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"collection folder {root} does not exist; check the path")
    if split is not None and not _SPLIT.fullmatch(split):
        raise ConfigError(f"split must be a plain name like 'train' or 'dev', got {split!r}")
    suffix = f"_{split}" if split else ""
    name = root.resolve().name + (f"/{split}" if split else "")

    docs_path = next((root / f for f in DOC_FILES if (root / f).is_file()), None)
    if docs_path is None:
        raise DataFormatError(f"{root} has no documents file; looked for {', '.join(DOC_FILES)}")
    queries_path = root / f"queries{suffix}.jsonl"
    if not queries_path.is_file():
        raise DataFormatError(f"{root} has no queries file; looked for {queries_path.name}")
    qrels_path = root / f"qrels{suffix}.tsv"
    if not qrels_path.is_file() and judged_only:
        raise ConfigError(
            f"no judged query in {name}: {qrels_path.name} does not exist; pass "
            "judged_only=False to load the queries without judgments"
        )

    docs = read_texts(docs_path, "doc_id")
    if not docs:
        raise DataFormatError(f"{docs_path} has no document")
    queries = read_texts(queries_path, "query_id")
    qrels = (
        _read_qrels(qrels_path, docs, queries, docs_path, queries_path)
        if qrels_path.is_file()
        else {}
    )
    query_ids = [q for q in queries if q in qrels or not judged_only]
    if not query_ids and judged_only:
        raise ConfigError(
            f"no judged query in {name}: {qrels_path.name} has no rows; pass judged_only=False "
            "to load the queries without judgments"
        )
    return TextCollection(
        name=name,
        doc_ids=list(docs),
        doc_texts=list(docs.values()),
        query_ids=query_ids,
        query_texts=[queries[q] for q in query_ids],
        qrels={q: qrels[q] for q in query_ids if q in qrels},
    )


# ---------------------------------------------------------------------------------- query splits
def split_queries(
    query_ids: Sequence[str],
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> tuple[list[str], list[str], list[str]]:
    """Split query ids at random into train, validation and test parts.

    The ids are shuffled with ``numpy.random.default_rng(seed)`` and cut into parts of sizes
    proportional to ``fractions`` (largest remainders get the leftover ids); every part with a
    non-zero fraction gets at least one id. Each part keeps the ids' original order.

    Raises:
        ConfigError: ``fractions`` is not three non-negative numbers summing to 1, the ids have
            duplicates, or there are fewer ids than parts with a non-zero fraction.
    """
    ids = list(query_ids)
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1) > 1e-9:
        raise ConfigError(
            f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}"
        )
    if len(set(ids)) != len(ids):
        raise ConfigError("query ids contain duplicates; give each id once")
    n, parts = len(ids), int(np.count_nonzero(f))
    if n < parts:
        raise ConfigError(
            f"cannot split {n} queries into {parts} non-empty parts; give at least {parts} queries"
        )
    sizes = np.floor(f * n).astype(np.int64)
    leftover = n - int(sizes.sum())
    sizes[np.argsort(-(f * n - sizes), kind="stable")[:leftover]] += 1
    for i in np.flatnonzero((f > 0) & (sizes == 0)):
        sizes[np.argmax(sizes)] -= 1
        sizes[i] += 1
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum(sizes)[:-1]
    train, val, test = (sorted(part.tolist()) for part in np.split(order, cuts))
    return [ids[i] for i in train], [ids[i] for i in val], [ids[i] for i in test]
