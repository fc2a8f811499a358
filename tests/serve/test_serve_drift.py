"""A real ``ltr serve`` watching the features it is sent: its Prometheus gauges hold each
feature's PSI and out-of-range share over the rows it scored, against the model's training
profile; a rescaled feature upstream shows up there and in the log; a model without a profile is
served as before, unmonitored."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.artifact import load_model
from ltr.cli import main
from ltr.drift import FeatureProfile, compare, profile_features
from ltr.serve.client import RerankerClient, query_of
from ltr.serve.domain import ModelRef, RerankQuery
from tests.serve._helpers import (
    ServerProcess,
    hand_psi,
    hand_stats,
    list_by_list_scores,
    make_artifact,
    metric,
)


def _send(server: ServerProcess, queries: list[RerankQuery]) -> None:
    with RerankerClient(server.target) as client:
        for start in range(0, len(queries), 64):
            client.rerank_batch(queries[start : start + 64])


def _gauges_once(server: ServerProcess, rows: int, timeout: float = 30.0) -> dict:
    """The metrics once the drift gauges cover ``rows`` rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = server.scrape()
        if metric(samples, "ltr_drift_rows") == rows:
            return samples
        time.sleep(0.2)
    raise AssertionError(f"the drift gauges never covered {rows} rows:\n{server.log()}")


def test_the_server_reports_each_features_drift(tmp_path, mq2008_dir, s1, s5, capsys):
    model = make_artifact(tmp_path / "model", s1, seed=1)
    ranker = load_model(str(model)).model
    assert main(["drift", "--model", str(model), "--data", str(mq2008_dir / "S1.txt.xz"),
                 "--save-profile"]) == 0  # fmt: skip
    assert "and the model's scores of them" in capsys.readouterr().out
    profile = FeatureProfile.load(model)
    # the scores profiled are the model's of S1's lists, each scored whole
    want_stats = hand_stats(list_by_list_scores(ranker, s1))
    np.testing.assert_allclose(profile.score.edges, want_stats["edges"], rtol=1e-5, atol=1e-6)
    tolerance = 2 / len(s1.features)  # a score at an edge may fall either side by an ulp
    np.testing.assert_allclose(profile.score.shares, want_stats["shares"], atol=tolerance)
    assert profile.score.mean == pytest.approx(want_stats["mean"], rel=1e-5)
    window = 3000  # more than S5's 2,874 rows
    log = tmp_path / "impressions"
    server = ServerProcess(
        tmp_path,
        model,
        "--drift.seconds",
        "0.2",
        "--drift.window_rows",
        str(window),
        "--impressions",
        str(log),
    ).wait_ready()
    assert "feature drift against the training data every 0.2 s" in server.log()
    try:
        # answered with their top 3 only; the model's scores of every candidate are compared
        plain = [replace(query_of(s5, i, uses_initial_rank=False), top_k=3) for i in range(len(s5))]
        _send(server, plain)
        samples = _gauges_once(server, len(s5.features))
        want = compare(profile, s5.features)  # the rows it was sent, in any order
        scores = list_by_list_scores(ranker, s5)
        assert metric(samples, "ltr_score_psi") == pytest.approx(
            hand_psi(profile.score, scores), rel=1e-6, abs=1e-9
        )
        outside = np.mean((scores < profile.score.minimum) | (scores > profile.score.maximum))
        assert metric(samples, "ltr_score_out_of_range") == pytest.approx(outside, abs=1e-12)
        for d in want:
            got = metric(samples, "ltr_feature_psi", feature=d.name)
            assert got == pytest.approx(d.psi, rel=1e-9, abs=1e-12), d.name
            outside = metric(samples, "ltr_feature_out_of_range", feature=d.name)
            assert outside == pytest.approx(d.out_of_range)
        assert max(d.psi for d in want) < 0.25
        assert "feature drift:" not in server.log()

        # upstream starts sending f5 tripled: the last 3,000 rows are mostly such lists
        moved = []
        for i in range(len(s5)):
            x = s5[i].features.copy()
            x[:, 4] *= 3.0
            moved.append(RerankQuery.from_matrix([str(r) for r in s5[i].rows], x))
        _send(server, moved)
        time.sleep(1.0)  # comparisons every 0.2 s: several since the last row came in
        samples = _gauges_once(server, window)
        assert metric(samples, "ltr_feature_psi", feature="f5") > 0.25
        assert metric(samples, "ltr_feature_out_of_range", feature="f5") > 0.05
        deadline = time.monotonic() + 10
        while "feature drift: 1 feature(s)" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "feature drift: 1 feature(s)" in server.log() and "f5 " in server.log()
        others = [metric(samples, "ltr_feature_psi", feature=f"f{j}") for j in range(1, 47)]
        assert sum(v > 0.25 for v in others) == 1  # f5 alone
    finally:
        assert server.stop() == 0

    # the lists it answered, read back from its impression log hour by hour: each hour's
    # comparison is that of the hour's rows, grouped here with datetime
    table = pq.read_table(log, columns=["session", "served_at", "features", "score"])
    logged = table.column("score").to_numpy()
    features = table.column("features").combine_chunks().flatten().to_numpy()
    features = features.reshape(len(table), -1)
    hours: dict = {}
    for i, (session, at) in enumerate(
        zip(table.column("session").to_pylist(), table.column("served_at").to_pylist(), strict=True)
    ):
        hours.setdefault(at.replace(minute=0, second=0, microsecond=0), []).append((i, session))
    capsys.readouterr()
    assert main(["drift", "--model", str(model), "--data", str(log), "--every", "hour",
                 "--min-lists", "1", "--format", "json"]) == 0  # fmt: skip
    periods = json.loads(capsys.readouterr().out)["periods"]
    assert len(table) == sum(min(3, n) for n in s5.list_lengths) + len(s5.features)
    assert [(p["start"], p["rows"], p["lists"]) for p in periods] == [
        (h.strftime("%Y-%m-%dT%H:%M:%SZ"), len(v), len({s for _, s in v}))
        for h, v in sorted(hours.items())
    ]
    for p, (_, v) in zip(periods, sorted(hours.items()), strict=True):
        want = {d.name: d.psi for d in compare(profile, features[[i for i, _ in v]])}
        assert {f["name"]: f["psi"] for f in p["features"]} == pytest.approx(want)
        # the scores it logged (the top 3 of each first list), all of the model in use
        hour_scores = logged[[i for i, _ in v]]
        assert p["score"]["rows"] == len(v)
        assert p["score"]["psi"] == pytest.approx(hand_psi(profile.score, hour_scores))


