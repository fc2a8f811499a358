"""How many user sessions tell two rankers apart: team-draft interleaving against an A/B test.

On MQ2008 fold 1, with real servers and simulated users:

* the **rankers**: the click config (``configs/clicks/setrank_ips.yaml``) trained on all of the
  fold's training judgments (*strong*), the same trained on the judgments of 30 training queries
  (*weak*), BM25 alone (``f25``, a hand-set linear artifact from
  ``ltr.artifact.save_linear_model``), and LightGBM's LambdaMART trained on the same judgments
  (early-stopped on the validation fold, served from ``ltr.artifact.save_lightgbm_model``'s
  artifact); the strong ranker is the model, the others the challengers;
* **interleaving**: ``ltr serve --model STRONG --challenger OTHER --impressions DIR``, users
  (``ltr clicks simulate --server``: ``--sessions`` per test query, top 10 shown, position-based
  clicks, examination ``(1/k)^eta``, noise 0.1), credit per session from the impression log's
  teams (``ltr.clicks.interleaving.session_credit``);
* **A/B**: each ranker served alone to as many users; a session's outcome is its number of
  clicks.

Then, for each budget of N sessions, ``--draws`` random draws of N sessions from those pools
(A/B: N/2 per arm) are tested at ``--alpha``: interleaving with the two-sided sign test of the
sessions won, A/B with Welch's t-test of clicks per session. The table gives the share of draws
that find the ranker with the higher test NDCG@10 significantly better (the power), and the share
that find the other one better (errors); when the two are close (the LambdaMART), "errors" say
little more than which way users lean. Users are drawn from the test partition's queries, which
no ranker was trained on.

A second table reads the verdict as sessions come in, as a team deciding whether to promote a
challenger would: ``--draws`` random orders of each pool of interleaved sessions, the verdict
read every ``--look-every`` sessions up to the largest budget, stopping at the first reading
significant at ``--alpha``, by the sign test (peeking at a fixed-horizon test) and by the
anytime p-value of ``ltr clicks interleaving --sequential`` (``--effect``). Beside the two
challengers it adds an A/A pool, the model interleaved with a copy of itself, where users can
have no preference and every significant reading is a false alarm.

    python -m benchmarks.interleaving
    python -m benchmarks.interleaving --sessions 4 --draws 50 --max-epochs 2 --no-write   # smoke

MQ2008 is read from the bundled ``data/mq2008`` (``--data-root`` for another copy).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.click_loop import TorchServer, ltr, write_sample
from benchmarks.clicks import _write_judged, train_on
from benchmarks.quality_cv import HEADLINE, REPO_ROOT, evaluate, load_fold, train_lightgbm

BUDGETS = (100, 200, 500, 1000, 2000, 4000)


class Server(TorchServer):
    """A ranker's server, and its simulated users."""

    def users(self, args, data: list[Path], out: Path, seed: int, clicks: Path | None = None):
        """Simulated users of this server; returns the path of their click log."""
        extra = [] if clicks is None else ["--clicks-out", clicks]
        ltr("clicks", "simulate", *data, "--server", self.target,
            "--sessions", args.sessions, "--top-k", 10, "--eta", args.eta, "--seed", seed,
            "--out", out, *extra, "--quiet")  # fmt: skip
        return out


