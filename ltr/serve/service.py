"""The reranking service in domain terms: validate, batch, score, rank. No gRPC here.

:class:`RerankService` is what the gRPC servicer calls (and what tests call directly): it
validates each list against the model in use, submits it to the dynamic batcher and returns the
ranked lists. Every batch is scored by the model the holder has at that moment, and each result
names that model's version. Text lists travel the same way: the batch computes their features
with that same model's featurizer, so features and scores never come from two versions.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from ltr.errors import InputError, LtrError
from ltr.serve.batching import BatchObserver, DynamicBatcher
from ltr.serve.clicklog import ClickLog
from ltr.serve.config import BatchingConfig
from ltr.serve.domain import (
    MAX_CLICKS_PER_CALL,
    ModelInfo,
    RankedList,
    RerankQuery,
    TextQuery,
    ValidQuery,
    ValidTextQuery,
)
from ltr.serve.errors import ClicksNotRecordedError, ShuttingDownError
from ltr.serve.impressions import ImpressionLog
from ltr.serve.models import ModelHolder, ServedModel
from ltr.serve.scoring import featurize, incompatibility, interleave_batch, score_batch
from ltr.serve.validation import validate, validate_text

log = logging.getLogger("ltr.serve")


@dataclass(frozen=True)
class Featurized:
    """A text list's answer from the batch: its ranking, and the feature rows and names the
    scoring model computed for it (what the impression log keeps)."""

    ranked: RankedList
    query: ValidQuery
    feature_names: tuple[str, ...]


def make_batcher(
    holder: ModelHolder,
    config: BatchingConfig,
    *,
    executor: Executor | None = None,
    observer: BatchObserver | None = None,
    on_documents: Callable[[dict[str, int]], None] | None = None,
    challenger: ModelHolder | None = None,
    interleave_share: float = 1.0,
    on_interleaved: Callable[[int], None] | None = None,
    on_rows: Callable[[ServedModel, list[np.ndarray], list[np.ndarray]], None] | None = None,
) -> DynamicBatcher[ValidQuery | ValidTextQuery, RankedList | Featurized]:
    """A batcher that scores each batch with the holder's current model; ``on_documents``
    hears how many text candidates of each batch came from each source (``cache``, ``recent``,
    ``computed``: see :meth:`ltr.text.featurizer.TextFeaturizer.documents`).

    With a ``challenger``, ``interleave_share`` of the lists (drawn at random per list) are
    scored by both models and answered with their team-draft interleaving
    (:mod:`ltr.serve.interleaving`). A text list is interleaved when the challenger carries a
    text featurizer: each model scores the features its own featurizer computes. A feature list
    is interleaved when both models read the same features; while they do not (a challenger of
    other text features, or after a reload), feature lists are answered by the model alone.
    ``on_interleaved`` hears how many lists of each batch were interleaved. ``on_rows`` gets
    the model, and the feature rows ``[n, F]`` and the model's scores ``[n]`` of each list it
    scored (drift monitoring, :mod:`ltr.serve.drift`).
    """
    rng = random.Random()
    warned: set[tuple[str, str]] = set()

    def rival_of(model: ServedModel) -> tuple[ServedModel | None, bool, bool]:
        """The challenger, and whether it can score feature lists and text lists now."""
        if challenger is None:
            return None, False, False
        rival = challenger.current
        why = incompatibility(model.spec, rival.spec)
        texts = rival.featurizer is not None and model.featurizer is not None
        pair = (model.spec.ref.version, rival.spec.ref.version)
        if why is not None and pair not in warned:
            warned.add(pair)
            if texts:  # text lists still are: expected of two text models of other features
                log.warning("interleaving text lists only; feature lists: %s", why)
            else:
                log.error("not interleaving: %s", why)
        return rival, why is None, texts

    def process(
        items: list[ValidQuery | ValidTextQuery],
    ) -> list[RankedList | Featurized | Exception]:
        model = holder.current  # one snapshot per batch: old or new model, never a mix
        rival, features_ok, texts_ok = rival_of(model)
        seen = dict(model.featurizer.documents_seen) if model.featurizer is not None else None
        queries = featurize(model.featurizer, model.spec, items)  # text lists -> feature rows
        if seen is not None and on_documents is not None:
            now = model.featurizer.documents_seen
            on_documents({source: now[source] - seen[source] for source in now})
        fit = [i for i, q in enumerate(queries) if isinstance(q, ValidQuery)]
        results: list = list(queries)  # the errors stay; every ValidQuery gets its ranking
        if fit:
            lists = [queries[i] for i in fit]
            if rival is None or not (features_ok or texts_ok):
                scored = score_batch(model.predictor, model.spec.ref, lists)
            else:
                theirs: list = []  # each list as the challenger reads it; None = not drawn
                for i in fit:
                    drawn = interleave_share >= 1 or rng.random() < interleave_share
                    if isinstance(items[i], ValidTextQuery):
                        theirs.append(items[i] if drawn and texts_ok else None)  # featurized below
                    else:
                        theirs.append(queries[i] if drawn and features_ok else None)
                text = [j for j, t in enumerate(theirs) if isinstance(t, ValidTextQuery)]
                if text:  # the challenger's own features for the text lists it scores
                    rows = featurize(rival.featurizer, rival.spec, [theirs[j] for j in text])
                    for j, row in zip(text, rows, strict=True):
                        theirs[j] = row
                scored = interleave_batch(
                    (model.predictor, model.spec.ref),
                    (rival.predictor, rival.spec.ref),
                    lists,
                    theirs,
                    rng,
                )
                if on_interleaved is not None:
                    on_interleaved(
                        sum(isinstance(r, RankedList) and r.teams is not None for r in scored)
                    )
            if on_rows is not None:
                done = [
                    (q.features, r.all_scores)
                    for q, r in zip(lists, scored, strict=True)
                    if isinstance(r, RankedList) and r.all_scores is not None
                ]
                try:
                    on_rows(model, [rows for rows, _ in done], [s for _, s in done])
                except Exception:  # monitoring must never fail the lists it watches
                    log.exception("keeping the batch's rows for drift monitoring failed")
            for i, result in zip(fit, scored, strict=True):
                if isinstance(items[i], ValidTextQuery) and isinstance(result, RankedList):
                    # the impression log keeps the features this model computed, by its names
                    result = Featurized(result, queries[i], model.spec.feature_names)
                results[i] = result
        return results

    on = config.enabled
    return DynamicBatcher(
        process,
        max_batch_size=config.max_batch_size if on else 1,
        max_delay=config.max_delay_ms / 1000.0 if on else 0.0,
        queue_capacity=config.queue_capacity,
        max_batch_candidates=config.max_batch_candidates if on else None,
        executor=executor,
        workers=config.workers,
        observer=observer,
    )


class RerankService:
    """Rerank lists with the model held by ``holder``, through ``batcher``.

    Args:
        holder: the model in use (swapped on reloads).
        batcher: the dynamic batcher (see :func:`make_batcher`).
        max_candidates: most candidates per list.
        max_message_bytes: largest request the transport accepts (reported by
            :meth:`model_info`; enforced by the transport).
        impressions: where answered lists are logged (None = not logged).
        clicks: where clicks sent back with ``RecordClicks`` are logged (None = refused).
        challenger: the model interleaved with the holder's, reported by :meth:`model_info`.
    """

    def __init__(
        self,
        holder: ModelHolder,
        batcher: DynamicBatcher[ValidQuery | ValidTextQuery, RankedList | Featurized],
        *,
        max_candidates: int,
        max_message_bytes: int,
        impressions: ImpressionLog | None = None,
        clicks: ClickLog | None = None,
        challenger: ModelHolder | None = None,
    ) -> None:
        self.holder = holder
        self.challenger = challenger
        self.batcher = batcher
        self.impressions = impressions
        self.clicks = clicks
        self.max_candidates = max_candidates
        self.max_message_bytes = max_message_bytes
        self._open = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def close(self) -> None:
        """Refuse new calls from now on (calls already accepted still complete)."""
        self._open = False

    @property
    def in_flight(self) -> int:
        """Calls accepted and not yet answered."""
        return self._in_flight

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no accepted call is left (True) or ``timeout`` seconds pass (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @contextmanager
    def _accepted(self) -> Iterator[None]:
        """Refuse the call if closed, else count it in flight until it is answered."""
        if not self._open:
            raise ShuttingDownError("the server is shutting down; retry on another replica")
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def rerank(self, query: RerankQuery, deadline: float | None = None) -> RankedList:
        """Rank one list (``deadline`` on ``time.monotonic()``'s scale, None = none)."""
        with self._accepted():
            spec = self.holder.current.spec
            valid = validate(query, spec, max_candidates=self.max_candidates)
            ranked = await self.batcher.submit(valid, deadline)
            return self._logged(spec.feature_names, valid, ranked)

    def _logged(self, names: tuple[str, ...], query: ValidQuery, ranked: RankedList) -> RankedList:
        """``ranked`` with its impression id, once logged (as it is without a log); the
        features are named ``names``."""
        if self.impressions is None:
            return ranked
        session = self.impressions.record(query, ranked, names)
        return replace(ranked, impression_id=session)

    async def rerank_text(self, query: TextQuery, deadline: float | None = None) -> RankedList:
        """Rank one query's candidate texts (features computed in the batch, by the featurizer
        of the model that scores them, and logged as that model names them)."""
        with self._accepted():
            spec = self.holder.current.spec
            valid = validate_text(query, spec, max_candidates=self.max_candidates)
            done = await self.batcher.submit(valid, deadline)
            assert isinstance(done, Featurized), "a text list is answered with its features"
            return self._logged(done.feature_names, done.query, done.ranked)

    async def rerank_batch(
        self, queries: Sequence[RerankQuery], deadline: float | None = None
    ) -> list[RankedList]:
        """Rank several lists; one invalid list fails the call, naming its position."""
        with self._accepted():
            if not queries:
                raise InputError("the batch holds no requests; send at least one")
            spec = self.holder.current.spec
            valid = []
            for i, query in enumerate(queries):
                try:
                    valid.append(validate(query, spec, max_candidates=self.max_candidates))
                except LtrError as exc:
                    raise type(exc)(f"request {i}: {exc}") from None
            ranked = await self.batcher.submit_many(valid, deadline)
            names = spec.feature_names
            return [self._logged(names, q, r) for q, r in zip(valid, ranked, strict=True)]

    def record_clicks(self, clicks: Sequence[tuple[str, str]]) -> int:
        """Queue users' clicks, ``(impression id, candidate id)`` pairs, for the click log;
        returns how many. A bad click fails the call, naming its position, and none is kept."""
        with self._accepted():
            if self.clicks is None:
                raise ClicksNotRecordedError(
                    "this server keeps no impression log (impressions.directory), so it records "
                    "no clicks; start it with --impressions DIR"
                )
            if not clicks:
                raise InputError("the request holds no clicks; send at least one")
            if len(clicks) > MAX_CLICKS_PER_CALL:
                raise InputError(
                    f"the request holds {len(clicks):,} clicks, more than the "
                    f"{MAX_CLICKS_PER_CALL:,} one call may carry; split them"
                )
            for i, (session, candidate) in enumerate(clicks):
                if not session or not candidate:
                    what = "impression_id" if not session else "candidate_id"
                    raise InputError(f"click {i} has an empty {what}")
            return self.clicks.record(list(clicks))

    def model_info(self) -> ModelInfo:
        """The model in use and the server's limits."""
        return ModelInfo(
            spec=self.holder.current.spec,
            max_candidates=self.max_candidates,
            max_message_bytes=self.max_message_bytes,
            challenger=None if self.challenger is None else self.challenger.current.spec.ref,
        )
