"""The service without gRPC: scores equal the offline path, ranking, top_k, errors by position."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ltr.artifact import load_model
from ltr.errors import InputError
from ltr.inference import score_lists
from ltr.predictor import TorchPredictor
from ltr.serve.config import BatchingConfig
from ltr.serve.domain import ModelRef, RerankQuery
from ltr.serve.errors import ShuttingDownError, UnknownModelError
from ltr.serve.models import ModelHolder, ServedModel, model_spec
from ltr.serve.scoring import score_batch
from ltr.serve.service import RerankService, make_batcher
from ltr.serve.validation import validate


@pytest.fixture(scope="module")
def served(tiny_artifact):
    loaded = load_model(tiny_artifact)
    return ServedModel(TorchPredictor(loaded), model_spec(loaded, "torch"))


@pytest.fixture(scope="module")
def offline(served, s5):
    return score_lists(served.predictor.loaded.model, s5)  # [rows], the `ltr evaluate` path


def queries_of(s5, indices):
    return [
        RerankQuery.from_matrix(
            [str(d) for d in s5.doc_ids[s5[i].rows]], s5[i].features, query_id=str(s5.qids[i])
        )
        for i in indices
    ]


def run_service(served, coro_fn, **batching):
    async def main():
        holder = ModelHolder("unused", lambda uri: served)
        holder.load_initial()
        batcher = make_batcher(holder, BatchingConfig(**batching))
        service = RerankService(holder, batcher, max_candidates=200, max_message_bytes=1 << 20)
        batcher.start()
        try:
            return await coro_fn(service)
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_concurrent_lists_get_the_offline_scores_in_ranked_order(served, offline, s5) -> None:
    indices = list(range(0, len(s5), 3))
    queries = queries_of(s5, indices)

    async def calls(service):
        return await asyncio.gather(*(service.rerank(q) for q in queries))

    results = run_service(served, calls, max_batch_size=8, max_delay_ms=5)
    for i, q, ranked in zip(indices, queries, results, strict=True):
        rows = s5[i].rows
        expected = offline[rows][ranked.request_indices]
        np.testing.assert_allclose(ranked.scores, expected, rtol=0, atol=1e-5)
        assert ranked.ids == [q.candidate_ids[k] for k in ranked.request_indices]
        assert sorted(ranked.request_indices.tolist()) == list(range(len(rows)))
        assert np.all(np.diff(ranked.scores) <= 0)  # best first
        assert ranked.model == ModelRef("tiny-model", "run-seed1")
        assert ranked.query_id == str(s5.qids[i])


def test_batch_call_reports_the_bad_lists_position(served, s5) -> None:
    good = queries_of(s5, [0, 1])
    bad = RerankQuery.from_matrix(["a", "b"], np.zeros((2, 45), np.float32))

    async def calls(service):
        ok = await service.rerank_batch(good)
        with pytest.raises(InputError, match=r"^request 2: candidate 'a' has 45 features"):
            await service.rerank_batch([*good, bad])
        with pytest.raises(UnknownModelError, match=r"^request 0: model 'x' is not served"):
            other = RerankQuery.from_matrix(["a"], np.zeros((1, 46)), model_name="x")
            await service.rerank_batch([other])
        with pytest.raises(InputError, match="holds no requests"):
            await service.rerank_batch([])
        return ok

    ok = run_service(served, calls)
    assert [r.query_id for r in ok] == [q.query_id for q in good]


def test_closed_service_refuses_new_calls(served, s5) -> None:
    async def calls(service):
        service.close()
        with pytest.raises(ShuttingDownError, match="shutting down"):
            await service.rerank(queries_of(s5, [0])[0])
        return service.model_info()

    info = run_service(served, calls)
    assert (info.max_candidates, info.spec.num_features, info.spec.backend) == (200, 46, "torch")


def test_top_k_and_ties_keep_request_order(served) -> None:
    spec = served.spec
    x = np.zeros((5, 46), np.float32)  # identical candidates: identical scores
    x[3] = 1.0  # one different candidate
    valid = validate(RerankQuery.from_matrix(list("abcde"), x, top_k=4), spec, max_candidates=10)
    (ranked,) = score_batch(served.predictor, spec.ref, [valid])
    ties = [i for i in ranked.request_indices.tolist() if i != 3]
    assert ties == sorted(ties)  # equal scores: request order
    assert len(ranked.ids) == 4


def test_padding_in_a_batch_does_not_change_scores(served, s5) -> None:
    lists = [validate(q, served.spec, max_candidates=200) for q in queries_of(s5, [0, 5, 9])]
    together = score_batch(served.predictor, served.spec.ref, lists)
    for valid, ranked in zip(lists, together, strict=True):
        (alone,) = score_batch(served.predictor, served.spec.ref, [valid])
        np.testing.assert_allclose(ranked.scores, alone.scores, rtol=0, atol=1e-5)
