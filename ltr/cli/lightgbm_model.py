"""``ltr lightgbm-model``: a LightGBM model (the LambdaMART in production, say) saved as a model
artifact, served, exported, evaluated and interleaved like any ``ltr`` model. ``ltr
xgboost-model`` (``xgboost_model.py``) is the same for XGBoost, and shares this module's code.

The way to replace a LambdaMART behind a hand-made endpoint: serve it from ``ltr serve`` as the
champion, interleave a SetRank challenger with it, promote the challenger when users prefer it:

    ltr lightgbm-model lambdamart.txt runs/lambdamart --like data/mq2008/S1.txt.xz
    ltr serve --model runs/lambdamart --challenger runs/setrank/model --impressions imp/
    ltr lightgbm-model lambdamart.txt runs/lambdamart --like data/mq2008/S1.txt.xz \\
        --register lambdamart --alias champion
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltr.cli._saved_model import (
    add_saved_model_arguments,
    check_saved_model_arguments,
    save_and_register,
)


def register(sub: argparse._SubParsersAction) -> None:
    add_tree_command(
        sub,
        "lightgbm-model",
        library="LightGBM",
        booster_help="LightGBM model file (text: Booster.save_model or the lightgbm CLI)",
        score="its raw score (averaged over the trees for a random forest, as predict does)",
        refused="categorical splits, linear trees, several trees per iteration",
        example="lambdamart.txt",
        save="save_lightgbm_model",
    )


def add_tree_command(
    sub: argparse._SubParsersAction,
    command: str,
    *,
    library: str,
    booster_help: str,
    score: str,
    refused: str,
    example: str,
    save: str,
) -> None:
    p = sub.add_parser(
        command,
        help=f"save a {library} model (a LambdaMART) as a model to serve, evaluate, interleave",
        description=f"Write a model artifact that scores as the {library} model in BOOSTER: "
        f"{score}, over the raw features (no normaliser). ONNX export writes ONNX-ML's tree "
        "operator for ONNX Runtime, the default backend (its speed against the library's own "
        f"predict: docs/SERVING.md). Numerical splits only; refused: {refused}. Its version "
        "is the folder's name.",
        epilog=f"example: ltr {command} {example} runs/lambdamart --like data/mq2008/S1.txt.xz",
    )
    p.add_argument("booster", type=Path, metavar="BOOSTER", help=booster_help)
    p.add_argument("out", type=Path, metavar="OUT", help="folder to write the artifact to")
    p.add_argument(
        "--like",
        metavar="SOURCE",
        help="the features the model takes, in the order requests send them: a LETOR/Parquet "
        "file, a model (folder or MLflow URI) or a featurizer folder. The booster's features "
        "are found among them by name, or by position when the booster names none (default: "
        "the booster's own feature names)",
    )
    add_saved_model_arguments(p, f"ltr-{library.lower()}-models")
    p.set_defaults(func=run, save=save, run_type=command)


def run(args: argparse.Namespace) -> int:
    from ltr import artifact
    from ltr.cli.linear_model import features_like

    check_saved_model_arguments(args)
    names, featurizer = features_like(args.like) if args.like else (None, None)
    save = getattr(artifact, args.save)

    def describe(manifest: artifact.Manifest) -> str:
        config = manifest.model_config
        text = ", with its text featurizer (reranks texts)" if featurizer is not None else ""
        return (
            f"{config['num_trees']} trees of up to {(config['nodes_per_tree'] + 1) // 2} leaves "
            f"(depth {config['depth']}) over {manifest.num_features} features{text}"
        )

    save_and_register(
        args,
        lambda facts: save(args.out, args.booster, names, featurizer=featurizer, facts=facts),
        run_type=args.run_type,
        params=lambda manifest: {
            "booster": str(args.booster),
            "like": args.like or "",
            "trees": manifest.model_config["num_trees"],
        },
        describe=describe,
    )
    return 0
