"""A LightGBM (or XGBoost) LambdaMART served by ``ltr``: does the artifact score as the library
does, what does a list cost through each engine, and what does serving it cost beside the default
SetRank?

1. **Agreement** (MQ2008, each of the 5 LETOR folds): LightGBM lambdarank trained with early
   stopping as in ``benchmarks.quality_cv``, saved with ``Booster.save_model`` and read by
   ``ltr.artifact.save_lightgbm_model`` (what ``ltr lightgbm-model`` does). On the test fold:
   the largest difference between LightGBM's ``predict`` and the artifact's scores through
   PyTorch and through its exported ONNX graph, and NDCG@10 of each.
2. **Compute per list** (fold 1's data, one thread everywhere): LambdaMARTs of a fixed number of
   trees (31 leaves, no early stopping), one list of 10, 100 and 1,000 MQ2008 rows at a time,
   through LightGBM's ``predict``, ONNX Runtime (the artifact's graph: ONNX-ML's
   ``TreeEnsembleRegressor``) and PyTorch (the artifact's module), timed interleaved; medians,
   with each engine's ratio to LightGBM.
3. **Served** (``ltr serve``, ONNX Runtime, batching on, the default settings): the 500-tree
   LambdaMART and the default SetRank (random weights, as in ``benchmarks.serving_latency``)
   side by side, interleaved bursts from a ``grpc.aio`` client on this machine: p50/p99 latency
   and lists/s.
4. **XGBoost** (``ltr xgboost-model``; ``--no-xgboost`` leaves it out): 1 and 2 again for
   XGBoost ``rank:ndcg`` (early-stopped on the validation fold, the trees up to the best
   iteration kept; then ``--xgboost-trees`` trees on fold 1), against XGBoost's own
   ``predict(output_margin=True)`` and ``inplace_predict``.

Run: ``python -m benchmarks.lightgbm_model`` (``--no-write`` to only print; see ``--help``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.quality_cv import HEADLINE, dataset_root, evaluate, load_fold, train_lightgbm

ENGINES = ("library", "ONNX Runtime", "PyTorch")  # library: LightGBM or XGBoost itself


def agreement(root: Path, folds: list[int], work: Path) -> list[list[object]]:
    import lightgbm

    from ltr.artifact import save_lightgbm_model

    rows = []
    for number in folds:
        fold = load_fold(root, number)
        booster, _ = train_lightgbm(fold.train, fold.valid, threads=1)
        model_file = work / f"fold{number}.txt"
        booster.save_model(str(model_file))  # the best iteration's trees
        reference = lightgbm.Booster(model_file=str(model_file)).predict(fold.test.features)
        folder = save_lightgbm_model(work / f"fold{number}", model_file, fold.test.feature_names)
        rows.append([number, *_check_artifact(reference, folder, fold.test)])
        print("agreement", rows[-1], flush=True)
    return rows


def fixed_size_models(root: Path, trees: list[int], work: Path) -> dict[int, Path]:
    import lightgbm

    from ltr.artifact import save_lightgbm_model

    fold = load_fold(root, 1)
    data = lightgbm.Dataset(
        fold.train.features, fold.train.labels, group=np.diff(fold.train.offsets)
    )
    params = {"objective": "lambdarank", "num_leaves": 31, "learning_rate": 0.05}
    params |= {"verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5}
    out = {}
    for n in trees:
        booster = lightgbm.train(params, data, num_boost_round=n)
        folder = save_lightgbm_model(work / f"trees{n}", booster, fold.train.feature_names)
        out[n] = _exported(folder, fold.test)
    return out


def _exported(folder: Path, test) -> Path:
    """``folder`` with its ONNX graph, checked against PyTorch on 32 lists of ``test``."""
    from ltr.artifact import load_model
    from ltr.export.onnx import export_checked, parity_batches_from_lists

    loaded = load_model(folder)
    lists = [test[i].features for i in range(32)]
    export_checked(loaded, folder, parity_batches_from_lists(loaded, lists))
    return folder


def _check_artifact(booster_scores, folder: Path, test) -> list[object]:
    """Largest differences from the library's scores, and NDCG@10 of each, on ``test``."""
    import torch

    from ltr.artifact import load_model
    from ltr.export.onnx import export_checked, parity_batches_from_lists
    from ltr.inference import score_lists
    from ltr.predictor import load_predictor

    loaded = load_model(folder)
    lists = [test[i].features for i in range(len(test))]
    export_checked(loaded, folder, parity_batches_from_lists(loaded, lists[:64]))
    with torch.no_grad():
        by_torch = score_lists(loaded.model, test)
    engine = load_predictor(str(folder), "onnx", threads=1)
    by_onnx = np.empty(len(booster_scores), dtype=np.float32)
    for i, x in enumerate(lists):
        by_onnx[test[i].rows] = engine.predict(x[None], np.ones((1, len(x)), bool))[0]
    scores = (booster_scores, by_torch, by_onnx)
    ndcg = [evaluate(s, test)[HEADLINE]["ndcg@10"] for s in scores]
    return [
        loaded.manifest.model_config["num_trees"],
        f"{np.abs(by_torch - booster_scores).max():.1e}",
        f"{np.abs(by_onnx - booster_scores).max():.1e}",
        *(f"{v:.4f}" for v in ndcg),
    ]