def clicks_per_session(log: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    table = pq.read_table(log, columns=["session", "click"])
    _, session = np.unique(table["session"].to_numpy(zero_copy_only=False), return_inverse=True)
    return np.bincount(session, weights=table["click"].to_numpy()).astype(np.int64)


def power(
    credit: np.ndarray, arm_a: np.ndarray, arm_b: np.ndarray, budget: int, draws: int, alpha: float,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """``{"interleaving" | "ab": (share right, share wrong)}`` over ``draws`` draws of ``budget``
    sessions; "right" = significant in favour of the model (team 0 / arm A)."""
    from scipy.stats import binomtest, ttest_ind

    found = {"interleaving": [0, 0], "ab": [0, 0]}
    for _ in range(draws):
        pick = credit[rng.choice(len(credit), size=min(budget, len(credit)), replace=False)]
        model, rival = int((pick[:, 0] > pick[:, 1]).sum()), int((pick[:, 1] > pick[:, 0]).sum())
        if model + rival and binomtest(model, model + rival, 0.5).pvalue < alpha:
            found["interleaving"][0 if model > rival else 1] += 1
        half = budget // 2
        a = arm_a[rng.choice(len(arm_a), size=min(half, len(arm_a)), replace=False)]
        b = arm_b[rng.choice(len(arm_b), size=min(half, len(arm_b)), replace=False)]
        if a.std() + b.std() > 0:
            result = ttest_ind(a, b, equal_var=False)
            if result.pvalue < alpha:
                found["ab"][0 if a.mean() > b.mean() else 1] += 1
    return {k: (v[0] / draws, v[1] / draws) for k, v in found.items()}


def read_as_they_come(
    credit: np.ndarray, draws: int, alpha: float, every: int, horizon: int, effect: float,
    rng: np.random.Generator,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """``{"sign" | "anytime": {"model", "challenger", "median", "undecided"}}``: over ``draws``
    random orders of the sessions ``credit``, the verdict read every ``every`` sessions up to
    ``horizon`` and stopped at the first reading with p < ``alpha``: the shares of orders that
    stopped for the model and for the challenger, the median sessions read at those stops, and
    the share that never stopped."""
    from scipy.stats import binom

    from ltr.clicks.interleaving import Verdict

    looks = np.arange(every, min(horizon, len(credit)) + 1, every)  # (K,)
    anytime: dict[tuple[int, int], float] = {}
    found = {test: {"model": 0, "challenger": 0, "stops": []} for test in ("sign", "anytime")}
    for _ in range(draws):
        order = credit[rng.permutation(len(credit))[: looks[-1]]]
        model = np.cumsum(order[:, 0] > order[:, 1])[looks - 1]  # (K,) wins so far
        rival = np.cumsum(order[:, 1] > order[:, 0])[looks - 1]
        decided = model + rival
        sign = np.minimum(1.0, 2 * binom.cdf(np.minimum(model, rival), decided, 0.5))
        sign[decided == 0] = 1.0
        seq = np.empty(len(looks))
        for k, (m, r) in enumerate(zip(model.tolist(), rival.tolist(), strict=True)):
            if (m, r) not in anytime:
                anytime[(m, r)] = Verdict("", "", 0, 0, m, r, 0).anytime_p_value(effect)
            seq[k] = anytime[(m, r)]
        for test, p in (("sign", sign), ("anytime", seq)):
            hit = np.flatnonzero(p < alpha)
            if len(hit):
                k = hit[0]
                found[test]["challenger" if rival[k] > model[k] else "model"] += 1
                found[test]["stops"].append(int(looks[k]))
    return {
        test: {
            "model": f["model"] / draws,
            "challenger": f["challenger"] / draws,
            "median": float(np.median(f["stops"])) if f["stops"] else float("nan"),
            "undecided": 1 - len(f["stops"]) / draws,
        }
        for test, f in found.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=40, help="users per test query and server")
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--start-queries", type=int, default=30, help="the weak ranker's data")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--look-every", type=int, default=50, help="sessions between readings")
    parser.add_argument("--effect", type=float, default=0.05, help="the anytime test's tuning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, help="cap every training run (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    import torch

    from ltr.artifact import save_lightgbm_model, save_linear_model
    from ltr.clicks.interleaving import session_credit
    from ltr.data.folds import letor_fold

    torch.set_num_threads(args.threads)
    extra = {} if args.max_epochs is None else {"trainer.max_epochs": args.max_epochs}
    started = time.perf_counter()
    fold = load_fold(args.data_root, args.fold)
    test_files = list(letor_fold(args.data_root, args.fold).test)
    rng = np.random.default_rng(args.seed)
    rows, quality, peeking = [], {}, []
    with tempfile.TemporaryDirectory(prefix="ltr-bench-interleaving-") as tmp:
        work = Path(tmp)
        for part, data in (("train", fold.train), ("valid", fold.valid)):
            _write_judged(data, work / f"judged-{part}.parquet")
        write_sample(fold.train, args.start_queries, args.seed, work / "sample.parquet")
        print("training the strong and the weak ranker", flush=True)
        rankers = {
            "strong": train_on(work / "judged-train.parquet", work / "judged-valid.parquet",
                               fold, work / "strong", args.seed, extra)["artifact"],
            "weak": train_on(work / "sample.parquet", work / "judged-valid.parquet",
                             fold, work / "weak", args.seed, extra)["artifact"],
            "bm25": save_linear_model(work / "bm25", list(fold.train.feature_names), {"f25": 1.0}),
            "lambdamart": save_lightgbm_model(  # the LambdaMART a team may be serving today
                work / "lambdamart", train_lightgbm(fold.train, fold.valid, args.threads)[0],
                list(fold.train.feature_names),
            ),
        }  # fmt: skip
        shutil.copytree(rankers["strong"], work / "strong-copy")  # the A/A challenger
        from ltr.artifact import load_model
        from ltr.inference import score_lists

        for name, path in rankers.items():
            scores = score_lists(load_model(path).model, fold.test)
            quality[name] = evaluate(scores, fold.test)[HEADLINE]["ndcg@10"]
        alone = {}
        for name, path in rankers.items():
            print(f"A/B arm: {name}", flush=True)
            server = Server(path, work / f"{name}.log")
            try:
                log = server.users(args, test_files, work / f"ab-{name}.parquet", args.seed + 1)
            finally:
                server.stop()
            alone[name] = clicks_per_session(log)
        for rival in ("weak", "bm25", "lambdamart", "strong-copy"):
            print(f"interleaving: strong against {rival}", flush=True)
            impressions, clicks = work / f"impressions-{rival}", work / f"clicks-{rival}.csv"
            server = Server(
                rankers["strong"], work / f"interleave-{rival}.log", "--challenger",
                str(rankers.get(rival, work / rival)), "--impressions", str(impressions),
                "--impressions.flush_seconds", "3600",
            )  # fmt: skip
            try:
                server.users(args, test_files, work / f"il-{rival}.parquet", args.seed + 2, clicks)
            finally:
                server.stop()
            credit = session_credit([impressions], clicks).credit
            peeking.append((rival, len(credit), read_as_they_come(
                credit, args.draws, args.alpha, args.look_every, BUDGETS[-1], args.effect, rng
            )))  # fmt: skip
            if rival not in rankers:
                continue  # the A/A pool: no A/B arm, and only read as sessions come in
            for budget in BUDGETS:
                found = power(
                    credit, alone["strong"], alone[rival], budget, args.draws, args.alpha, rng
                )
                if quality[rival] > quality["strong"]:  # right = for the better ranker
                    found = {k: (v[1], v[0]) for k, v in found.items()}
                rows.append([rival, budget, found])
    body = report(args, quality, alone, rows, peeking, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        write_section(
            "interleaving",
            "Interleaving against A/B testing: sessions needed to tell rankers apart (MQ2008)",
            command_line("interleaving", argv),
            body,
        )
    return 0


def report(args, quality: dict, alone: dict, rows: list, peeking: list, seconds: float) -> str:
    names = {
        "weak": f"trained on {args.start_queries} queries' judgments",
        "bm25": "BM25 (f25)",
        "lambdamart": "LightGBM LambdaMART",
        "strong-copy": "the model itself (A/A)",
    }
    table = markdown_table(
        ["challenger", "sessions", "interleaving: right / wrong", "A/B: right / wrong"],
        [
            [names[rival], f"{budget:,}",
             f"{found['interleaving'][0]:.0%} / {found['interleaving'][1]:.0%}",
             f"{found['ab'][0]:.0%} / {found['ab'][1]:.0%}"]
            for rival, budget, found in rows
        ],
    )  # fmt: skip
    sequential = markdown_table(
        ["challenger", "pool", "test", "stopped for model / challenger", "sessions", "undecided"],
        [
            [names[rival], f"{pool:,}", test,
             f"{found[test]['model']:.1%} / {found[test]['challenger']:.1%}",
             f"{found[test]['median']:,.0f}", f"{found[test]['undecided']:.1%}"]
            for rival, pool, found in peeking
            for test in ("sign", "anytime")
        ],
    )  # fmt: skip
    ctr = ", ".join(f"{k} {v.mean():.3f}" for k, v in alone.items())
    return (
        f"Fold {args.fold}; the model: the click config trained on all training judgments "
        f"(test NDCG@10 {quality['strong']:.4f}); challengers: trained on "
        f"{args.start_queries} queries ({quality['weak']:.4f}), BM25 ({quality['bm25']:.4f}) and "
        f"LightGBM's LambdaMART on the same judgments, early-stopped on the validation fold and "
        f"served from `ltr lightgbm-model`'s artifact ({quality['lambdamart']:.4f}). "
        f"Users: {args.sessions} sessions per test query and server (top 10 shown, "
        f"position-based clicks, examination (1/k)^{args.eta:g}, noise 0.1); clicks per session "
        f"when served alone: {ctr}. Each cell: {args.draws} draws of that many sessions (A/B: "
        f"half per arm); right = significant at {args.alpha:g} in favour of the ranker with the "
        "higher test NDCG@10 (sign test of sessions won / Welch's t-test of clicks per "
        f"session), wrong = significant the other way.\n\n{table}\n\n"
        f"Reading the verdict as sessions come in: {args.draws} random orders of each pool of "
        f"interleaved sessions, read every {args.look_every} sessions up to {BUDGETS[-1]:,}, "
        f"stopping at the first reading with p < {args.alpha:g}: by the sign test (peeking at "
        "a fixed-horizon test) or by the anytime p-value (`ltr clicks interleaving "
        f"--sequential`, effect {args.effect:g}). Stopped for: the share of orders that stopped "
        "with users preferring the model / the challenger; sessions: the median read at those "
        "stops; undecided: never stopped. In the A/A pool users can prefer neither, so every "
        f"stop is a false alarm. Took {seconds / 60:.1f} min.\n\n{sequential}"
    )


if __name__ == "__main__":
    sys.exit(main())