def test_a_model_without_a_profile_is_served_unmonitored(tmp_path, tiny_artifact, s5):
    server = ServerProcess(tmp_path, tiny_artifact, "--drift.seconds", "0.2").wait_ready()
    try:
        _send(server, [query_of(s5, i, uses_initial_rank=False) for i in range(20)])
        time.sleep(0.6)  # three comparisons' time
        samples = server.scrape()
        assert not [key for key in samples if key[0] == "ltr_feature_psi"]
        assert metric(samples, "ltr_drift_rows") == 0.0
        assert "carries no feature profile" in server.log()
        assert "feature drift against" not in server.log()
    finally:
        assert server.stop() == 0
    assert np.isfinite(s5.features).all()  # the lists sent were servable


def test_a_profile_that_cannot_be_used_costs_only_the_monitoring(tmp_path, s1, caplog):
    from ltr.drift import PROFILE
    from ltr.serve.models import load_served_model

    model = make_artifact(tmp_path / "model", s1, seed=1)
    (model / PROFILE).write_text("{not json")
    assert load_served_model(str(model), backend="torch").profile is None
    assert "is not a feature profile" in caplog.text
    profile_features(s1.features[:, :3], ["a", "b", "c"]).save(model)  # other features
    assert load_served_model(str(model), backend="torch").profile is None
    assert "names other features than the model reads" in caplog.text
    profile_features(s1.features, list(s1.feature_names)).save(model)
    assert load_served_model(str(model), backend="torch").profile is not None


