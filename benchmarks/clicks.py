"""Learning from simulated clicks on MQ2008: does IPS recover what position bias hides?

For each LETOR fold and each position-bias severity ``eta``:

1. ``ltr clicks simulate``: users (``--sessions`` per query) see the logging ranker's rankings
   (one feature, BM25 of the whole document, ``f25``, sampled Plackett-Luce with
   ``--temperature``) of the fold's training and validation queries, and click under the
   position-based model (examination ``(1/k)^eta``, click noise 0.1, grades 0-2);
2. ``ltr clicks propensity``: EM estimates the examination probabilities from the training log
   (its error against ``(1/k)^eta`` is reported);
3. ``ltr clicks labels``: training and validation labels three ways: click-through rates
   (naive), IPS with the true propensities, IPS with the EM estimate;
4. the click config (``configs/clicks/setrank_ips.yaml``: default SetRank, softmax loss) is
   trained on each with ``--seeds`` seeds, and tested on the fold's test partition with its
   judgments, which no click-trained model sees. The same config trained on judgments and the
   logging ranker itself frame the numbers.

With ``--click-model trust`` the users also trust the top of the ranking
(:class:`ltr.clicks.model.TrustBiasModel`: false clicks ``0.65 / min(k, 10)``), and two more
label sets are made: the affine correction with the true ``alpha_k, beta_k`` and with the
trust-bias EM estimate. That run writes its own section (``clicks-trust``).

With ``--regression-em`` the labels are also made with regression-EM propensities
(:func:`ltr.clicks.propensity.estimate_em` with the documents' features), which matters when
``--sessions`` is small, and with ``--prior-strength S [S ...]`` labels shrunk towards a feature
prior of ``S`` impressions (:func:`ltr.clicks.propensity.relevance_prior`), or of the strength
that ``auto`` chooses from each log's held-out clicks
(:func:`ltr.clicks.labels.choose_prior_strength`, reported per fold); a run with other than 100
sessions writes its own section (``clicks-<N>-sessions``). A label set whose EM refuses the
log (plain EM on one session per query) is reported as refused.

With ``--lightgbm`` every label set also trains LightGBM (the learner most teams reach for),
with each seed: regression on the labels (``objective: regression``, early stopping on the
validation labels' squared error), and LambdaMART (``lambdarank``, which takes integer grades
only) on the labels rounded to ``LEVELS`` levels whose gains are the labels they stand for,
early-stopped on validation NDCG@10 of those levels; and LambdaMART on the judgments frames
them. Each learner's test NDCG@10 is given beside SetRank's on the same labels, with paired
differences.

For every label set, two checks of the training labels against the judgments: the ratio
``(L2 - L1) / (L1 - L0)`` of the mean labels ``Ly`` of grades 0-2 (labels that are an affine map
of the relevance probability ``(2^y - 1) / 3`` give 2), and the correlation, over irrelevant
documents, of the label with the mean position the logging ranker showed the document at
(unbiased labels give 0; labels that credit a position's clicks to the document are negative).

    python -m benchmarks.clicks                          # fold 1, eta 1 and 2, 3 seeds
    python -m benchmarks.clicks --click-model trust --folds 1 2 3 --etas 1 --seeds 0
    python -m benchmarks.clicks --sessions 3 --regression-em --prior-strength 20 100 auto \
        --folds 1 2 3 --etas 1 --seeds 0
    python -m benchmarks.clicks --folds 1 2 3 4 5 --etas 1 --seeds 0 --lightgbm
    python -m benchmarks.clicks --folds 1 --etas 1 --seeds 0 --max-epochs 3 --no-write

MQ2008 is read from the bundled ``data/mq2008`` (``--data-root`` for another copy).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import HEADLINE, REPO_ROOT, evaluate, load_fold, train_lightgbm
from benchmarks.tuning import mean_sd

CONFIG = "configs/clicks/setrank_ips.yaml"
VARIANTS = {
    "pbm": ("naive", "ips-true", "ips-em"),
    "trust": ("naive", "ips-true", "ips-em", "affine-true", "affine-em"),
}
NAMES = {
    "naive": "SetRank on click-through rates (naive)",
    "ips-true": "SetRank on IPS labels, true examination",
    "ips-em": "SetRank on IPS labels, PBM EM propensities",
    "ips-regem": "SetRank on IPS labels, PBM regression-EM propensities",
    "affine-true": "SetRank on affine-corrected labels, true alpha, beta",
    "affine-em": "SetRank on affine-corrected labels, trust EM alpha, beta",
}
PRIOR = "ips-regem-prior-"  # + the strength, or "auto": labels shrunk towards a feature prior


def _name(variant: str) -> str:
    if not variant.startswith(PRIOR):
        return NAMES[variant]
    strength = variant.removeprefix(PRIOR)
    how = "chosen on held-out clicks" if strength == "auto" else f"{strength}"
    return f"SetRank on IPS labels shrunk to a feature prior (strength {how}), regression EM"


LEVELS = 32
"""Levels the labels are rounded to for LambdaMART, which takes integer grades only."""
LEARNERS = {
    "setrank": "SetRank",
    "lgbm-regression": "LightGBM regression",
    "lambdamart": f"LambdaMART, {LEVELS} levels",
}


def lightgbm_on(train: Path, valid: Path, fold, learner: str, seed: int, threads: int) -> float:
    """Test NDCG@10 (judged test partition) of LightGBM trained on the label files ``train``
    and ``valid``: regression on the labels, or LambdaMART on them rounded to :data:`LEVELS`
    levels of ``0 .. max training label``, each level's gain the label it stands for."""
    from ltr.data import load_dataset

    train_data, valid_data = load_dataset(train), load_dataset(valid)
    if learner == "lgbm-regression":
        params = {"objective": "regression", "metric": "l2"}
        labels = (train_data.labels, valid_data.labels)
    else:
        top = max(float(train_data.labels.max()), 1e-9)

        def level(y: np.ndarray) -> np.ndarray:  # negative labels (affine) count as 0
            return np.clip(np.rint(y / top * (LEVELS - 1)), 0, LEVELS - 1).astype(np.int32)

        params = {"label_gain": (np.arange(LEVELS) / (LEVELS - 1) * top).tolist()}
        labels = (level(train_data.labels), level(valid_data.labels))
    booster, _ = train_lightgbm(train_data, valid_data, threads, seed, params=params, labels=labels)
    scores = booster.predict(fold.test.features, num_iteration=booster.best_iteration)
    return evaluate(scores, fold.test)[HEADLINE]["ndcg@10"]


