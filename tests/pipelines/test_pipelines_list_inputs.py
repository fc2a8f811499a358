"""``ltr score`` for models with initial ranks and a context vector, against the server's path.

The reference scores come from ``ltr.serve`` (request validation, the server's own padding and
one forward pass per batch of lists), from a real ``ltr serve`` process over gRPC, and from the
PyTorch model called on one unpadded list at a time -- never from the batch scorer itself.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ltr.artifact import load_model
from ltr.cli import main
from ltr.errors import ConfigError, DataFormatError
from ltr.predictor import load_predictor
from ltr.serve.domain import RerankQuery
from ltr.serve.models import model_spec
from ltr.serve.scoring import score_batch
from ltr.serve.validation import validate
from pipelines.lists import score_flat
from pipelines.scoring import ScoreOptions, read_scored, score_to_parquet
from pipelines.synthetic import write_synthetic
from tests.pipelines.helpers import make_model, reference_ranks

CONTEXT_DIM = 3
MAX_RANK = 8  # lists are longer: ranks above it share its embedding, as in the server


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny SetRanks: with initial ranks, with a context vector, with both."""
    root = tmp_path_factory.mktemp("list-input-models")
    return {
        "rank": make_model(root / "rank", seed=11, use_initial_rank=True, max_rank=MAX_RANK),
        "context": make_model(root / "context", seed=12, context_dim=CONTEXT_DIM),
        "both": make_model(
            root / "both",
            seed=13,
            use_initial_rank=True,
            max_rank=MAX_RANK,
            context_dim=CONTEXT_DIM,
        ),
    }


def _groups(qids: list) -> list[tuple[object, list[int]]]:
    """``(qid, rows)`` of each run of equal query ids, in order (plain Python)."""
    rows = range(len(qids))
    return [(q, list(r)) for q, r in itertools.groupby(rows, key=lambda i: qids[i])]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> pa.Table:
    """600 synthetic rows (lists of 2-20) plus ``initial_rank`` (a shuffled 1..n per query, some
    0 = unknown, many above MAX_RANK), a ``context`` list column and the same context as three
    numeric columns ``ctx0..ctx2``."""
    path = tmp_path_factory.mktemp("list-inputs") / "base.parquet"
    base = pq.read_table(write_synthetic(path, 600, min_list=2, max_list=20, seed=4))
    rng = np.random.default_rng(8)
    ranks = np.zeros(base.num_rows, dtype=np.int64)
    context = np.zeros((base.num_rows, CONTEXT_DIM), dtype=np.float32)
    for _, rows in _groups(base.column("qid").to_pylist()):
        ranks[rows] = rng.permutation(len(rows)) + 1
        context[rows] = rng.standard_normal(CONTEXT_DIM).astype(np.float32)
    ranks[rng.random(base.num_rows) < 0.1] = 0
    assert base.column("qid")[-2] == base.column("qid")[-1]  # the faults below need this
    out = base.append_column("initial_rank", pa.array(ranks))
    out = out.append_column("context", pa.array(list(context), type=pa.list_(pa.float32())))
    for j in range(CONTEXT_DIM):
        out = out.append_column(f"ctx{j}", pa.array(context[:, j].astype(np.float64)))
    return out


def _write(table: pa.Table, path: Path, row_group_size: int = 100) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)  # queries straddle row groups
    return path


def _served(
    model_dir: Path, table: pa.Table, *, ranks: np.ndarray | None, context: bool
) -> dict[str, float]:
    """Score per doc id through the server's validation, padding and batch scoring."""
    loaded = load_model(model_dir)
    spec = model_spec(loaded, "torch")
    predictor = load_predictor(loaded, "torch")
    docs = table.column("doc_id").to_pylist()
    features = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    vectors = table.column("context").to_pylist()
    queries = [
        validate(
            RerankQuery.from_matrix(
                [docs[i] for i in rows],
                features[rows],
                query_id=str(qid),
                initial_ranks=None if ranks is None else ranks[rows],
                context=np.asarray(vectors[rows[0]], np.float32) if context else None,
            ),
            spec,
            max_candidates=1000,
        )
        for qid, rows in _groups(table.column("qid").to_pylist())
    ]
    out: dict[str, float] = {}
    for start in range(0, len(queries), 16):
        for ranked in score_batch(predictor, spec.ref, queries[start : start + 16]):
            out.update(zip(ranked.ids, ranked.scores.tolist(), strict=True))
    return out


