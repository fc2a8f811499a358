"""``ltr drift --rescore`` on a model with a per-query context vector: refused up front with the
real reason (drift scores feature rows alone), not the claim that the data lacks the vector."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltr.cli import main
from ltr.data import load_dataset
from ltr.data.parquet import chunk_to_table, schema
from ltr.data.svmlight import RowChunk
from ltr.drift import ProfileSample
from tests.serve._helpers import make_artifact


def test_rescore_of_a_context_model_says_why_it_cannot(tmp_path, mq2008_dir, capsys):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    model = make_artifact(tmp_path / "ctx", s1, seed=8, context_dim=2)
    assert main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--save-profile"]) == 0  # fmt: skip
    assert "the model's scores are not profiled: the model reads a per-query context vector " in (
        capsys.readouterr().out
    )
    # as ltr train writes it: a profile with the model's scores of its training lists
    sample = ProfileSample()
    sample.add(s1.features, np.random.default_rng(0).standard_normal(len(s1.features)))
    sample.profile(list(s1.feature_names), source=["S1"]).save(model)
    rows = slice(0, int(s1.offsets[4]))
    qids = np.repeat(s1.qids, s1.list_lengths)[rows]
    chunk = RowChunk(qids, s1.doc_ids[rows], s1.labels[rows], s1.features[rows])
    table = chunk_to_table(chunk, schema(s1.num_features, list(s1.feature_names)))
    vectors = pa.array([[1.0, -1.0]] * len(qids), pa.list_(pa.float32()))
    data = tmp_path / "ctx.parquet"  # the data has the context column the model reads
    pq.write_table(table.append_column("context", vectors), data)
    assert main(["drift", "--model", str(model), "--data", str(data), "--rescore"]) == 2
    assert capsys.readouterr().err == (
        f"ltr drift: error: --rescore cannot score {model}: the model reads a per-query context "
        "vector (from context), which ltr drift does not read: it scores feature rows alone; "
        "leave out --rescore (an impression log's recorded scores are compared without it)\n"
    )
