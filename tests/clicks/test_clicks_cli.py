"""`ltr clicks simulate | propensity | labels`, then `ltr train` on the result, as a user would."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ltr.cli import main
from tests.pipelines.helpers import LTR, ONE_THREAD

REPO = Path(__file__).resolve().parents[2]


def ltr_process(*args, cwd=None):
    """``ltr ARGS`` in its own process, as a user runs it."""
    return subprocess.run(
        [LTR, *map(str, args)],
        capture_output=True,
        text=True,
        env=ONE_THREAD,
        cwd=cwd,
        timeout=600,
    )


def ltr(*args):
    """``ltr ARGS`` through the same entry point in this process: the same parser, exit codes
    and output, without a second import of torch for every call (2-3 s each)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_clicks_to_a_trained_model(tmp_path, mq2008_dir):
    """From simulated clicks to a trained model; the last step, training, runs as its own
    process, as a user runs it."""
    s1, s2, s3 = (mq2008_dir / f"S{i}.txt.xz" for i in (1, 2, 3))
    for name, data, seed in (("train", s1, 0), ("valid", s2, 1)):
        done = ltr(
            "clicks",
            "simulate",
            data,
            "--ranker-feature",
            "f25",
            "--sessions",
            30,
            "--seed",
            seed,
            "--out",
            tmp_path / f"{name}-log.parquet",
        )
        assert done.returncode == 0, done.stderr
        assert "impressions" in done.stdout
    done = ltr(
        "clicks", "propensity", tmp_path / "train-log.parquet", "--out", tmp_path / "prop.json"
    )
    assert done.returncode == 0, done.stderr
    assert "true theta_k" in done.stdout and "converged" in done.stdout
    assert "warning" not in done.stderr  # 30 sessions per query are enough for plain EM

    done = ltr(
        "clicks",
        "labels",
        tmp_path / "train-log.parquet",
        "--features",
        s1,
        "--eta",
        1,
        "--out",
        tmp_path / "train.parquet",
    )
    assert done.returncode == 0, done.stderr
    # The labels, recomputed from the log with pandas: the mean of click * k (= click / theta_k)
    # over each document's impressions.
    log = pq.read_table(tmp_path / "train-log.parquet").to_pandas()
    log["weighted"] = log.click * log.position
    expected = log.groupby(["qid", "doc_id"]).weighted.mean()
    out = pq.read_table(tmp_path / "train.parquet").to_pandas().set_index(["qid", "doc_id"])
    assert len(out) == len(expected)
    np.testing.assert_allclose(out.label.loc[expected.index], expected, rtol=1e-6)

    done = ltr(
        "clicks",
        "labels",
        tmp_path / "valid-log.parquet",
        "--features",
        s2,
        "--propensity",
        tmp_path / "prop.json",
        "--out",
        tmp_path / "valid.parquet",
    )
    assert done.returncode == 0, done.stderr
    done = ltr_process(
        "train",
        "--config",
        REPO / "configs/clicks/setrank_ips.yaml",
        "--data.train",
        f"[{tmp_path / 'train.parquet'}]",
        "--data.valid",
        f"[{tmp_path / 'valid.parquet'}]",
        "--data.test",
        f"[{s3}]",
        "--model.d_model",
        16,
        "--model.num_heads",
        2,
        "--model.num_blocks",
        1,
        "--trainer.max_epochs",
        2,
        "--trainer.progress_bar",
        "false",
        "--tracking.enabled",
        "false",
        "--output_dir",
        tmp_path / "run",
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "model").is_dir() and "ndcg@10" in done.stdout


