"""``ltr export``: a graph with dynamic batch and list sizes that matches PyTorch, or nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ltr.artifact import ONNX, load_model
from ltr.cli import main
from ltr.data.parquet import chunk_to_table, schema
from ltr.data.svmlight import RowChunk
from ltr.errors import ConfigError, DataFormatError
from ltr.export.onnx import (
    ParityError,
    check_parity,
    export_checked,
    input_names,
    lists_from_files,
    parity_batches_from_lists,
    parity_lists,
    synthetic_lists,
)
from ltr.export.onnx_predictor import OnnxPredictor
from ltr.predictor import TorchPredictor, load_predictor
from tests.serve._helpers import make_artifact

LTR = Path(sys.executable).with_name("ltr")


@pytest.fixture(scope="module")
def exported(artifact, tmp_path_factory, mq2008_dir):
    """``ltr export --output`` run as a real command; returns (output folder, its stdout)."""
    out = tmp_path_factory.mktemp("exported") / "model"
    done = subprocess.run(
        [str(LTR), "export", "--model", str(artifact), "--data", str(mq2008_dir / "S5.txt.xz"),
         "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def padded(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    longest = max(len(x) for x in lists)
    features = np.full((len(lists), longest, lists[0].shape[1]), np.nan, dtype=np.float32)
    mask = np.zeros((len(lists), longest), dtype=bool)
    for b, x in enumerate(lists):
        features[b, : len(x)] = x
        mask[b, : len(x)] = True
    return features, mask  # padded slots hold NaN: they must not reach real scores


def test_export_writes_a_graph_that_onnx_runtime_runs_like_pytorch(
    exported, artifact, s5_data
) -> None:
    out, stdout = exported
    assert stdout.startswith(f"wrote {out / ONNX}: ONNX Runtime matches PyTorch on 64 lists")
    assert not (artifact / ONNX).exists()  # --output leaves the source artifact alone
    assert sorted(p.name for p in out.iterdir()) == ["ltr_model.json", "model.onnx", "model.pt"]

    session = ort.InferenceSession(str(out / ONNX), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert list(inputs) == ["features", "mask"]
    batch, length, width = inputs["features"].shape
    assert isinstance(batch, str) and isinstance(length, str) and width == 46  # dynamic B, L
    model = load_model(artifact).model
    lists = [s5_data[i].features for i in range(len(s5_data))]
    for size in (1, 7, 40):  # batch sizes and paddings the parity check never used
        for start in range(0, 40, size):
            features, mask = padded(lists[start : start + size])
            got = session.run(None, {"features": features, "mask": mask})[0]
            with torch.no_grad():
                want = model(torch.from_numpy(features), torch.from_numpy(mask)).numpy()
            assert np.isfinite(got[mask]).all()
            np.testing.assert_allclose(got[mask], want[mask], rtol=0, atol=1e-5)


def test_a_graph_that_disagrees_is_reported(exported, s1_data, tmp_path, mq2008_dir) -> None:
    out, _ = exported
    other = load_model(make_artifact(tmp_path / "other", s1_data, seed=22))
    lists, _ = lists_from_files([mq2008_dir / "S5.txt.xz"], 8)
    report = check_parity(other, out / ONNX, parity_batches_from_lists(other, lists))
    assert not report.passed and report.max_abs_diff > 1e-2  # another model's graph
    same = load_model(out)
    assert check_parity(same, out / ONNX, parity_batches_from_lists(same, lists)).passed


def test_no_graph_is_written_when_the_check_fails(artifact, tmp_path, mq2008_dir) -> None:
    loaded = load_model(artifact)
    lists, _ = lists_from_files([mq2008_dir / "S5.txt.xz"], 8)
    with pytest.raises(ParityError, match=r"differ by up to .* so model\.onnx was not written"):
        # no two engines agree to 0 on 8 real lists: the check must refuse
        export_checked(loaded, tmp_path, parity_batches_from_lists(loaded, lists), atol=0.0)
    assert list(tmp_path.iterdir()) == []  # neither model.onnx nor a temporary file


def test_initial_rank_and_context_inputs_export_too(s1_data, tmp_path) -> None:
    folder = make_artifact(tmp_path / "m", s1_data, seed=23, use_initial_rank=True, context_dim=3)
    loaded = load_model(folder)
    assert input_names(loaded) == ["features", "mask", "initial_rank", "context"]
    batches = parity_batches_from_lists(loaded, synthetic_lists(loaded))
    report = export_checked(loaded, folder, batches)
    assert report.passed and (folder / ONNX).exists()
    engine, reference = load_predictor(folder, "onnx"), TorchPredictor(loaded)
    assert isinstance(engine, OnnxPredictor)
    rng = np.random.default_rng(0)
    features, mask = padded([s1_data[i].features for i in (0, 3, 8)])
    ranks = np.where(mask, rng.permutation(mask.shape[1])[None, :] + 1, 0)
    context = rng.standard_normal((3, 3)).astype(np.float32)
    got = engine.predict(features, mask, ranks, context)
    want = reference.predict(np.nan_to_num(features), mask, ranks, context)
    np.testing.assert_allclose(got[mask], want[mask], rtol=0, atol=1e-5)


def _context_parquet(data, path: Path, vectors: dict[str, list[float]]) -> Path:
    """The first queries of ``data`` as an ltr Parquet file with a ``context`` list column."""
    rows = slice(0, int(data.offsets[len(vectors)]))
    qids = np.repeat(data.qids, data.list_lengths)[rows]
    chunk = RowChunk(qids, data.doc_ids[rows], data.labels[rows], data.features[rows])
    table = chunk_to_table(chunk, schema(data.num_features, list(data.feature_names)))
    column = pa.array([vectors[q] for q in qids], pa.list_(pa.float32()))
    pq.write_table(table.append_column("context", column), path)
    return path


def test_a_context_model_is_checked_on_the_datas_own_context_vectors(
    s1_data, tmp_path, mq2008_dir, capsys
) -> None:
    vectors = {q: [float(i), -0.5 * i] for i, q in enumerate(s1_data.qids[:5])}  # by hand
    data = _context_parquet(s1_data, tmp_path / "ctx.parquet", vectors)
    folder = make_artifact(tmp_path / "m", s1_data, seed=31, context_dim=2)
    loaded = load_model(folder)

    batches, where = parity_lists(loaded, [data])
    assert where == str(data)
    got = np.concatenate([b.context for b in batches])  # (lists, 2), lists in file order
    np.testing.assert_array_equal(got, np.asarray(list(vectors.values()), dtype=np.float32))
    assert main(["export", "--model", str(folder), "--data", str(data), "--output",
                 str(tmp_path / "out")]) == 0  # fmt: skip
    assert (tmp_path / "out" / ONNX).exists()
    assert "on 5 lists (" in capsys.readouterr().out

    # LETOR data carries no vector: random ones, and the description says so
    letor = mq2008_dir / "S1.txt.xz"
    _, where = parity_lists(loaded, [letor], 4)
    assert "context vectors drawn at random" in where
    with pytest.raises(ConfigError, match="needs Parquet data"):
        parity_lists(loaded, [letor], 4, context_columns=["context"])
    # Parquet without the column the model reads: an error naming it, nothing exported
    pq.write_table(pq.read_table(data).drop_columns(["context"]), tmp_path / "bare.parquet")
    with pytest.raises(DataFormatError, match="context"):
        parity_lists(loaded, [tmp_path / "bare.parquet"])
    # a model without a context vector refuses the option
    plain = load_model(make_artifact(tmp_path / "p", s1_data, seed=32))
    with pytest.raises(ConfigError, match="takes no context vector"):
        parity_lists(plain, [data], context_columns=["context"])
