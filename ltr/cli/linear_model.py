"""``ltr linear-model``: a hand-set linear scorer (BM25, say) saved as a model artifact.

The ranking already in production is usually a formula, not a trained model. Saved this way it
is served, evaluated and interleaved like any model, which is how a new model is compared with
it online (``ltr serve --model bm25/ --challenger runs/setrank/model``):

    ltr linear-model runs/bm25 --weight f25=1 --like data/mq2008/S1.txt.xz
    ltr linear-model runs/text-bm25 --weight bm25=1 --like runs/text-setrank/model
    ltr linear-model runs/bm25 --weight f25=1 --like data/mq2008/S1.txt.xz \
        --register bm25 --alias champion      # then: ltr serve --model models:/bm25@champion
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
    p = sub.add_parser(
        "linear-model",
        help="save a hand-set linear scorer (BM25, say) as a model to serve, evaluate, interleave",
        description="Write a model artifact whose score is the sum of WEIGHT x FEATURE over the "
        "raw features (no normaliser). Its features are those of --like: a LETOR or Parquet "
        "file, a model (whose text featurizer, if it has one, comes along so the scorer reranks "
        "texts too), or a text featurizer folder. Its version is the folder's name.",
        epilog="example: ltr linear-model runs/bm25 --weight f25=1 --like data/mq2008/S1.txt.xz",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="folder to write the artifact to")
    p.add_argument(
        "--weight",
        action="append",
        required=True,
        metavar="FEATURE=VALUE",
        help="a feature's weight (repeat for several; features not named weigh 0)",
    )
    p.add_argument(
        "--like",
        required=True,
        metavar="SOURCE",
        help="where the feature names come from: a LETOR/Parquet file, a model (folder or "
        "MLflow URI) or a featurizer folder (ltr text-features' OUT/featurizer)",
    )
    add_saved_model_arguments(p, "ltr-linear-models")
    p.set_defaults(func=run)


def parse_weights(pairs: list[str]) -> dict[str, float]:
    """``["bm25=1", "len=-0.5"]`` as ``{"bm25": 1.0, "len": -0.5}``; a malformed pair or a
    feature named twice is a :class:`ConfigError`."""
    from ltr.errors import ConfigError

    weights: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name or weight != weight or weight in (float("inf"), float("-inf")):
            raise ConfigError(f"--weight {pair!r} is not FEATURE=NUMBER (e.g. --weight f25=1)")
        if name in weights:
            raise ConfigError(f"--weight names {name!r} twice")
        weights[name] = weight
    return weights


def features_like(source: str) -> tuple[list[str], Path | None]:
    """The feature names of ``source`` and the text featurizer folder that comes with them (a
    model's bundled one, or ``source`` itself when it is a featurizer folder; else None)."""
    from ltr.artifact import BUNDLED_FEATURIZER, MANIFEST, is_mlflow_uri, load_model
    from ltr.data import load_dataset
    from ltr.text.featurizer import FEATURIZER_MANIFEST, TextFeaturizer

    path = Path(source)
    if not is_mlflow_uri(source) and (path / FEATURIZER_MANIFEST).is_file():
        return TextFeaturizer.load(path).feature_names, path
    if is_mlflow_uri(source) or (path / MANIFEST).is_file() or path.is_dir():
        loaded = load_model(source)  # a folder that is no model gets load_model's error
        bundled = loaded.path / BUNDLED_FEATURIZER
        return list(loaded.manifest.feature_names), bundled if bundled.is_dir() else None
    return list(load_dataset(path).feature_names), None


def run(args: argparse.Namespace) -> int:
    from ltr.artifact import check_weights, save_linear_model

    check_saved_model_arguments(args)
    weights = parse_weights(args.weight)
    names, featurizer = features_like(args.like)
    check_weights(names, weights)  # before a run is started for nothing
    formula = " + ".join(f"{w:g} x {f}" for f, w in weights.items())
    text = ", with its text featurizer (reranks texts)" if featurizer is not None else ""
    save_and_register(
        args,
        lambda facts: save_linear_model(
            args.out, names, weights, featurizer=featurizer, facts=facts
        ),
        run_type="linear-model",
        params=lambda _: {"weight." + f: w for f, w in weights.items()} | {"like": args.like},
        describe=lambda _: f"score = {formula}, over {len(names)} features{text}",
    )
    return 0