def test_trust_bias_from_simulation_to_affine_labels(tmp_path, mq2008_dir):
    s1 = mq2008_dir / "S1.txt.xz"
    done = ltr(
        "clicks",
        "simulate",
        s1,
        "--ranker-feature",
        "f25",
        "--click-model",
        "trust",
        "--sessions",
        30,
        "--out",
        tmp_path / "log.parquet",
    )
    assert done.returncode == 0, done.stderr
    done = ltr(
        "clicks",
        "propensity",
        tmp_path / "log.parquet",
        "--click-model",
        "trust",
        "--out",
        tmp_path / "trust.json",
    )
    assert done.returncode == 0, done.stderr
    assert "true alpha_k" in done.stdout and "true beta_k" in done.stdout
    done = ltr(
        "clicks",
        "labels",
        tmp_path / "log.parquet",
        "--features",
        s1,
        "--propensity",
        tmp_path / "trust.json",
        "--out",
        tmp_path / "labels.parquet",
    )
    assert done.returncode == 0, done.stderr
    assert "affine-corrected" in done.stdout
    # Recomputed with pandas from the JSON's per-position rates: the mean over each document's
    # impressions of (click - beta_k) / alpha_k, negatives made 0.
    import json

    prop = json.loads((tmp_path / "trust.json").read_text())
    log = pq.read_table(tmp_path / "log.parquet").to_pandas()
    assert log.position.max() <= len(prop["theta"])
    alpha = np.array(prop["theta"])[log.position - 1]
    beta = np.array(prop["beta"])[log.position - 1]
    log["corrected"] = (log.click - beta) / alpha
    expected = log.groupby(["qid", "doc_id"]).corrected.mean().clip(lower=0)
    out = pq.read_table(tmp_path / "labels.parquet").to_pandas().set_index(["qid", "doc_id"])
    assert len(out) == len(expected) and (expected == 0).any() and (expected > 1).any()
    np.testing.assert_allclose(out.label.loc[expected.index], expected, rtol=1e-5, atol=1e-6)
    # A PBM estimate of a trust log says which model made it instead of a wrong truth.
    done = ltr("clicks", "propensity", tmp_path / "log.parquet", "--out", tmp_path / "pbm.json")
    assert done.returncode == 0 and "simulated with --click-model trust" in done.stdout
    assert "true theta_k" not in done.stdout