XGB_PARAMS = {"objective": "rank:ndcg", "eta": 0.05, "max_depth": 5, "nthread": 1}


def xgboost_agreement(root: Path, folds: list[int], work: Path) -> list[list[object]]:
    """As :func:`agreement`, for XGBoost ``rank:ndcg`` early-stopped on the validation fold
    (the trees up to the best iteration kept, as ``booster[: best + 1]``)."""
    import xgboost

    from ltr.artifact import save_xgboost_model

    rows = []
    for number in folds:
        fold = load_fold(root, number)
        train = xgboost.DMatrix(
            fold.train.features, fold.train.labels, group=fold.train.list_lengths
        )
        valid = xgboost.DMatrix(
            fold.valid.features, fold.valid.labels, group=fold.valid.list_lengths
        )
        booster = xgboost.train(
            {**XGB_PARAMS, "eval_metric": "ndcg@10"}, train, num_boost_round=1000,
            evals=[(valid, "valid")], early_stopping_rounds=50, verbose_eval=False,
        )  # fmt: skip
        booster = booster[: booster.best_iteration + 1]
        model_file = work / f"xgb-fold{number}.json"
        booster.save_model(str(model_file))
        reference = booster.predict(xgboost.DMatrix(fold.test.features), output_margin=True)
        folder = save_xgboost_model(work / f"xgb-fold{number}", model_file, fold.test.feature_names)
        rows.append([number, *_check_artifact(reference, folder, fold.test)])
        print("xgboost agreement", rows[-1], flush=True)
    return rows


def xgboost_models(root: Path, trees: list[int], work: Path) -> dict[int, Path]:
    """XGBoost ``rank:ndcg`` models of a fixed number of trees (depth 5: up to 32 leaves)."""
    import xgboost

    from ltr.artifact import save_xgboost_model

    fold = load_fold(root, 1)
    train = xgboost.DMatrix(fold.train.features, fold.train.labels, group=fold.train.list_lengths)
    out = {}
    for n in trees:
        booster = xgboost.train(XGB_PARAMS, train, num_boost_round=n)
        folder = save_xgboost_model(work / f"xgb{n}", booster, fold.train.feature_names)
        out[n] = _exported(folder, fold.test)
    return out


def lightgbm_predict(folder: Path):
    import lightgbm

    from ltr.artifact import LIGHTGBM_FILE

    booster = lightgbm.Booster(model_file=str(folder / LIGHTGBM_FILE))
    return lambda x: booster.predict(x, num_threads=1)


def xgboost_predict(folder: Path):
    import xgboost

    from ltr.artifact import XGBOOST_FILE

    booster = xgboost.Booster(model_file=str(folder / XGBOOST_FILE))
    booster.set_param({"nthread": 1})
    return lambda x: booster.inplace_predict(x, predict_type="margin")


