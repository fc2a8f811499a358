"""One artifact, three doors: offline evaluation, batch scoring and the gRPC server agree.

The same MQ2008 lists are scored by ``ltr evaluate``'s offline path (``score_lists``), by
``ltr score`` (PyTorch and ONNX Runtime backends) and by a real ``ltr serve`` process, all from
one artifact exported once with ``ltr export``: a single model, and an ensemble of two written
by ``ltr ensemble``.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow.dataset as pads
import pytest

from ltr.artifact import load_model
from ltr.data import load_dataset
from ltr.inference import score_lists
from ltr.serve.client import RerankerClient
from ltr.serve.domain import RerankQuery
from tests.serve._helpers import LTR, ServerProcess, make_artifact


def _ltr(*args: str, cwd) -> None:
    proc = subprocess.run([str(LTR), *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _scored(directory) -> dict[tuple[str, str], float]:
    table = pads.dataset(str(directory), format="parquet").to_table(
        columns=["qid", "doc_id", "score"]
    )
    return dict(
        zip(
            zip(table["qid"].to_pylist(), table["doc_id"].to_pylist(), strict=True),
            table["score"].to_pylist(),
            strict=True,
        )
    )


@pytest.fixture(scope="module", params=["model", "ensemble"])
def exported(request, tmp_path_factory, mq2008_dir):
    tmp = tmp_path_factory.mktemp("doors")
    train = load_dataset(mq2008_dir / "S1.txt.xz")
    artifact = make_artifact(tmp / "model", train, seed=7)
    if request.param == "ensemble":  # two seeds made one artifact by `ltr ensemble`
        make_artifact(tmp / "model2", train, seed=8)
        _ltr("ensemble", "--model", str(artifact), str(tmp / "model2"), "--output",
             str(tmp / "ensemble"), "--no-mlflow", "--quiet", cwd=tmp)  # fmt: skip
        artifact = tmp / "ensemble"
    _ltr("export", "--model", str(artifact), "--data", str(mq2008_dir / "S5.txt.xz"), cwd=tmp)
    return tmp, artifact


def test_evaluate_score_and_serve_give_the_same_scores(exported, mq2008_dir):
    tmp, artifact = exported
    s5_path = mq2008_dir / "S5.txt.xz"
    test = load_dataset(s5_path)
    keys = list(zip(np.repeat(test.qids, test.list_lengths), test.doc_ids, strict=True))
    offline = dict(zip(keys, score_lists(load_model(artifact).model, test), strict=True))

    for backend in ("torch", "onnx"):
        out = tmp / f"scored-{backend}"
        _ltr("score", "--model", str(artifact), "--input", str(s5_path), "--output", str(out),
             "--backend", backend, "--quiet", cwd=tmp)  # fmt: skip
        batch = _scored(out)
        assert batch.keys() == offline.keys()
        tolerance = 1e-6 if backend == "torch" else 1e-5
        worst = max(abs(batch[k] - offline[k]) for k in keys)
        assert worst <= tolerance, f"ltr score ({backend}) differs from evaluate by {worst}"
    onnx_batch = _scored(tmp / "scored-onnx")

    server = ServerProcess(tmp, artifact).wait_ready()
    try:
        served: dict[tuple[str, str], float] = {}
        with RerankerClient(server.target) as client:
            queries = [
                RerankQuery.from_matrix(
                    list(test.doc_ids[test.offsets[q] : test.offsets[q + 1]]),
                    test.features[test.offsets[q] : test.offsets[q + 1]],
                    query_id=str(test.qids[q]),
                )
                for q in range(len(test))
            ]
            for start in range(0, len(queries), 32):
                chunk = queries[start : start + 32]
                for query, ranked in zip(chunk, client.rerank_batch(chunk), strict=True):
                    for doc_id, score in zip(ranked.ids, ranked.scores, strict=True):
                        served[(query.query_id, doc_id)] = float(score)
    finally:
        assert server.stop() == 0
    assert served.keys() == offline.keys()
    assert max(abs(served[k] - onnx_batch[k]) for k in keys) <= 1e-6  # same ONNX graph
    assert max(abs(served[k] - offline[k]) for k in keys) <= 1e-5
