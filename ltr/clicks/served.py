"""Simulated users of a live server: the online loop, end to end, before real users see it.

:func:`simulate_served_clicks` sends every query of judged data to a running ``ltr serve``
``sessions`` times, one ``Rerank`` call per user, exactly as a front end would. Each user is shown
the list the server returned (``top_k`` of it) and clicks under a click model on the judged
grades. It writes:

* the **click log** of what the users saw and did (``session`` is the response's
  ``impression_id``), the ground truth a real deployment never has;
* optionally the **clicks** alone, ``(session, doc_id)`` per click, which is what a front end
  records. With the server's impression log (``ltr serve --impressions DIR``), ``ltr clicks
  join`` turns them into the same click log, and ``ltr clicks labels`` into training data.

So the whole loop (serve, log, click, join, label, retrain, serve again) can be run and measured
on judged data: ``benchmarks/click_loop.py`` does.

A session whose response carries no impression id (the server logs no impressions, or its sample
left the list out) cannot be joined: its clicks stay out of the clicks file, and it is named
``unlogged-<query>-<session>`` in the click log.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltr.clicks.join import write_atomically
from ltr.clicks.log import STRING_SESSIONS
from ltr.clicks.model import ClickModel
from ltr.clicks.simulate import Shown, check_simulable, write_sessions
from ltr.data.dataset import ListDataset
from ltr.errors import ConfigError, LtrError


@dataclass(frozen=True)
class ServedSimulation:
    """What a simulation against a server did."""

    impressions: int
    sessions: int
    clicks: int
    unlogged_sessions: int
    """Sessions answered without an impression id (their clicks cannot be joined)."""
    versions: tuple[str, ...]
    """The model versions that answered, in the order first seen."""


def simulate_served_clicks(
    client,
    data: ListDataset,
    out: str | Path,
    *,
    model: ClickModel,
    sessions: int = 100,
    top_k: int | None = None,
    seed: int = 0,
    clicks_out: str | Path | None = None,
    record_clicks: bool = False,
    concurrency: int = 8,
    metadata: dict | None = None,
    progress: bool = True,
) -> ServedSimulation:
    """Simulate ``sessions`` users per query of ``data`` on the rankings a live server returns.

    Args:
        client: a :class:`~ltr.serve.client.RerankerClient` of the server.
        data: judged lists with document ids; the features sent are the data's, in the served
            model's feature count.
        top_k: users see the first ``top_k`` of each list (the request's ``top_k``, so the
            server returns and logs only those); None = the whole list.
        seed: clicks of query ``q`` draw from ``default_rng([seed, q])``, as in
            :func:`~ltr.clicks.simulate.simulate_clicks`: on the same rankings, the same clicks.
        clicks_out: also write the clicks alone, ``(session, doc_id)``, as CSV (``.csv``) or
            Parquet (``.parquet``): what a front end records for ``ltr clicks join``.
        record_clicks: also send the clicks back to the server (``RecordClicks``), as a front
            end would, for its click log (``<impressions.directory>/clicks``).
        concurrency: queries in flight at once (each sends its sessions one after another).

    Raises:
        ConfigError, DataFormatError: bad parameters or data the server would refuse.
        RerankError: a call failed (the message names the query); nothing is written.
    """
    from ltr.serve.client import RerankError, check_servable, query_of

    if sessions < 1:
        raise ConfigError(f"sessions must be at least 1, got {sessions}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    clicks_path = None if clicks_out is None else Path(clicks_out)
    if clicks_path is not None and clicks_path.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"{clicks_path}: the clicks file must end in .csv or .parquet")
    check_simulable(data, model)
    info = client.model_info()
    check_servable(data, info, offline="simulate on a logging ranker's scores instead")
    uses_initial_rank = info.spec.uses_initial_rank
    versions: dict[str, None] = {}
    unlogged: list[str] = []

    def serve(q: int) -> list:
        start, end = data.offsets[q], data.offsets[q + 1]
        ids = data.doc_ids[start:end].tolist()
        if len(set(ids)) != len(ids):
            raise LtrError(
                f"query {data.qids[q]!r} lists a document id twice; the server refuses lists "
                "with duplicate candidate ids"
            )
        query = replace(
            query_of(data, q, uses_initial_rank=uses_initial_rank, ids=ids), top_k=top_k
        )
        try:
            return [client.rerank_query(query) for _ in range(sessions)]
        except RerankError as exc:
            raise RerankError(
                exc.code, f"query {data.qids[q]!r}: {exc.details}", exc.hint
            ) from None

    def shown_sessions(pool: ThreadPoolExecutor) -> Iterator[Shown]:
        for q, answers in enumerate(pool.map(serve, range(len(data)))):
            expected = min(top_k or data.list_lengths[q], int(data.list_lengths[q]))
            names = []
            for s, ranked in enumerate(answers):
                if len(ranked.ids) != expected:
                    raise LtrError(
                        f"query {data.qids[q]!r}: the server returned {len(ranked.ids)} "
                        f"candidates, {expected} expected"
                    )
                versions.setdefault(ranked.model.version)
                if not ranked.impression_id:
                    unlogged.append(f"unlogged-{q}-{s}")
                names.append(ranked.impression_id or unlogged[-1])
            rankings = np.stack([r.request_indices for r in answers])
            yield Shown(
                q, np.array(names, dtype=object), rankings, np.random.default_rng([seed, q])
            )

    meta = {
        "sessions": sessions,
        "top_k": top_k,
        "seed": seed,
        "model": info.spec.ref.name,
        **(metadata or {}),
    }
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="users")
    try:
        written = write_sessions(
            data,
            out,
            shown_sessions(pool),
            model=model,
            metadata=meta,
            session_type=STRING_SESSIONS,
            progress=progress,
        )
    finally:  # on an error, the queries not yet sent are not sent
        pool.shutdown(wait=True, cancel_futures=True)
    clicks = pq.read_table(out, columns=["session", "doc_id", "click"])
    clicked = clicks.filter(pc.equal(clicks["click"], 1))
    logged = pc.invert(pc.is_in(clicked["session"], pa.array(unlogged, pa.string())))
    front_end = clicked.filter(logged).select(["session", "doc_id"])  # what users could report
    if clicks_path is not None:
        write_atomically(front_end, clicks_path)
    if record_clicks and front_end.num_rows:
        client.record_clicks(
            zip(front_end["session"].to_pylist(), front_end["doc_id"].to_pylist(), strict=True)
        )
    return ServedSimulation(
        impressions=written,
        sessions=len(data) * sessions,
        clicks=clicked.num_rows,
        unlogged_sessions=len(unlogged),
        versions=tuple(versions),
    )