def _strength(text: str) -> str:
    if text == "auto":
        return text
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a prior strength is above 0 or auto, got {text}")
    return f"{value:g}"


def train_on(
    train: Path | list[str], valid: Path | list[str], fold, out: Path, seed: int, extra: dict
) -> dict[str, Any]:
    """Train the click config on ``train``/``valid`` files; test NDCG on the judged test fold."""
    from ltr.artifact import load_model
    from ltr.inference import score_lists
    from ltr.train.config import load_train_config
    from ltr.train.run import train as run_train

    as_list = lambda v: [str(p) for p in v] if isinstance(v, list) else [str(v)]  # noqa: E731
    config = load_train_config(
        REPO_ROOT / CONFIG,
        {
            "data.train": as_list(train),
            "data.valid": as_list(valid),
            "data.test": [],
            "tracking.enabled": False,
            "trainer.progress_bar": False,
            "trainer.seed": seed,
            "output_dir": str(out),
            **extra,
        },
    )
    started = time.perf_counter()
    result = run_train(config, verbose=False)
    model = load_model(result.artifact_dir).model
    test = evaluate(score_lists(model, fold.test), fold.test)
    return {
        "ndcg10": test[HEADLINE]["ndcg@10"],
        "seconds": time.perf_counter() - started,
        "best_epoch": result.best_epoch,
        "artifact": Path(result.artifact_dir),
    }


