"""Combine trained models into one ensemble artifact (``ltr ensemble``).

The ensemble is an ordinary artifact (:mod:`ltr.artifact`): architecture ``ensemble``, every
member's architecture, config and normaliser in the manifest, every member's weights in one
``model.pt``. So it is evaluated, exported to ONNX, served, batch-scored and registered like any
single model, and it needs none of its members' folders once written. What it computes is
:class:`ltr.models.ensemble.RankingEnsemble`.

Members must agree on what they read: the same feature names in the same order, initial ranks
or not, the same context vector (size and columns), and, for text models, the same featurizer.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ltr.artifact import (
    BUNDLED_FEATURIZER,
    MANIFEST,
    LoadedModel,
    Manifest,
    replace_folder,
    save_model,
)
from ltr.drift import PROFILE
from ltr.errors import ConfigError
from ltr.models.ensemble import ENSEMBLE, RankingEnsemble


def _describe(index: int, loaded: LoadedModel) -> str:
    return f"model {index + 1} ({loaded.source})"


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    if len(a) != len(b):
        return f"{len(b)} features where the first has {len(a)}"
    i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f"feature {i + 1} is {b[i]!r} where the first model's is {a[i]!r}"


def _featurizer_digest(loaded: LoadedModel) -> str | None:
    """SHA-256 over the bundled featurizer's files (names and bytes), or None without one."""
    folder = loaded.path / BUNDLED_FEATURIZER
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_compatible(models: Sequence[LoadedModel]) -> None:
    """Raise :class:`ConfigError` naming the first way a model differs from the first one in
    what it reads (features, initial ranks, context, text featurizer)."""
    if len(models) < 2:
        raise ConfigError(f"an ensemble needs at least 2 models, got {len(models)}")
    first = models[0].manifest
    first_featurizer = _featurizer_digest(models[0])
    for i, loaded in enumerate(models[1:], start=1):
        m = loaded.manifest
        who = _describe(i, loaded)
        if m.feature_names != first.feature_names:
            raise ConfigError(
                f"{who} reads other features than model 1 ({models[0].source}): "
                f"{_first_difference(first.feature_names, m.feature_names)}; an ensemble's "
                "models must read the same features in the same order"
            )
        if m.uses_initial_rank != first.uses_initial_rank:
            raise ConfigError(
                f"{who} {'uses' if m.uses_initial_rank else 'does not use'} initial ranks and "
                "model 1 does not do the same; an ensemble's models must take the same inputs"
            )
        if m.context_dim != first.context_dim or m.training.get(
            "context_columns"
        ) != first.training.get("context_columns"):
            raise ConfigError(
                f"{who} takes a context vector of {m.context_dim} values from columns "
                f"{m.training.get('context_columns')}, model 1 one of {first.context_dim} from "
                f"{first.training.get('context_columns')}; an ensemble's models must take the "
                "same inputs"
            )
        if _featurizer_digest(loaded) != first_featurizer:
            raise ConfigError(
                f"{who} and model 1 carry different text featurizers (or only one carries "
                "one); an ensemble's text models must share the featurizer that made their "
                "features"
            )


def _member(loaded: LoadedModel) -> dict[str, Any]:
    m = loaded.manifest
    return {
        "architecture": m.architecture,
        "model_config": m.model_config,
        "normalizer": m.normalizer,
    }


def _lineage(loaded: LoadedModel) -> dict[str, Any]:
    """Where a member came from (kept in the ensemble's manifest)."""
    m = loaded.manifest
    out: dict[str, Any] = {"source": loaded.source, "architecture": m.architecture}
    for key in ("loss", "run_id", "best_epoch"):
        if m.training.get(key) is not None:
            out[key] = m.training[key]
    if m.name is not None:
        out["registered_model"] = m.name
    if m.version is not None:
        out["version"] = m.version
    return out


def build_ensemble(
    models: Sequence[LoadedModel],
    combine: str = "zscore",
    facts: Mapping[str, Any] | None = None,
) -> tuple[RankingEnsemble, Manifest]:
    """The ensemble of ``models`` and its manifest (checked with :func:`check_compatible`);
    ``facts`` (an MLflow ``run_id``, a ``registered_model`` name) go into its training record."""
    check_compatible(models)
    ensemble = RankingEnsemble([loaded.model for loaded in models], combine).eval()
    first = models[0].manifest
    training: dict[str, Any] = {"members": [_lineage(loaded) for loaded in models]}
    for key in ("data", "max_grade", "context_columns", "featurizer"):
        if first.training.get(key) is not None:  # what export, serving and evaluate read
            training[key] = first.training[key]
    training.update(facts or {})
    manifest = Manifest(
        architecture=ENSEMBLE,
        model_config={
            "combine": combine,
            "members": [_member(loaded) for loaded in models],
            "use_initial_rank": first.uses_initial_rank,
            "context_dim": first.context_dim,
        },
        feature_names=list(first.feature_names),
        normalizer={"enabled": False},  # each member normalises for itself
        training=training,
    )
    return ensemble, manifest


def save_ensemble(
    models: Sequence[LoadedModel],
    output: str | Path,
    combine: str = "zscore",
    facts: Mapping[str, Any] | None = None,
) -> tuple[RankingEnsemble, Manifest, Path]:
    """Write the ensemble of ``models`` as the artifact folder ``output``, with the members'
    text featurizer if they carry one, and the first member's feature profile
    (:mod:`ltr.drift`) if one has it. The folder is written beside and moved in whole, so an
    earlier model's folder there is replaced (never a folder holding anything else). Returns
    the module, its manifest and the folder."""
    output = Path(output)
    for i, loaded in enumerate(models):
        if output.exists() and output.resolve() == loaded.path.resolve():
            raise ConfigError(
                f"--output {output} is {_describe(i, loaded)}'s own folder; write the ensemble "
                "to a new folder"
            )
    if output.exists() and not (output / MANIFEST).exists() and any(output.iterdir()):
        raise ConfigError(
            f"{output} exists and holds something other than a model; pass a new folder or "
            "an earlier model's folder to replace"
        )
    ensemble, manifest = build_ensemble(models, combine, facts)
    # written beside and moved in whole: no stale model.onnx or featurizer of an earlier model
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(ensemble, manifest, tmp)
    profiled = [m.path / PROFILE for m in models if (m.path / PROFILE).exists()]
    if profiled:  # the members read the same features: the first one's training profile
        shutil.copyfile(profiled[0], tmp / PROFILE)
    featurizer = models[0].path / BUNDLED_FEATURIZER
    if featurizer.is_dir():
        shutil.copytree(featurizer, tmp / BUNDLED_FEATURIZER)
    return ensemble, manifest, replace_folder(tmp, output)
