"""The online loop on MQ2008: serve a model, log what it shows, learn from the clicks, repeat.

Every other click benchmark draws its clicks from a fixed logging ranker. Here the ranker is the
model being trained, served for real, and every step is an ``ltr`` command a team would run:

0. **Start**: the click config (``configs/clicks/setrank_ips.yaml``) trained on the judgments of
   ``--start-queries`` training queries only (a small judged seed set), early-stopped on the
   judged validation partition.
1. **Serve** it: ``ltr serve --impressions DIR`` (PyTorch backend), a real process on loopback.
2. **Users**: ``ltr clicks simulate --server``: ``--sessions`` simulated users per query of the
   fold's training and validation partitions each send one ``Rerank`` call, see its top
   ``--top-k`` and click under the position-based model (examination ``(1/k)^eta``, click noise
   0.1, grades 0-2). They record their clicks as a front end would (``--clicks-out``).
3. **Join**: SIGTERM writes the server's impression log; ``ltr clicks join`` joins all clicks so
   far to all impression logs so far (every round's), with the features the server scored.
4. **Learn**: ``ltr clicks propensity --features`` (regression EM: the served rankings are the
   same in every session, so plain EM cannot tell position from relevance), ``ltr clicks
   labels`` for the training and validation queries, and the click config trained on them.
5. The new model is served in the next round. For comparison, the same clicks also train a
   model on click-through rates (``--eta 0``: no position correction), which is not served.

With ``--gate`` the new model must win users over first: it is served as the challenger of the
current model (``ltr serve --challenger``) to ``--gate-sessions`` users per test query (queries
no model is trained on; their clicks train nothing), and promoted only when ``ltr clicks
interleaving`` finds users prefer it at ``--alpha``; otherwise the current model keeps serving.
That run writes its own section (``click-loop-gated``). With ``--gate --sequential`` the gate
reads the verdict as the users come in: every ``--gate-every`` sessions per test query, by the
anytime p-value of ``ltr clicks interleaving --sequential``, and stops at the first significant
reading (the sessions after it are not needed); the table adds the sessions read and what the
fixed-horizon sign test of all ``--gate-sessions`` would have decided on the same users
(section ``click-loop-gated-sequential``).

Each model is tested on the fold's test partition with its judgments, which no click-trained
model sees. The table gives test NDCG@10 by round (mean ± sd over ``--seeds``, each seed its own
loop from its own start), the served model's clicks per session (what users did), the
regression-EM examination estimate at position ``--top-k`` against the truth, and, for scale,
the same config trained on all the fold's judgments.

    python -m benchmarks.click_loop                                   # fold 1, 3 rounds, 3 seeds
    python -m benchmarks.click_loop --gate                            # promotion by interleaving
    python -m benchmarks.click_loop --gate --sequential               # ... read as users come in
    python -m benchmarks.click_loop --rounds 1 --seeds 0 --sessions 5 --max-epochs 2 --no-write

MQ2008 is read from the bundled ``data/mq2008`` (``--data-root`` for another copy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.clicks import _write_judged, train_on
from benchmarks.quality_cv import REPO_ROOT, load_fold
from benchmarks.serving_latency import ServerProcess, free_port
from benchmarks.tuning import mean_sd


class TorchServer(ServerProcess):
    """``ltr serve`` (PyTorch backend) of ``model`` on loopback, with any further ``args``."""

    def __init__(self, model: Path, log: Path, *args: str) -> None:
        self.label = model.name
        self.port, self.metrics_port = free_port(), free_port()
        argv = [
            str(Path(sys.executable).with_name("ltr")), "serve", "--model", str(model),
            "--backend", "torch", "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics-port", "0", "--log_level", "WARNING", *args,
        ]  # fmt: skip
        self.launch(argv, log)
        self.wait_ready()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def loop_server(
    model: Path, impressions: Path, log: Path, challenger: Path | None = None
) -> TorchServer:
    """A round's server, logging impressions to ``impressions`` (written at SIGTERM)."""
    args = [
        "--max_candidates", "1000", "--impressions", str(impressions),
        "--impressions.flush_seconds", "3600",
    ]  # fmt: skip
    if challenger is not None:
        args += ["--challenger", str(challenger)]
    return TorchServer(model, log, *args)


