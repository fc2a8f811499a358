"""RerankText on a real ``ltr serve`` process: a model trained on text features, served (ONNX
Runtime, exported on load) with the featurizer it carries, reranks a query's candidate texts as
the in-process reranker does; bad text calls get their status code and the server keeps serving."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from functools import partial

import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.cli import main
from ltr.data.dataset import load_dataset
from ltr.data.parquet import feature_names_of
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2 as pb
from ltr.serve._proto.ltr.reranker.v1 import reranker_pb2_grpc as pb_grpc
from ltr.serve.client import RerankerClient, RerankError
from ltr.serve.models import ModelHolder, load_served_model
from ltr.text.collection import load_collection
from ltr.text.featurizer import TextFeaturizer
from ltr.text.rerank import TextReranker
from tests.serve._helpers import LTR, ServerProcess, make_artifact, metric

from .conftest import doc_text

MAX_CANDIDATES = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained):
    """The text model's server, logging impressions (a file is closed a second after it opens)
    into ``server.impressions``."""
    _, model_dir = trained
    tmp = tmp_path_factory.mktemp("text_server")
    process = ServerProcess(
        tmp,
        model_dir,
        "--max_candidates", str(MAX_CANDIDATES),
        "--batching.max_delay_ms", "5",
        "--impressions", str(tmp / "impressions"), "--impressions.flush_seconds", "1",
    )  # fmt: skip
    process.impressions = tmp / "impressions"
    yield process.wait_ready()
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def reranker(trained):
    _, model_dir = trained
    return TextReranker.load(model_dir, backend="torch")


@pytest.fixture(scope="module")
def test_lists(trained, synthetic):
    """``(query text, ids, texts)`` of every test query of the feature file, in its order."""
    files, _ = trained
    data = load_dataset(files.files["test"])
    collection = load_collection(synthetic.root)
    text_of = dict(zip(collection.doc_ids, collection.doc_texts, strict=True))
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    lists = []
    for q in range(len(data)):
        ids = [str(d) for d in data.doc_ids[data[q].rows]]
        lists.append((query_of[str(data.qids[q])], ids, [text_of[d] for d in ids]))
    return lists


def test_model_info_says_text_is_served(server, reranker) -> None:
    with RerankerClient(server.target) as client:
        spec = client.model_info().spec
    assert spec.accepts_text
    assert list(spec.feature_names) == reranker.featurizer.feature_names


def test_text_lists_get_the_in_process_scores(server, reranker, test_lists) -> None:
    """Every test query's candidates, sent as texts, come back with the scores the in-process
    reranker (PyTorch) gives them, best first, named by the served version."""
    with RerankerClient(server.target) as client:
        version = client.model_info().spec.ref.version
        for k, (query, ids, texts) in enumerate(test_lists):
            ranked = client.rerank_text(query, texts, ids, query_id=f"q{k}")
            expected = dict(zip(ids, reranker.scores(query, texts).tolist(), strict=True))
            np.testing.assert_allclose(
                ranked.scores, [expected[i] for i in ranked.ids], rtol=1e-5, atol=1e-5
            )
            assert sorted(ranked.ids) == sorted(ids)
            assert list(ranked.scores) == sorted(ranked.scores, reverse=True)
            assert [ids[i] for i in ranked.request_indices] == ranked.ids
            assert (ranked.query_id, ranked.model.version) == (f"q{k}", version)
        top = client.rerank_text(query, texts, ids, top_k=3)
        assert top.ids == ranked.ids[:3]


def test_text_lists_are_logged_with_the_features_the_model_read(server, trained, test_lists):
    """A RerankText answer carries an impression id; the log holds the returned candidates
    with the features the server computed, which are the ones ``ltr text-features`` wrote for
    the same query and documents (no skew between training and serving features)."""
    files, _ = trained
    data = load_dataset(files.files["test"])
    q = 0
    query, ids, texts = test_lists[q]
    with RerankerClient(server.target) as client:
        ranked = client.rerank_text(query, texts, ids, query_id=str(data.qids[q]), top_k=4)
    assert ranked.impression_id
    deadline = time.monotonic() + 60
    rows: list[dict] = []
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        for path in sorted(server.impressions.glob("impressions-*.parquet")):
            table = pq.read_table(path)
            rows += [r for r in table.to_pylist() if r["session"] == ranked.impression_id]
            names = feature_names_of(table.schema)
    assert [r["doc_id"] for r in rows] == ranked.ids
    assert [r["position"] for r in rows] == [1, 2, 3, 4]
    assert {r["qid"] for r in rows} == {str(data.qids[q])}
    assert list(names) == list(data.feature_names)
    written = dict(
        zip(map(str, data.doc_ids[data[q].rows]), data.features[data[q].rows], strict=True)
    )
    for r in rows:
        np.testing.assert_allclose(r["features"], written[r["doc_id"]], rtol=1e-5, atol=1e-5)


def test_concurrent_text_and_feature_calls_share_batches(server, trained, test_lists) -> None:
    """Text lists and feature lists sent at once by many clients all get right answers."""
    files, _ = trained
    data = load_dataset(files.files["test"])
    with RerankerClient(server.target) as client:
        expected_text = [client.rerank_text(q, t, i) for q, i, t in test_lists]
        expected_rows = [
            client.rerank(list(map(str, data.doc_ids[data[q].rows])), data.features[data[q].rows])
            for q in range(len(data))
        ]
    before = server.scrape()
    failures: list[str] = []

    def work(worker: int) -> None:
        with RerankerClient(server.target) as client:
            for round_ in range(6):
                q = (worker + round_) % len(test_lists)
                if (worker + round_) % 2:
                    query, ids, texts = test_lists[q]
                    got, want = client.rerank_text(query, texts, ids), expected_text[q]
                else:
                    rows = data[q].rows
                    ids = list(map(str, data.doc_ids[rows]))
                    got, want = client.rerank(ids, data.features[rows]), expected_rows[q]
                if got.ids != want.ids or not np.allclose(got.scores, want.scores, atol=1e-6):
                    failures.append(f"worker {worker} list {q}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    after = server.scrape()
    calls = {
        method: metric(after, "ltr_requests_total", method=method, code="OK")
        - metric(before, "ltr_requests_total", method=method, code="OK")
        for method in ("RerankText", "Rerank")
    }
    assert calls == {"RerankText": 24, "Rerank": 24}


def test_metrics_count_cached_recent_and_computed_documents(server, test_lists) -> None:
    """The model carries the featurizer with its document cache: the collection's documents come
    from the cache, texts it never held are computed the first time and kept for the next call
    (the default ``featurizer_recent_documents``), with the same scores; /metrics says how many
    of each."""
    query, ids, texts = test_lists[0]
    new = ["a document the collection never held", "zorbax and another new one"]
    family = "ltr_text_documents_total"
    answers, deltas = [], []
    with RerankerClient(server.target) as client:
        for _ in range(2):
            before = server.scrape()
            answers.append(client.rerank_text(query, [*texts, *new], [*ids, "new-1", "new-2"]))
            after = server.scrape()
            deltas.append(
                {
                    source: metric(after, family, source=source)
                    - metric(before, family, source=source)
                    for source in ("cache", "recent", "computed")
                }
            )
    assert sorted(answers[0].ids) == sorted([*ids, "new-1", "new-2"])
    assert deltas[0] == {"cache": len(texts), "recent": 0, "computed": len(new)}
    assert deltas[1] == {"cache": len(texts), "recent": len(new), "computed": 0}
    assert answers[1].ids == answers[0].ids
    np.testing.assert_allclose(answers[1].scores, answers[0].scores, atol=1e-5)


@pytest.mark.parametrize(
    ("request_", "code", "fragment"),
    [
        (pb.RerankTextRequest(query=" ", candidates=[pb.TextCandidate(id="a", text="x")]),
         grpc.StatusCode.INVALID_ARGUMENT, "the query text is empty"),
        (pb.RerankTextRequest(query="zorbax"), grpc.StatusCode.INVALID_ARGUMENT,
         "no candidates"),
        (pb.RerankTextRequest(
            query="zorbax",
            candidates=[pb.TextCandidate(id=str(i), text="x") for i in range(MAX_CANDIDATES + 1)],
        ), grpc.StatusCode.INVALID_ARGUMENT, f"accepts at most {MAX_CANDIDATES}"),
        (pb.RerankTextRequest(
            query="zorbax", candidates=[pb.TextCandidate(id="a", text="x")] * 2
        ), grpc.StatusCode.INVALID_ARGUMENT, "'a' appears more than once"),
        (pb.RerankTextRequest(
            query="zorbax", candidates=[pb.TextCandidate(id="a", text="x")], top_k=0
        ), grpc.StatusCode.INVALID_ARGUMENT, "top_k must be at least 1"),
        (pb.RerankTextRequest(
            query="zorbax", candidates=[pb.TextCandidate(id="a", text="x")], model_name="other"
        ), grpc.StatusCode.NOT_FOUND, "'other' is not served here"),
    ],
)  # fmt: skip
def test_bad_text_calls_get_their_code_and_the_server_goes_on(
    server, request_, code, fragment
) -> None:
    with server.channel() as channel:
        stub = pb_grpc.RerankerStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.RerankText(request_, timeout=10)
        assert info.value.code() == code
        assert fragment in info.value.details()
        good = pb.RerankTextRequest(
            query="zorbax quillet",
            candidates=[pb.TextCandidate(id="a", text="zorbax"), pb.TextCandidate(id="b")],
        )
        assert len(stub.RerankText(good, timeout=10).candidates) == 2


def test_cli_rerank_text_on_the_server(server, reranker, synthetic, tmp_path, capsys) -> None:
    docs = synthetic.docs[:8]
    hits = tmp_path / "hits.jsonl"
    hits.write_text("".join(json.dumps(d) + "\n" for d in docs))
    argv = ["rerank-text", "--server", server.target, "--query", "zorbax mepron",
            "--docs", str(hits)]  # fmt: skip
    assert main([*argv, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = reranker.rerank(
        "zorbax mepron", [doc_text(d) for d in docs], [d["doc_id"] for d in docs]
    )
    assert [c["id"] for c in printed["candidates"]] == [h.id for h in expected]
    assert [c["given"] for c in printed["candidates"]] == [h.position + 1 for h in expected]
    np.testing.assert_allclose(
        [c["score"] for c in printed["candidates"]], [h.score for h in expected], atol=1e-5
    )
    with RerankerClient(server.target) as client:
        assert printed["model"]["version"] == client.model_info().spec.ref.version
    assert main([*argv, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ranked by ") and len(lines) == 2 + 2
    assert main([*argv, "--featurizer", "somewhere"]) == 2
    assert "--featurizer is for --model" in capsys.readouterr().err


def test_a_model_without_a_featurizer_refuses_text(tmp_path, trained) -> None:
    """Served without one: GetModelInfo says so and RerankText is FAILED_PRECONDITION, while
    Rerank works."""
    files, _ = trained
    data = load_dataset(files.files["test"])
    plain = make_artifact(tmp_path / "plain", load_dataset(files.files["train"]), seed=5)
    process = ServerProcess(tmp_path, plain, "--backend", "torch").wait_ready()
    try:
        with RerankerClient(process.target) as client:
            assert not client.model_info().spec.accepts_text
            with pytest.raises(RerankError) as info:
                client.rerank_text("zorbax", ["a text"])
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "without a text featurizer" in str(info.value)
            rows = data[0].rows
            assert len(client.rerank([str(i) for i in range(len(rows))], data.features[rows]).ids)
    finally:
        assert process.stop() == 0, process.log()


def test_a_featurizer_of_other_columns_stops_the_start(tmp_path, trained, mq2008_dir) -> None:
    """`ltr serve --featurizer` with a model trained on other features does not start."""
    files, _ = trained
    mq2008 = make_artifact(tmp_path / "mq", load_dataset(mq2008_dir / "S1.txt.xz"), seed=1)
    done = subprocess.run(
        [str(LTR), "serve", "--model", str(mq2008), "--featurizer",
         str(files.directory / "featurizer"), "--port", "0", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "do not belong together" in done.stderr


def test_a_featurizer_device_that_is_not_there_stops_the_start(tmp_path, trained) -> None:
    """`--featurizer-device` names a GPU this machine lacks (none here; one GPU elsewhere): the
    server does not start, and says why."""
    _, model_dir = trained
    done = subprocess.run(
        [str(LTR), "serve", "--model", str(model_dir), "--featurizer-device", "cuda:99",
         "--port", "0", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "'cuda:99' asked for" in done.stderr and "CUDA device" in done.stderr


def test_a_reload_swaps_model_and_featurizer_together_or_not_at_all(tmp_path, trained) -> None:
    """The featurizer is loaded with each model version: a reload whose featurizer does not fit
    the model keeps the old pair serving; one that fits replaces both."""
    _, model_dir = trained
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    holder = ModelHolder(str(folder), partial(load_served_model, backend="torch"))
    first = holder.load_initial()
    assert first.spec.accepts_text and first.featurizer is not None
    lexical_only = TextFeaturizer(first.featurizer.lexical)
    lexical_only.save(folder / "featurizer")  # 5 columns; the model was trained on 6
    failed = holder.reload()
    assert not failed.swapped and "do not belong together" in failed.error
    assert holder.current is first
    shutil.rmtree(folder / "featurizer")
    shutil.copytree(model_dir / "featurizer", folder / "featurizer")
    assert holder.reload().swapped
    assert holder.current is not first and holder.current.featurizer is not first.featurizer
    assert holder.current.spec.accepts_text


def test_a_loaded_model_reads_its_document_cache_in_the_background(trained) -> None:
    """With ``featurizer_prefetch`` the served featurizer's cache files are read through once
    (into the page cache) by a background thread; without it nothing is read ahead."""
    _, model_dir = trained
    files = sorted((model_dir / "featurizer" / "documents").glob("*.npy"))
    total = sum(f.stat().st_size for f in files)
    served = load_served_model(str(model_dir), backend="torch", featurizer_prefetch=True)
    cache = served.featurizer.cache
    assert sorted(cache.files) == files
    prefetch = [t for t in threading.enumerate() if t.name == "ltr-document-cache-prefetch"]
    for thread in prefetch:
        thread.join(timeout=30)
    assert cache.prefetched_bytes == total
    lazy = load_served_model(str(model_dir), backend="torch", featurizer_prefetch=False)
    assert lazy.featurizer.cache.prefetched_bytes == 0


def test_text_lists_are_interleaved_with_a_challenger_of_other_text_features(
    tmp_path, trained, synthetic, reranker, test_lists
) -> None:
    """The text SetRank served with a BM25 challenger of 5 lexical features (``ltr
    linear-model`` on a lexical-only featurizer): each model scores the rows its own featurizer
    computes, so every text list comes back as the team-draft interleaving of the SetRank's
    ranking and BM25's (checked with an independent BM25 of the collection), while feature
    lists, which the two cannot both read, are answered by the model alone."""
    from ltr.text.bm25 import BM25
    from ltr.text.featurizer import LEXICAL_FEATURES

    _, model_dir = trained
    lexical = TextFeaturizer(TextFeaturizer.load(model_dir / "featurizer").lexical)
    lexical.save(tmp_path / "lexical")
    bm25_model = tmp_path / "text-bm25"
    assert main(["linear-model", str(bm25_model), "--weight", "bm25=1",
                 "--like", str(tmp_path / "lexical")]) == 0  # fmt: skip
    impressions = tmp_path / "impressions"
    process = ServerProcess(
        tmp_path, model_dir, "--backend", "torch", "--challenger", str(bm25_model),
        "--impressions", str(impressions), "--impressions.flush_seconds", "600",
    ).wait_ready()  # fmt: skip
    try:
        assert "interleaving text lists only" in process.log()
        with RerankerClient(process.target) as client:
            assert client.model_info().challenger.name == "text-bm25"
            answers = [
                client.rerank_text(query, texts, ids, query_id=f"q{q}", top_k=6)
                for q, (query, ids, texts) in enumerate(test_lists)
            ]
            files, _ = trained
            data = load_dataset(files.files["test"])
            rows = data[0].rows
            plain = client.rerank([str(i) for i in range(len(rows))], data.features[rows])
        assert plain.challenger is None
        assert all(a.challenger.name == "text-bm25" for a in answers)
        samples = process.scrape()
        assert metric(samples, "ltr_interleaved_lists_total") == len(test_lists)
    finally:
        assert process.stop() == 0, process.log()  # SIGTERM writes the impression log

    collection = load_collection(synthetic.root)
    column = {d: j for j, d in enumerate(collection.doc_ids)}
    independent = BM25(collection.doc_texts)  # Lucene idf, k1 0.9, b 0.4: the featurizer's
    log = [r for p in sorted(impressions.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(LEXICAL_FEATURES) == 5 and len(log[0]["features"]) == len(data.feature_names)
    for q, ((query, ids, texts), answer) in enumerate(zip(test_lists, answers, strict=True)):
        ours = dict(zip(ids, reranker.scores(query, texts).tolist(), strict=True))
        bm25 = independent.scores([query])[0]
        theirs = {d: float(bm25[column[d]]) for d in ids}
        shown = sorted((r for r in log if r["qid"] == f"q{q}"), key=lambda r: r["position"])
        assert [r["doc_id"] for r in shown] == answer.ids and len(shown) == min(6, len(ids))
        np.testing.assert_allclose(answer.scores, [ours[d] for d in answer.ids], atol=1e-5)
        teams = [r["team"] for r in shown]
        for t, r in enumerate(shown):  # each pick is its team's best left (by value: ties)
            left = [d for d in ids if d not in answer.ids[:t]]
            by = ours if r["team"] == 0 else theirs
            assert by[r["doc_id"]] == pytest.approx(max(by[d] for d in left), abs=1e-4)
            assert abs(teams[: t + 1].count(0) - teams[: t + 1].count(1)) <= 1


def test_which_lists_a_challenger_interleaves_and_that_its_failures_fail_no_call(
    tmp_path, trained, test_lists
) -> None:
    """In process: a challenger of the same features without a featurizer interleaves feature
    lists but not text lists (it cannot compute their rows); a challenger whose featurizer
    fails answers text lists with the model's own ranking, and the calls succeed."""
    import asyncio

    from ltr.artifact import save_linear_model
    from ltr.serve.config import BatchingConfig
    from ltr.serve.domain import RerankQuery, TextQuery
    from ltr.serve.service import RerankService, make_batcher

    files, model_dir = trained
    data = load_dataset(files.files["test"])
    model = load_served_model(model_dir, backend="torch")
    names = list(model.spec.feature_names)
    plain = load_served_model(
        save_linear_model(tmp_path / "plain", names, {"bm25": 1.0}), backend="torch"
    )
    broken = load_served_model(
        save_linear_model(tmp_path / "broken", names, {"bm25": 1.0}, model_dir / "featurizer"),
        backend="torch",
    )

    def fail(*args, **kwargs):
        raise RuntimeError("the challenger's encoder is gone")

    broken.featurizer.list_features = fail  # type: ignore[method-assign]
    query, ids, texts = test_lists[0]
    rows = data[0].rows
    feature_list = RerankQuery.from_matrix([str(i) for i in range(len(rows))], data.features[rows])
    offline = TextReranker.load(model_dir, backend="torch").scores(query, texts)

    def answers(rival):
        async def main():
            holder = ModelHolder("m", lambda uri: model)
            challenger = ModelHolder("c", lambda uri: rival)
            holder.load_initial()
            challenger.load_initial()
            batcher = make_batcher(holder, BatchingConfig(), challenger=challenger)
            service = RerankService(
                holder, batcher, max_candidates=MAX_CANDIDATES, max_message_bytes=1 << 20,
                challenger=challenger,
            )  # fmt: skip
            batcher.start()
            try:
                return (
                    await service.rerank_text(TextQuery("q", query, ids, texts)),
                    await service.rerank(feature_list),
                )
            finally:
                await batcher.close()

        return asyncio.run(main())

    text, features = answers(plain)
    assert text.challenger is None and text.teams is None
    assert features.challenger.name == "plain" and features.teams is not None
    text, features = answers(broken)
    assert text.challenger is None and text.teams is None  # the model's ranking, not a failure
    want = dict(zip(ids, offline.tolist(), strict=True))
    np.testing.assert_allclose(text.scores, [want[i] for i in text.ids], atol=1e-5)
    assert list(text.scores) == sorted(text.scores, reverse=True)
    assert features.challenger.name == "broken" and features.teams is not None