def compute_per_list(
    models: dict[int, Path], lengths: list[int], reps: int, library=lightgbm_predict
) -> dict[tuple[int, int, str], float]:
    """Median milliseconds of one list, per (trees, length, engine), engines interleaved;
    ``library(folder)`` is the library's own predict of the artifact's source model."""
    import torch

    from ltr.artifact import load_model
    from ltr.data import load_dataset
    from ltr.predictor import load_predictor

    torch.set_num_threads(1)
    rows = load_dataset(dataset_root("mq2008", Path()) / "S5.txt.xz").features
    rng = np.random.default_rng(0)
    out = {}
    for trees, folder in models.items():
        predict = library(folder)
        onnx = load_predictor(str(folder), "onnx", threads=1)
        module = load_model(folder).model
        for n in lengths:
            x = rows[rng.integers(0, len(rows), n)]
            mask = np.ones((1, n), dtype=bool)
            xt, mt = torch.from_numpy(x)[None], torch.from_numpy(mask)

            def by_torch(xt=xt, mt=mt, module=module):
                with torch.no_grad():
                    module(xt, mt)

            run = {
                "library": lambda x=x, f=predict: f(x),
                "ONNX Runtime": lambda x=x, m=mask, o=onnx: o.predict(x[None], m),
                "PyTorch": by_torch,
            }
            times: dict[str, list[float]] = {e: [] for e in ENGINES}
            for f in run.values():
                f()
            budget = max(3, min(reps, int(2000 / n)))
            for _ in range(budget):
                for engine, f in run.items():
                    t = time.perf_counter()
                    f()
                    times[engine].append(time.perf_counter() - t)
            for engine in ENGINES:
                out[(trees, n, engine)] = 1e3 * statistics.median(times[engine])
            print(
                f"{trees} trees, {n} candidates: "
                + ", ".join(f"{e} {out[(trees, n, e)]:.3f} ms" for e in ENGINES),
                flush=True,
            )
    return out


def served(model: Path, args: argparse.Namespace, work: Path) -> dict:
    from benchmarks.serving_latency import (
        Server,
        Setup,
        build_model,
        default_server_args,
        interleaved_bursts,
        make_requests,
    )

    setrank = build_model(work)
    server_args = default_server_args(args.lengths)
    server_args.seconds, server_args.warmup, server_args.reps = args.seconds, 0.5, args.serve_reps
    server_args.concurrency = args.concurrency
    setup = Setup("onnx", True)
    servers = {
        "LambdaMART": Server(setup, model, server_args, work),
        "SetRank": Server(setup, setrank, server_args, work),
    }
    try:
        for server in servers.values():
            server.wait_ready()
        return interleaved_bursts(
            servers, server_args, make_requests(args.lengths), lambda k: f"{k:<10}"
        )
    finally:
        for server in servers.values():
            server.stop()


def _agreement_table(library: str, rows: list[list[object]]) -> str:
    headers = ["fold", "trees", "max diff PyTorch", "max diff ONNX", f"NDCG@10 {library}"]
    return markdown_table([*headers, "NDCG@10 PyTorch", "NDCG@10 ONNX"], rows)


def _compute_table(library: str, compute: dict, trees: list[int], lengths: list[int]) -> str:
    rows = []
    for t in trees:
        for n in lengths:
            own, ort, pt = (compute[(t, n, e)] for e in ENGINES)
            rows.append(
                [t, n, f"{own:.3f}", f"{ort:.3f}", f"{ort / own:.2f}×", f"{pt:.3f}",
                 f"{pt / own:.1f}×"]
            )  # fmt: skip
    headers = ["trees", "candidates", library, "ONNX Runtime", f"ORT / {library}", "PyTorch"]
    return markdown_table([*headers, f"PyTorch / {library}"], rows)


