"""``ltr lightgbm-model``: a LightGBM model (the LambdaMART in production, say) saved as a model
artifact, served, exported, evaluated and interleaved like any ``ltr`` model.

The way to replace a LambdaMART behind a hand-made endpoint: serve it from ``ltr serve`` as the
champion, interleave a SetRank challenger with it, promote the challenger when users prefer it:

    ltr lightgbm-model lambdamart.txt runs/lambdamart --like data/mq2008/S1.txt.xz
    ltr serve --model runs/lambdamart --challenger runs/setrank/model --impressions imp/
    ltr lightgbm-model lambdamart.txt runs/lambdamart --register lambdamart --alias champion
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltr.cli._saved_model import add_register_arguments, check_register_arguments, save_and_register


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lightgbm-model",
        help="save a LightGBM model (a LambdaMART) as a model to serve, evaluate, interleave",
        description="Write a model artifact that scores as the LightGBM model in BOOSTER (a "
        "file of Booster.save_model or the lightgbm CLI): its raw score, over the raw features "
        "(no normaliser). ONNX export writes ONNX-ML's tree operator, which ONNX Runtime runs "
        "about as fast as LightGBM. Numerical splits only (no categorical splits, no linear "
        "trees, one tree per iteration). Its version is the folder's name.",
        epilog="example: ltr lightgbm-model lambdamart.txt runs/lambdamart "
        "--like data/mq2008/S1.txt.xz",
    )
    p.add_argument("booster", type=Path, metavar="BOOSTER", help="LightGBM model file (text)")
    p.add_argument("out", type=Path, metavar="OUT", help="folder to write the artifact to")
    p.add_argument(
        "--like",
        metavar="SOURCE",
        help="the features the model takes, in order: a LETOR/Parquet file, a model (folder or "
        "MLflow URI) or a featurizer folder. The booster's features are found among them by "
        "name, or by position when LightGBM named them Column_0... (default: the booster's own "
        "feature names)",
    )
    add_register_arguments(p, "ltr-lightgbm-models")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ltr.artifact import load_model, save_lightgbm_model
    from ltr.cli.linear_model import features_like

    check_register_arguments(args)
    names, featurizer = features_like(args.like) if args.like else (None, None)

    def describe(path: Path) -> str:
        manifest = load_model(path).manifest
        config = manifest.model_config
        text = ", with its text featurizer (reranks texts)" if featurizer is not None else ""
        return (
            f"{config['num_trees']} trees of up to {(config['nodes_per_tree'] + 1) // 2} leaves "
            f"(depth {config['depth']}) over {manifest.num_features} features{text}"
        )

    save_and_register(
        args,
        lambda facts: save_lightgbm_model(
            args.out, args.booster, names, featurizer=featurizer, facts=facts
        ),
        run_type="lightgbm-model",
        params=lambda path: {
            "booster": str(args.booster),
            "like": args.like or "",
            "trees": load_model(path).manifest.model_config["num_trees"],
        },
        describe=describe,
    )
    return 0