def test_regression_em_from_one_session_per_query(tmp_path, mq2008_dir):
    s1 = mq2008_dir / "S1.txt.xz"
    done = ltr(
        "clicks", "simulate", s1, "--ranker-feature", "f25", "--sessions", 1, "--quiet",
        "--out", tmp_path / "log.parquet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = ltr("clicks", "propensity", tmp_path / "log.parquet", "--out", tmp_path / "p.json")
    assert done.returncode == 2 and "--features" in done.stderr  # the message names the way out
    done = ltr(
        "clicks", "propensity", tmp_path / "log.parquet", "--features", s1,
        "--out", tmp_path / "p.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "regression EM converged" in done.stdout
    import json

    prop = json.loads((tmp_path / "p.json").read_text())
    assert prop["relevance_model"] == "logistic" and prop["theta"][0] == 1.0
    done = ltr(
        "clicks", "propensity", tmp_path / "log.parquet", "--features", mq2008_dir / "S2.txt.xz",
        "--out", tmp_path / "q.json",
    )  # fmt: skip
    assert done.returncode == 2 and "logged documents have no features" in done.stderr
    done = ltr(
        "clicks", "propensity", tmp_path / "log.parquet", "--features", s1,
        "--click-model", "trust", "--out", tmp_path / "q.json",
    )  # fmt: skip
    assert done.returncode == 2 and "pbm only" in done.stderr
    assert not (tmp_path / "q.json").exists()
    # Labels from one impression each, shrunk towards a feature prior of 10 impressions: every
    # label is (click / theta_k + 10 prior) / 11, so an unclicked document keeps 10/11 of a
    # prior that is above 0.
    done = ltr(
        "clicks", "labels", tmp_path / "log.parquet", "--features", s1,
        "--propensity", tmp_path / "p.json", "--prior-strength", 10,
        "--out", tmp_path / "shrunk.parquet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shrunk towards a feature prior of 10 impressions" in done.stdout
    # Every shrunk label is above 0, but only documents with a click count as clicked.
    clicks = pq.read_table(tmp_path / "log.parquet").to_pandas()
    clicked = clicks[clicks.click == 1][["qid", "doc_id"]].drop_duplicates()
    assert f"({len(clicked):,} clicked;" in done.stdout
    shrunk = pq.read_table(tmp_path / "shrunk.parquet").column("label").to_numpy()
    assert (shrunk > 0).all() and len(np.unique(shrunk)) > 100
    done = ltr(
        "clicks", "labels", tmp_path / "log.parquet", "--features", s1, "--naive",
        "--prior-strength", 5, "--out", tmp_path / "r.parquet",
    )  # fmt: skip
    assert done.returncode == 2 and "needs propensities" in done.stderr
    # auto needs documents shown in more than one session: it says so on this log, and on a
    # log of 3 sessions per query prints every strength tried and uses the one it marks.
    done = ltr(
        "clicks", "labels", tmp_path / "log.parquet", "--features", s1, "--quiet",
        "--propensity", tmp_path / "p.json", "--prior-strength", "auto",
        "--out", tmp_path / "auto.parquet",
    )  # fmt: skip
    assert done.returncode == 2 and "shown in one session only" in done.stderr
    assert not (tmp_path / "auto.parquet").exists()
    done = ltr(
        "clicks", "simulate", s1, "--ranker-feature", "f25", "--sessions", 3, "--quiet",
        "--out", tmp_path / "log3.parquet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = ltr(
        "clicks", "labels", tmp_path / "log3.parquet", "--features", s1, "--eta", 1,
        "--prior-strength", "auto", "--out", tmp_path / "auto.parquet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = re.findall(r"S = +(\S+) +(\S+) +\(\+(\S+)\)( +<- chosen)?", done.stdout)
    assert len(table) == 10, done.stdout
    chosen = [strength for strength, _, _, mark in table if mark]
    errors = {strength: float(error) for strength, error, _, _ in table}
    assert len(chosen) == 1 and errors[chosen[0]] == min(errors.values())
    assert errors[chosen[0]] < errors["0"]  # 3 impressions per document: IPS alone is worse
    assert f"shrunk towards a feature prior of {chosen[0]} impressions" in done.stdout
    for bad in ("-1", "many", "inf"):
        done = ltr(
            "clicks", "labels", tmp_path / "log.parquet", "--features", s1, "--eta", 1,
            "--prior-strength", bad, "--out", tmp_path / "r.parquet",
        )  # fmt: skip
        assert done.returncode == 2 and f"expected a number >= 0 or auto, got '{bad}'" in (
            done.stderr
        )
    done = ltr(
        "clicks", "labels", tmp_path / "log.parquet", "--features", s1, "--eta", 1,
        "--false-click", 0.5, "--prior-strength", "auto", "--out", tmp_path / "r.parquet",
    )  # fmt: skip
    assert done.returncode == 2 and "not trust bias" in done.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_cascade_from_simulation_to_labels(tmp_path, mq2008_dir):
    from ltr.clicks.cascade import estimate_cascade
    from ltr.clicks.log import read_log

    s1, log = mq2008_dir / "S1.txt.xz", tmp_path / "log.parquet"
    done = ltr(
        "clicks", "simulate", s1, "--ranker-feature", "f25", "--click-model", "cascade",
        "--continue-after-click", 0.3, "--quiet", "--out", log,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = read_log(log).simulation
    assert meta["model"] == "cascade" and meta["continue_after_click"] == 0.3
    # A position-bias estimate of a cascade log says what fits it instead.
    done = ltr("clicks", "propensity", log, "--quiet", "--out", tmp_path / "p.json")
    assert done.returncode == 0, done.stderr
    done = ltr("clicks", "propensity", log, "--out", tmp_path / "p.json")
    assert "simulated with --click-model cascade" in done.stdout and "--cascade" in done.stdout
    done = ltr(
        "clicks", "labels", log, "--features", s1, "--cascade", "--out", tmp_path / "l.parquet"
    )
    assert done.returncode == 0, done.stderr
    read_on = float(re.search(r"read on after a click with probability ([0-9.]+)", done.stdout)[1])
    assert read_on == pytest.approx(0.3, abs=0.03)
    logged = read_log(log)
    fit = estimate_cascade(logged)
    out = pq.read_table(tmp_path / "l.parquet").to_pandas()
    pairs = zip(logged.qids[logged.doc_qid], logged.doc_ids, strict=True)
    by_pair = dict(zip(pairs, fit.labels, strict=True))
    expected = [by_pair[(q, d)] for q, d in zip(out.qid, out.doc_id, strict=True)]
    np.testing.assert_allclose(out.label, expected, rtol=1e-6)
    # Which model explains the log: the cascade, by held-out sessions' clicks.
    done = ltr("clicks", "compare", log, "--quiet")
    assert done.returncode == 0, done.stderr
    table = re.findall(
        r"^  (pbm|trust|cascade|dbn|ubm) +(-[0-9.]+) +([0-9.]+)  ", done.stdout, re.M
    )
    assert len(table) == 5 and table[0][0] == "cascade", done.stdout
    likelihoods = [float(ll) for _, ll, _ in table]
    assert likelihoods == sorted(likelihoods, reverse=True)
    assert "best explained by cascade" in done.stdout
    done = ltr("clicks", "compare", log, "--test-share", 1.0)
    assert done.returncode == 2 and "no session to train" in done.stderr
    done = ltr(
        "clicks", "labels", log, "--features", s1, "--cascade", "--min-propensity", 0.1,
        "--out", tmp_path / "r.parquet",
    )  # fmt: skip
    assert done.returncode == 2 and "--cascade uses none" in done.stderr
    # Shrunk towards a feature prior, the strength chosen from held-out sessions.
    done = ltr(
        "clicks", "labels", log, "--features", s1, "--cascade", "--prior-strength", "auto",
        "--out", tmp_path / "shrunk.parquet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = re.findall(r"^  S = +([0-9.]+) +([0-9.]+) ", done.stdout, re.M)
    chosen = re.search(r"S = +([0-9.]+) .*<- chosen", done.stdout)
    assert len(table) == 10 and chosen, done.stdout
    errors = {float(s): float(e) for s, e in table}
    assert errors[float(chosen[1])] == min(errors.values())
    if float(chosen[1]) > 0:
        assert f"feature priors of {float(chosen[1]):g} observations" in done.stdout
    assert not (tmp_path / "r.parquet").exists()


def test_dbn_from_simulation_to_labels(tmp_path, mq2008_dir):
    from ltr.clicks.dbn import estimate_dbn
    from ltr.clicks.log import read_log

    s1, log = mq2008_dir / "S1.txt.xz", tmp_path / "log.parquet"
    done = ltr(
        "clicks", "simulate", s1, "--ranker-feature", "f25", "--click-model", "dbn",
        "--perseverance", 0.8, "--sessions", 50, "--quiet", "--out", log,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    logged = read_log(log)
    assert logged.simulation["model"] == "dbn" and logged.simulation["perseverance"] == 0.8
    done = ltr("clicks", "labels", log, "--features", s1, "--dbn", "--out", tmp_path / "l.parquet")
    assert done.returncode == 0, done.stderr
    found = re.search(r"not satisfied with probability ([0-9.]+), estimated", done.stdout)
    assert found and float(found[1]) == pytest.approx(0.8, abs=0.03), done.stdout
    fit = estimate_dbn(logged)
    out = pq.read_table(tmp_path / "l.parquet").to_pandas()
    pairs = zip(logged.qids[logged.doc_qid], logged.doc_ids, strict=True)
    by_pair = dict(zip(pairs, fit.attractiveness * fit.satisfaction, strict=True))
    expected = [by_pair[(q, d)] for q, d in zip(out.qid, out.doc_id, strict=True)]
    np.testing.assert_allclose(out.label, expected, rtol=1e-6, atol=1e-30)  # float32 labels
    done = ltr("clicks", "compare", log, "--quiet")
    assert done.returncode == 0 and "best explained by dbn" in done.stdout, done.stdout
    # gamma held, and the labels shrunk towards feature priors: the prior lifts every label
    # that no click made above 0.
    done = ltr(
        "clicks", "labels", log, "--features", s1, "--dbn", "--perseverance", 0.6,
        "--prior-strength", 5, "--out", tmp_path / "shrunk.parquet",
    )  # fmt: skip
    assert done.returncode == 0 and "probability 0.600, held" in done.stdout, done.stdout
    assert "feature priors of 5 observations" in done.stdout
    shrunk = pq.read_table(tmp_path / "shrunk.parquet").column("label").to_numpy()
    never_clicked = out.label.to_numpy() == 0
    assert never_clicked.any() and (shrunk[never_clicked] > 0).all()
    for extra in (("--min-propensity", 0.1), ("--naive", "--prior-strength", 5)):
        bias = () if "--naive" in extra else ("--dbn",)
        done = ltr(
            "clicks", "labels", log, "--features", s1, *bias, *extra,
            "--out", tmp_path / "r.parquet",
        )  # fmt: skip
        assert done.returncode == 2 and ("--dbn uses none" in done.stderr or "needs" in done.stderr)
    done = ltr(
        "clicks", "labels", log, "--features", s1, "--cascade", "--perseverance", 0.5,
        "--out", tmp_path / "r.parquet",
    )  # fmt: skip
    assert done.returncode == 2 and "--perseverance is a parameter of --dbn" in done.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_ubm_from_simulation_to_labels(tmp_path, mq2008_dir):
    from ltr.clicks.log import read_log
    from ltr.clicks.ubm import estimate_ubm

    s1, log = mq2008_dir / "S1.txt.xz", tmp_path / "log.parquet"
    done = ltr(
        "clicks", "simulate", s1, "--ranker-feature", "f25", "--click-model", "ubm",
        "--eta", 1.5, "--sessions", 30, "--quiet", "--out", log,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    logged = read_log(log)
    assert logged.simulation["model"] == "ubm" and logged.simulation["eta"] == 1.5
    done = ltr("clicks", "propensity", log, "--out", tmp_path / "p.json")
    assert done.returncode == 0 and "`ltr clicks labels --ubm`" in done.stdout, done.stdout
    done = ltr("clicks", "labels", log, "--features", s1, "--ubm", "--out", tmp_path / "l.parquet")
    assert done.returncode == 0, done.stderr
    assert "under the user browsing model" in done.stdout
    # Right below a click at 1, position 2 is looked at; below none, with (1/2)^1.5 = 0.354.
    below = re.search(r"probability ([0-9.]+) below no click, ([0-9.]+) right below", done.stdout)
    assert below and float(below[1]) == pytest.approx(0.5**1.5, abs=0.05), done.stdout
    assert float(below[2]) == pytest.approx(1.0, abs=0.05)
    fit = estimate_ubm(logged)
    out = pq.read_table(tmp_path / "l.parquet").to_pandas()
    pairs = zip(logged.qids[logged.doc_qid], logged.doc_ids, strict=True)
    by_pair = dict(zip(pairs, fit.labels, strict=True))
    expected = [by_pair[(q, d)] for q, d in zip(out.qid, out.doc_id, strict=True)]
    np.testing.assert_allclose(out.label, expected, rtol=1e-6, atol=1e-30)  # float32 labels
    done = ltr("clicks", "compare", log, "--quiet")
    assert done.returncode == 0 and "best explained by ubm" in done.stdout, done.stdout
    done = ltr(
        "clicks", "labels", log, "--features", s1, "--ubm", "--prior-strength", 5,
        "--out", tmp_path / "shrunk.parquet",
    )  # fmt: skip
    assert done.returncode == 0 and "feature priors of 5 observations" in done.stdout
    shrunk = pq.read_table(tmp_path / "shrunk.parquet").column("label").to_numpy()
    never_clicked = out.label.to_numpy() == 0
    assert never_clicked.any() and (shrunk[never_clicked] > 0).all()
    for extra in (("--min-propensity", 0.1), ("--perseverance", 0.5)):
        done = ltr(
            "clicks", "labels", log, "--features", s1, "--ubm", *extra,
            "--out", tmp_path / "r.parquet",
        )  # fmt: skip
        assert done.returncode == 2, done.stdout
        assert "--ubm uses none" in done.stderr or "a parameter of --dbn" in done.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_plain_em_on_few_sessions_per_query_points_to_regression_em():
    from ltr.cli.clicks import few_sessions_warning

    warning = few_sessions_warning(np.array([2, 3, 3, 40]))
    assert warning is not None and "median query has 3 sessions" in warning
    assert "--features" in warning
    assert few_sessions_warning(np.array([10, 10, 4])) is None


def test_clicks_cli_errors(tmp_path, mq2008_dir):
    s1 = mq2008_dir / "S1.txt.xz"
    done = ltr("clicks", "simulate", s1, "--ranker-feature", "bm25", "--out", tmp_path / "x")
    assert done.returncode == 2 and "no feature 'bm25'" in done.stderr
    for model, other in (
        ("trust", "--noise"),
        ("pbm", "--false-click"),
        ("cascade", "--false-click"),
        ("pbm", "--continue-after-click"),
        ("cascade", "--eta"),
        ("pbm", "--perseverance"),
        ("dbn", "--eta"),
        ("dbn", "--continue-after-click"),
        ("ubm", "--perseverance"),
        ("ubm", "--false-click"),
    ):
        done = ltr(
            "clicks",
            "simulate",
            s1,
            "--ranker-feature",
            "f25",
            "--click-model",
            model,
            other,
            0.2,
            "--out",
            tmp_path / "x",
        )
        assert done.returncode == 2 and f"{other} is a parameter of" in done.stderr, (model, other)
    done = ltr(
        "clicks",
        "simulate",
        s1,
        "--ranker-feature",
        "f25",
        "--temperature",
        0,
        "--sessions",
        5,
        "--out",
        tmp_path / "fixed.parquet",
    )
    assert done.returncode == 0, done.stderr
    done = ltr("clicks", "propensity", tmp_path / "fixed.parquet", "--out", tmp_path / "p.json")
    assert done.returncode == 2 and "one position only" in done.stderr
    assert not (tmp_path / "p.json").exists()
    done = ltr(
        "clicks",
        "labels",
        tmp_path / "fixed.parquet",
        "--features",
        s1,
        "--naive",
        "--eta",
        1,
        "--out",
        tmp_path / "y.parquet",
    )
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
    done = ltr(
        "clicks",
        "labels",
        tmp_path / "fixed.parquet",
        "--features",
        s1,
        "--naive",
        "--false-click",
        0.5,
        "--out",
        tmp_path / "y.parquet",
    )
    assert done.returncode == 2 and "--false-click goes with --eta" in done.stderr
    done = ltr(
        "clicks",
        "labels",
        tmp_path / "fixed.parquet",
        "--features",
        mq2008_dir / "S2.txt.xz",
        "--naive",
        "--out",
        tmp_path / "y.parquet",
    )
    assert done.returncode == 2 and "logged documents have no features" in done.stderr
    assert not (tmp_path / "y.parquet").exists()


def test_a_scores_file_ranks_as_the_feature_it_holds(tmp_path, mq2008_dir):
    import pyarrow as pa

    from ltr.data.dataset import load_dataset

    s1 = mq2008_dir / "S1.txt.xz"
    data = load_dataset(s1)
    table = pa.table(
        {
            "qid": list(data.qids[data.query_of_row]),
            "doc_id": list(data.doc_ids),
            "score": data.features[:, data.feature_names.index("f25")],
        }
    )
    pq.write_table(table, tmp_path / "scores.parquet")
    for name, ranker in (
        ("a", ["--ranker-feature", "f25"]),
        ("b", ["--ranker-scores", tmp_path / "scores.parquet"]),
    ):
        done = ltr(
            "clicks",
            "simulate",
            s1,
            *ranker,
            "--sessions",
            4,
            "--quiet",
            "--out",
            tmp_path / f"{name}.parquet",
        )
        assert done.returncode == 0 and done.stdout == "", done.stderr
    a, b = (pq.read_table(tmp_path / f"{n}.parquet") for n in "ab")
    assert a.equals(b)  # same rankings, same clicks (the metadata, which differs, is not compared)
    done = ltr(
        "clicks",
        "simulate",
        s1,
        "--ranker-scores",
        tmp_path / "none.parquet",
        "--out",
        tmp_path / "c.parquet",
    )
    assert done.returncode == 2 and "no such scores file" in done.stderr
