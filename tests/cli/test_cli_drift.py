"""``ltr drift``: a model's training profile against LETOR files, Parquet files and a folder shaped
like the server's impression log; a rescaled feature is found, by the PSI computed here by hand
from the profile's bins, and fails the pipeline with --fail-above; models without a profile are
told how to get one."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.artifact import load_model
from ltr.cli import main
from ltr.data import load_dataset
from ltr.drift import PROFILE, FeatureProfile, profile_features
from tests.serve._helpers import hand_psi, hand_stats, list_by_list_scores, make_artifact


def _profiled(tmp_path, mq2008_dir, s1):
    """A model artifact (seeded weights) given the profile of S1 by `ltr drift --save-profile`,
    the model's scores of S1's lists included."""
    model = make_artifact(tmp_path / "model", s1, seed=1)
    assert main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--save-profile"]) == 0  # fmt: skip
    return model


def _drift(capsys, *argv: str) -> tuple[int, dict, str]:
    """Exit status, the JSON report and what went to stderr."""
    code = main(["drift", *argv, "--format", "json"])
    said = capsys.readouterr()
    return code, json.loads(said.out[said.out.index("{") :]), said.err


def _rescaled(source, target, column: int, factor: float) -> None:
    """``source`` (ltr Parquet) with one feature column multiplied, schema and metadata kept."""
    table = pq.read_table(source)
    width = table.schema.field("features").type.list_size
    values = table.column("features").combine_chunks().flatten().to_numpy().reshape(-1, width)
    values = values.copy()
    values[:, column] *= factor
    array = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), pa.float32()), width)
    index = table.schema.get_field_index("features")
    pq.write_table(table.set_column(index, table.schema.field("features"), array), target)


def test_a_rescaled_feature_is_found_and_fails_the_pipeline(tmp_path, mq2008_dir, capsys):
    s1, s5 = (load_dataset(mq2008_dir / f"S{i}.txt.xz") for i in (1, 5))
    model = make_artifact(tmp_path / "model", s1, seed=1)  # made by hand: no profile yet
    code = main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S5.txt.xz")])
    assert code == 2
    assert "--save-profile" in capsys.readouterr().err  # how to get one
    assert main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--save-profile"]) == 0  # fmt: skip
    assert "2,933 rows" in capsys.readouterr().out  # S1's rows
    profile = FeatureProfile.load(model)
    assert profile is not None and profile.rows == len(s1.features)

    # the training data against its own profile: nothing moved
    code, same, _ = _drift(capsys, "--model", str(model), "--data", str(mq2008_dir / "S1.txt.xz"))
    assert code == 0 and same["rows"] == len(s1.features)
    assert max(f["psi"] for f in same["features"]) == 0.0

    # S5, then S5 with f5 tripled, as Parquet
    s5_parquet = tmp_path / "s5.parquet"
    assert main(["convert", str(mq2008_dir / "S5.txt.xz"), str(s5_parquet)]) == 0
    _rescaled(s5_parquet, tmp_path / "s5-moved.parquet", column=4, factor=3.0)
    code, plain, _ = _drift(capsys, "--model", str(model), "--data", str(s5_parquet))
    assert code == 0
    moved_file = str(tmp_path / "s5-moved.parquet")
    code, moved, err = _drift(capsys, "--model", str(model), "--data", moved_file,
                              "--fail-above", "0.25")  # fmt: skip
    assert code == 1 and "f5's PSI" in err
    top = moved["features"][0]
    assert top["name"] == "f5" and top["level"] == "major"
    want = hand_psi(profile.features[4], s5.features[:, 4] * 3.0)
    assert top["psi"] == pytest.approx(want, rel=1e-9)
    above = np.mean(s5.features[:, 4] * 3 > s1.features[:, 4].max())
    assert top["out_of_range"] == pytest.approx(above)
    # the same by its share outside the training range alone: f5's, not PSI's bound, fails it
    code, _, err = _drift(capsys, "--model", str(model), "--data", moved_file,
                          "--fail-out-of-range", f"{above * 0.99}")  # fmt: skip
    assert code == 1 and "of f5's values are outside its training range" in err
    code, _, _ = _drift(capsys, "--model", str(model), "--data", moved_file,
                        "--fail-out-of-range", f"{above * 1.01}")  # fmt: skip
    assert code == 0
    # every other feature reads as it did before the rescaling, and as computed by hand
    before = {f["name"]: f["psi"] for f in plain["features"]}
    for f in moved["features"][1:]:
        assert f["psi"] == before[f["name"]]
    j = 24  # f25
    assert before["f25"] == pytest.approx(hand_psi(profile.features[j], s5.features[:, j]))


def test_a_folder_like_an_impression_log(tmp_path, mq2008_dir, capsys, monkeypatch):
    """Only a ``features`` column is needed; a file of other features (a model swap) is skipped.
    Read in blocks of 128 rows, the folder's 1,000 rows compare as S1's first 1,000 do."""
    import ltr.cli.drift

    monkeypatch.setattr(ltr.cli.drift, "BLOCK_ROWS", 128)
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    model = _profiled(tmp_path, mq2008_dir, s1)
    log = tmp_path / "impressions"
    log.mkdir()
    names = list(s1.feature_names)

    def write(path, rows: np.ndarray, feature_names: list[str]) -> None:
        width = rows.shape[1]
        features = pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel(), pa.float32()), width)
        table = pa.table({"qid": pa.array(["q"] * len(rows)), "features": features})
        meta = {b"ltr.feature_names": json.dumps(feature_names).encode()}
        pq.write_table(table.replace_schema_metadata(meta), path)

    write(log / "impressions-1.parquet", s1.features[:1000], names)
    write(log / "impressions-2.parquet", s1.features[1000:1200, :3], ["a", "b", "c"])
    write(log / ".impressions-3.parquet.tmp", s1.features[:5], names)  # being written: ignored
    code, report, _ = _drift(capsys, "--model", str(model), "--data", str(log))
    assert code == 0 and report["rows"] == 1000
    profile = FeatureProfile.load(model)
    for f in report["features"]:
        j = names.index(f["name"])
        assert f["psi"] == pytest.approx(hand_psi(profile.features[j], s1.features[:1000, j]))
        stats, x = profile.features[j], s1.features[:1000, j].astype(np.float64)
        if stats.std > 0:  # (constant features: tests/data/test_data_drift.py)
            shift = (x.mean() - stats.mean) / stats.std
            assert f["mean_shift"] == pytest.approx(shift, rel=1e-9, abs=1e-12)
    code = main(["drift", "--model", str(model), "--data", str(log)])
    said = capsys.readouterr().out
    assert code == 0 and "skipped:" in said and "impressions-2.parquet" in said
    # named on its own, a file of other features is an error, not a skip
    code = main(["drift", "--model", str(model), "--data", str(log / "impressions-2.parquet")])
    assert code == 2 and "3 features other than the model's 46" in capsys.readouterr().err


def test_an_ensemble_carries_its_first_profiled_members_profile(tmp_path, mq2008_dir, capsys):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    a = make_artifact(tmp_path / "a", s1, seed=1)
    b = make_artifact(tmp_path / "b", s1, seed=2)
    assert main(["drift", "--model", str(b), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--save-profile"]) == 0  # fmt: skip
    assert main(["ensemble", "--model", str(a), str(b), "--output", str(tmp_path / "ens"),
                 "--no-mlflow", "--quiet"]) == 0  # fmt: skip
    assert (tmp_path / "ens" / PROFILE).read_bytes() == (b / PROFILE).read_bytes()
    capsys.readouterr()


def test_save_profile_refuses_a_registry_model(capsys):
    code = main(["drift", "--model", "models:/ranker@champion", "--data", "x.parquet",
                 "--save-profile"])  # fmt: skip
    assert code == 2 and "not an MLflow model" in capsys.readouterr().err


def test_one_column_per_feature_reads_as_the_ltr_schema(tmp_path, mq2008_dir, capsys):
    s1, s5 = (load_dataset(mq2008_dir / f"S{i}.txt.xz") for i in (1, 5))
    model = _profiled(tmp_path, mq2008_dir, s1)
    columns = {"qid": pa.array(np.repeat(s5.qids.astype(str), s5.list_lengths))}
    columns.update({n: pa.array(s5.features[:, j]) for j, n in enumerate(s5.feature_names)})
    pq.write_table(pa.table(columns), tmp_path / "wide.parquet")
    _, wide, _ = _drift(capsys, "--model", str(model), "--data", str(tmp_path / "wide.parquet"))
    _, letor, _ = _drift(capsys, "--model", str(model), "--data", str(mq2008_dir / "S5.txt.xz"))
    assert wide == letor and wide["rows"] == len(s5.features)
    pq.write_table(pa.table({"qid": ["q"], "f1": [1.0]}), tmp_path / "narrow.parquet")
    code = main(["drift", "--model", str(model), "--data", str(tmp_path / "narrow.parquet")])
    assert (
        code == 2 and "nor a column for each of the model's 46 features" in capsys.readouterr().err
    )


def _log_file(path, features: np.ndarray, sessions: np.ndarray, times: list, **more) -> None:
    """A Parquet file shaped like the server's impression log (``session``, ``features``,
    ``served_at`` as a UTC millisecond timestamp, and ``more`` columns)."""
    width = features.shape[1]
    table = pa.table(
        {
            "session": pa.array(sessions.astype(str)),
            "features": pa.FixedSizeListArray.from_arrays(
                pa.array(features.ravel(), pa.float32()), width
            ),
            "served_at": pa.array(times, pa.timestamp("ms", tz="UTC")),
            **{name: pa.array(values) for name, values in more.items()},
        }
    )
    meta = {b"ltr.feature_names": json.dumps([f"f{j + 1}" for j in range(width)]).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)


def test_every_day_of_an_impression_log_is_compared_apart(
    tmp_path, mq2008_dir, capsys, monkeypatch
):
    """Three days of S5's lists: one as they are, one with f5 tripled, one of too few lists to
    judge; each judged day's PSI is the hand PSI of that day's rows alone, and --fail-above
    names the days that broke. Files are read 97 rows at a time, so blocks end inside lists
    and files."""
    from datetime import datetime, timedelta

    import ltr.cli.drift

    monkeypatch.setattr(ltr.cli.drift, "BLOCK_ROWS", 97)

    s1, s5 = (load_dataset(mq2008_dir / f"S{i}.txt.xz") for i in (1, 5))
    model = _profiled(tmp_path, mq2008_dir, s1)
    profile = FeatureProfile.load(model)
    lists = np.repeat(np.arange(len(s5.list_lengths)), s5.list_lengths)  # each row's list
    day = [lists < 60, (lists >= 60) & (lists < 120), (lists >= 120) & (lists < 123)]
    x = s5.features.copy()
    x[day[1], 4] *= 3.0  # f5 tripled on the second day
    log = tmp_path / "impressions"
    log.mkdir()
    # Saturday 21, Sunday 22 and Monday 23 November; each day's rows in two files, the first
    # at midnight and the second in the day's last millisecond
    first = datetime(2026, 11, 21)
    for d, rows in enumerate(day):
        for half, picked in enumerate(np.array_split(np.flatnonzero(rows), 2)):
            when = first + timedelta(days=d + half) - timedelta(milliseconds=half)
            _log_file(log / f"impressions-{d}-{half}.parquet", x[picked], lists[picked],
                      [when] * len(picked))  # fmt: skip
    code, report, err = _drift(capsys, "--model", str(model), "--data", str(log),
                               "--every", "day", "--min-lists", "20",
                               "--fail-above", "0.25")  # fmt: skip
    periods = report["periods"]
    assert [p["start"] for p in periods] == [f"2026-11-{d}T00:00:00Z" for d in (21, 22, 23)]
    assert [p["rows"] for p in periods] == [int(r.sum()) for r in day]
    assert [p["lists"] for p in periods] == [60, 60, 3]
    assert [p["judged"] for p in periods] == [True, True, False]
    assert periods[-1]["features"] == []
    hand = [
        [hand_psi(profile.features[j], x[rows, j]) for j in range(x.shape[1])] for rows in day[:2]
    ]
    for p, psi in zip(periods, hand, strict=False):
        got = {f["name"]: f["psi"] for f in p["features"]}
        assert [got[f"f{j + 1}"] for j in range(x.shape[1])] == pytest.approx(psi)
    assert hand[1][4] > 0.25 and hand[1][4] == max(hand[1])  # the tripled f5 stands out
    # exit status 1, and a line for each day with a feature past the bound, naming its worst
    assert code == 1 and "in the day from 2026-11-22: f5's PSI" in err
    assert err.count("\n") == sum(max(psi) > 0.25 for psi in hand)
    assert ("2026-11-21" in err) == (max(hand[0]) > 0.25)

    # weeks start on Monday: Saturday and Sunday in the week of the 16th, Monday in the next
    code, weekly, _ = _drift(capsys, "--model", str(model), "--data", str(log),
                             "--every", "week", "--min-lists", "1")  # fmt: skip
    assert [(p["start"], p["rows"]) for p in weekly["periods"]] == [
        ("2026-11-16T00:00:00Z", int(day[0].sum() + day[1].sum())),
        ("2026-11-23T00:00:00Z", int(day[2].sum())),
    ]
    # by the hour, as a table: each day's two files fall in its first and last hour
    assert main(["drift", "--model", str(model), "--data", str(log), "--every", "hour",
                 "--min-lists", "20"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    for d in (21, 22, 23):
        assert f"2026-11-{d}T00:00" in table and f"2026-11-{d}T23:00" in table
    assert "6 hour(s)" in table and table.count("too few lists to compare") == 2  # day 3's


def test_every_needs_timestamps(tmp_path, mq2008_dir, capsys):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    model = _profiled(tmp_path, mq2008_dir, s1)
    capsys.readouterr()
    code = main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--every", "day"])  # fmt: skip
    assert code == 2 and "LETOR file, which has no served_at" in capsys.readouterr().err
    rows = s1.features[:50]
    _log_file(tmp_path / "log.parquet", rows, np.zeros(50), [None] * 50)
    code = main(["drift", "--model", str(model), "--data", str(tmp_path / "log.parquet"),
                 "--every", "day"])  # fmt: skip
    said = capsys.readouterr()
    assert code == 2 and "50 row(s) with no served_at" in said.out
    assert "no row has a served_at" in said.err
    code = main(["drift", "--model", str(model), "--data", str(tmp_path / "log.parquet"),
                 "--every", "day", "--time-column", "session"])  # fmt: skip
    assert code == 2 and "holds object values, not timestamps" in capsys.readouterr().err
    code = main(["drift", "--model", str(model), "--data", str(tmp_path / "log.parquet"),
                 "--every", "day", "--time-column", "when"])  # fmt: skip
    assert code == 2 and "log.parquet has no when column" in capsys.readouterr().err


def test_the_models_logged_scores_are_compared_with_its_training_scores(
    tmp_path, mq2008_dir, capsys, monkeypatch
):
    """An impression log's scores, against the scores the model gave its training lists: only
    rows this model scored count (version 7's are left out); a day at a time with --every;
    --fail-score-above fails the pipeline, and refuses data that has no scores to judge."""
    from datetime import datetime

    import ltr.cli.drift

    monkeypatch.setattr(ltr.cli.drift, "BLOCK_ROWS", 97)
    s1, s5 = (load_dataset(mq2008_dir / f"S{i}.txt.xz") for i in (1, 5))
    model = _profiled(tmp_path, mq2008_dir, s1)
    profile = FeatureProfile.load(model)
    assert profile.score is not None
    loaded = load_model(str(model))
    scores = list_by_list_scores(loaded.model, s5).astype(np.float64)
    lists = np.repeat(np.arange(len(s5.list_lengths)), s5.list_lengths)
    first, second, theirs = lists < 60, (lists >= 60) & (lists < 120), lists >= 120
    logged = scores.copy()
    logged[second] += 2 * profile.score.std  # the second day's scores moved up
    logged[theirs] = -100.0  # another version's, far off: they must not count
    version = np.where(theirs, "7", loaded.served_version)  # as the server logs this artifact
    days = np.where(first, datetime(2026, 11, 21), datetime(2026, 11, 22))
    log = tmp_path / "impressions"
    log.mkdir()
    _log_file(log / "impressions-a.parquet", s5.features, lists, list(days), score=logged,
              model_name=[loaded.served_name] * len(lists), model_version=version)  # fmt: skip
    ours = first | second

    code, report, _ = _drift(capsys, "--model", str(model), "--data", str(log))
    assert code == 0
    assert report["score"]["psi"] == pytest.approx(hand_psi(profile.score, logged[ours]))
    outside = np.mean(
        (logged[ours] < profile.score.minimum) | (logged[ours] > profile.score.maximum)
    )
    assert report["score"]["out_of_range"] == pytest.approx(outside)
    assert report["score"]["rows"] == ours.sum()
    assert report["score_rows_of_other_models"] == theirs.sum()
    assert report["rows"] == len(lists)  # the features of every row are compared

    code, daily, err = _drift(capsys, "--model", str(model), "--data", str(log), "--every",
                              "day", "--min-lists", "20", "--fail-score-above", "0.25")  # fmt: skip
    hand = [hand_psi(profile.score, logged[rows]) for rows in (first, second)]
    assert [p["score"]["psi"] for p in daily["periods"]] == pytest.approx(hand)
    assert [p["score"]["rows"] for p in daily["periods"]] == [first.sum(), second.sum()]
    assert hand[1] > 0.25 and code == 1
    assert "in the day from 2026-11-22: the model's scores' PSI" in err
    assert ("2026-11-21" in err) == (hand[0] > 0.25)

    # the table says the same
    assert main(["drift", "--model", str(model), "--data", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"the model's scores: PSI {hand_psi(profile.score, logged[ours]):.4f}" in out
    assert f"({theirs.sum():,} rows scored by other models left out)" in out

    # no scores to judge: LETOR data, or a profile without them
    code = main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S5.txt.xz"),
                 "--fail-score-above", "0.25"])  # fmt: skip
    assert code == 2 and "needs the model's logged scores, but DATA has no score column" in (
        capsys.readouterr().err
    )
    profile_features(s1.features, list(s1.feature_names)).save(model)
    code, report, _ = _drift(capsys, "--model", str(model), "--data", str(log))
    assert report["score"] is None
    assert "profile holds no scores" in report["score_not_compared"]


def test_a_profile_of_rows_without_lists_has_no_scores(tmp_path, mq2008_dir, capsys):
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    model = make_artifact(tmp_path / "model", s1, seed=1)
    columns = {n: pa.array(s1.features[:, j]) for j, n in enumerate(s1.feature_names)}
    pq.write_table(pa.table(columns), tmp_path / "wide.parquet")  # no qid: no lists to score
    assert main(["drift", "--model", str(model), "--data", str(tmp_path / "wide.parquet"),
                 "--save-profile"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "the model's scores are not profiled:" in out and "has no qid column" in out
    profile = FeatureProfile.load(model)
    assert profile.score is None and profile.rows == len(s1.features)


def test_rescore_scores_each_list_whole_across_blocks(tmp_path, mq2008_dir, capsys, monkeypatch):
    """--rescore on data without logged scores: S5 as Parquet read 97 rows at a time (lists
    split between blocks) gives the hand PSI of the model's scores of each list scored alone,
    as the LETOR file does; a list whose rows come apart is refused."""
    import ltr.cli.drift

    monkeypatch.setattr(ltr.cli.drift, "BLOCK_ROWS", 97)
    s1, s5 = (load_dataset(mq2008_dir / f"S{i}.txt.xz") for i in (1, 5))
    model = _profiled(tmp_path, mq2008_dir, s1)
    profile = FeatureProfile.load(model)
    want = hand_psi(profile.score, list_by_list_scores(load_model(str(model)).model, s5))
    columns = {"qid": pa.array(np.repeat(s5.qids.astype(str), s5.list_lengths))}
    columns.update({n: pa.array(s5.features[:, j]) for j, n in enumerate(s5.feature_names)})
    table = pa.table(columns)
    pq.write_table(table, tmp_path / "s5.parquet")
    for data in (tmp_path / "s5.parquet", mq2008_dir / "S5.txt.xz"):
        code, report, _ = _drift(capsys, "--model", str(model), "--data", str(data), "--rescore")
        assert code == 0 and report["score"]["rows"] == len(s5.features)
        assert report["score"]["psi"] == pytest.approx(want, rel=1e-9), data
    # the first row moved to the end: its list's rows are no longer together
    order = np.r_[1 : len(table), 0]
    pq.write_table(table.take(order), tmp_path / "apart.parquet")
    code = main(["drift", "--model", str(model), "--data", str(tmp_path / "apart.parquet"),
                 "--rescore"])  # fmt: skip
    assert code == 2
    assert f"the rows of list '{s5.qids[0]}' (qid) are not together" in capsys.readouterr().err
    code = main(["drift", "--model", str(model), "--data", str(tmp_path / "s5.parquet"),
                 "--rescore", "--every", "day"])  # fmt: skip
    assert code == 2 and "--rescore compares DATA as a whole" in capsys.readouterr().err


def test_save_profile_samples_data_a_block_at_a_time(tmp_path, mq2008_dir, capsys, monkeypatch):
    """--save-profile over S1 as Parquet read 97 rows at a time, with room for 500 rows: the
    profile holds the 500 rows whose keys (uniform draws in row order, seed 0) are the smallest,
    with the model's scores of their lists each scored whole; a list whose rows come apart is
    refused, and no profile is written."""
    import ltr.cli.drift
    import ltr.drift

    monkeypatch.setattr(ltr.cli.drift, "BLOCK_ROWS", 97)
    monkeypatch.setattr(ltr.drift, "MAX_ROWS", 500)
    s1 = load_dataset(mq2008_dir / "S1.txt.xz")
    model = make_artifact(tmp_path / "model", s1, seed=1)
    columns = {"qid": pa.array(np.repeat(s1.qids.astype(str), s1.list_lengths))}
    columns.update({n: pa.array(s1.features[:, j]) for j, n in enumerate(s1.feature_names)})
    table = pa.table(columns)
    pq.write_table(table, tmp_path / "s1.parquet")
    assert main(["drift", "--model", str(model), "--data", str(tmp_path / "s1.parquet"),
                 "--save-profile"]) == 0  # fmt: skip
    assert f"{len(s1.features):,} rows and the model's scores" in capsys.readouterr().out
    profile = FeatureProfile.load(model)
    assert profile.rows == len(s1.features)
    keys = np.random.default_rng(0).random(len(s1.features))
    picked = np.sort(np.argsort(keys)[:500])
    scores = list_by_list_scores(load_model(str(model)).model, s1)
    for got, values in (
        (profile.score, scores[picked]),
        *((profile.features[j], s1.features[picked, j]) for j in (0, 10, 45)),
    ):
        want = hand_stats(values)
        np.testing.assert_allclose(got.edges, want["edges"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.shares, want["shares"], atol=1e-12)
        for key in ("mean", "std", "minimum", "maximum"):
            assert getattr(got, key) == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    # the first row moved to the end: its list's rows are no longer together
    other = make_artifact(tmp_path / "other", s1, seed=1)
    pq.write_table(table.take(np.r_[1 : len(table), 0]), tmp_path / "apart.parquet")
    code = main(["drift", "--model", str(other), "--data", str(tmp_path / "apart.parquet"),
                 "--save-profile"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"--save-profile: the rows of list '{s1.qids[0]}' (qid)" in err
    assert FeatureProfile.load(other) is None
