"""Score drift: false alarms of score PSI by window size, and which upstream breaks it catches.

The server compares the model's scores of the lists it answers with its scores of its training
lists (``ltr_score_psi``, a warning past ``drift.warn_psi`` = 0.25 once ``drift.min_lists`` = 100
lists came in): the thresholds chosen for features by :mod:`benchmarks.drift`. This measures them
on scores. For each official LETOR fold, a LightGBM LambdaMART (100 trees, every other parameter
at LightGBM's default) is trained on the training partition, and the profile of its scores of
those rows (what ``ltr train`` keeps in ``feature_profile.json``) is compared with its scores of
windows of held-out lists (the validation and test partitions: other queries, no drift), each
window N whole lists drawn at random, as in :mod:`benchmarks.drift`. Per window size N:

* **no drift**: the scores' PSI (median, 95th percentile, share of windows past 0.25 and 0.1)
  and the share of scores outside the training scores' range;
* **breaks** upstream (:func:`benchmarks.drift._breaks`: set to 0, scaled by 2 and by 1.2,
  shifted by 0.1 of its training range, swapped with the next watched feature), applied to one
  watched feature of every held-out row at a time: the share of (window, feature) pairs whose
  score PSI passed 0.25 (and 0.1), for the model's 5 most important features (total gain) and for
  the other watched features, beside the share whose broken feature's own PSI passed 0.25, and
  what the break costs the rankings (the change in mean NDCG@10 of the held-out lists).

``--model setrank`` measures the same with the default SetRank (``configs/setrank_imsab.yaml``)
trained by ``ltr train``'s code on each fold, whose profile is the one that run saved; its most
important features are found by permutation importance on the validation partition. Either model
scores each list whole and alone (a tree model each row alone), so the held-out lists are scored
once per break, and a window's scores are its lists' scores in the pool.

Run: ``python -m benchmarks.score_drift [--dataset mq2008|ohsumed] [--folds 1 2 3 4 5]
[--model lightgbm|setrank]``
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._report import markdown_table
from benchmarks.drift import MODERATE, SIZES, WARN, _breaks, _window, quiet_rows, run_benchmark
from benchmarks.quality_cv import REPO_ROOT, FoldData, load_fold, ltr_overrides

TOP = 5  # the model's most important features
SETRANK = REPO_ROOT / "configs" / "setrank_imsab.yaml"
MODELS = {
    "lightgbm": ("a LightGBM LambdaMART (100 trees)", "by total gain"),
    "setrank": (
        "the default SetRank (`configs/setrank_imsab.yaml`, trained by `ltr train`'s code with "
        "early stopping on the validation partition)",
        "by permutation importance on the validation partition",
    ),
}
GROUPS = (f"{TOP} most important", "other watched")


@dataclass
class Ranker:
    """A fold's trained model as the benchmark uses it."""

    score: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (features, list offsets) -> scores
    profile: object  # ltr.drift.FeatureProfile of the training rows, with the scores'
    top: set[int]  # the model's TOP most important features
    model: object = None  # lightgbm.LGBMRanker, or the SetRank module


def lightgbm_ranker(data: FoldData) -> Ranker:
    """A LightGBM LambdaMART (100 trees); the profile of its scores of the training rows as
    ``ltr train`` keeps one; its most important features by total gain."""
    import lightgbm

    from ltr.drift import profile_features

    train = data.train
    model = lightgbm.LGBMRanker(
        objective="lambdarank", n_estimators=100, random_state=0, n_jobs=2, verbose=-1
    )
    model.fit(train.features, train.labels, group=np.diff(train.offsets))
    names = list(train.feature_names)
    profile = profile_features(train.features, names, scores=model.predict(train.features))
    gain = model.booster_.feature_importance("gain")
    top = {int(j) for j in np.argsort(-gain, kind="stable")[:TOP]}
    return Ranker(lambda x, offsets: model.predict(x), profile, top, model)


