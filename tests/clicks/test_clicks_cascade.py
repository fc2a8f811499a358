"""The dependent click model's EM: one step by hand, the cascade's closed form, and the truth of
simulated sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltr.clicks.cascade import estimate_cascade
from ltr.clicks.labels import click_labels
from ltr.clicks.log import aggregate, read_log
from ltr.clicks.model import CascadeModel
from ltr.clicks.propensity import estimate_em
from ltr.errors import ConfigError, DataFormatError

from .conftest import judged_lists, pair_grades, simulated_log


def _log(tmp_path, rows):
    names = ["session", "qid", "doc_id", "position", "click"]
    pq.write_table(pa.table(dict(zip(names, zip(*rows, strict=True), strict=True))), tmp_path)
    return read_log(tmp_path)


def test_one_cascade_em_step_by_hand(tmp_path):
    # Session 1 shows x, y, z and clicks x; session 2 shows y, x, z and clicks nothing.
    # From gamma = lambda = 1/2: the reader of session 1 read on past x with probability
    # q = (1/2)(1/2)(1/2) / (1/2 + (1/2)(1/4)) = 1/5, so y and z were looked at 1 + 1/5 times,
    # x twice: gamma = (1/2, 0, 0). One click, the session's last: lambda = q / 1 = 1/5.
    log = _log(
        tmp_path / "log.parquet",
        [(1, "q", "x", 1, 1), (1, "q", "y", 2, 0), (1, "q", "z", 3, 0),
         (2, "q", "y", 1, 0), (2, "q", "x", 2, 0), (2, "q", "z", 3, 0)],
    )  # fmt: skip
    fit = estimate_cascade(log, max_iter=1)
    by_doc = dict(zip(log.doc_ids, fit.labels, strict=True))
    assert by_doc == pytest.approx({"x": 0.5, "y": 0.0, "z": 0.0})
    assert fit.continue_after_click == pytest.approx(0.2)
    assert fit.iterations == 1 and not fit.converged
    # With 2 pseudo-examinations at 0.3: (clicks + 0.6) / (examinations + 2).
    shrunk = estimate_cascade(log, max_iter=1, pseudo=2.0, prior=0.3)
    by_doc = dict(zip(log.doc_ids, shrunk.labels, strict=True))
    assert by_doc == pytest.approx({"x": 1.6 / 4, "y": 0.6 / 3.2, "z": 0.6 / 3.2})


def test_with_lambda_held_at_0_labels_are_the_cascade_closed_form(tmp_path):
    # Craswell et al.: a document was looked at in a session if it sits at or above the
    # session's last click, or the session has no click.
    data, scores = judged_lists(50, 8, seed=3)
    model = CascadeModel(continue_after_click=0.3)
    log = simulated_log(tmp_path, data, scores, model, sessions=40)
    fit = estimate_cascade(log, continue_after_click=0.0)
    frame = pd.DataFrame({"s": log.session, "d": log.doc, "k": log.position, "c": log.click})
    last = frame[frame.c == 1].groupby("s").k.max()
    frame["last"] = frame.s.map(last).fillna(np.inf)
    looked = frame[frame.k <= frame["last"]]
    closed = looked.groupby("d").c.sum() / looked.groupby("d").size()
    np.testing.assert_allclose(fit.labels[closed.index], closed.to_numpy())
    assert fit.continue_after_click == 0.0 and fit.converged


@pytest.mark.parametrize("read_on", [0.0, 0.5, 0.9])
def test_cascade_em_recovers_the_simulated_users(tmp_path, read_on):
    # lambda within 0.03; each grade's mean label within 0.025 of its attractiveness; and the
    # labels far nearer the truth than IPS with PBM propensities fitted to the same log, which
    # take a cascade's examination for a curve by position.
    model = CascadeModel(continue_after_click=read_on)
    data, scores = judged_lists(300, 10, seed=4)
    log = simulated_log(tmp_path, data, scores, model, sessions=100)
    truth = model.attractiveness(pair_grades(log, data))
    fit = estimate_cascade(log)
    assert fit.converged
    assert fit.continue_after_click == pytest.approx(read_on, abs=0.03)
    grades = pair_grades(log, data)
    for grade in (0, 1, 2):
        assert fit.labels[grades == grade].mean() == pytest.approx(
            model.attractiveness(grade), abs=0.025
        )
    ips = click_labels(log, estimate_em(aggregate(log)))
    assert ((fit.labels - truth) ** 2).mean() < 0.5 * ((ips - truth) ** 2).mean()


def test_cascade_em_refuses_what_it_cannot_do(tmp_path):
    log = _log(tmp_path / "log.parquet", [(1, "q", "x", 1, 0), (1, "q", "y", 2, 0)])
    with pytest.raises(DataFormatError, match="no click"):
        estimate_cascade(log)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        estimate_cascade(log, continue_after_click=1.2)
