"""``ltr clicks interleaving``'s table keeps its columns aligned when a model's version is a
training run's id (32 hex characters), wider than the default column."""

from __future__ import annotations

import numpy as np

from ltr.cli import main
from ltr.serve.domain import ModelRef, RankedList, ValidQuery
from ltr.serve.impressions import ImpressionLog

RUN_ID = "0123456789abcdef0123456789abcdef"


def test_the_table_fits_a_run_id_version(tmp_path, capsys):
    log = ImpressionLog(tmp_path / "log", rows_per_file=1000, flush_seconds=60)
    sessions = []
    for k in range(4):
        query = ValidQuery(f"q{k}", ["a", "b"], np.ones((2, 3), np.float32), None, None, None)
        ranked = RankedList(
            f"q{k}", ["a", "b"], np.array([1.0, 0.5], np.float32), np.array([0, 1]),
            ModelRef("ltr-mq2008-setrank", RUN_ID), teams=np.array([0, 1], np.int8),
            challenger=ModelRef("c", "2"),
        )  # fmt: skip
        sessions.append(log.record(query, ranked, ("x", "y", "z")))
    log.close()
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("session,doc_id\n" + "".join(f"{s},b\n" for s in sessions))
    argv = ["clicks", "interleaving", str(tmp_path / "log"), "--clicks", str(clicks)]
    assert main(argv) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    model = f"ltr-mq2008-setrank {RUN_ID}"
    assert row.startswith(f"{model} c 2")  # the whole name, one space, the next column
    assert header.index("challenger") == row.index("c 2") == len(model) + 1
    assert len(header) == len(row)
    for title in ("sessions", "clicked", "model wins", "chall. wins", "ties", "p-value"):
        # right-aligned: each value ends where its title does
        end = header.index(title) + len(title)
        assert row[end - 1] != " " and row[end : end + 1] in (" ", "")