def _by_doc(scored: pa.Table) -> dict[str, float]:
    return dict(
        zip(scored.column("doc_id").to_pylist(), scored.column("score").to_pylist(), strict=True)
    )


def _assert_close(got: dict[str, float], want: dict[str, float], atol: float = 1e-6) -> None:
    assert got.keys() == want.keys()
    docs = sorted(want)
    np.testing.assert_allclose([got[d] for d in docs], [want[d] for d in docs], rtol=0, atol=atol)


def test_rank_model_scores_equal_the_servers(models, table, tmp_path, capsys):
    src = _write(table, tmp_path / "in.parquet")
    out = tmp_path / "out"
    argv = ["score", "--model", str(models["rank"]), "--input", str(src), "--output", str(out)]
    assert main([*argv, "--partition-rows", "250", "--quiet"]) == 0, capsys.readouterr().err
    scored = read_scored(out)
    assert scored.column_names == [*table.column_names, "score", "rank"]
    assert scored.drop_columns(["score", "rank"]).equals(table)  # every input column, in order
    ranks = table.column("initial_rank").to_numpy()
    want = _served(models["rank"], table, ranks=ranks, context=False)
    _assert_close(_by_doc(scored), want)
    qids = np.asarray(scored.column("qid").to_pylist(), dtype=object)
    np.testing.assert_array_equal(
        scored.column("rank").to_numpy(), reference_ranks(scored.column("score").to_numpy(), qids)
    )
    # the ranks matter: with every rank unknown the server gives other scores
    unknown = _served(models["rank"], table, ranks=np.zeros_like(ranks), context=False)
    assert max(abs(unknown[d] - want[d]) for d in want) > 1e-3


def test_context_model_reads_a_list_column_or_numeric_columns(models, table, tmp_path):
    src = _write(table, tmp_path / "in.parquet")
    want = _served(models["context"], table, ranks=None, context=True)
    score_to_parquet(models["context"], src, tmp_path / "list", ScoreOptions(progress=False))
    _assert_close(_by_doc(read_scored(tmp_path / "list")), want)
    columns = ScoreOptions(context_columns=["ctx0", "ctx1", "ctx2"], progress=False)
    score_to_parquet(models["context"], src, tmp_path / "cols", columns)
    _assert_close(_by_doc(read_scored(tmp_path / "cols")), want)
    # the context matters: a zero context gives other scores
    zeroed = table.set_column(
        table.schema.get_field_index("context"),
        "context",
        pa.array([[0.0] * CONTEXT_DIM] * table.num_rows, type=pa.list_(pa.float32())),
    )
    other = _served(models["context"], zeroed, ranks=None, context=True)
    assert max(abs(other[d] - want[d]) for d in want) > 1e-3


