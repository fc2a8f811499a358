"""A LambdaMART served by ``ltr serve`` (ONNX Runtime, the default backend) as the champion a
SetRank challenger is interleaved with: every candidate's score is LightGBM's own prediction."""

from __future__ import annotations

import lightgbm
import numpy as np
import onnx

from ltr.artifact import ONNX, save_lightgbm_model
from ltr.cli import main
from ltr.serve.client import RerankerClient, query_of
from ltr.serve.domain import ModelRef
from tests.serve._helpers import ServerProcess


def test_a_served_lambdamart_scores_as_lightgbm_beside_a_challenger(
    tmp_path, mq2008_lambdamart, tiny_artifact, s5, mq2008_dir, capsys
):
    model = save_lightgbm_model(tmp_path / "lambdamart", mq2008_lambdamart, list(s5.feature_names))
    assert main(["export", "--model", str(model), "--data", str(mq2008_dir / "S5.txt.xz")]) == 0
    assert "largest difference" in capsys.readouterr().out  # parity with PyTorch, checked
    # ONNX-ML's tree operator, not the PyTorch module's gathers
    ops = {node.op_type for node in onnx.load(str(model / ONNX)).graph.node}
    assert "TreeEnsembleRegressor" in ops and "GatherElements" not in ops
    predicted = lightgbm.Booster(model_file=str(mq2008_lambdamart)).predict(s5.features)
    server = ServerProcess(tmp_path, model, "--challenger", str(tiny_artifact)).wait_ready()
    try:
        with RerankerClient(server.target) as client:
            info = client.model_info()
            assert (info.spec.ref, info.spec.backend) == (
                ModelRef("lambdamart", "lambdamart"),
                "onnx",
            )
            assert info.challenger == ModelRef("tiny-model", "run-seed1")
            queries = [query_of(s5, i, uses_initial_rank=False) for i in range(len(s5))]
            answers = [
                a for start in range(0, len(queries), 64)
                for a in client.rerank_batch(queries[start : start + 64])
            ]  # fmt: skip
    finally:
        assert server.stop() == 0
    interleaved = 0  # lists whose order is not LightGBM's
    for i, answer in enumerate(answers):
        rows = s5[i].rows
        want = predicted[rows][answer.request_indices]  # LightGBM's score of each candidate
        np.testing.assert_allclose(answer.scores, want, rtol=1e-6, atol=1e-6)
        assert sorted(answer.request_indices.tolist()) == list(range(len(want)))
        assert answer.challenger == ModelRef("tiny-model", "run-seed1")
        interleaved += bool(np.any(np.diff(answer.scores) > 0))  # not in LightGBM's order
    # the order is the interleaving of LightGBM's ranking and the challenger's (the teams are in
    # the impression log, not the response), which differs from LightGBM's alone in most lists
    assert interleaved > len(answers) // 2
