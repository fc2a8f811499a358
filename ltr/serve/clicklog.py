"""The click log: clicks users made on answered lists, sent back with ``RecordClicks``.

A front end that shows a reranked list sends each click back as ``(impression_id,
candidate_id)``. The server queues them and a background thread writes them, every
``flush_seconds`` (or sooner when many are waiting), as one Parquet file at a time into
``<impressions.directory>/clicks/``:

=================  ===============  ================================================
column             type             what
=================  ===============  ================================================
``session``        string           the response's ``impression_id``
``doc_id``         string           the clicked candidate's id
``received_at``    timestamp (ms)   when the server received the click (UTC)
=================  ===============  ================================================

These are the columns ``ltr clicks join`` and ``ltr clicks interleaving`` read with
``--clicks <impressions.directory>/clicks``. Files are written under a hidden temporary name and
renamed when complete, so a reader never sees half a file; a crash loses at most the clicks of
the last ``flush_seconds``. Clicks are not checked against the impression log: a replica that
did not answer the list may receive its click, and the join counts clicks that match no logged
impression.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ltr.serve.errors import QueueFullError
from ltr.serve.impressions import (
    MAX_IDLE_SECONDS,
    BackgroundWriter,
    file_name,
    prepare_folder,
)

log = logging.getLogger(__name__)

PREFIX = "clicks-"
FOLDER = "clicks"
"""The click log's folder inside the impression log's."""
SCHEMA = pa.schema(
    [
        ("session", pa.string()),
        ("doc_id", pa.string()),
        ("received_at", pa.timestamp("ms", tz="UTC")),
    ]
)


class ClickLog(BackgroundWriter):
    """Writes recorded clicks to Parquet files in ``directory`` from a background thread.

    Args:
        directory: where the files go (created if missing; must be writable).
        flush_seconds: write what is queued at least this often (the most a crash loses).
        rows_per_file: write a file as soon as this many clicks wait.
        max_queued: most clicks waiting; :meth:`record` refuses more (the caller retries).
        on_written: told how many clicks each file held.
    """

    label = "click log"

    def __init__(
        self,
        directory: str | Path,
        *,
        flush_seconds: float = 10.0,
        rows_per_file: int = 100_000,
        max_queued: int = 1_000_000,
        on_written=None,
    ) -> None:
        self.directory = Path(directory)
        self.flush_seconds = flush_seconds
        self.rows_per_file = rows_per_file
        self.max_queued = max_queued
        self.on_written = on_written
        prepare_folder(self.directory, PREFIX, flush_seconds, "the click log's folder")
        self._token = os.urandom(8).hex()
        self._sessions: list[str] = []
        self._docs: list[str] = []
        self._times: list[int] = []
        self._sequence = 0
        self.files_written = 0
        self._start_writer("ltr-clicks")

    def record(self, clicks: list[tuple[str, str]]) -> int:
        """Queue ``clicks`` (``(impression id, candidate id)`` pairs) all or none; returns how
        many. Raises :class:`QueueFullError` when they do not fit in the queue."""
        now = int(time.time() * 1000)
        with self._lock:
            if self._closing:
                raise QueueFullError("the click log is closing; send the clicks to another replica")
            if len(self._sessions) + len(clicks) > self.max_queued:
                raise QueueFullError(
                    f"the click log's queue is full ({self.max_queued:,} clicks); retry later"
                )
            for session, doc in clicks:
                self._sessions.append(session)
                self._docs.append(doc)
            self._times.extend([now] * len(clicks))
            if len(self._sessions) >= self.rows_per_file:
                self._wake.notify()
        return len(clicks)

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            with self._lock:
                if not self._closing and len(self._sessions) < self.rows_per_file:
                    self._wake.wait(min(self.flush_seconds, MAX_IDLE_SECONDS))
                due = time.monotonic() - last >= self.flush_seconds
                full = len(self._sessions) >= self.rows_per_file
                take = self._closing or due or full
                if take:
                    sessions, docs, times = self._sessions, self._docs, self._times
                    self._sessions, self._docs, self._times = [], [], []
                done = self._closing
            if take:
                last = time.monotonic()
                if sessions:
                    self._write(sessions, docs, times)
            if done:
                return

    def _write(self, sessions: list[str], docs: list[str], times: list[int]) -> None:
        self._sequence += 1
        name = file_name(PREFIX, self._token, self._sequence)
        tmp = self.directory / f".{name}.tmp"
        table = pa.table(
            {
                "session": pa.array(sessions, pa.string()),
                "doc_id": pa.array(docs, pa.string()),
                "received_at": pa.array(times, pa.int64()).cast(SCHEMA.field(2).type),
            },
            schema=SCHEMA,
        )
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.directory / name)
        except Exception as exc:  # a failed write must not stop the server, nor this thread
            log.error(
                "click log: could not write %d clicks to %s (kept, to try again): %s",
                len(sessions), tmp, exc,
            )  # fmt: skip
            tmp.unlink(missing_ok=True)
            with self._lock:  # back in front of the queue, for the next flush
                self._sessions[:0], self._docs[:0], self._times[:0] = sessions, docs, times
            return
        self.files_written += 1
        if self.on_written is not None:
            self.on_written(len(sessions))
