"""Learning from session-dependent clicks on MQ2008: position propensities against the dependent
click model (DCM), the dynamic Bayesian network (DBN) and the user browsing model (UBM).

With ``--click-model cascade`` (the default), for each LETOR fold and each probability
``lambda`` of reading on after a click:

1. ``ltr clicks simulate --click-model cascade``: users (``--sessions`` per query) read the
   logging ranker's rankings (BM25 of the whole document, ``f25``, Plackett-Luce at
   ``--temperature``) of the fold's training and validation queries from the top, click an
   examined document of grade ``y`` with probability ``0.1 + 0.9 (2^y - 1)/3``, and after a
   click read on with probability ``lambda`` (0 = the cascade model, one click at most);
2. labels three ways: click-through rates (naive); IPS with PBM propensities that EM fits to
   the same log (``ltr clicks propensity``, which takes the cascade's examination for a curve by
   position); and the DCM's EM (``ltr clicks labels --cascade``), whose estimate of ``lambda``
   is reported beside the truth;
3. the click config (``configs/clicks/setrank_ips.yaml``) is trained on each with ``--seeds``
   and tested on the fold's judged test partition, as in ``benchmarks.clicks``, with the same
   two label checks (grade spacing; correlation of irrelevant documents' labels with their mean
   position).

With ``--click-model dbn``, the users are the DBN's (``ltr clicks simulate --click-model dbn``):
a click on a document of grade ``y`` satisfies with probability ``(2^y - 1)/3`` and a satisfied
user is done; otherwise they read on with probability ``gamma`` (``--perseverances``) and give
up otherwise. A fourth label set is the DBN's EM (``ltr clicks labels --dbn``: attractiveness
times satisfaction), whose estimate of ``gamma`` is reported; its own section of the docs.

With ``--click-model ubm``, the users are the UBM's (``ltr clicks simulate --click-model ubm``):
they look at position ``k`` with probability ``(1 / (k - l))^eta`` (``--etas``), ``l`` their
last click above (0 if none), and click as above. The fourth label set is the UBM's EM
(``ltr clicks labels --ubm``), whose examination of position 2 below no click gives the
estimate of ``eta`` reported (``-log2 g(2, none)``); its own section too.

With ``--prior-strength S [S ...]`` (a number, or ``auto`` for the strength that
cross-validation over sessions chooses for each log), the model's labels are also made shrunk
towards feature priors (``ltr clicks labels --cascade|--dbn --prior-strength``), one label set
each: what the priors do for rankers when ``--sessions`` is small. A run with other than 100
sessions per query, or with priors, writes a section of its own.

    python -m benchmarks.click_cascade                 # folds 1-3, lambda 0 and 0.5, seed 0
    python -m benchmarks.click_cascade --click-model dbn   # folds 1-3, gamma 0.7 and 0.9
    python -m benchmarks.click_cascade --click-model ubm   # folds 1-3, eta 1
    python -m benchmarks.click_cascade --sessions 3 --lambdas 0.5 --prior-strength auto
    python -m benchmarks.click_cascade --folds 1 --lambdas 0.5 --max-epochs 3 --no-write
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.clicks import CONFIG, _strength, baselines, label_fidelity, train_on
from benchmarks.quality_cv import REPO_ROOT, load_fold
from benchmarks.tuning import mean_sd

SECTIONS = {"cascade": "clicks-cascade", "dbn": "clicks-dbn", "ubm": "clicks-ubm"}
TITLES = {
    "cascade": "Learning from simulated cascade clicks (MQ2008)",
    "dbn": "Learning from simulated DBN clicks (MQ2008)",
    "ubm": "Learning from simulated UBM clicks (MQ2008)",
}
PARAMETER = {"cascade": "lambda", "dbn": "gamma", "ubm": "eta"}
SHORT = {"cascade": "DCM", "dbn": "DBN", "ubm": "UBM"}
PRIOR = "prior-"
NAMES = {
    "naive": "SetRank on click-through rates (naive)",
    "ips-em": "SetRank on IPS labels, PBM EM propensities",
    "cascade": "SetRank on DCM labels (`--cascade`)",
    "dbn": "SetRank on DBN labels (`--dbn`)",
    "ubm": "SetRank on UBM labels (`--ubm`)",
}
USERS = {
    "cascade": "dependent-click-model users (read from the top, click an examined document of "
    "grade y with probability 0.1 + 0.9 (2^y - 1)/3, read on after a click with probability "
    "lambda)",
    "dbn": "DBN users (read from the top, click an examined document of grade y with probability "
    "0.1 + 0.9 (2^y - 1)/3, are satisfied by a click with probability (2^y - 1)/3 and then done, "
    "and otherwise read on with probability gamma)",
    "ubm": "UBM users (look at position k with probability (1/(k - l))^eta, l the position of "
    "their last click above or 0, and click an examined document of grade y with probability "
    "0.1 + 0.9 (2^y - 1)/3)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--click-model", choices=tuple(SECTIONS), default="cascade")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--perseverances", type=float, nargs="+", default=[0.7, 0.9])
    parser.add_argument("--etas", type=float, nargs="+", default=[1.0], help="ubm: eta")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ranker-feature", default="f25")
    parser.add_argument(
        "--prior-strength",
        type=_strength,
        nargs="+",
        default=[],
        help="also the model's labels shrunk towards feature priors of this many observations, "
        "or of the strength chosen on held-out sessions (auto), one label set each",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, help="cap every training run (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    import torch

    from ltr.clicks.cascade import estimate_cascade
    from ltr.clicks.labels import click_labels, pair_features, write_labelled
    from ltr.clicks.log import aggregate, read_log
    from ltr.clicks.model import BrowsingModel, CascadeModel, DynamicBayesianModel
    from ltr.clicks.propensity import estimate_em
    from ltr.clicks.session_prior import (
        choose_session_prior_strength,
        fit_session_model,
        fit_with_prior,
    )
    from ltr.clicks.simulate import logging_scores, simulate_clicks

    torch.set_num_threads(args.threads)
    extra = {} if args.max_epochs is None else {"trainer.max_epochs": args.max_epochs}
    results: dict[str, dict[tuple[int, int], float]] = {}  # key -> (fold, seed) -> NDCG@10
    fidelity: dict[str, list] = {}
    fits: list[list] = []
    chosen: list[list] = []  # fold, parameter, part, strength chosen by auto
    started, runs = time.perf_counter(), itertools.count()

    def record(key: str, value: float, fold: int, seed: int) -> None:
        results.setdefault(key, {})[(fold, seed)] = value

    kind = args.click_model
    variants = ["naive", "ips-em", "cascade"] + ([kind] if kind != "cascade" else [])
    variants += [PRIOR + s for s in args.prior_strength]
    settings = {"cascade": args.lambdas, "dbn": args.perseverances, "ubm": args.etas}[kind]
    with tempfile.TemporaryDirectory(prefix="ltr-bench-cascade-") as tmp:
        work = Path(tmp)
        for number in args.folds:
            fold = load_fold(args.data_root, number)
            logging, judged = baselines(fold, number, args, work, runs, extra)
            record("logging", logging, number, 0)
            for seed, ndcg in judged.items():
                record("judged", ndcg, number, seed)
            for lam in settings:
                if kind == "cascade":
                    model = CascadeModel(continue_after_click=lam, noise=0.1, max_grade=2.0)
                elif kind == "dbn":
                    model = DynamicBayesianModel(perseverance=lam, noise=0.1, max_grade=2.0)
                else:
                    model = BrowsingModel(eta=lam, noise=0.1, max_grade=2.0)
                files: dict[str, dict[str, Path]] = {v: {} for v in variants}
                for offset, (part, data) in enumerate(
                    (("train", fold.train), ("valid", fold.valid))
                ):
                    path = work / f"f{number}-l{lam:g}-{part}-log.parquet"
                    simulate_clicks(
                        data,
                        logging_scores(data, feature=args.ranker_feature),
                        path,
                        model=model,
                        sessions=args.sessions,
                        temperature=args.temperature,
                        seed=1000 * number + offset,
                        progress=False,
                    )
                    log = read_log(path)
                    t0 = time.perf_counter()
                    fit = fit_session_model(log, kind)
                    if part == "train":
                        if kind == "cascade":
                            found = fit.continue_after_click
                        elif kind == "dbn":
                            found = fit.perseverance
                        else:  # g(2, none) = (1/2)^eta
                            found = -np.log2(fit.examination[1, 0])
                        fits.append(
                            [number, f"{lam:g}", f"{found:.3f}", fit.iterations,
                             f"{time.perf_counter() - t0:.1f}"]
                        )  # fmt: skip
                    labels = {
                        "naive": click_labels(log, None),
                        "ips-em": click_labels(log, estimate_em(aggregate(log))),
                        "cascade": fit.labels
                        if kind == "cascade"
                        else estimate_cascade(log).labels,
                    }
                    if kind != "cascade":
                        labels[kind] = fit.labels
                    feats = pair_features(log, data) if args.prior_strength else None
                    for text in args.prior_strength:
                        strength = float(text) if text != "auto" else None
                        if strength is None:
                            choice = choose_session_prior_strength(log, args.click_model, feats)
                            strength = choice.strength
                            chosen.append([number, f"{lam:g}", part, f"{strength:g}"])
                        labels[PRIOR + text] = (
                            fit_with_prior(log, args.click_model, feats, strength).labels
                            if strength > 0
                            else fit.labels
                        )
                    for variant, values in labels.items():
                        out = work / f"f{number}-l{lam:g}-{variant}-{part}.parquet"
                        write_labelled(log, values, data, out)
                        files[variant][part] = out
                        if part == "train":
                            fidelity.setdefault(f"{variant}@{lam:g}", []).append(
                                label_fidelity(log, values, data)
                            )
                for variant in variants:
                    for seed in args.seeds:
                        print(f"fold {number}, {PARAMETER[args.click_model]} {lam:g}: {variant}, "
                              f"seed {seed}", file=sys.stderr)  # fmt: skip
                        run = train_on(
                            files[variant]["train"],
                            files[variant]["valid"],
                            fold,
                            work / f"run-{next(runs)}",
                            seed,
                            extra,
                        )
                        record(f"{variant}@{lam:g}", run["ndcg10"], number, seed)

    seconds = time.perf_counter() - started
    body = _report(args, settings, variants, results, fidelity, fits, chosen, seconds)
    print(body)
    if not args.no_write:
        section, title = SECTIONS[args.click_model], TITLES[args.click_model]
        if args.sessions != 100 or args.prior_strength:
            section = f"{section}-{args.sessions}-sessions"
            title = f"{title[:-1]}, {args.sessions} sessions per query)"
        write_section(
            section,
            title,
            command_line("click_cascade", argv),
            body,
        )
    return 0


def _name(variant: str, model: str) -> str:
    if variant.startswith(PRIOR):
        strength = variant.removeprefix(PRIOR)
        chosen = "chosen on held-out sessions" if strength == "auto" else f"of {strength}"
        return f"SetRank on {SHORT[model]} labels, feature priors {chosen} (`--prior-strength`)"
    return NAMES[variant]


def _report(
    args,
    values: list,
    variants: list,
    results: dict,
    fidelity: dict,
    fits: list,
    chosen: list,
    seconds: float,
) -> str:
    name = PARAMETER[args.click_model]
    right = "6.5" if args.click_model == "dbn" else "2"  # eps * sigma: 0, 0.133, 1 under DBN
    lines = [
        f"MQ2008 folds {', '.join(map(str, args.folds))}; logging ranker `{args.ranker_feature}` "
        f"(BM25 of the whole document), Plackett-Luce temperature {args.temperature:g}; "
        f"{args.sessions} simulated sessions per training and validation query; "
        f"{USERS[args.click_model]}. Every SetRank model is `{CONFIG}` (softmax loss), trained "
        "with seeds "
        f"{' '.join(map(str, args.seeds))}, selected on validation labels of its own kind, and "
        "tested on the fold's judged test partition. Test NDCG@10 (lists with no relevant "
        f"document = 1), mean ± sd over {len(args.folds)} fold(s) × {len(args.seeds)} seed(s). "
        f"Total {seconds / 60:.0f} min.",
        "",
    ]
    rows = [
        ["logging ranker (f25)", "—", mean_sd(list(results["logging"].values())), "—", "—"],
        ["SetRank on judgments", "—", mean_sd(list(results["judged"].values())), "—", "—"],
    ]
    for lam in values:
        for variant in variants:
            key = f"{variant}@{lam:g}"
            ratio, corr = zip(*fidelity[key], strict=True)
            rows.append(
                [_name(variant, args.click_model), f"{lam:g}",
                 mean_sd(list(results[key].values())),
                 f"{np.mean(ratio):.2f}", f"{np.mean(corr):+.2f}"]
            )  # fmt: skip
    lines.append(
        markdown_table(
            [
                "model",
                name,
                "test NDCG@10",
                f"label ratio (L2−L1)/(L1−L0), {right} = right",
                "corr(label, position), grade 0",
            ],
            rows,
        )
    )
    lines.append("")
    best = args.click_model  # the labels of the model that made the log
    plain = [v for v in variants if not v.startswith(PRIOR)]
    pairs = [(best, v) for v in plain if v != best] + [("ips-em", "naive")]
    pairs += [(v, best) for v in variants if v.startswith(PRIOR)]
    for lam in values:
        for first, second in pairs:
            a, b = results[f"{first}@{lam:g}"], results[f"{second}@{lam:g}"]
            gains = [a[run] - b[run] for run in a if run in b]
            won = sum(g > 0 for g in gains)
            lines.append(
                f"- {name} {lam:g}, {_name(first, args.click_model)} − "
                f"{_name(second, args.click_model)}: {mean_sd(gains)} "
                f"(better in {won} of {len(gains)} runs, paired by fold and seed)"
            )
    lines += [
        "",
        f"The {SHORT[best]}'s EM on each training log:",
        "",
        markdown_table(["fold", f"true {name}", f"estimated {name}", "EM steps", "EM s"], fits),
    ]
    if chosen:
        lines += [
            "",
            "Prior strengths chosen by `auto` (5-fold cross-validation over each log's sessions):",
            "",
            markdown_table(["fold", name, "log", "strength"], chosen),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
