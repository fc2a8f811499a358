"""Distillation: the loss term by hand, the teacher's scores per row, and a student that learns
its teacher's order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr, zscore

from ltr.artifact import load_model
from ltr.data import load_dataset
from ltr.data.dataset import collate_lists
from ltr.errors import ConfigError
from ltr.inference import score_lists
from ltr.train.module import distill_loss
from ltr.train.run import teacher_scores, train
from tests.serve._helpers import make_artifact


def _cross_entropy(student: np.ndarray, teacher: np.ndarray) -> float:
    p = np.exp(teacher - teacher.max()) / np.exp(teacher - teacher.max()).sum()
    log_q = student - student.max() - np.log(np.exp(student - student.max()).sum())
    return float(-(p * log_q).sum())


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_distill_loss_by_hand(mq2008_dir, temperature) -> None:
    data = load_dataset(mq2008_dir / "S1.txt.xz")
    batch = collate_lists([data[0], data[1]])  # lists of different lengths: padding
    n0, n1 = len(data[0].rows), len(data[1].rows)
    assert batch.rows[0, :n0].tolist() == data[0].rows.tolist()
    assert (batch.rows[0, n0:] == -1).all() or n0 >= n1
    rng = np.random.default_rng(0)
    per_row = torch.tensor(rng.standard_normal(data.num_rows), dtype=torch.float32)
    scores = torch.tensor(rng.standard_normal(batch.mask.shape), dtype=torch.float32)
    got = float(distill_loss(scores, per_row, batch, temperature))
    t = temperature
    want = np.mean(
        [
            t * t * _cross_entropy(scores[b, :n].numpy() / t, per_row[data[b].rows].numpy() / t)
            for b, n in ((0, n0), (1, n1))
        ]
    )
    assert got == pytest.approx(want, rel=1e-5)


def test_teacher_scores_are_standardised_per_list(tiny_config, tmp_path, mq2008_dir) -> None:
    train_set = load_dataset(mq2008_dir / "S1.txt.xz")
    teacher = make_artifact(tmp_path / "teacher", train_set, seed=31)
    got = teacher_scores(tiny_config(**{"distill.teacher": str(teacher)}), train_set).numpy()
    raw = score_lists(load_model(teacher).model, train_set).astype(np.float64)
    for a, b in zip(train_set.offsets[:-1], train_set.offsets[1:], strict=True):
        want = zscore(raw[a:b]) if b - a > 1 else np.zeros(1)
        np.testing.assert_allclose(got[a:b], want, atol=2e-3)  # the 1e-6 variance floor
    assert teacher_scores(tiny_config(), train_set) is None

    other = make_artifact(tmp_path / "other", train_set, seed=32)
    manifest = (other / "ltr_model.json").read_text().replace('"f1"', '"bm25"')
    (other / "ltr_model.json").write_text(manifest)
    with pytest.raises(ConfigError, match="must read the same features"):
        teacher_scores(tiny_config(**{"distill.teacher": str(other)}), train_set)
    with pytest.raises(ConfigError, match=r"distill\.temperature > 0"):
        tiny_config(**{"distill.temperature": 0})


def test_a_student_learns_its_teachers_order(tiny_config, tmp_path, mq2008_dir) -> None:
    train_set = load_dataset(mq2008_dir / "S1.txt.xz")
    teacher = make_artifact(tmp_path / "teacher", train_set, seed=31)
    want = score_lists(load_model(teacher).model, train_set)

    def agreement(**extra):
        """Mean Spearman correlation with the teacher over training lists, and the run."""
        cfg = tiny_config(
            **{"tracking.enabled": False, "trainer.max_epochs": 4, "optim.lr": 3e-3, **extra}
        )
        result = train(cfg, verbose=False)
        got = score_lists(load_model(result.artifact_dir).model, train_set)
        rho = [
            spearmanr(got[a:b], want[a:b]).statistic
            for a, b in zip(train_set.offsets[:-1], train_set.offsets[1:], strict=True)
            if b - a > 2
        ]
        return float(np.nanmean(rho)), result

    alone, _ = agreement(output_dir=str(tmp_path / "alone"))
    taught, result = agreement(
        output_dir=str(tmp_path / "taught"),
        **{"distill.teacher": str(teacher), "distill.weight": 20.0},
    )
    # labels alone teach another order (about -0.6 here); the teacher's term turns it round
    assert taught > 0.6 and taught > alone + 0.5, (taught, alone)
    recorded = load_model(result.artifact_dir).manifest.training["distill"]
    assert recorded == {"teacher": str(teacher), "weight": 20.0, "temperature": 1.0}


def test_a_lambdamart_teaches_its_lightgbm_scores(
    tiny_config, tmp_path, mq2008_dir, mq2008_lambdamart
) -> None:
    import lightgbm

    from ltr.artifact import save_lightgbm_model

    train_set = load_dataset(mq2008_dir / "S1.txt.xz")
    teacher = save_lightgbm_model(tmp_path / "lm", mq2008_lambdamart, train_set.feature_names)
    got = teacher_scores(tiny_config(**{"distill.teacher": str(teacher)}), train_set).numpy()
    raw = lightgbm.Booster(model_file=str(mq2008_lambdamart)).predict(train_set.features)
    for a, b in zip(train_set.offsets[:-1], train_set.offsets[1:], strict=True):
        if b - a > 1 and raw[a:b].std() > 1e-3:  # a list LightGBM does not score all alike
            np.testing.assert_allclose(got[a:b], zscore(raw[a:b]), atol=2e-3)