def setrank_ranker(data: FoldData, root: Path, overrides: dict | None = None) -> Ranker:
    """The default SetRank (``configs/setrank_imsab.yaml``) trained by ``ltr train``'s code on
    the fold (validation early stopping, tracking off); the profile is the one that run saved
    in its artifact, as the server reads it; its most important features by permutation
    importance (NDCG@10's drop, 2 shuffles) on the validation partition. ``overrides`` are
    dotted config entries (``{"trainer.max_epochs": 1}``)."""
    from ltr.artifact import load_model
    from ltr.data.dataset import ListDataset
    from ltr.drift import FeatureProfile
    from ltr.importance import permutation_importance
    from ltr.inference import score_lists
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    with tempfile.TemporaryDirectory(prefix="ltr-score-drift-") as tmp:
        config = load_train_config(
            SETRANK, {**ltr_overrides(root, data.number, tmp), **(overrides or {})}
        )
        result = train(config, verbose=False)
        model = load_model(result.artifact_dir).model
        profile = FeatureProfile.load(result.artifact_dir)

    def score(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        lists = ListDataset(x, np.zeros(len(x)), offsets, np.arange(len(offsets) - 1))
        return score_lists(model, lists)

    valid = data.valid
    importance = permutation_importance(
        lambda x: score(x, valid.offsets), valid.features, valid.labels, valid.offsets, repeats=2
    )
    top = {i.indices[0] for i in importance.features[:TOP]}
    return Ranker(score, profile, top, model)


@dataclass
class Fold:
    """One fold's model, its training profile, and the held-out rows scored as they are and
    under every break."""

    ranker: Ranker
    held: np.ndarray  # [rows, F] validation and test features, one pool
    offsets: np.ndarray  # [lists + 1] into held
    scores: np.ndarray  # [rows] the model's scores of held
    watched: list[int]  # features with at least 5 decile bins in training
    pairs: list[tuple[int, str]]  # (watched feature, break)
    broken: list[np.ndarray]  # per pair: the broken feature's values on held
    broken_scores: list[np.ndarray]  # per pair: the model's scores of held with that break
    ndcg: float  # mean NDCG@10 of the held-out lists with a relevant row, as they are
    broken_ndcg: list[float]  # per pair: the same with that break
    train_rows: int

    @property
    def profile(self):
        return self.ranker.profile

    @property
    def top(self) -> set[int]:
        return self.ranker.top


def prepare(
    data: FoldData, model: str = "lightgbm", root: Path | None = None, overrides: dict | None = None
) -> Fold:
    """Train the fold's model (``lightgbm``, or ``setrank`` from the LETOR partitions under
    ``root``, with ``overrides`` of its config), profile its training scores, score the
    held-out pool under each break. Each list is scored whole and alone, so a window's scores
    are its lists' scores in the pool."""
    from ltr.metrics import evaluate_grouped_per_query

    if model == "lightgbm":
        ranker = lightgbm_ranker(data)
    elif model == "setrank" and root is not None:
        ranker = setrank_ranker(data, root, overrides)
    else:
        raise ValueError(f"model must be lightgbm, or setrank with a root; got {model!r}")
    profile = ranker.profile
    valid, test = data.valid, data.test
    held = np.concatenate([valid.features, test.features])
    offsets = np.concatenate([valid.offsets[:-1], test.offsets + valid.offsets[-1]])
    watched = [j for j, f in enumerate(profile.features) if len(f.edges) >= 4]
    labels = np.concatenate([valid.labels, test.labels])

    def ndcg(scores: np.ndarray) -> float:
        per_list = evaluate_grouped_per_query(
            scores.astype(np.float64), labels, offsets, metrics=["ndcg@10"], empty="drop"
        )
        return float(np.nanmean(per_list["ndcg@10"]))

    pairs, broken, broken_scores = [], [], []
    for k, j in enumerate(watched):
        nxt = watched[(k + 1) % len(watched)]
        for name, values in _breaks(profile.features[j], held[:, j], held[:, nxt]).items():
            x = held.copy()
            x[:, j] = values
            pairs.append((j, name))
            broken.append(x[:, j].copy())  # as the model reads it (float32)
            broken_scores.append(ranker.score(x, offsets))
    scores = ranker.score(held, offsets)
    return Fold(
        ranker,
        held,
        offsets,
        scores,
        watched,
        pairs,
        broken,
        broken_scores,
        ndcg(scores),
        [ndcg(s) for s in broken_scores],
        len(data.train.features),
    )


def measure(fold: Fold, picked: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per window (row indices into ``fold.held``): the scores' PSI and out-of-range share
    without drift, and per pair the scores' PSI and the broken feature's PSI:
    ``score_psi [W]``, ``score_range [W]``, ``break_score_psi [W, pairs]``,
    ``break_feature_psi [W, pairs]``."""
    from ltr.drift import psi

    stats = fold.profile.score
    expected = stats.expected
    score_psi, score_range = np.zeros(len(picked)), np.zeros(len(picked))
    break_score = np.zeros((len(picked), len(fold.pairs)))
    break_feature = np.zeros((len(picked), len(fold.pairs)))
    for w, rows in enumerate(picked):
        s = fold.scores[rows]
        score_psi[w] = psi(expected, stats.histogram(s))
        score_range[w] = np.mean((s < stats.minimum) | (s > stats.maximum))
        for p, (j, _) in enumerate(fold.pairs):
            break_score[w, p] = psi(expected, stats.histogram(fold.broken_scores[p][rows]))
            feature = fold.profile.features[j]
            break_feature[w, p] = psi(feature.expected, feature.histogram(fold.broken[p][rows]))
    return {
        "score_psi": score_psi,
        "score_range": score_range,
        "break_score_psi": break_score,
        "break_feature_psi": break_feature,
    }


def run_fold(root: Path, fold_number: int, args) -> dict:
    from ltr.drift import psi

    windows, seed = args.windows, args.seed
    fold = prepare(load_fold(root, fold_number), args.model, root)
    stats = fold.profile.score
    rng = np.random.default_rng(seed + fold_number)
    pool = len(fold.offsets) - 1
    kinds = list(dict.fromkeys(name for _, name in fold.pairs))
    groups = {  # (break, group): the pairs' columns
        (kind, group): [
            p
            for p, (j, name) in enumerate(fold.pairs)
            if name == kind and (j in fold.top) == (group == GROUPS[0])
        ]
        for kind in kinds
        for group in GROUPS
    }
    out: dict = {
        "watched": len(fold.watched),
        "top_watched": len(fold.top & set(fold.watched)),
        "rows": fold.train_rows,
        "pool": pool,
        "pool_psi": psi(stats.expected, stats.histogram(fold.scores)),
        "ndcg": fold.ndcg,
        "ndcg_change": {
            key: float(np.mean([fold.broken_ndcg[p] - fold.ndcg for p in cols]))
            for key, cols in groups.items()
        },
        "sizes": {},
    }
    for size in (s for s in SIZES if s <= pool // 2):  # windows far from all of the pool
        picked = [_window(fold.offsets, size, rng) for _ in range(windows)]
        m = measure(fold, picked)
        caught = {
            key: (
                float(np.mean(m["break_score_psi"][:, cols] > WARN)),
                float(np.mean(m["break_score_psi"][:, cols] > MODERATE)),
                float(np.mean(m["break_feature_psi"][:, cols] > WARN)),
            )
            for key, cols in groups.items()
        }
        out["sizes"][size] = {
            "rows": float(np.mean([len(r) for r in picked])),
            "score_psi": m["score_psi"],
            "score_range": m["score_range"],
            "caught": caught,
        }
    return out


def report(args, records: list[dict], seconds: float) -> str:
    name = "MQ2008" if args.dataset == "mq2008" else "OHSUMED"
    folds = ", ".join(str(f) for f in args.folds)
    first = records[0]
    what, how = MODELS[args.model]
    pool_psi = [r["pool_psi"] for r in records]
    lines = [
        f"{name} folds {folds}: per fold, {what} trained on the "
        f"training partition ({first['rows']:,} rows in fold {args.folds[0]}); the profile of its "
        "scores of those rows (what `ltr train` keeps in `feature_profile.json`) against its "
        f"scores of {args.windows} windows per fold and size, each as many whole held-out lists "
        "as shown (from the validation and test partitions: other queries, no drift; "
        f"{first['pool']} lists in fold {args.folds[0]}, and no window takes more than half of "
        "them), drawn at random. All held-out lists together give a score PSI of "
        f"{min(pool_psi):.3f} to {max(pool_psi):.3f} over the folds (the gap between the model's "
        "scores of the rows it learned on and of other queries'). Breaks are applied to one "
        f"watched feature at a time ({first['watched']} of them in fold {args.folds[0]}: those "
        f"with at least 5 decile bins in training; of the model's {TOP} most important features "
        f"{how}, {', '.join(str(r['top_watched']) for r in records)} are among them in folds "
        f"{folds}; the others cannot be broken this way). Total {seconds:.0f} s.",
        "",
        "No drift: how often chance alone passes the thresholds (the scores' PSI in a window; "
        "pooled over folds).",
        "",
    ]
    sizes = [s for s in SIZES if all(s in r["sizes"] for r in records)]
    rows = quiet_rows(records, sizes, "score_psi", "score_range")
    lines.append(
        markdown_table(
            [
                "lists in window",
                "rows (mean)",
                "score PSI, median",
                "score PSI, 95th percentile",
                f"windows past {WARN}",
                f"past {MODERATE}",
                "scores out of range, 95th percentile",
            ],
            rows,
        )
    )
    lines += [
        "",
        f"Breaks: share of (window, feature) pairs where the scores' PSI passed {WARN} (in "
        f"brackets: passed {MODERATE}; after the slash: where the broken feature's own PSI passed "
        f"{WARN}, the check of feature drift), for the model's {TOP} most "
        "important features and for the other watched features; mean of the folds' shares. "
        "What the break does to the rankings: the change in mean NDCG@10 of all held-out lists "
        "with a relevant document (mean over the group's features and the folds; "
        f"{np.mean([r['ndcg'] for r in records]):.3f} unbroken).",
        "",
    ]
    rows = []
    for kind, group in records[0]["sizes"][sizes[0]]["caught"]:
        change = np.mean([r["ndcg_change"][kind, group] for r in records])
        row = [kind, group, f"{change:+.3f}"]
        for size in sizes:
            score, moderate, feature = np.mean(
                [r["sizes"][size]["caught"][kind, group] for r in records], axis=0
            )
            row.append(f"{score:.0%} ({moderate:.0%}) / {feature:.0%}")
        rows.append(row)
    lines.append(
        markdown_table(
            ["break", "features", "NDCG@10 change", *(f"{s:,} lists" for s in sizes)], rows
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(
        argv,
        name="score_drift",
        what="Score drift",
        doc=__doc__,
        run_fold=run_fold,
        report=report,
        add_options=lambda p: p.add_argument(
            "--model", choices=list(MODELS), default="lightgbm", help="the model whose scores"
        ),
        variant=lambda args: ("", "") if args.model == "lightgbm" else ("-setrank", ", SetRank"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
