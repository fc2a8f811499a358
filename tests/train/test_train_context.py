"""Training with per-query context vectors, and every door reading the same context columns.

The task (``pipelines.synthetic.write_context_task``) is one that features alone cannot solve:
half the queries want large ``x . w`` and half small, and only the context says which. A model
trained with the context must beat one trained without it by a wide margin, must lose that edge
when the context is flipped, and ``ltr evaluate``, ``ltr score`` and a live ``ltr serve`` must
give each candidate the same score from the columns recorded at training time.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

from ltr.artifact import load_model
from ltr.cli import main
from ltr.data.dataset import load_dataset
from ltr.data.list_inputs import resolve
from ltr.errors import ConfigError, DataFormatError
from ltr.inference import score_frame, score_lists
from ltr.serve.client import RerankerClient
from ltr.serve.domain import RerankQuery
from ltr.train.config import load_train_config
from ltr.train.run import train
from pipelines.synthetic import write_context_task
from tests.serve._helpers import LTR, ServerProcess

COLUMNS = ["ctx_sign", "ctx_noise"]  # numeric columns, not the default list column


def _split_columns(path: Path, flip: bool = False) -> Path:
    """Rewrite a task file with its context as two numeric columns (signs negated if ``flip``)."""
    table = pq.read_table(path)
    values = np.asarray(table.column("context").to_pylist(), dtype=np.float32)  # (N, 2)
    if flip:
        values[:, 0] *= -1
    table = table.drop_columns(["context"])
    for j, name in enumerate(COLUMNS):
        table = table.append_column(name, pa.array(values[:, j]))
    out = path.with_name(path.stem + ("-flipped" if flip else "-split") + ".parquet")
    pq.write_table(table, out)
    return out


def _config(tmp: Path, files: dict[str, Path], context_dim: int, **extra):
    overrides = {
        "model": {
            "name": "setrank", "d_model": 16, "num_heads": 2, "num_blocks": 1, "d_ff": 32,
            "context_dim": context_dim,
        },
        "loss": "softmax",
        "data.train": [str(files["train"])],
        "data.valid": [str(files["valid"])],
        "data.test": [str(files["test"])],
        "data.batch_size": 16,
        "trainer.max_epochs": 10,
        "trainer.progress_bar": False,
        "optim.warmup_steps": 0,
        "tracking.enabled": False,
        "output_dir": str(tmp / f"out-{context_dim}"),
        **extra,
    }  # fmt: skip
    return load_train_config(None, overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The task's splits (context in two numeric columns) and models with and without it."""
    tmp = tmp_path_factory.mktemp("context-task")
    files = {
        name: _split_columns(write_context_task(tmp / f"{name}.parquet", q, seed=seed))
        for name, q, seed in (("train", 400, 1), ("valid", 100, 2), ("test", 200, 3))
    }
    tracked = {
        "data.context_columns": COLUMNS,
        "tracking.enabled": True,
        "tracking.tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "tracking.experiment": "context",
        "tracking.registered_model": "ctx",
        "tracking.alias": "candidate",
    }
    with_context = train(_config(tmp, files, 2, **tracked), verbose=False)
    without = train(_config(tmp, files, 0), verbose=False)
    return tmp, files, with_context, without


def _frame(path: Path, context: list[str] = COLUMNS):
    """A task file as a pandas feature frame: qid, one column per feature, the context columns."""
    import pandas as pd

    data = load_dataset(path)
    frame = pd.DataFrame(data.features.astype(np.float64), columns=data.feature_names)
    frame.insert(0, "qid", np.repeat(data.qids.astype(str), data.list_lengths))
    return pd.concat([frame, pq.read_table(path, columns=context).to_pandas()], axis=1)


def _evaluate(capsys, model, data, *extra) -> float:
    source = [] if model is None else ["--model", str(model)]
    assert main(["evaluate", *source, "--data", str(data), "--format", "json",
                 *extra]) == 0  # fmt: skip
    return json.loads(capsys.readouterr().out)["empty=1"]["ndcg@10"]


