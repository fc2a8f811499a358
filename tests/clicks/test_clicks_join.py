"""``ltr clicks join``: a server's impression log and the clicks users made, into a click log and
the features the lists were served with; then ``ltr clicks labels`` reads both."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltr.cli import main
from ltr.clicks.log import read_log
from ltr.data.dataset import load_dataset
from ltr.serve.domain import ModelRef, RankedList, ValidQuery
from ltr.serve.impressions import ImpressionLog

NAMES = ("bm25", "tf", "len")


def serve_lists(folder, rng, sessions_per_query=4, names=NAMES):
    """Log ``sessions_per_query`` random rankings of two queries' 5 documents; return each
    session's (qid, ranking, features by doc) in order. Document q1-d0's features change in the
    last session of q1 (a feature that moved between impressions)."""
    log = ImpressionLog(folder, rows_per_file=1000, flush_seconds=60)
    features = {
        (q, f"{q}-d{i}"): rng.normal(size=len(names)).astype(np.float32)
        for q in ("q1", "q2")
        for i in range(5)
    }
    served = {}
    for k in range(sessions_per_query):
        for q in ("q1", "q2"):
            if q == "q1" and k == sessions_per_query - 1:
                features[(q, "q1-d0")] = features[(q, "q1-d0")] + 10
            ids = [f"{q}-d{i}" for i in range(5)]
            x = np.stack([features[(q, d)] for d in ids])
            query = ValidQuery(q, ids, x, None, None, None)
            order = rng.permutation(5)
            ranked = RankedList(
                q, [ids[i] for i in order], rng.normal(size=5).astype(np.float32),
                order.astype(np.int64), ModelRef("m", "1"),
            )  # fmt: skip
            session = log.record(query, ranked, names)
            served[session] = (q, ranked.ids, dict(features))
            time.sleep(0.002)  # distinct served_at
    log.close()
    return served


def test_join_makes_a_click_log_and_the_latest_features_that_labels_read(tmp_path, capsys):
    rng = np.random.default_rng(0)
    served = serve_lists(tmp_path / "impressions", rng)
    sessions = list(served)
    # clicks: the top document of every session, the 5th of one (beyond --max-position 3), one
    # twice, and one on a list the log does not hold
    rows = [(s, served[s][1][0]) for s in sessions]
    rows += [(sessions[0], served[sessions[0]][1][4]), rows[1], ("no-such-list", "q1-d1")]
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("session,doc_id\n" + "".join(f"{s},{d}\n" for s, d in rows))
    out, feats = tmp_path / "log.parquet", tmp_path / "features.parquet"
    assert main(["clicks", "join", str(tmp_path / "impressions"), "--clicks", str(clicks),
                 "--out", str(out), "--features-out", str(feats),
                 "--max-position", "3"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert (
        f"{len(sessions) * 3} impressions in {len(sessions)} sessions, {len(sessions)} clicks"
        in printed
    )
    assert "2 clicks matched no logged impression" in printed  # position 5, and no-such-list

    log = read_log(out)  # the checks of every `ltr clicks` command
    table = pq.read_table(out).to_pylist()
    want = {
        (s, doc): int(doc == ranking[0])
        for s, (_, ranking, _) in served.items()
        for doc in ranking[:3]
    }
    assert {(r["session"], r["doc_id"]): r["click"] for r in table} == want
    assert len(log) == len(want)
    for r in table:
        assert served[r["session"]][1].index(r["doc_id"]) + 1 == r["position"]

    data = load_dataset(feats)
    assert tuple(data.feature_names) == NAMES
    latest = served[sessions[-1]][2]  # every pair's latest features: those of the last session
    shown = {(served[s][0], d) for s in sessions for d in served[s][1][:3]}
    got = {
        (data.qids[data.query_of_row[i]], data.doc_ids[i]): data.features[i]
        for i in range(data.num_rows)
    }
    assert set(got) == shown
    for key, x in got.items():
        np.testing.assert_array_equal(x, latest[key])

    labelled = tmp_path / "labels.parquet"
    assert main(["clicks", "labels", str(out), "--features", str(feats), "--eta", "1",
                 "--out", str(labelled), "--quiet"]) == 0  # fmt: skip
    assert load_dataset(labelled).num_rows == len(shown)


def test_join_refuses_what_it_cannot_read(tmp_path, capsys):
    rng = np.random.default_rng(1)
    serve_lists(tmp_path / "a", rng, sessions_per_query=1)
    serve_lists(tmp_path / "b", rng, sessions_per_query=1, names=("x", "y", "z"))
    clicks, out = tmp_path / "clicks.parquet", tmp_path / "o.parquet"

    def refused(*argv: str, why: str) -> None:
        assert main(["clicks", "join", *argv, "--clicks", str(clicks), "--out", str(out)]) != 0
        assert why in capsys.readouterr().err
        assert not out.exists()

    pq.write_table(pa.table({"session": ["s"], "doc": ["d"]}), clicks)
    refused(str(tmp_path / "a"), why="the click file has no 'doc_id' column")
    pq.write_table(pa.table({"session": ["s"], "doc_id": ["d"]}), clicks)
    refused(str(tmp_path / "a"), str(tmp_path / "b"), "--features-out", str(tmp_path / "f"),
            why="were served with other features")  # fmt: skip
    not_a_log = tmp_path / "x.parquet"
    pq.write_table(pa.table({"qid": ["q"]}), not_a_log)
    refused(str(not_a_log), why="not an impression log (no 'session', 'doc_id'")
    refused(str(tmp_path), why="no impressions-*.parquet files in this folder")
    refused(str(tmp_path / "a"), "--max-position", "0", why="--max-position must be at least 1")


def test_clicks_written_in_parts_join_as_one_file(tmp_path, capsys):
    """A front end's clicks as a folder of parts (a CSV, a TSV and a Parquet file, and a hidden
    file still being written) join exactly as the same clicks in one file; a folder without
    click files is refused."""
    rng = np.random.default_rng(2)
    served = serve_lists(tmp_path / "impressions", rng)
    rows = [(s, ranking[k]) for s, (_, ranking, _) in served.items() for k in (0, 2)]
    whole = tmp_path / "clicks.csv"
    whole.write_text("session,doc_id\n" + "".join(f"{s},{d}\n" for s, d in rows))
    parts = tmp_path / "parts"
    parts.mkdir()
    third = len(rows) // 3
    (parts / "a.csv").write_text(
        "session,doc_id\n" + "".join(f"{s},{d}\n" for s, d in rows[:third])
    )
    (parts / "b.tsv").write_text(
        "session\tdoc_id\n" + "".join(f"{s}\t{d}\n" for s, d in rows[third : 2 * third])
    )
    session, doc = zip(*rows[2 * third :], strict=True)
    pq.write_table(pa.table({"doc_id": list(doc), "session": list(session)}), parts / "c.parquet")
    unseen = [(s, ranking[1]) for s, (_, ranking, _) in served.items()]  # clicks not to read
    (parts / ".d.csv.tmp").write_text("session,doc_id\n{},{}\n".format(*unseen[0]))
    (parts / ".e.csv").write_text("session,doc_id\n{},{}\n".format(*unseen[1]))

    outs = {}
    for name, clicks in (("whole", whole), ("parts", parts)):
        outs[name] = tmp_path / f"{name}.parquet"
        assert main(["clicks", "join", str(tmp_path / "impressions"), "--clicks", str(clicks),
                     "--out", str(outs[name]), "--quiet"]) == 0  # fmt: skip
    assert pq.read_table(outs["parts"]).equals(pq.read_table(outs["whole"]))
    assert pq.read_table(outs["parts"]).column("click").to_numpy().sum() == len(rows)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["clicks", "join", str(tmp_path / "impressions"), "--clicks", str(empty),
                 "--out", str(tmp_path / "o.parquet")]) == 2  # fmt: skip
    assert "no click files (*.parquet, *.csv, *.tsv) in this folder" in capsys.readouterr().err
    # without --clicks: the impression folder's click log, which this one has not
    assert main(["clicks", "join", str(tmp_path / "impressions"),
                 "--out", str(tmp_path / "o.parquet")]) == 2  # fmt: skip
    assert "pass --clicks FILE_OR_FOLDER: none of the impression folders has a click log" in (
        capsys.readouterr().err
    )
