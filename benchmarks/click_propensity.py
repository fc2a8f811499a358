"""How many sessions per query does position-bias estimation need? Plain EM against regression EM.

For each MQ2008 fold, position-bias strength ``eta`` and number of sessions per query,
``ltr clicks simulate``'s users (position-based model, click noise 0.1) see the fold's training
queries ranked by the logging feature (BM25, ``f25``, Plackett-Luce at ``--temperature``), and
the examination probabilities are estimated from the log twice:

- plain EM, with a relevance parameter per (query, document);
- regression EM, with relevance a logistic regression on the documents' 46 features.

Reported: the largest error of ``theta_k`` against ``(1/k)^eta`` over positions 1-10, and the
seconds each estimate took. No model is trained, so this runs in minutes.

    python -m benchmarks.click_propensity                       # folds 1-5, 1 to 100 sessions
    python -m benchmarks.click_propensity --folds 1 --sessions 1 10 --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import REPO_ROOT, load_fold
from benchmarks.tuning import mean_sd

SECTION = "click-propensity"
TOP = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--etas", type=float, nargs="+", default=[1.0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 3, 10, 30, 100])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ranker-feature", default="f25")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    from ltr.clicks.labels import pair_features
    from ltr.clicks.log import aggregate, read_log
    from ltr.clicks.model import PositionBasedModel
    from ltr.clicks.propensity import estimate_em
    from ltr.clicks.simulate import logging_scores, simulate_clicks
    from ltr.errors import DataFormatError

    # (eta, sessions) -> method -> list of (error, seconds) over folds; None when refused.
    results: dict[tuple[float, int], dict[str, list]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ltr-bench-propensity-") as tmp:
        for number in args.folds:
            data = load_fold(args.data_root, number).train
            scores = logging_scores(data, feature=args.ranker_feature)
            for eta in args.etas:
                truth = np.arange(1, TOP + 1) ** -eta
                for sessions in args.sessions:
                    print(f"fold {number}, eta {eta:g}, {sessions} sessions", file=sys.stderr)
                    path = Path(tmp) / f"f{number}-{eta:g}-{sessions}.parquet"
                    simulate_clicks(
                        data,
                        scores,
                        path,
                        model=PositionBasedModel(eta=eta, noise=0.1, max_grade=2.0),
                        sessions=sessions,
                        temperature=args.temperature,
                        seed=1000 * number + sessions,
                        progress=False,
                    )
                    log = read_log(path)
                    counts = aggregate(log)
                    cell = results.setdefault((eta, sessions), {"em": [], "regression": []})
                    for method, features in (("em", None), ("regression", "yes")):
                        t0 = time.perf_counter()
                        try:
                            estimate = estimate_em(
                                counts,
                                features=None if features is None else pair_features(log, data),
                            )
                        except DataFormatError:
                            cell[method].append(None)
                            continue
                        error = np.abs(estimate.at(np.arange(1, TOP + 1)) - truth).max()
                        cell[method].append((float(error), time.perf_counter() - t0))

    body = _report(args, results, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        write_section(
            SECTION,
            "Position-bias estimation from few sessions (MQ2008)",
            command_line("click_propensity", argv),
            body,
        )
    return 0


def _cell(runs: list) -> tuple[str, str]:
    done = [r for r in runs if r is not None]
    if not done:
        return "refused (no document moves)", "—"
    error = mean_sd([e for e, _ in done])
    if len(done) < len(runs):
        error += f" ({len(runs) - len(done)} of {len(runs)} refused)"
    return error, f"{np.mean([s for _, s in done]):.1f}"


def _report(args, results: dict, seconds: float) -> str:
    lines = [
        f"MQ2008 folds {', '.join(map(str, args.folds))}, training queries; logging ranker "
        f"`{args.ranker_feature}` (BM25), Plackett-Luce temperature {args.temperature:g}; "
        "position-based clicks with examination (1/k)^eta and click noise 0.1. Largest error of "
        f"the estimated theta_k against (1/k)^eta over positions 1-{TOP}, mean ± sd over folds; "
        "seconds per estimate (mean). Plain EM has a relevance per (query, document); regression "
        "EM has relevance = a logistic regression on the 46 features (`ltr clicks propensity "
        f"--features`). Total {seconds / 60:.1f} min.",
        "",
    ]
    rows = []
    for (eta, sessions), cell in results.items():
        em_error, em_s = _cell(cell["em"])
        reg_error, reg_s = _cell(cell["regression"])
        rows.append([f"{eta:g}", sessions, em_error, em_s, reg_error, reg_s])
    lines.append(
        markdown_table(
            [
                "eta",
                "sessions per query",
                "plain EM: largest error",
                "s",
                "regression EM: largest error",
                "s",
            ],
            rows,
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
