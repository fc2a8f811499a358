"""The impression log: every ranked list the server returned, with the features it was scored on.

A reranker learns from what it served. With ``impressions.directory`` set, every list that
``Rerank``, ``RerankBatch`` or ``RerankText`` answers gets an id (``impression_id`` in the
response) and one row per returned candidate in Parquet files under that folder:

========================  ==========================================================
column                    meaning
========================  ==========================================================
``session``               the list's impression id (also in the response)
``qid``                   the request's ``query_id``
``doc_id``                the candidate's id
``position``              1-based place in the returned ranking
``score``                 the model's score
``features``              the features the model scored (``fixed_size_list<float>[F]``)
``initial_rank``          the request's initial rank (null when not sent)
``model_name``            registry name of the model that scored the list
``model_version``         its version
``served_at``             when the list was answered (UTC, milliseconds)
``team``                  interleaved lists: 0 = placed by the model, 1 = by the
                          challenger (:mod:`ltr.serve.interleaving`); null otherwise
``challenger_name``       interleaved lists: the challenger's name; null otherwise
``challenger_version``    interleaved lists: the challenger's version; null otherwise
========================  ==========================================================

``session``, ``qid``, ``doc_id`` and ``position`` are the columns of an ``ltr clicks`` log: join
the clicks your front end saw on ``(session, doc_id)`` as a ``click`` column and the file is a
click log (``docs/CLICKS.md``). The logged features are the ones the model saw, so training on
them has no skew between training and serving features. As in ``ltr``'s own Parquet data
(:mod:`ltr.data.parquet`), the schema metadata holds the feature count and names; a file holds
lists of one feature schema only, so a model swap to other features starts a new file.

How the log behaves:

* ``sample`` below 1 logs that share of the lists, drawn at random; the others get no id.
* Serving never waits for it: :meth:`ImpressionLog.record` appends to a bounded in-memory queue;
  a writer thread turns the queue into files. When more than ``max_queued_rows`` rows wait (the
  disk cannot keep up), new lists are left out of the log and counted
  (``ltr_impressions_dropped_total{reason="queue_full"}``), and the calls still succeed.
* A file is written under a hidden temporary name, a row group of at most ``CHUNK_ROWS`` rows at a
  time (so that the writer holds the GIL only briefly), and renamed when complete, so every
  ``impressions-*.parquet`` file is whole, and a list's rows are never split between files. A
  file holds at most ``rows_per_file`` rows (more only for a single longer list) and is closed
  ``flush_seconds`` after it was opened (the writer looks at least every half second), so a crash
  loses at most that much; temporary files a crash left are removed when a log next starts in
  the folder, once untouched for ``STALE_SECONDS`` (or twice ``flush_seconds``). File names hold
  the process id and a random token, so several servers (or logs) may share one folder.
* A write that fails (disk full, folder gone) is logged and the rows of the file it was writing
  counted as dropped (``reason="write_error"``); the server keeps serving and the next list
  starts a new file.
* On shutdown (SIGTERM) the queue is written out before the process exits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltr.data.parquet import (
    FORMAT_VERSION,
    META_FEATURE_NAMES,
    META_NUM_FEATURES,
    META_VERSION,
    default_feature_names,
)
from ltr.errors import ConfigError
from ltr.serve.domain import RankedList, ValidQuery
from ltr.serve.osthreads import name_native_thread

log = logging.getLogger(__name__)

PREFIX = "impressions-"
CHUNK_ROWS = 8192
"""Most rows the writer turns into one row group at a time."""
MAX_IDLE_SECONDS = 0.5
"""The writer looks at the queue at least this often."""
STALE_SECONDS = 3600.0
"""A temporary file untouched this long (or twice ``flush_seconds``, if longer) was left by a
crash, and is removed when a log starts in the folder."""
STRINGS = [
    "session", "qid", "doc_id", "model_name", "model_version", "challenger_name",
    "challenger_version",
]  # fmt: skip


def schema(feature_names: tuple[str, ...]) -> pa.Schema:
    """The log's schema for lists with these features (their names in the metadata)."""
    return pa.schema(
        [
            ("session", pa.string()),
            ("qid", pa.string()),
            ("doc_id", pa.string()),
            ("position", pa.int32()),
            ("score", pa.float32()),
            ("features", pa.list_(pa.float32(), len(feature_names))),
            ("initial_rank", pa.int32()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("served_at", pa.timestamp("ms", tz="UTC")),
            ("team", pa.int8()),
            ("challenger_name", pa.string()),
            ("challenger_version", pa.string()),
        ],
        metadata={
            META_VERSION: FORMAT_VERSION.encode(),
            META_NUM_FEATURES: str(len(feature_names)).encode(),
            META_FEATURE_NAMES: json.dumps(list(feature_names)).encode(),
        },
    )


def prepare_folder(directory: Path, prefix: str, flush_seconds: float, setting: str) -> None:
    """Create ``directory`` and check that it can be written (else a :class:`ConfigError`
    naming ``setting``); remove the temporary files of ``prefix`` that a crash left there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{setting} {str(directory)!r} cannot be written: {exc}") from None
    # a crash mid-write left it; a live writer (another replica sharing the folder) touches its
    # file at least every flush_seconds, so only files untouched far longer are stale
    cutoff = time.time() - max(STALE_SECONDS, 2 * flush_seconds)
    for stale in directory.glob(f".{prefix}*.tmp"):
        with contextlib.suppress(OSError):  # another replica may have removed it
            if stale.stat().st_mtime < cutoff:
                stale.unlink()


def file_name(prefix: str, token: str, sequence: int) -> str:
    """``<prefix><UTC time>-<pid>-<token>-<sequence>.parquet``: the pid and a random token per
    log, so that replicas sharing a folder never collide."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}{stamp}-{os.getpid()}-{token[:8]}-{sequence:06d}.parquet"


class BackgroundWriter:
    """A log whose files a background thread writes (the impression log, the click log).

    Callers queue under ``_lock`` and wake the writer with ``_wake``; the subclass's ``_run``
    is the writer's loop, which returns once ``_closing`` is set and everything queued is
    written. A subclass calls :meth:`_start_writer` at the end of its ``__init__``.
    """

    label = "log"
    """What the log is called in its messages."""

    def _start_writer(self, name: str) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._thread = threading.Thread(target=self._writer, name=name, daemon=True)
        self._thread.start()

    def _writer(self) -> None:
        name_native_thread()  # its name in top -H
        self._run()

    def close(self, timeout: float = 30.0) -> None:
        """Write out everything queued and stop the writer (idempotent)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("%s: still writing after %g s; giving up", self.label, timeout)


class ImpressionObserver(Protocol):
    """What the log reports (the server's metrics)."""

    def impressions_written(self, rows: int) -> None: ...

    def impressions_dropped(self, reason: str, rows: int) -> None: ...


@dataclass(frozen=True)
class _Served:
    session: str
    query: ValidQuery
    ranked: RankedList
    feature_names: tuple[str, ...]
    served_at: float  # seconds since the epoch

    def __len__(self) -> int:
        return len(self.ranked.ids)


class ImpressionLog(BackgroundWriter):
    """Writes served lists to Parquet files in ``directory`` from a background thread.

    Args:
        directory: where the files go (created if missing; must be writable).
        rows_per_file: close a file once it holds this many rows (a list is never split).
        flush_seconds: close a file this long after it was opened (the most a crash loses).
        max_queued_rows: most rows waiting to be written; lists beyond are dropped and counted.
        sample: the share of answered lists logged, drawn at random per list (1 = all).
        observer: told about rows written and dropped.
    """

    label = "impression log"

    def __init__(
        self,
        directory: str | Path,
        *,
        rows_per_file: int = 100_000,
        flush_seconds: float = 10.0,
        max_queued_rows: int = 1_000_000,
        sample: float = 1.0,
        observer: ImpressionObserver | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.rows_per_file = rows_per_file
        self.flush_seconds = flush_seconds
        self.max_queued_rows = max_queued_rows
        self.sample = sample
        self._draw = random.Random(os.urandom(16)).random  # no system call per list
        self.observer = observer
        prepare_folder(self.directory, PREFIX, flush_seconds, "impressions.directory")
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)
        self._queue: deque[_Served] = deque()
        self._queued_rows = 0
        self._sequence = 0
        self.files_written = 0
        self._file: pq.ParquetWriter | None = None  # the open file (under self._tmp)
        self._tmp: Path | None = None
        self._name = ""
        self._file_names: tuple[str, ...] = ()
        self._file_rows = 0
        self._file_opened = 0.0
        self._start_writer("ltr-impressions")

    def record(
        self, query: ValidQuery, ranked: RankedList, feature_names: tuple[str, ...] = ()
    ) -> str:
        """Queue one answered list (``feature_names``: the model's; default ``f1 .. fF``);
        return its impression id, or "" for a list that is not logged (left out by the sample,
        or dropped because the queue is full: its call succeeds all the same)."""
        if self.sample < 1.0 and self._draw() >= self.sample:
            return ""
        # 32 hex digits: this log's random prefix and a counter. Not uuid4: its os.urandom call
        # releases the GIL on the event loop, which then waits for the compute thread to give
        # it back; that cost a fifth of the server's throughput at 100 candidates.
        session = f"{self._prefix}{next(self._counter):016x}"
        width = query.features.shape[1]
        if len(feature_names) != width:
            feature_names = tuple(default_feature_names(width))
        served = _Served(session, query, ranked, feature_names, time.time())
        rows = len(served)
        with self._lock:
            if self._closing or self._queued_rows + rows > self.max_queued_rows:
                dropped = True
            else:
                dropped = False
                self._queue.append(served)
                self._queued_rows += rows
                if self._queued_rows >= CHUNK_ROWS:
                    self._wake.notify()
        if not dropped:
            return session
        if self.observer is not None:
            self.observer.impressions_dropped("queue_full", rows)
        return ""

    # ---------------------------------------------------------------- writer thread
    #
    # The writer appends chunks of at most CHUNK_ROWS rows (whole lists) to the open file as a
    # row group each, so that turning lists into Arrow holds the GIL (which the event loop
    # needs) for a few milliseconds at a time, and closes the file (renaming it into place)
    # when it is full, older than flush_seconds, of another feature schema, or at close().

    def _take(self, limit: int) -> list[_Served]:
        """Whole lists from the queue, up to ``limit`` rows (at least one list; caller holds
        the lock)."""
        taken: list[_Served] = []
        rows = 0
        while self._queue and (not taken or rows + len(self._queue[0]) <= limit):
            item = self._queue.popleft()
            taken.append(item)
            rows += len(item)
        self._queued_rows -= rows
        return taken

    def _run(self) -> None:
        limit = min(CHUNK_ROWS, self.rows_per_file)
        while True:
            with self._lock:
                if not self._closing and self._queued_rows < limit:
                    self._wake.wait(min(self.flush_seconds, MAX_IDLE_SECONDS))
                chunk = self._take(limit)
                done = self._closing and not self._queue
            for names, items in _by_schema(chunk):
                self._append(names, items)
            if self._file is not None and (done or self._file_age() >= self.flush_seconds):
                self._close_file()
            if done:
                return

    def _file_age(self) -> float:
        return time.monotonic() - self._file_opened

    def _append(self, names: tuple[str, ...], items: list[_Served]) -> None:
        rows = sum(len(item) for item in items)
        if self._file is not None and (
            names != self._file_names or self._file_rows + rows > self.rows_per_file
        ):
            self._close_file()
        try:
            table = table_of(items, names)
            if self._file is None:
                self._open_file(names, table.schema)
            self._file.write_table(table)
            self._file_rows += rows
        except Exception as exc:  # a failed write must not stop the server, nor this thread
            log.error("impression log: could not write %d rows to %s: %s", rows, self._tmp, exc)
            lost = rows + self._file_rows  # the open file's earlier rows go with it
            self._abandon_file()
            if self.observer is not None:
                self.observer.impressions_dropped("write_error", lost)

    def _open_file(self, names: tuple[str, ...], file_schema: pa.Schema) -> None:
        self._sequence += 1
        self._name = file_name(PREFIX, self._prefix, self._sequence)
        self._tmp = self.directory / f".{self._name}.tmp"
        # dictionaries only where values repeat (ids of lists and models), not for floats
        self._file = pq.ParquetWriter(self._tmp, file_schema, use_dictionary=STRINGS)
        self._file_names, self._file_rows, self._file_opened = names, 0, time.monotonic()

    def _close_file(self) -> None:
        rows = self._file_rows
        try:
            self._file.close()
            os.replace(self._tmp, self.directory / self._name)
        except Exception as exc:
            log.error("impression log: could not finish %s: %s", self._tmp, exc)
            self._abandon_file()
            if self.observer is not None:
                self.observer.impressions_dropped("write_error", rows)
            return
        self._file = None
        self.files_written += 1
        if self.observer is not None:
            self.observer.impressions_written(rows)

    def _abandon_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink(missing_ok=True)
        self._file, self._file_rows = None, 0


def _by_schema(chunk: list[_Served]) -> list[tuple[tuple[str, ...], list[_Served]]]:
    """The chunk's lists grouped by feature schema, in order of first appearance."""
    groups: dict[tuple[str, ...], list[_Served]] = {}
    for item in chunk:
        groups.setdefault(item.feature_names, []).append(item)
    return list(groups.items())


def table_of(batch: list[_Served], feature_names: tuple[str, ...]) -> pa.Table:
    """The Arrow table of served lists of one feature schema, one row per returned candidate.

    Per-list values (session, query, model, time) are taken row-wise by index in Arrow, and the
    feature rows gathered by numpy, so that building a file holds the GIL (which the event loop
    needs) for little more than one pass over the candidate ids.
    """
    sizes = np.array([len(item) for item in batch], dtype=np.int64)
    owner = pa.array(np.repeat(np.arange(len(batch), dtype=np.int64), sizes))  # row -> list

    def per_list(values: list, type_: pa.DataType) -> pa.Array:
        return pa.array(values, type_).take(owner)

    # each returned candidate's feature row, in returned order
    rows = np.concatenate([item.query.features[item.ranked.request_indices] for item in batch])
    features = pa.FixedSizeListArray.from_arrays(
        pa.array(rows.reshape(-1).astype(np.float32, copy=False)), len(feature_names)
    )
    n = len(rows)
    initial = np.concatenate(
        [
            np.full(len(item), -1, dtype=np.int64)
            if item.query.initial_ranks is None
            else item.query.initial_ranks[item.ranked.request_indices]
            for item in batch
        ]
    )
    team = np.concatenate(
        [
            np.full(len(item), -1, dtype=np.int8)
            if item.ranked.teams is None
            else item.ranked.teams
            for item in batch
        ]
    )
    challengers = [item.ranked.challenger for item in batch]
    starts = np.cumsum(sizes) - sizes
    position = np.arange(n, dtype=np.int32) - np.repeat(starts, sizes).astype(np.int32) + 1
    return pa.table(
        {
            "session": per_list([item.session for item in batch], pa.string()),
            "qid": per_list([item.query.query_id for item in batch], pa.string()),
            "doc_id": pa.array(list(chain.from_iterable(item.ranked.ids for item in batch))),
            "position": position,
            "score": np.concatenate([item.ranked.scores for item in batch]).astype(np.float32),
            "features": features,
            "initial_rank": pa.array(initial, pa.int32(), mask=initial < 1),
            "model_name": per_list([item.ranked.model.name for item in batch], pa.string()),
            "model_version": per_list([item.ranked.model.version for item in batch], pa.string()),
            "served_at": per_list(
                [int(item.served_at * 1000) for item in batch], pa.timestamp("ms", tz="UTC")
            ),
            "team": pa.array(team, pa.int8(), mask=team < 0),
            "challenger_name": per_list(
                [None if c is None else c.name for c in challengers], pa.string()
            ),
            "challenger_version": per_list(
                [None if c is None else c.version for c in challengers], pa.string()
            ),
        },
        schema=schema(feature_names),
    )
