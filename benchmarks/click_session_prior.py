"""Few sessions per query under the session click models: the DCM's, the DBN's and the UBM's
labels shrunk towards feature priors, with the strength chosen from held-out sessions
(``--prior-strength auto``).

For each MQ2008 fold, each session model (the DCM at ``lambda`` 0.5, the DBN at ``gamma`` 0.9,
the UBM at ``eta`` 1) and each number of sessions per query, ``ltr clicks simulate``'s users
click on the fold's training queries ranked by BM25 (``f25``, Plackett-Luce at
``--temperature``); the model's EM makes labels without a prior, and with feature priors at the
strength that 5-fold cross-validation over sessions chooses (:mod:`ltr.clicks.session_prior`).
Reported, against the simulation's truth (the DCM's and the UBM's attractiveness, the DBN's
attractiveness times satisfaction): the labels' mean squared error, and NDCG@10 of each query's
documents ordered by label against their judged grades (gain 2^y - 1; queries without a
relevant document left out). No ranker is trained, so this runs in minutes.

    python -m benchmarks.click_session_prior                    # folds 1-5, 3 and 10 sessions
    python -m benchmarks.click_session_prior --folds 1 --sessions 3 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.click_models import simulated_logs
from benchmarks.quality_cv import REPO_ROOT
from benchmarks.tuning import mean_sd

SECTION = "click-session-prior"


def label_ndcg(log, labels: np.ndarray, grades: np.ndarray, k: int = 10) -> float:
    """Mean over the log's queries with a relevant document of NDCG@k of its documents ordered
    by ``labels`` (ties broken by pair code), gain ``2^grade - 1``."""
    scores = []
    for query in np.unique(log.doc_qid):
        docs = np.flatnonzero(log.doc_qid == query)
        gain = 2.0 ** grades[docs] - 1
        if gain.max() <= 0:
            continue
        discount = 1 / np.log2(np.arange(2, min(k, len(docs)) + 2))
        ranked = gain[np.lexsort((docs, -labels[docs]))][:k]
        ideal = np.sort(gain)[::-1][:k]
        scores.append(float((ranked * discount).sum() / (ideal * discount).sum()))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--sessions", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ranker-feature", default="f25")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    from ltr.clicks.labels import match_rows, pair_features
    from ltr.clicks.model import BrowsingModel, CascadeModel, DynamicBayesianModel
    from ltr.clicks.session_prior import (
        choose_session_prior_strength,
        fit_session_model,
        fit_with_prior,
    )

    models = {
        "DCM (lambda 0.5)": ("cascade", CascadeModel(continue_after_click=0.5)),
        "DBN (gamma 0.9)": ("dbn", DynamicBayesianModel(perseverance=0.9)),
        "UBM (eta 1)": ("ubm", BrowsingModel(eta=1.0)),
    }
    cells: dict[tuple[str, int], dict[str, list]] = {}
    started = time.perf_counter()
    for simulated in simulated_logs(args, models):
        log, data, name, model = simulated.log, simulated.data, simulated.name, simulated.model
        title, sessions = simulated.title, simulated.sessions
        rows = match_rows(log, data)
        grades = np.zeros(len(log.doc_ids))
        grades[rows[rows >= 0]] = data.labels[rows >= 0]
        truth = model.attractiveness(grades)
        if name == "dbn":
            truth = truth * model.satisfaction(grades)
        features = pair_features(log, data, rows)
        t0 = time.perf_counter()
        plain = fit_session_model(log, name)
        t1 = time.perf_counter()
        choice = choose_session_prior_strength(log, name, features)
        shrunk = fit_with_prior(log, name, features, choice.strength) if choice.strength else plain
        t2 = time.perf_counter()
        cell = cells.setdefault((title, sessions), {})
        for key, value in (
            ("mse plain", ((plain.labels - truth) ** 2).mean()),
            ("mse auto", ((shrunk.labels - truth) ** 2).mean()),
            ("ndcg plain", label_ndcg(log, plain.labels, grades)),
            ("ndcg auto", label_ndcg(log, shrunk.labels, grades)),
            ("strength", choice.strength),
            ("s plain", t1 - t0),
            ("s auto", t2 - t1),
        ):
            cell.setdefault(key, []).append(float(value))

    rows_out = []
    for (title, sessions), cell in cells.items():
        gains = np.subtract(cell["ndcg auto"], cell["ndcg plain"])
        rows_out.append(
            [title, sessions, mean_sd(cell["mse plain"]), mean_sd(cell["mse auto"]),
             mean_sd(cell["ndcg plain"]), mean_sd(cell["ndcg auto"]),
             f"{int((gains > 0).sum())} of {len(gains)}",
             " ".join(f"{s:g}" for s in cell["strength"]),
             f"{np.mean(cell['s plain']):.1f} / {np.mean(cell['s auto']):.1f}"]
        )  # fmt: skip
    body = "\n".join(
        [
            f"MQ2008 training partitions of folds {', '.join(map(str, args.folds))}; logging "
            f"ranker `{args.ranker_feature}`, Plackett-Luce temperature {args.temperature:g}. "
            "Labels without a prior (`labels --cascade` / `--dbn` / `--ubm`) and shrunk towards "
            "feature "
            "priors at the strength chosen by 5-fold cross-validation over sessions "
            "(`--prior-strength auto`), against the simulation's truth: mean squared error, and "
            "NDCG@10 of each query's documents ordered by label against their judged grades "
            "(queries with a relevant document; the truth orders them perfectly). Mean ± "
            f"sd over folds. Total {(time.perf_counter() - started) / 60:.0f} min.",
            "",
            markdown_table(
                ["log", "sessions per query", "MSE, no prior", "MSE, auto",
                 "label NDCG@10, no prior", "label NDCG@10, auto", "auto better",
                 "strengths chosen", "s: fit / choose and refit"],
                rows_out,
            ),
        ]
    )  # fmt: skip
    print(body)
    if not args.no_write:
        write_section(
            SECTION,
            "Feature priors for session click models' labels from few sessions "
            "(simulated MQ2008 logs)",
            command_line("click_session_prior", argv),
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
