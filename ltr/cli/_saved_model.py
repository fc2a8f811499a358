"""What ``ltr linear-model`` and ``ltr lightgbm-model`` share: the production ranker saved as a
model artifact, with the feature profile of its training data when given, optionally logged as
an MLflow run and registered under a name and alias."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ltr.artifact import Manifest


def add_saved_model_arguments(p: argparse.ArgumentParser, experiment: str) -> None:
    """``--profile-data`` and the MLflow options (``--register``, ``--alias``, ...)."""
    p.add_argument(
        "--profile-data",
        type=Path,
        nargs="+",
        metavar="DATA",
        help="the data the model was trained on (LETOR or Parquet files, or folders): its "
        "feature profile goes into the artifact, for `ltr drift` and the server's drift gauges",
    )
    p.add_argument(
        "--register",
        metavar="NAME",
        help="log the model as an MLflow run and register it under NAME (models:/NAME@ALIAS)",
    )
    p.add_argument("--alias", help="with --register: point this alias at the new version")
    p.add_argument("--experiment", default=experiment, help="MLflow experiment")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")


def check_saved_model_arguments(args: argparse.Namespace) -> None:
    """Refuse what would fail after the artifact is written, before anything is."""
    from ltr.errors import ConfigError

    if args.alias and not args.register:
        raise ConfigError("--alias needs --register NAME")
    for path in args.profile_data or ():
        if not path.exists():
            raise FileNotFoundError(f"no such --profile-data file or folder: {path}")


def _write_profile(path: Path, data: list[Path]) -> None:
    from ltr.artifact import load_model
    from ltr.cli.drift import _scored, profile_data

    profile, notes = profile_data(load_model(str(path)), data, option="--profile-data")
    for note in notes:
        print(note)
    where = profile.save(path)
    print(
        f"wrote the feature profile of {profile.rows:,} rows{_scored(profile)} of "
        f"{', '.join(map(str, data))} to {where}"
    )


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
        if args.profile_data:
            _write_profile(path, args.profile_data)
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
