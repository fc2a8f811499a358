"""What ``ltr linear-model`` and ``ltr lightgbm-model`` share: the production ranker saved as a
model artifact, optionally logged as an MLflow run and registered under a name and alias."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ltr.artifact import Manifest


def add_register_arguments(p: argparse.ArgumentParser, experiment: str) -> None:
    p.add_argument(
        "--register",
        metavar="NAME",
        help="log the model as an MLflow run and register it under NAME (models:/NAME@ALIAS)",
    )
    p.add_argument("--alias", help="with --register: point this alias at the new version")
    p.add_argument("--experiment", default=experiment, help="MLflow experiment")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")


def check_register_arguments(args: argparse.Namespace) -> None:
    from ltr.errors import ConfigError

    if args.alias and not args.register:
        raise ConfigError("--alias needs --register NAME")


def save_and_register(
    args: argparse.Namespace,
    save: Callable[[dict[str, Any]], Path],
    *,
    run_type: str,
    params: Callable[[Manifest], dict[str, Any]],
    describe: Callable[[Manifest], str],
) -> Path:
    """``save(facts)`` the artifact to ``args.out``; with ``--register``, inside an MLflow run
    (whose id goes into the manifest's facts) that logs ``params(manifest)`` and registers it.
    ``describe(manifest)`` says what was written; the manifest is read once, from the folder."""
    import json

    from ltr.artifact import MANIFEST, Manifest

    with contextlib.ExitStack() as stack:
        tracker = None
        facts: dict[str, Any] = {}
        if args.register:
            from ltr.tracking import start_run

            tracker = stack.enter_context(
                start_run(
                    experiment=args.experiment,
                    run_name=args.out.name,
                    tracking_uri=args.tracking_uri,
                    tags={"ltr.run_type": run_type},
                )
            )
            facts = {"run_id": tracker.run_id, "registered_model": args.register}
        path = save(facts)
        manifest = Manifest.from_json(json.loads((path / MANIFEST).read_text()), path)
        print(f"wrote {path}: {describe(manifest)}")
        if tracker is not None:
            tracker.log_params(params(manifest))
            logged = tracker.log_model(
                path,
                feature_names=list(manifest.feature_names),
                registered_name=args.register,
                alias=args.alias,
            )
            alias = f": {logged.alias_uri}" if logged.alias_uri else ""
            print(
                f"MLflow run {logged.run_id}: registered {logged.registered_name} version "
                f"{logged.registered_version}{alias}"
            )
    return path
