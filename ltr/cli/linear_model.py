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
    p.add_argument(
        "--register",
        metavar="NAME",
        help="log the scorer as an MLflow run and register it under NAME (models:/NAME@ALIAS)",
    )
    p.add_argument("--alias", help="with --register: point this alias at the new version")
    p.add_argument("--experiment", default="ltr-linear-models", help="MLflow experiment")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
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
    import contextlib

    from ltr.artifact import check_weights, save_linear_model
    from ltr.errors import ConfigError

    if args.alias and not args.register:
        raise ConfigError("--alias needs --register NAME")
    weights = parse_weights(args.weight)
    names, featurizer = features_like(args.like)
    check_weights(names, weights)  # before a run is started for nothing
    formula = " + ".join(f"{w:g} x {f}" for f, w in weights.items())
    with contextlib.ExitStack() as stack:
        tracker = None
        facts: dict = {}
        if args.register:
            from ltr.tracking import start_run

            tracker = stack.enter_context(
                start_run(
                    experiment=args.experiment,
                    run_name=args.out.name,
                    tracking_uri=args.tracking_uri,
                    tags={"ltr.run_type": "linear-model"},
                )
            )
            facts = {"run_id": tracker.run_id, "registered_model": args.register}
        path = save_linear_model(args.out, names, weights, featurizer=featurizer, facts=facts)
        text = ", with its text featurizer (reranks texts)" if featurizer is not None else ""
        print(f"wrote {path}: score = {formula}, over {len(names)} features{text}")
        if tracker is not None:
            tracker.log_params({"weight." + f: w for f, w in weights.items()} | {"like": args.like})
            logged = tracker.log_model(
                path, feature_names=names, registered_name=args.register, alias=args.alias
            )
            alias = f": {logged.alias_uri}" if logged.alias_uri else ""
            print(
                f"MLflow run {logged.run_id}: registered {logged.registered_name} version "
                f"{logged.registered_version}{alias}"
            )
    return 0