def test_nothing_is_published_before_min_lists_and_a_swap_starts_over(s1):
    from types import SimpleNamespace

    from ltr.serve.drift import DriftMonitor

    profile = profile_features(s1.features, list(s1.feature_names))
    v1, v2 = ModelRef("ranker", "1"), ModelRef("ranker", "2")
    first = SimpleNamespace(profile=profile, spec=SimpleNamespace(ref=v1))
    second = SimpleNamespace(profile=profile, spec=SimpleNamespace(ref=v2))
    reports, waiting = [], []
    monitor = DriftMonitor(
        500,
        min_lists=3,
        on_report=lambda ref, report, rows, score: reports.append((ref, rows, score)),
        on_waiting=waiting.append,
    )
    assert monitor.publish() is None and waiting == [0]
    monitor.observe(first, [s1.features[:200], s1.features[200:299]])  # 2 lists
    assert monitor.publish() is None and waiting[-1] == 299 and not reports
    monitor.observe(first, [s1.features[299:300]])  # the third
    report = monitor.publish()
    assert reports == [(v1, 300, None)]  # a profile without scores: no score drift
    want = compare(profile, s1.features[:300])
    assert [d.psi for d in report] == [d.psi for d in want]
    monitor.observe(first, [s1.features[300:900]])  # the window keeps the last 500
    assert [d.psi for d in monitor.publish()] == [
        d.psi for d in compare(profile, s1.features[400:900])
    ]
    monitor.observe(second, [s1.features[:10]])  # a swap: a new window, below min_lists again
    assert monitor.publish() is None and waiting[-1] == 10


def test_a_feature_out_of_its_training_range_is_warned_of_below_the_psi_bound(s1, caplog):
    from types import SimpleNamespace

    from ltr.serve.drift import DriftMonitor

    profile = profile_features(s1.features, list(s1.feature_names))
    model = SimpleNamespace(profile=profile, spec=SimpleNamespace(ref=ModelRef("ranker", "1")))
    x = s1.features.copy()
    x[:, 24] *= 1.2  # f25 rescaled a little: values near its top leave the training range
    monitor = DriftMonitor(len(x), warn_psi=0.25, warn_out_of_range=0.01)
    monitor.observe(model, [x])
    report = {d.name: d for d in monitor.publish()}
    assert report["f25"].psi < 0.25  # PSI alone would not say
    outside = np.mean(x[:, 24] > s1.features[:, 24].max())
    assert report["f25"].out_of_range == pytest.approx(outside) and outside > 0.01
    assert "f25 (PSI" in caplog.text and "out of range" in caplog.text
    assert "f24 (PSI" not in caplog.text and "f26 (PSI" not in caplog.text


def test_the_scores_drift_is_warned_of_and_its_return_too(s1, caplog):
    """A window of scores shifted by two training standard deviations passes PSI 0.25 (a
    warning with the hand PSI), and a window of the training scores again is back within."""
    import logging
    from types import SimpleNamespace

    from ltr.serve.drift import DriftMonitor

    rng = np.random.default_rng(0)
    trained = rng.normal(size=len(s1.features)).astype(np.float32)  # as a model gives them
    profile = profile_features(s1.features, list(s1.feature_names), scores=trained)
    model = SimpleNamespace(profile=profile, spec=SimpleNamespace(ref=ModelRef("ranker", "3")))
    reports = []
    monitor = DriftMonitor(
        1000, on_report=lambda ref, report, rows, score: reports.append((rows, score))
    )
    caplog.set_level(logging.INFO, logger="ltr.serve")
    x, shifted = s1.features[:1000], trained[:1000] + np.float32(2.0)
    monitor.observe(model, [x[:400], x[400:]], [shifted[:400], shifted[400:]])
    monitor.publish()
    rows, score = reports[-1]
    assert rows == 1000 and score.psi == pytest.approx(hand_psi(profile.score, shifted))
    assert score.psi > 0.25 and score.mean_shift == pytest.approx(
        (shifted.mean() - trained.mean()) / trained.std(), rel=1e-6
    )
    assert "score drift: ranker 3's scores of the last 1000 rows are past PSI 0.25" in caplog.text
    monitor.publish()  # still past: not said twice
    assert caplog.text.count("score drift: ranker 3") == 1
    monitor.observe(model, [x], [trained[:1000]])  # the window now holds unshifted scores
    monitor.publish()
    assert reports[-1][1].psi == pytest.approx(hand_psi(profile.score, trained[:1000]))
    assert reports[-1][1].psi < 0.25
    assert "score drift: the model's scores are back within PSI 0.25" in caplog.text