def ltr(*argv: object) -> None:
    """One ``ltr`` command, in this process; a failure stops the benchmark."""
    from ltr.cli import main as ltr_main

    code = ltr_main([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(f"ltr {' '.join(map(str, argv))} exited {code}")


def write_sample(data, queries: int, seed: int, path: Path) -> None:
    """The judgments of ``queries`` training queries drawn at random (``seed``)."""
    from ltr.data.parquet import ParquetListWriter
    from ltr.data.svmlight import RowChunk

    chosen = np.random.default_rng(seed).choice(len(data), size=queries, replace=False)
    rows = np.isin(data.query_of_row, chosen)
    chunk = RowChunk(
        data.qids[data.query_of_row][rows], data.doc_ids[rows], data.labels[rows],
        data.features[rows],
    )  # fmt: skip
    with ParquetListWriter(path, data.num_features, feature_names=data.feature_names) as w:
        w.write(chunk)


def split_log(log: Path, qids, out: Path) -> None:
    """The sessions of ``log`` whose query is in ``qids``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(log)
    keep = pc.is_in(table["qid"], pa.array([str(q) for q in qids], pa.string()))
    pq.write_table(table.filter(keep), out)


def concat_clicks(files: list[Path], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    pcsv.write_csv(pa.concat_tables(pcsv.read_csv(f) for f in files), out)


def run_loop(args, number: int, seed: int, work: Path, extra: dict) -> list[dict]:
    """One seed's loop on one fold: a row per round (round 0 = the judged start)."""
    import pyarrow.parquet as pq

    from ltr.data.folds import letor_fold

    fold = load_fold(args.data_root, number)
    paths = letor_fold(args.data_root, number)
    judged_valid = work / "judged-valid.parquet"
    if not judged_valid.exists():
        _write_judged(fold.valid, judged_valid)
    start = work / f"s{seed}-start.parquet"
    write_sample(fold.train, args.start_queries, seed, start)
    print(f"fold {number}, seed {seed}: start on {args.start_queries} judged queries", flush=True)
    run = train_on(start, judged_valid, fold, work / f"s{seed}-r0", seed, extra)
    rows = [{"round": 0, "ndcg10": run["ndcg10"], "artifact": run["artifact"]}]
    champion = rows[0]  # the round's served model: the newest, or with --gate the one users chose
    impressions, clicks = [], []
    for r in range(1, args.rounds + 1):
        served = champion["artifact"]
        here = work / f"s{seed}-r{r}"
        here.mkdir()
        impressions.append(here / "impressions")
        server = loop_server(served, impressions[-1], here / "serve.log")
        sessions = clicks_made = 0
        try:
            for part, files in (("train", paths.train), ("valid", paths.valid)):
                clicks.append(here / f"{part}-clicks.csv")
                ltr("clicks", "simulate", *files, "--server", server.target,
                    "--sessions", args.sessions, "--top-k", args.top_k, "--eta", args.eta,
                    "--seed", 1000 * r + 100 * seed + (part == "valid"),
                    "--out", here / f"{part}-truth.parquet", "--clicks-out", clicks[-1],
                    "--quiet")  # fmt: skip
                truth = pq.read_table(here / f"{part}-truth.parquet", columns=["session", "click"])
                sessions += len(set(truth["session"].to_pylist()))
                clicks_made += int(np.asarray(truth["click"]).sum())
        finally:
            server.stop()
        everything = here / "clicks-so-far.csv"
        concat_clicks(clicks, everything)
        log, features = here / "log.parquet", here / "features.parquet"
        ltr("clicks", "join", *impressions, "--clicks", everything, "--out", log,
            "--features-out", features, "--quiet")  # fmt: skip
        split_log(log, fold.train.qids, here / "train-log.parquet")
        split_log(log, fold.valid.qids, here / "valid-log.parquet")
        propensity = here / "propensity.json"
        ltr("clicks", "propensity", here / "train-log.parquet", "--features", features,
            "--out", propensity, "--quiet")  # fmt: skip
        theta = json.loads(propensity.read_text())["theta"]
        # IPS labels, and (the same clicks, no position correction) click-through rates
        for part in ("train", "valid"):
            for kind, bias in (("ips", ["--propensity", propensity]), ("ctr", ["--eta", 0])):
                ltr("clicks", "labels", here / f"{part}-log.parquet", "--features", features,
                    *bias, "--out", here / f"{part}-{kind}.parquet", "--quiet")  # fmt: skip
        print(f"fold {number}, seed {seed}: round {r}", flush=True)
        run = train_on(
            here / "train-ips.parquet", here / "valid-ips.parquet", fold, here / "model", seed,
            extra,
        )  # fmt: skip
        naive = train_on(
            here / "train-ctr.parquet", here / "valid-ctr.parquet", fold, here / "naive", seed,
            extra,
        )  # fmt: skip
        rows.append(
            {"round": r, "ndcg10": run["ndcg10"], "artifact": run["artifact"],
             "theta_last": float(theta[args.top_k - 1]), "naive": naive["ndcg10"],
             "served_ndcg10": champion["ndcg10"], "served_clicks": clicks_made / sessions}
        )  # fmt: skip
        if args.gate:  # users decide between the served model and the new one
            verdict, read = interleave(
                champion["artifact"], run["artifact"], paths, here, args, seed, r
            )
            fixed = verdict.preferred(args.alpha) == "challenger"
            promoted = read.preferred(args.alpha, args.effect) == "challenger" if (
                args.sequential
            ) else fixed  # fmt: skip
            rows[-1].update(preference=verdict.preference, p_value=verdict.p_value,
                            promoted=promoted, fixed=fixed, read=read.sessions,
                            offered=verdict.sessions)  # fmt: skip
            champion = rows[-1] if promoted else champion
        else:
            champion = rows[-1]
    rows.append({"round": args.rounds + 1, "served_ndcg10": champion["ndcg10"]})
    return rows


def interleave(model: Path, challenger: Path, paths, here: Path, args, seed: int, r: int):
    """Users of the test queries (which no model trains on, and whose clicks train nothing) on
    the interleaving of ``model`` and ``challenger``: the
    :class:`~ltr.clicks.interleaving.Verdict` of all their sessions, and the verdict where a
    reader stopped (with ``--sequential``: the first reading, every ``--gate-every`` sessions
    per query, whose anytime p-value is below ``--alpha``; else all sessions)."""
    import pyarrow.parquet as pq

    from ltr.clicks.interleaving import session_credit, verdict_of

    impressions, clicks = here / "interleaved", here / "il-clicks.csv"
    server = loop_server(model, impressions, here / "interleave.log", challenger=challenger)
    try:
        ltr("clicks", "simulate", *paths.test, "--server", server.target,
            "--sessions", args.gate_sessions, "--top-k", args.top_k, "--eta", args.eta,
            "--seed", 1000 * r + 100 * seed + 50, "--out", here / "il-truth.parquet",
            "--clicks-out", clicks, "--quiet")  # fmt: skip
    finally:
        server.stop()
    found = session_credit([impressions], clicks)
    verdict = verdict_of(found.credit)
    if not args.sequential:
        return verdict, verdict
    # users came query by query, each query's sessions in order: the k-th reading holds every
    # query's first k * gate_every sessions
    truth = pq.read_table(here / "il-truth.parquet", columns=["session", "qid"])
    ordinal: dict[str, int] = {}
    per_query: dict[str, int] = {}
    for session, qid in zip(truth["session"].to_pylist(), truth["qid"].to_pylist(), strict=True):
        if session not in ordinal:
            ordinal[session] = per_query.get(qid, 0)
            per_query[qid] = ordinal[session] + 1
    reading = np.array([ordinal[s] // args.gate_every for s in found.sessions.tolist()])
    for k in range(int(reading.max()) + 1):
        read = verdict_of(found.credit[reading <= k])
        if read.preferred(args.alpha, args.effect) is not None:
            break
    return verdict, read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO_ROOT / "data" / "mq2008")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--start-queries", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=20, help="users per query and round")
    parser.add_argument("--top-k", type=int, default=10, help="what users see")
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument(
        "--gate",
        action="store_true",
        help="serve a new model only when users prefer it: each round's model is interleaved "
        "with the served one (as many users again) and promoted on a significant preference",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="the gate's significance level")
    parser.add_argument(
        "--gate-sessions", type=int, default=80, help="the gate's users per test query (80)"
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="with --gate: read the verdict every --gate-every sessions per query, by the "
        "anytime p-value, and stop at the first significant reading",
    )
    parser.add_argument("--gate-every", type=int, default=10, help="sessions per query a reading")
    parser.add_argument("--effect", type=float, default=0.05, help="the anytime test's tuning")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, help="cap every training run (a smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)
    if args.sequential and not args.gate:
        parser.error("--sequential reads the gate's verdict; pass it with --gate")

    import torch

    torch.set_num_threads(args.threads)
    extra = {} if args.max_epochs is None else {"trainer.max_epochs": args.max_epochs}
    started = time.perf_counter()
    loops, judged = {}, []
    with tempfile.TemporaryDirectory(prefix="ltr-bench-click-loop-") as tmp:
        work = Path(tmp)
        fold = load_fold(args.data_root, args.fold)
        _write_judged(fold.train, work / "judged-train.parquet")
        _write_judged(fold.valid, work / "judged-valid.parquet")
        for seed in args.seeds:
            loops[seed] = run_loop(args, args.fold, seed, work, extra)
            print(f"fold {args.fold}, seed {seed}: all judgments", flush=True)
            full = train_on(
                work / "judged-train.parquet", work / "judged-valid.parquet", fold,
                work / f"s{seed}-judged", seed, extra,
            )  # fmt: skip
            judged.append(full["ndcg10"])
    body = report(args, loops, judged, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        write_section(
            "click-loop"
            + ("-gated" if args.gate else "")
            + ("-sequential" if args.sequential else ""),
            "Learning from one's own served rankings: the online loop"
            + (", gated by interleaving" if args.gate else "")
            + (" read as users come in" if args.sequential else "")
            + " (MQ2008)",
            command_line("click_loop", argv),
            body,
        )
    return 0


def report(args, loops: dict[int, list[dict]], judged: list[float], seconds: float) -> str:
    def mean_of(rows: list[dict], key: str) -> str:
        values = [row[key] for row in rows if key in row]
        return mean_sd(values) if values else ""

    rows = []
    for r in range(args.rounds + 1):
        at = [loop[r] for loop in loops.values()]
        trained = (
            f"judgments of {args.start_queries} training queries"
            if r == 0
            else f"clicks of rounds 1-{r}"
            if r > 1
            else "clicks of round 1"
        )
        theta = [a["theta_last"] for a in at if "theta_last" in a]
        row = [
            r, trained, mean_of(at, "ndcg10"), mean_of(at, "naive"), mean_of(at, "served_ndcg10"),
            mean_of(at, "served_clicks"), f"{np.mean(theta):.3f}" if theta else "",
        ]  # fmt: skip
        if args.gate:
            verdicts = [a for a in at if "promoted" in a]
            row += [
                mean_of(verdicts, "preference"),
                f"{sum(a['promoted'] for a in verdicts)} of {len(verdicts)}" if verdicts else "",
            ]
        if args.sequential:
            row += [
                ", ".join(f"{a['read']:,} of {a['offered']:,}" for a in verdicts),
                f"{sum(a['fixed'] for a in verdicts)} of {len(verdicts)}" if verdicts else "",
            ]
        rows.append(row)
    last = [loop[-1] for loop in loops.values()]
    tail = ["" for _ in range((2 if args.gate else 0) + (2 if args.sequential else 0))]
    rows.append(
        ["", "served after the last round", "", "", mean_of(last, "served_ndcg10"), "", "", *tail]
    )
    rows.append(
        ["", "all the training partitions' judgments", mean_sd(judged), "", "", "", "", *tail]
    )
    headers = [
        "round",
        "model trained on",
        "test NDCG@10 (IPS labels)",
        "test NDCG@10, click-through rates",
        "test NDCG@10 of the model served in the round",
        "clicks per session in the round",
        f"estimated examination at {args.top_k} (true {(1 / args.top_k) ** args.eta:.3f})",
    ]
    if args.gate:
        headers += ["users' preference for it over the served model", "promoted"]
    if args.sequential:
        headers += ["gate sessions read (per seed)", "the fixed test of all would have promoted"]
    gate = (
        " With --gate, each round's new model (IPS labels) is interleaved with the served one "
        f"for {args.gate_sessions} users per test query (queries no model was trained on, "
        "whose clicks train nothing), and promoted when users prefer it (sign test, "
        f"p < {args.alpha:g})."
        if args.gate
        else " Each round's new model (IPS labels) is served in the next round."
    )
    if args.sequential:
        gate = gate.replace(
            f"(sign test, p < {args.alpha:g}).",
            f"as read every {args.gate_every} sessions per query, stopping at the first "
            f"reading whose anytime p-value (effect {args.effect:g}) is below {args.alpha:g}; "
            "the preference is that of all the gate's sessions.",
        )
    return (
        f"Fold {args.fold}, {len(loops)} seed(s) ({', '.join(map(str, loops))}), each its own "
        f"loop. Users: {args.sessions} sessions per query and round on the training and "
        f"validation partitions, top {args.top_k} shown, position-based clicks (examination "
        f"(1/k)^{args.eta:g}, noise 0.1). Served with the PyTorch backend.{gate} Test NDCG@10 "
        "on the judged test partition (empty lists count 1, gain 2^rel - 1); mean ± sd over "
        f"seeds. Took {seconds / 60:.1f} min.\n\n{markdown_table(headers, rows)}"
    )


if __name__ == "__main__":
    sys.exit(main())
