"""A log of fixed rankings (every document shown at one position, as a deterministic ranker
logs): the cascade models and the UBM (whose cells also hold the distance to the last click,
which varies between sessions) can be fitted, the PBM and trust bias cannot, and the commands
say so without naming options they do not take."""

from __future__ import annotations

import numpy as np
import pytest

from ltr.cli import main
from ltr.clicks.compare import compare_click_models
from ltr.clicks.log import UnidentifiableError, aggregate
from ltr.clicks.model import PositionBasedModel
from ltr.clicks.propensity import estimate_em
from ltr.errors import DataFormatError

from .conftest import judged_lists, simulated_log


@pytest.fixture
def fixed(tmp_path):
    data, scores = judged_lists(20, 6, seed=3)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(), sessions=30, temperature=0)
    counts = aggregate(log)
    assert np.bincount(counts.doc).max() == 1  # each document at one position only
    return log, tmp_path / "log.parquet"


def test_compare_fits_what_it_can_and_names_the_rest(fixed):
    log, _ = fixed
    result = compare_click_models(log)
    fitted = {s.model for s in result.scores}
    assert fitted == {"cascade", "dbn", "ubm"}
    assert [m for m, _ in result.not_fitted] == ["pbm", "trust"]
    for _, why in result.not_fitted:
        assert "cannot be told apart" in why and "--" not in why
    assert result.recommended in fitted


def test_compare_fails_only_when_nothing_can_be_fitted(fixed):
    log, _ = fixed
    with pytest.raises(DataFormatError, match=r"none of the models \(pbm, trust\) can be fitted"):
        compare_click_models(log, models=("pbm", "trust"))


def test_cli_compare_table_lists_the_models_not_fitted(fixed, capsys):
    _, path = fixed
    assert main(["clicks", "compare", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for model in ("pbm", "trust"):
        assert "not fitted: every document in the log was shown" in rows[model]
    for model in ("cascade", "dbn", "ubm"):
        assert "not fitted" not in rows[model]
    assert "--eta" not in out and "--features" not in out
    assert main(["clicks", "compare", str(path), "--models", "pbm", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltr clicks: error: none of the models (pbm) can be fitted")
    assert err.count("\n") == 1 and "--eta" not in err and "--models cascade dbn" in err


def test_propensity_refusal_names_the_command_that_takes_eta(fixed, tmp_path, capsys):
    log, path = fixed
    with pytest.raises(UnidentifiableError) as exc:
        estimate_em(aggregate(log))
    assert "`ltr clicks labels --eta 1`" in str(exc.value)
    out = tmp_path / "p.json"
    assert main(["clicks", "propensity", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "shown at one position only" in err and "(`ltr clicks labels --eta 1`)" in err
    assert "(--eta)" not in err and err.count("\n") == 1 and not out.exists()


def test_one_session_per_query_leaves_the_ubm_unfitted_too(tmp_path):
    data, scores = judged_lists(40, 6, seed=3)
    log = simulated_log(tmp_path, data, scores, PositionBasedModel(), sessions=1, temperature=0)
    result = compare_click_models(log)
    assert {s.model for s in result.scores} == {"cascade", "dbn"}
    assert [m for m, _ in result.not_fitted] == ["pbm", "trust", "ubm"]
    assert "distance to the last click" in dict(result.not_fitted)["ubm"]