def report(args, agreed, compute, xgb, cells, served_trees: int, seconds: float) -> str:
    parts = [
        "### Agreement with LightGBM (test fold, LightGBM lambdarank with early stopping)",
        "",
        _agreement_table("LightGBM", agreed),
        "",
        "Max diff: the largest |artifact score - the library's predict| over the fold's test "
        "rows (the artifact's scores are float32). NDCG@10: lists with no relevant document "
        "count as 1, pessimistic ties, as in the other MQ2008 tables.",
        "",
        "### Compute per list (one thread, median ms)",
        "",
        _compute_table("LightGBM", compute, args.trees, args.lengths),
        "",
    ]
    if xgb is not None:
        xgb_agreed, xgb_compute = xgb
        parts += [
            "### XGBoost (`ltr xgboost-model`): agreement and compute per list",
            "",
            f"`rank:ndcg`, eta {XGB_PARAMS['eta']}, max depth {XGB_PARAMS['max_depth']}, "
            "early-stopped on the validation fold by NDCG@10 (the trees up to the best "
            "iteration kept); the reference is `predict(output_margin=True)`. Compute: "
            f"{args.xgboost_trees} trees on fold 1, the library's own `inplace_predict` on one "
            "thread.",
            "",
            _agreement_table("XGBoost", xgb_agreed),
            "",
            _compute_table("XGBoost", xgb_compute, [args.xgboost_trees], args.lengths),
            "",
        ]
    parts += [
        f"### Served by `ltr serve` (ONNX Runtime, batching on): the {served_trees}-tree "
        "LambdaMART beside the default SetRank",
        "",
    ]
    rows = []
    for key in ("LambdaMART", "SetRank"):
        for n in args.lengths:
            for c in args.concurrency:
                cell = cells[(key, n, c)]
                lat = sorted(cell.latencies)
                p50 = 1e3 * float(np.percentile(lat, 50))
                p99 = 1e3 * float(np.percentile(lat, 99))
                rows.append(
                    [key, n, c, f"{p50:.2f}", f"{p99:.2f}", f"{cell.calls / cell.seconds:,.0f}"]
                )
    parts += [
        markdown_table(["model", "candidates", "concurrency", "p50 ms", "p99 ms", "lists/s"], rows),
        "",
        f"{args.serve_reps} interleaved repetitions of {args.seconds:g} s bursts per cell; the "
        f"whole run took {seconds / 60:.1f} min.",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--trees", type=int, nargs="+", default=[100, 500, 1000])
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    p.add_argument("--reps", type=int, default=200, help="timed calls per engine and cell")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per burst")
    p.add_argument("--serve-reps", type=int, default=3, help="interleaved server repetitions")
    p.add_argument("--serve-trees", type=int, default=500, help="the served LambdaMART's trees")
    p.add_argument("--xgboost-trees", type=int, default=500, help="the timed XGBoost's trees")
    p.add_argument("--no-xgboost", action="store_true", help="leave XGBoost out")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    if not args.no_xgboost:
        try:
            import xgboost  # noqa: F401
        except ImportError:
            p.error("XGBoost is not installed (pip install xgboost-cpu, or pass --no-xgboost)")
    if args.serve_trees not in args.trees:
        p.error(f"--serve-trees {args.serve_trees} must be one of --trees {args.trees}")
    started = time.perf_counter()
    root = dataset_root("mq2008", Path())
    with tempfile.TemporaryDirectory(prefix="ltr-bench-lightgbm-") as tmp:
        work = Path(tmp)
        agreed = agreement(root, args.folds, work)
        models = fixed_size_models(root, args.trees, work)
        compute = compute_per_list(models, args.lengths, args.reps)
        xgb = None
        if not args.no_xgboost:
            xgb = (
                xgboost_agreement(root, args.folds, work),
                compute_per_list(
                    xgboost_models(root, [args.xgboost_trees], work),
                    args.lengths,
                    args.reps,
                    xgboost_predict,
                ),
            )
        cells = served(models[args.serve_trees], args, work)
    seconds = time.perf_counter() - started
    body = report(args, agreed, compute, xgb, cells, args.serve_trees, seconds)
    print(body)
    if not args.no_write:
        write_section(
            "lightgbm_model",
            "A LightGBM LambdaMART served by ltr (MQ2008)",
            command_line("lightgbm_model", argv),
            body,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