def test_the_context_model_learns_what_features_alone_cannot(trained, capsys):
    tmp, files, with_context, without = trained
    loaded = load_model(with_context.artifact_dir)
    assert loaded.manifest.model_config["context_dim"] == 2
    assert loaded.manifest.training["context_columns"] == COLUMNS
    # evaluate reads the columns the model was trained with; no option needed
    ndcg = _evaluate(capsys, with_context.artifact_dir, files["test"])
    blind = _evaluate(capsys, without.artifact_dir, files["test"])
    assert ndcg >= 0.85, ndcg
    assert ndcg >= blind + 0.15, (ndcg, blind)
    # with every query's sign flipped the model ranks upside down: below the blind model
    flipped = _split_columns(tmp / "test.parquet", flip=True)
    assert _evaluate(capsys, with_context.artifact_dir, flipped) < blind
    # the same columns named explicitly give the same number
    assert _evaluate(capsys, with_context.artifact_dir, files["test"], "--context-columns",
                     *COLUMNS) == ndcg  # fmt: skip


def test_offline_scores_are_single_list_forwards_with_that_lists_context(trained):
    _, files, with_context, _ = trained
    loaded = load_model(with_context.artifact_dir)
    test = load_dataset(files["test"], context=resolve({"context_dim": 2}, context_columns=COLUMNS))
    scores = score_lists(loaded.model, test, batch_size=64)  # padded batches
    table = pq.read_table(files["test"], columns=COLUMNS).to_pandas()
    with torch.no_grad():
        for q in (0, 57, len(test) - 1):
            rows = slice(int(test.offsets[q]), int(test.offsets[q + 1]))
            context = torch.tensor(table.iloc[rows.start][COLUMNS].to_numpy(np.float32))[None]
            x = torch.from_numpy(test.features[rows])[None]  # (1, n, F)
            mask = torch.ones(x.shape[:2], dtype=torch.bool)
            want = loaded.model(x, mask, None, context)[0].numpy()
            np.testing.assert_allclose(scores[rows], want, rtol=0, atol=1e-5)


