"""Does `ltr clicks compare` name the click model that made a log? Simulated MQ2008 logs.

For each MQ2008 fold, each simulated click model (position-based, trust bias, the dependent
click model at two values of ``lambda``, the DBN at two values of ``gamma`` and the user
browsing model) and each number
of sessions per query, ``ltr clicks simulate``'s users click on the fold's training queries
ranked by BM25 (``f25``, Plackett-Luce at ``--temperature``), and
:func:`ltr.clicks.compare.compare_click_models` fits the PBM, trust bias, the DCM, the DBN and
the UBM to 75 % of the sessions and scores the rest. Reported: how often
it named the model that made the log, each fitted model's held-out log-likelihood per impression
and perplexity (mean over folds), and the seconds a comparison took. No ranker is trained, so
this runs in minutes.

    python -m benchmarks.click_models                     # folds 1-5, 10 and 100 sessions
    python -m benchmarks.click_models --folds 1 --sessions 10 --no-write
    python -m benchmarks.click_models --folds 1 2 3 --only "lambda 0)"   # one row, not written
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import REPO_ROOT, load_fold

SECTION = "click-models"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ranker-feature", default="f25")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="simulate only the user models whose title holds one of these (e.g. 'lambda 0)'); "
        "implies --no-write, since the section holds every model",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    from ltr.clicks.compare import MODELS, compare_click_models
    from ltr.clicks.model import (
        BrowsingModel,
        CascadeModel,
        DynamicBayesianModel,
        PositionBasedModel,
        TrustBiasModel,
    )

    truths = {
        "pbm (eta 1)": ("pbm", PositionBasedModel(eta=1.0, noise=0.1, max_grade=2.0)),
        "trust (eta 1, false click 0.65)": ("trust", TrustBiasModel(eta=1.0, max_grade=2.0)),
        "cascade (lambda 0)": ("cascade", CascadeModel(continue_after_click=0.0)),
        "cascade (lambda 0.5)": ("cascade", CascadeModel(continue_after_click=0.5)),
        "dbn (gamma 0.7)": ("dbn", DynamicBayesianModel(perseverance=0.7)),
        "dbn (gamma 0.9)": ("dbn", DynamicBayesianModel(perseverance=0.9)),
        "ubm (eta 1)": ("ubm", BrowsingModel(eta=1.0)),
    }
    # (truth, sessions) -> {"named": [...], "seconds": [...], model: [(ll, perplexity), ...]}
    results: dict[tuple[str, int], dict[str, list]] = {}
    started = time.perf_counter()
    if args.only:
        truths = {t: m for t, m in truths.items() if any(text in t for text in args.only)}
        if not truths:
            parser.error(f"--only matches no user model: {args.only}")
        args.no_write = True
    for simulated in simulated_logs(args, truths):
        t0 = time.perf_counter()
        result = compare_click_models(simulated.log)
        cell = results.setdefault((simulated.title, simulated.sessions), {})
        cell.setdefault("named", []).append(result.recommended == simulated.name)
        cell.setdefault("seconds", []).append(time.perf_counter() - t0)
        for score in result.scores:
            cell.setdefault(score.model, []).append((score.log_likelihood, score.perplexity))

    rows = []
    for (truth, sessions), cell in results.items():
        fits = []
        for model in MODELS:
            ll, perplexity = np.mean(cell[model], axis=0)
            fits.append(f"{ll:.4f} / {perplexity:.4f}")
        rows.append(
            [truth, sessions, f"{sum(cell['named'])} of {len(cell['named'])}", *fits,
             f"{np.mean(cell['seconds']):.1f}"]
        )  # fmt: skip
    body = "\n".join(
        [
            f"MQ2008 training partitions of folds {', '.join(map(str, args.folds))}; logging "
            f"ranker `{args.ranker_feature}`, Plackett-Luce temperature {args.temperature:g}; "
            "each model fitted to 75 % of the sessions and scored on the rest "
            "(`ltr clicks compare`). Per fitted model: held-out log-likelihood per impression "
            "(higher is better) / perplexity averaged over positions 1-10 (lower is better), "
            f"mean over folds. Total {(time.perf_counter() - started) / 60:.0f} min.",
            "",
            markdown_table(
                ["log simulated with", "sessions per query", "named its model",
                 *(f"fitted {m}" for m in MODELS), "s per comparison"],
                rows,
            ),
        ]
    )  # fmt: skip
    print(body)
    if not args.no_write:
        write_section(
            SECTION,
            "Which click model explains a log (simulated MQ2008 logs)",
            command_line("click_models", argv),
            body,
        )
    return 0


@dataclass(frozen=True)
class SimulatedLog:
    fold: int
    data: object  # the fold's training partition (ListDataset)
    title: str
    name: str  # the click model's name
    model: object
    sessions: int
    log: object  # ClickLog


def simulated_logs(args, models: dict[str, tuple[str, object]]) -> Iterator[SimulatedLog]:
    """For each of ``args.folds``, each ``title: (name, click model)`` of ``models`` and each of
    ``args.sessions`` sessions per query, the click log of simulated users on the fold's
    training queries ranked by ``args.ranker_feature`` (Plackett-Luce at ``args.temperature``,
    seed ``1000 * fold``), read back from a temporary file."""
    from ltr.clicks.log import read_log
    from ltr.clicks.simulate import logging_scores, simulate_clicks

    with tempfile.TemporaryDirectory(prefix="ltr-bench-click-logs-") as tmp:
        for number in args.folds:
            data = load_fold(args.data_root, number).train
            scores = logging_scores(data, feature=args.ranker_feature)
            for title, (name, model) in models.items():
                for sessions in args.sessions:
                    print(f"fold {number}: {title}, {sessions} sessions", file=sys.stderr)
                    path = Path(tmp) / f"f{number}-{name}-{sessions}.parquet"
                    simulate_clicks(
                        data, scores, path, model=model, sessions=sessions,
                        temperature=args.temperature, seed=1000 * number, progress=False,
                    )  # fmt: skip
                    yield SimulatedLog(number, data, title, name, model, sessions, read_log(path))


if __name__ == "__main__":
    sys.exit(main())