def baselines(
    fold, number: int, args, work: Path, runs: itertools.count, extra: dict
) -> tuple[float, dict[int, float]]:
    """Test NDCG@10 of the logging ranker (``args.ranker_feature``) and of the click config
    trained on the fold's judgments, by seed (``args.seeds``): what click labels are framed by."""
    from ltr.clicks.simulate import logging_scores

    logging = logging_scores(fold.test, feature=args.ranker_feature)
    judged = [work / f"f{number}-{p}.parquet" for p in ("train", "valid")]
    for part, path in zip((fold.train, fold.valid), judged, strict=True):
        _write_judged(part, path)
    by_seed = {}
    for seed in args.seeds:
        print(f"fold {number}: judged, seed {seed}", file=sys.stderr)
        run = train_on(judged[0], judged[1], fold, work / f"run-{next(runs)}", seed, extra)
        by_seed[seed] = run["ndcg10"]
        if args.lightgbm:
            booster, _ = train_lightgbm(fold.train, fold.valid, args.threads, seed)
            scores = booster.predict(fold.test.features, num_iteration=booster.best_iteration)
            by_seed[("lambdamart", seed)] = evaluate(scores, fold.test)[HEADLINE]["ndcg@10"]
    return evaluate(logging, fold.test)[HEADLINE]["ndcg@10"], by_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--folds", type=int, nargs="+", default=[1])
    parser.add_argument("--etas", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--click-model", choices=sorted(VARIANTS), default="pbm")
    parser.add_argument(
        "--regression-em",
        action="store_true",
        help="also IPS with regression-EM propensities (relevance shared through features)",
    )
    parser.add_argument(
        "--prior-strength",
        type=_strength,
        nargs="+",
        default=[],
        help="also IPS labels with regression-EM propensities shrunk towards a feature prior "
        "of this many impressions, or of the strength chosen on held-out clicks (auto), one "
        "label set each (`ltr clicks labels --prior-strength`)",
    )
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ranker-feature", default="f25")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, help="cap every training run (a smoke test)")
    parser.add_argument(
        "--lightgbm",
        action="store_true",
        help="also train LightGBM (regression, and LambdaMART on rounded labels) on every "
        "label set, and LambdaMART on the judgments",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)
    variants = _variants(args)

    import torch

    from ltr.clicks.labels import (
        choose_prior_strength,
        click_labels,
        pair_features,
        write_labelled,
    )
    from ltr.clicks.log import aggregate, read_log
    from ltr.clicks.model import PositionBasedModel, TrustBiasModel
    from ltr.clicks.propensity import Propensity, estimate_em, relevance_prior
    from ltr.clicks.simulate import logging_scores, simulate_clicks
    from ltr.errors import DataFormatError

    torch.set_num_threads(args.threads)
    extra = {} if args.max_epochs is None else {"trainer.max_epochs": args.max_epochs}
    results: dict[str, dict[tuple[int, int], float]] = {}  # key -> (fold, seed) -> NDCG@10
    em_rows, fidelity, started = [], {}, time.perf_counter()
    chosen: list[list] = []  # fold, eta, part, strength chosen by `auto`

    def record(key: str, value: float, fold: int, seed: int) -> None:
        results.setdefault(key, {})[(fold, seed)] = value

    runs = itertools.count()
    with tempfile.TemporaryDirectory(prefix="ltr-bench-clicks-") as tmp:
        work = Path(tmp)
        for number in args.folds:
            fold = load_fold(args.data_root, number)
            logging, judged = baselines(fold, number, args, work, runs, extra)
            record("logging", logging, number, 0)
            for seed, ndcg in judged.items():
                if isinstance(seed, tuple):  # (learner, seed)
                    record(f"judged/{seed[0]}", ndcg, number, seed[1])
                else:
                    record("judged", ndcg, number, seed)
            for eta in args.etas:
                if args.click_model == "pbm":
                    model = PositionBasedModel(eta=eta, noise=0.1, max_grade=2.0)
                else:
                    model = TrustBiasModel(eta=eta, max_grade=2.0)
                logs = {}
                for offset, (part, data) in enumerate(
                    (("train", fold.train), ("valid", fold.valid))
                ):
                    logs[part] = work / f"f{number}-eta{eta:g}-{part}-log.parquet"
                    simulate_clicks(
                        data,
                        logging_scores(data, feature=args.ranker_feature),
                        logs[part],
                        model=model,
                        sessions=args.sessions,
                        temperature=args.temperature,
                        seed=1000 * number + offset,
                        progress=False,
                    )
                train_log = read_log(logs["train"])
                props = {"naive": None, "ips-true": Propensity.formula(eta)}
                ems = {"ips-em": ("pbm", None)}
                if args.click_model == "trust":
                    props["affine-true"] = Propensity.formula(eta, false_click=model.false_click)
                    ems["affine-em"] = ("trust", None)
                if args.regression_em or args.prior_strength:
                    ems["ips-regem"] = ("pbm", pair_features(train_log, fold.train))
                for variant, (click_model, features) in ems.items():
                    t0 = time.perf_counter()
                    try:
                        em = estimate_em(
                            aggregate(train_log), click_model=click_model, features=features
                        )
                    except DataFormatError as exc:  # e.g. plain EM on one session per query
                        print(
                            f"fold {number}, eta {eta:g}: {variant} refused: {exc}", file=sys.stderr
                        )
                        continue
                    props[variant] = em
                    truth = props["ips-true" if click_model == "pbm" else "affine-true"]
                    name = click_model if features is None else f"{click_model}, regression"
                    em_rows.append(_em_row(number, eta, name, em, truth, time.perf_counter() - t0))
                if "ips-regem" in props:
                    props.update({PRIOR + s: props["ips-regem"] for s in args.prior_strength})
                priors: dict[str, np.ndarray] = {}  # part -> the feature prior of its log
                for variant in variants:
                    if variant not in props:
                        continue
                    prop, files = props[variant], {}
                    for part, data in (("train", fold.train), ("valid", fold.valid)):
                        log = train_log if part == "train" else read_log(logs[part])
                        files[part] = work / f"f{number}-eta{eta:g}-{variant}-{part}.parquet"
                        prior, strength = None, 0.0
                        if variant.startswith(PRIOR):
                            strength_text = variant.removeprefix(PRIOR)
                            feats = pair_features(log, data)
                            if strength_text == "auto":
                                choice = choose_prior_strength(log, prop, feats)
                                strength = choice.strength
                                chosen.append([number, f"{eta:g}", part, f"{strength:g}"])
                            else:
                                strength = float(strength_text)
                            if strength > 0:
                                if part not in priors:
                                    priors[part] = relevance_prior(aggregate(log), prop, feats)
                                prior = priors[part]
                        labels = click_labels(log, prop, prior=prior, prior_strength=strength)
                        write_labelled(log, labels, data, files[part])
                        if part == "train":
                            fidelity.setdefault(f"{variant}@{eta:g}", []).append(
                                label_fidelity(log, labels, data)
                            )
                    for seed in args.seeds:
                        print(
                            f"fold {number}, eta {eta:g}: {variant}, seed {seed}", file=sys.stderr
                        )
                        run = train_on(
                            files["train"],
                            files["valid"],
                            fold,
                            work / f"run-{next(runs)}",
                            seed,
                            extra,
                        )
                        record(f"{variant}@{eta:g}", run["ndcg10"], number, seed)
                        for learner in list(LEARNERS)[1:] if args.lightgbm else []:
                            ndcg = lightgbm_on(
                                files["train"], files["valid"], fold, learner, seed, args.threads
                            )
                            record(f"{variant}@{eta:g}/{learner}", ndcg, number, seed)

    body = _report(args, results, em_rows, fidelity, chosen, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        trust = args.click_model == "trust"
        few = args.sessions != 100  # 100 is the default
        write_section(
            "clicks" + ("-trust" if trust else "") + (f"-{args.sessions}-sessions" if few else ""),
            f"Learning from simulated clicks{' with trust bias' if trust else ''}"
            f"{f', {args.sessions} sessions per query' if few else ''} (MQ2008)",
            command_line("clicks", argv),
            body,
        )
    return 0


def _variants(args) -> tuple[str, ...]:
    extra = ("ips-regem",) if args.regression_em else ()
    return VARIANTS[args.click_model] + extra + tuple(PRIOR + s for s in args.prior_strength)


def label_fidelity(log, labels: np.ndarray, data) -> tuple[float, float]:
    """``(L2 - L1) / (L1 - L0)`` over the mean labels by judged grade, and the correlation of
    irrelevant documents' labels with the mean position they were shown at (see the module
    doc)."""
    from ltr.clicks.log import aggregate

    grade_of = dict(
        zip(zip(data.qids[data.query_of_row], data.doc_ids, strict=True), data.labels, strict=True)
    )
    grades = np.array(
        [grade_of[(log.qids[q], d)] for q, d in zip(log.doc_qid, log.doc_ids, strict=True)]
    )
    counts = aggregate(log)
    shown = np.bincount(counts.doc, weights=counts.impressions, minlength=len(grades))
    mean_position = (
        np.bincount(counts.doc, weights=counts.position * counts.impressions, minlength=len(grades))
        / shown
    )
    means = [labels[grades == y].mean() for y in (0, 1, 2)]
    ratio = (means[2] - means[1]) / (means[1] - means[0])
    irrelevant = grades == 0
    return float(ratio), float(np.corrcoef(labels[irrelevant], mean_position[irrelevant])[0, 1])


def _em_row(number: int, eta: float, click_model: str, em, truth, seconds: float) -> list:
    top = min(10, len(em.theta))
    k = np.arange(1, top + 1)
    row = [number, f"{eta:g}", click_model, em.iterations, f"{seconds:.1f}"]
    if em.click_model == "pbm" and truth.click_model == "pbm":
        error = np.abs(em.at(k) - truth.at(k)).max()
        return [
            *row,
            f"{error:.4f}",
            *(f"{em.at(p)[0]:.3f} / {truth.at(p)[0]:.3f}" for p in ([2], [5])),
        ]
    # Trust: the fit is determined up to an affine map of relevance, so alpha and beta are
    # shown beside the truth rather than scored against it.
    alpha, beta = em.at(k), em.offset(k)
    true_alpha, true_beta = truth.at(k), truth.offset(k)
    return [
        *row,
        "—",
        *(
            f"alpha {alpha[i]:.3f} / {true_alpha[i]:.3f}, beta {beta[i]:.3f} / {true_beta[i]:.3f}"
            for i in (1, 4)
        ),
    ]


def _write_judged(data, path: Path) -> None:
    from ltr.data.parquet import ParquetListWriter
    from ltr.data.svmlight import RowChunk

    chunk = RowChunk(data.qids[data.query_of_row], data.doc_ids, data.labels, data.features)
    with ParquetListWriter(path, data.num_features, feature_names=data.feature_names) as w:
        w.write(chunk)


def _learners_table(args, results: dict[str, dict], variants) -> list[str]:
    """Lines of a table of the learners' test NDCG@10 on the same labels, and SetRank's paired
    differences with each LightGBM learner."""
    learners = list(LEARNERS)
    rows = [
        ["judgments", "—", mean_sd(list(results["judged"].values())), "—",
         mean_sd(list(results.get("judged/lambdamart", {}).values())), "—", "—"],
    ]  # fmt: skip
    for eta in args.etas:
        for variant in variants:
            key = f"{variant}@{eta:g}"
            if key not in results:
                continue
            by = {"setrank": results[key]} | {
                learner: results.get(f"{key}/{learner}", {}) for learner in learners[1:]
            }
            gains = []
            for learner in learners[1:]:
                diff = [by["setrank"][run] - by[learner][run] for run in by[learner]]
                won = sum(d > 0 for d in diff)
                gains.append(f"{mean_sd(diff)} ({won} of {len(diff)})" if diff else "—")
            rows.append(
                [_name(variant).removeprefix("SetRank on "), f"{eta:g}",
                 *(mean_sd(list(by[learner].values())) if by[learner] else "—"
                   for learner in learners), *gains]
            )  # fmt: skip
    return [
        "The same labels, three learners (test NDCG@10; SetRank minus each LightGBM learner, "
        "paired by fold and seed, with the runs SetRank won). LightGBM: regression on the "
        "labels (early stopping on the validation labels' squared error), and LambdaMART on the "
        f"labels rounded to {LEVELS} levels whose gains are the labels they stand for (early "
        "stopping on validation NDCG@10); 1,000 rounds at most, learning rate 0.05, 31 leaves.",
        "",
        markdown_table(
            ["labels", "eta", *LEARNERS.values(), "SetRank − regression", "SetRank − LambdaMART"],
            rows,
        ),
        "",
    ]


def _report(
    args, results: dict[str, dict], em_rows: list, fidelity: dict, chosen: list, seconds: float
) -> str:
    runs = f"{len(args.folds)} fold(s) × {len(args.seeds)} seed(s)"
    clicks = (
        "position-based clicks with examination (1/k)^eta and click noise 0.1"
        if args.click_model == "pbm"
        else "trust-bias clicks (examination (1/k)^eta; an examined document of relevance "
        "probability r = (2^y - 1)/3 is clicked with probability eps+_k r + eps-_k (1 - r), "
        "eps+_k = 1 - (min(k, 20) + 1)/100, eps-_k = 0.65 / min(k, 10))"
    )
    lines = [
        f"MQ2008 folds {', '.join(map(str, args.folds))}; logging ranker `{args.ranker_feature}` "
        f"(BM25 of the whole document), Plackett-Luce temperature {args.temperature:g}; "
        f"{args.sessions} simulated sessions per training and validation query; {clicks}. "
        f"Every SetRank model is `{CONFIG}` (softmax loss), trained with seeds "
        f"{' '.join(map(str, args.seeds))}, selected on validation labels of its own kind, and "
        "tested on the fold's judged test partition. Test NDCG@10 (lists with no relevant "
        f"document = 1), mean ± sd over {runs}. Total {seconds / 60:.0f} min.",
        "",
    ]
    rows = [
        ["logging ranker (f25)", "—", mean_sd(list(results["logging"].values())), "—", "—"],
        ["SetRank on judgments", "—", mean_sd(list(results["judged"].values())), "—", "—"],
    ]
    variants = _variants(args)
    runs_per_variant = len(args.folds) * len(args.seeds)
    for eta in args.etas:
        for variant in variants:
            key = f"{variant}@{eta:g}"
            if key not in results:
                rows.append([_name(variant), f"{eta:g}", "EM refused the log", "—", "—"])
                continue
            ratio, corr = zip(*fidelity[key], strict=True)
            ndcg = mean_sd(list(results[key].values()))
            if len(results[key]) < runs_per_variant:
                ndcg += f" ({len(results[key])} of {runs_per_variant} runs; EM refused the rest)"
            rows.append(
                [_name(variant), f"{eta:g}", ndcg, f"{np.mean(ratio):.2f}", f"{np.mean(corr):+.2f}"]
            )
    lines.append(
        markdown_table(
            [
                "model",
                "eta",
                "test NDCG@10",
                "label ratio (L2−L1)/(L1−L0), 2 = right",
                "corr(label, position), grade 0",
            ],
            rows,
        )
    )
    lines.append("")
    if args.lightgbm:
        lines += _learners_table(args, results, variants)
    if args.click_model == "pbm":
        pairs = [("ips-true", "naive"), ("ips-em", "naive")]
        if args.regression_em:
            pairs += [("ips-regem", "naive"), ("ips-regem", "ips-em")]
        for strength in args.prior_strength:
            pairs += [(PRIOR + strength, "naive"), (PRIOR + strength, "ips-regem")]
        if "auto" in args.prior_strength:
            pairs += [(PRIOR + "auto", PRIOR + s) for s in args.prior_strength if s != "auto"]
    else:
        pairs = [("affine-em", v) for v in ("naive", "ips-true", "ips-em")]
        pairs.append(("affine-true", "ips-true"))
    for eta in args.etas:
        for first, second in pairs:
            a, b = results.get(f"{first}@{eta:g}", {}), results.get(f"{second}@{eta:g}", {})
            gains = [a[run] - b[run] for run in a if run in b]
            if not gains:
                continue
            won = sum(g > 0 for g in gains)
            lines.append(
                f"- eta {eta:g}, {_name(first)} − {_name(second)}: {mean_sd(gains)} "
                f"(better in {won} of {len(gains)} runs, paired by fold and seed)"
            )
    if chosen:
        lines += [
            "",
            "Prior strengths that `auto` chose from each log (5-fold cross-validation over its "
            "sessions; the smallest held-out squared error of predicted clicks):",
            "",
            markdown_table(["fold", "eta", "log", "strength"], chosen),
        ]
    lines += [
        "",
        "EM estimates from each training log, against the truth:",
        "",
        markdown_table(
            [
                "fold",
                "eta",
                "EM model",
                "EM steps",
                "EM s",
                "largest theta error, positions 1-10",
                "position 2 est / true",
                "position 5 est / true",
            ],
            em_rows,
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