def test_real_server_gives_the_batch_scores(models, table, tmp_path):
    from ltr.serve.client import RerankerClient
    from tests.serve._helpers import LTR, ServerProcess

    src = _write(table, tmp_path / "in.parquet")
    score_to_parquet(models["both"], src, tmp_path / "out", ScoreOptions(progress=False))
    batch = _by_doc(read_scored(tmp_path / "out"))
    docs = table.column("doc_id").to_pylist()
    features = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    ranks = table.column("initial_rank").to_numpy()
    vectors = table.column("context").to_pylist()
    queries = [
        RerankQuery.from_matrix(
            [docs[i] for i in rows],
            features[rows],
            query_id=str(qid),
            initial_ranks=ranks[rows],
            context=np.asarray(vectors[rows[0]], np.float32),
        )
        for qid, rows in _groups(table.column("qid").to_pylist())
    ]
    server = ServerProcess(tmp_path, models["both"], "--backend", "torch").wait_ready()
    served: dict[str, float] = {}
    try:
        with RerankerClient(server.target) as client:
            for start in range(0, len(queries), 32):
                for ranked in client.rerank_batch(queries[start : start + 32]):
                    served.update(zip(ranked.ids, ranked.scores.tolist(), strict=True))
        # `ltr rerank` sends the file's order as initial ranks and the query's context column
        qid, rows = _groups(table.column("qid").to_pylist())[3]
        proc = subprocess.run(
            [str(LTR), "rerank", "--server", server.target, "--data", str(src),
             "--query", str(qid), "--format", "json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        one = {c["id"]: c["score"] for c in json.loads(proc.stdout)["candidates"]}
    finally:
        assert server.stop() == 0
    _assert_close(batch, served)
    in_order = np.arange(1, len(rows) + 1)
    query_rows = table.take(rows)
    _assert_close(one, _served(models["both"], query_rows, ranks=in_order, context=True), 1e-5)


def test_score_flat_equals_single_unpadded_list_forwards(models, table):
    """The padding of ranks and contexts, against the model on one whole list at a time."""
    predictor = load_predictor(str(models["both"]))
    features = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    ranks = table.column("initial_rank").to_numpy()
    vectors = table.column("context").to_pylist()
    groups = _groups(table.column("qid").to_pylist())
    offsets = np.array([0] + [rows[-1] + 1 for _, rows in groups])
    context = np.array([vectors[rows[0]] for _, rows in groups], dtype=np.float32)
    got = score_flat(
        predictor, features, offsets, initial_rank=ranks, context=context, batch_size=7
    )
    with torch.inference_mode():
        for q, (_, rows) in enumerate(groups):
            a, b = rows[0], rows[-1] + 1
            want = predictor.loaded.model(
                torch.from_numpy(features[a:b])[None],  # (1, n, F): no padding at all
                torch.ones(1, b - a, dtype=torch.bool),
                torch.tensor(ranks[a:b])[None],  # (1, n)
                torch.from_numpy(context[q])[None],  # (1, C)
            )[0].numpy()
            np.testing.assert_allclose(got[a:b], want, rtol=0, atol=2e-6)


def test_shuffled_rows_keep_their_scores(models, table, tmp_path):
    rng = np.random.default_rng(2)
    order = [
        i for _, rows in _groups(table.column("qid").to_pylist()) for i in rng.permutation(rows)
    ]
    shuffled = table.take(pa.array(order))  # each row keeps its own rank and context
    assert shuffled.column("doc_id").to_pylist() != table.column("doc_id").to_pylist()
    for name in ("rank", "both"):
        a = score_to_parquet(
            models[name], _write(table, tmp_path / "a.parquet"), tmp_path / f"a-{name}"
        )
        b = score_to_parquet(
            models[name], _write(shuffled, tmp_path / "b.parquet"), tmp_path / f"b-{name}"
        )
        assert a.rows == b.rows == table.num_rows
        got = read_scored(tmp_path / f"b-{name}")
        assert got.column("doc_id").to_pylist() == shuffled.column("doc_id").to_pylist()
        _assert_close(_by_doc(got), _by_doc(read_scored(tmp_path / f"a-{name}")))


def test_ranks_from_input_order(models, table, tmp_path, capsys):
    plain = table.drop_columns(["initial_rank"])
    src = _write(plain, tmp_path / "in.parquet")
    argv = ["score", "--model", str(models["rank"]), "--input", str(src), "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "has no 'initial_rank' column" in err
    assert "--initial-rank-column" in err and "--initial-rank-from-order" in err
    assert not (tmp_path / "missing" / "_manifest.json").exists()
    out = tmp_path / "by-order"
    assert main([*argv, "--output", str(out), "--initial-rank-from-order"]) == 0
    positions = np.concatenate(
        [np.arange(1, len(rows) + 1) for _, rows in _groups(plain.column("qid").to_pylist())]
    )
    want = _served(models["rank"], table, ranks=positions, context=False)
    _assert_close(_by_doc(read_scored(out)), want)


def _last_but_one(table: pa.Table, name: str, value, kind: pa.DataType | None = None) -> pa.Table:
    """``table`` with ``value`` in column ``name`` at row ``n - 2`` (inside the last query)."""
    values = table.column(name).to_pylist()
    values[-2] = value
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, kind))


CONTEXT_LIST = pa.list_(pa.float32())
NUMERIC_CONTEXT = {"context_columns": ["ctx0", "ctx1", "ctx2"]}
BAD_INPUTS = {
    # case: (model, fault(table, last query's value), options, message with {q} = last query)
    "fractional rank": (
        "rank",
        lambda t, v: _last_but_one(t, "initial_rank", 2.5, pa.float64()),
        {},
        "query {q} has the initial rank 2.5 in column 'initial_rank'; ranks must be whole",
    ),
    "null rank": (
        "rank",
        lambda t, v: _last_but_one(t, "initial_rank", None),
        {},
        "query {q} has a row without an initial rank in column 'initial_rank'",
    ),
    "negative rank": (
        "rank",
        lambda t, v: _last_but_one(t, "initial_rank", -1),
        {},
        "query {q} has the negative initial rank -1 in column 'initial_rank'",
    ),
    "missing rank column": (
        "rank",
        lambda t, v: t,
        {"initial_rank_column": "position"},
        "has no 'position' column; name the column of 1-based ranks (0 = unknown) with "
        "--initial-rank-column, or pass --initial-rank-from-order",
    ),
    "text ranks": (
        "rank",
        lambda t, v: t.set_column(
            t.schema.get_field_index("initial_rank"), "initial_rank", pa.array(["1"] * len(t))
        ),
        {},
        "column 'initial_rank' of",  # ... must hold integer initial ranks, got string
    ),
    "short context": (
        "context",
        lambda t, v: _last_but_one(t, "context", v[:2], CONTEXT_LIST),
        {},
        "query {q} has a context vector of 2 values in column 'context' but the model needs 3",
    ),
    "nan context": (
        "context",
        lambda t, v: _last_but_one(t, "context", [v[0], float("nan"), v[2]], CONTEXT_LIST),
        {},
        "query {q} has a non-finite context value (nan) in column 'context'",
    ),
    "null context": (
        "context",
        lambda t, v: _last_but_one(t, "context", None, CONTEXT_LIST),
        {},
        "query {q} has a row without a context vector in column 'context'",
    ),
    "varying context": (
        "context",
        lambda t, v: _last_but_one(t, "ctx1", v[1] + 1.0),
        NUMERIC_CONTEXT,
        "the context column 'ctx1' varies within query {q}",
    ),
    "infinite context column": (
        "context",
        lambda t, v: _last_but_one(t, "ctx2", float("inf")),
        NUMERIC_CONTEXT,
        "query {q} has a non-finite context value (inf) in column 'ctx2'",
    ),
    "two context columns": (
        "context",
        lambda t, v: t,
        {"context_columns": ["ctx0", "ctx1"]},
        "2 numeric context column(s) given but the model needs a context vector of 3 values",
    ),
    "no context column": (
        "context",
        lambda t, v: t,
        {"context_columns": ["user"]},
        "has no column 'user'; name one list column or 3 numeric columns with --context-columns",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_ranks_and_contexts_are_reported_before_anything_is_written(
    case, models, table, tmp_path
):
    model, fault, options, message = BAD_INPUTS[case]
    last = table.column("qid")[table.num_rows - 1].as_py()
    bad = fault(table, table.column("context")[table.num_rows - 1].as_py())
    src = _write(bad, tmp_path / "in.parquet")
    out = tmp_path / "out"
    # several partitions: the fault sits in the last one, yet nothing at all may be written
    opts = ScoreOptions(partition_rows=100, progress=False, **options)
    with pytest.raises(DataFormatError) as info:
        score_to_parquet(models[model], src, out, opts)
    assert message.format(q=repr(last)) in str(info.value)
    assert not out.exists()


def test_overwrite_with_bad_input_keeps_the_finished_job(models, table, tmp_path):
    out = tmp_path / "out"
    score_to_parquet(models["context"], _write(table, tmp_path / "good.parquet"), out)
    before = read_scored(out)
    bad = _last_but_one(table, "context", [1.0, 2.0], CONTEXT_LIST)
    with pytest.raises(DataFormatError, match="context vector of 2 values"):
        options = ScoreOptions(overwrite=True, progress=False)
        score_to_parquet(models["context"], _write(bad, tmp_path / "bad.parquet"), out, options)
    assert read_scored(out).equals(before)


def test_options_the_model_cannot_use_are_errors(models, model_dir, table, tmp_path):
    src = _write(table, tmp_path / "in.parquet")
    with pytest.raises(ConfigError, match="this model takes no context vector"):
        score_to_parquet(models["rank"], src, tmp_path / "a", ScoreOptions(context_columns=["c"]))
    with pytest.raises(ConfigError, match="this model does not use initial ranks"):
        options = ScoreOptions(initial_rank_from_order=True)
        score_to_parquet(models["context"], src, tmp_path / "b", options)
    with pytest.raises(ConfigError, match="exclude each other"):
        options = ScoreOptions(initial_rank_column="r", initial_rank_from_order=True)
        score_to_parquet(models["rank"], src, tmp_path / "c", options)
    letor = tmp_path / "in.txt"
    letor.write_text("0 qid:1 1:0.5 2:0.1\n1 qid:1 1:0.2 2:0.3\n")
    with pytest.raises(ConfigError, match="LETOR input cannot carry"):
        score_to_parquet(models["context"], letor, tmp_path / "d")
    # a model without these inputs ignores such columns and records nothing new in its job
    plain = tmp_path / "plain"
    score_to_parquet(model_dir, src, plain, ScoreOptions(progress=False))
    assert "list_inputs" not in (plain / "_manifest.json").read_text()
    assert read_scored(plain).column_names == [*table.column_names, "score", "rank"]


@pytest.mark.slow
def test_spark_engine_equals_local_engine(spark, models, table, tmp_path):
    from pipelines.spark import score_dataframe, score_spark

    score_to_parquet(models["both"], _write(table, tmp_path / "in.parquet"), tmp_path / "local")
    local = read_scored(tmp_path / "local")
    # scatter every query's rows over the file: Spark groups them by query id itself
    order = np.random.default_rng(0).permutation(table.num_rows)
    scattered = _write(table.take(pa.array(order)), tmp_path / "scattered.parquet")
    result = score_spark(spark, str(models["both"]), str(scattered), str(tmp_path / "spark"))
    assert result.rows == table.num_rows
    got = pq.read_table(tmp_path / "spark")
    assert set(got.column_names) == {*table.column_names, "score", "rank"}
    _assert_close(_by_doc(got), _by_doc(local))
    ranks = dict(zip(got.column("doc_id").to_pylist(), got.column("rank").to_pylist(), strict=True))
    want = dict(
        zip(local.column("doc_id").to_pylist(), local.column("rank").to_pylist(), strict=True)
    )
    assert ranks == want
    # column faults are found on the driver, value faults on the executors; nothing is committed
    df = spark.read.parquet(str(scattered))
    with pytest.raises(DataFormatError, match="has no 'position' column"):
        score_dataframe(df, models["both"], initial_rank_column="position")
    with pytest.raises(ConfigError, match="needs the local engine"):
        score_dataframe(df, models["both"], initial_rank_from_order=True)
    last = table.column("qid")[table.num_rows - 1].as_py()
    varying = _last_but_one(table, "context", [9.0, 9.0, 9.0], CONTEXT_LIST)
    bad = _write(varying.take(pa.array(order)), tmp_path / "bad.parquet")
    with pytest.raises(  # the executor's error, rebuilt on the driver
        DataFormatError, match=f"the context column 'context' varies within query {last!r}"
    ):
        score_spark(spark, str(models["both"]), str(bad), str(tmp_path / "bad"))
    assert not list((tmp_path / "bad").glob("*.parquet"))


def test_report_scores_rank_and_context_models_as_evaluate_does(models, table, tmp_path, capsys):
    # both doors give a rank model each list's input order and a context model the data's vector
    src = _write(table, tmp_path / "in.parquet")
    out = tmp_path / "report"
    argv = ["report", "--data", str(src), "--model", f"both={models['both']}",
            "--model", f"rank={models['rank']}", "--output", str(out), "--no-mlflow",
            "--bootstrap", "20", "--permutations", "20"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    reported = json.loads((out / "metrics.json").read_text())["metrics"]
    for name in ("both", "rank"):
        argv = ["evaluate", "--model", str(models[name]), "--data", str(src), "--format", "json"]
        assert main(argv) == 0
        evaluated = json.loads(capsys.readouterr().out)
        for conv, values in evaluated.items():
            for metric, value in values.items():
                assert reported[conv][name][metric]["mean"] == pytest.approx(value, abs=1e-6)