def test_score_and_serve_give_evaluates_scores(trained, tmp_path, capsys):
    _, files, with_context, _ = trained
    artifact = with_context.artifact_dir
    test = load_dataset(files["test"], context=resolve({"context_dim": 2}, context_columns=COLUMNS))
    offline = score_lists(load_model(artifact).model, test)
    keys = list(zip(np.repeat(test.qids, test.list_lengths), test.doc_ids, strict=True))

    out = tmp_path / "scored"
    assert main(["score", "--model", str(artifact), "--input", str(files["test"]),
                 "--output", str(out), "--backend", "torch", "--quiet"]) == 0  # fmt: skip
    table = pads.dataset(str(out), format="parquet").to_table(columns=["qid", "doc_id", "score"])
    scored = dict(
        zip(
            zip(table["qid"].to_pylist(), table["doc_id"].to_pylist(), strict=True),
            table["score"].to_pylist(),
            strict=True,
        )
    )
    assert max(abs(scored[k] - s) for k, s in zip(keys, offline, strict=True)) <= 1e-5

    server = ServerProcess(tmp_path, artifact).wait_ready()  # ONNX export on load, default backend
    try:
        with RerankerClient(server.target) as client:
            picked = [0, 1, 99, len(test) - 1]
            spans = [slice(int(test.offsets[q]), int(test.offsets[q + 1])) for q in picked]
            one = client.rerank(
                list(test.doc_ids[spans[0]]), test.features[spans[0]], context=test.context[0]
            )
            batch = [
                RerankQuery.from_matrix(
                    list(test.doc_ids[rows]), test.features[rows], context=test.context[q]
                )
                for q, rows in zip(picked, spans, strict=True)
            ]
            for rows, ranked in zip(spans, [one, *client.rerank_batch(batch)[1:]], strict=True):
                got = dict(zip(ranked.ids, ranked.scores.tolist(), strict=True))
                want = dict(zip(test.doc_ids[rows], offline[rows].tolist(), strict=True))
                assert got.keys() == want.keys()
                assert max(abs(got[k] - want[k]) for k in want) <= 1e-5
        # `ltr rerank` asks the server what the model takes and sends the file's context
        proc = subprocess.run(
            [str(LTR), "rerank", "--server", server.target, "--data", str(files["test"]),
             "--query", str(test.qids[1]), "--context-columns", *COLUMNS, "--format", "json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        got = {c["id"]: c["score"] for c in json.loads(proc.stdout)["candidates"]}
        rows = spans[1]
        want = dict(zip(test.doc_ids[rows], offline[rows].tolist(), strict=True))
        assert got.keys() == want.keys()
        assert max(abs(got[k] - want[k]) for k in want) <= 1e-5
        # GetModelInfo names the columns training read the context from, so `ltr evaluate
        # --server` finds them without options and gets evaluate's numbers
        with RerankerClient(server.target) as client:
            assert client.model_info().spec.context_columns == tuple(COLUMNS)
        served = _evaluate(capsys, None, files["test"], "--server", server.target)
        assert served == pytest.approx(_evaluate(capsys, artifact, files["test"]), abs=1e-6)
    finally:
        assert server.stop() == 0


def test_context_settings_a_model_cannot_use_are_refused(trained, mq2008_dir):
    tmp, files, with_context, _ = trained
    # a context model on LETOR data: no file format for the vectors there
    letor = {"train": mq2008_dir / "S1.txt.xz", "valid": mq2008_dir / "S4.txt.xz"}
    letor["test"] = letor["valid"]
    with pytest.raises(DataFormatError, match="LETOR/SVMlight files cannot carry"):
        train(_config(tmp, letor, 2), verbose=False)
    # context columns for a model without a context vector name the config key
    with pytest.raises(ConfigError, match=r"leave out data\.context_columns"):
        train(_config(tmp, files, 0, **{"data.context_columns": COLUMNS}), verbose=False)
    # a feature frame without the context columns the model was trained with
    frame = _frame(files["test"]).head(5)
    with pytest.raises(DataFormatError, match=r"lacks column\(s\) ctx_noise .*context vector"):
        score_frame(load_model(with_context.artifact_dir), frame.drop(columns=["ctx_noise"]))
    varying = frame.assign(ctx_sign=np.arange(5.0))  # the first query has more than one row
    with pytest.raises(DataFormatError, match="varies within query"):
        score_frame(load_model(with_context.artifact_dir), varying)


def test_mlflow_pyfunc_reads_the_context_columns_of_a_feature_frame(trained, monkeypatch):
    tmp, files, with_context, _ = trained
    test = load_dataset(files["test"], context=resolve({"context_dim": 2}, context_columns=COLUMNS))
    offline = score_lists(load_model(with_context.artifact_dir).model, test)  # evaluate's path
    frame = _frame(files["test"])
    shuffled = frame.sample(frac=1.0, random_state=0)  # rows of a query need not be together
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model("models:/ctx@candidate")
    inputs = {c.name for c in pyfunc.metadata.get_input_schema().inputs}
    assert set(COLUMNS) <= inputs  # the signature keeps the context columns
    got = pyfunc.predict(shuffled)["score"].to_numpy()
    np.testing.assert_allclose(got, offline[shuffled.index.to_numpy()], rtol=0, atol=1e-5)
    # a flipped context changes the scores: the vector is read, not ignored
    flipped = shuffled.assign(ctx_sign=-shuffled["ctx_sign"])
    assert np.abs(pyfunc.predict(flipped)["score"].to_numpy() - got).max() > 0.1


def test_pyfunc_takes_the_default_list_column(tmp_path, monkeypatch):
    """A model trained on the default ``context`` list column: the pyfunc signature keeps that
    column as arrays, and a frame with one list per row scores as evaluate does."""
    from ltr.tracking import start_run
    from tests.serve._helpers import make_artifact

    path = write_context_task(tmp_path / "task.parquet", 6, seed=4)  # a `context` list column
    data = load_dataset(path, context=resolve({"context_dim": 2}))
    folder = make_artifact(tmp_path / "m", data, seed=7, context_dim=2)
    offline = score_lists(load_model(folder).model, data)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with start_run(experiment="list-column", tracking_uri=uri) as run:
        logged = run.log_model(
            folder, feature_names=list(data.feature_names), context_columns=["context"],
            context_dim=2,
        )  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    frame = _frame(path, context=["context"])
    assert isinstance(frame["context"].iloc[0], list | np.ndarray)
    got = pyfunc.predict(frame)["score"].to_numpy()
    np.testing.assert_allclose(got, offline, rtol=0, atol=1e-5)
