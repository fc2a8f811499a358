"""The model artifact: one directory from training to production, and the one loader for it.

Layout of an artifact directory::

    ltr_model.json   manifest: architecture, its config, feature schema, normaliser, training info
    model.pt         state dict of the RankingModel (normaliser statistics included)
    model.onnx       optional, written by ``ltr export`` after a parity check
    featurizer/      only for models trained on ``ltr text-features`` files: the text featurizer
                     that made them (``RerankText`` in the server, ``ltr rerank-text``)

Every consumer (``ltr evaluate``, the gRPC server, batch scoring, reports) loads models through
:func:`load_model`, which accepts a local directory or an MLflow URI (``runs:/<id>/model``,
``models:/<name>@<alias>``, ``models:/<name>/<version>``). So the model that was evaluated is the
model that is served.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltr import __version__
from ltr.errors import LtrError

if TYPE_CHECKING:  # torch is imported where it is used: resolving a path needs none of it
    import torch

MANIFEST = "ltr_model.json"
WEIGHTS = "model.pt"
ONNX = "model.onnx"
BUNDLED_FEATURIZER = "featurizer"
"""Sub-folder of a model trained on ``ltr text-features`` files: the text featurizer that made
them (``ltr serve`` answers ``RerankText`` with it, ``ltr rerank-text`` uses it by default)."""
FORMAT = "ltr-model"
FORMAT_VERSION = 1
MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")


class ArtifactError(LtrError):
    """A model artifact is missing, incomplete or of an unknown format.

    Attributes:
        nearby: artifact folders found next to the path that was no artifact (above or below
            it), which the message names.
    """

    def __init__(self, message: str, *, nearby: list[Path] | None = None) -> None:
        super().__init__(message)
        self.nearby = list(nearby or [])


@dataclass
class Manifest:
    """What a model artifact says about itself.

    Attributes:
        architecture: registry name of the scorer (``setrank``, ``mlp``), ``gbdt`` for a
            LightGBM model (``ltr lightgbm-model``) or ``ensemble`` (``ltr ensemble``).
        model_config: the scorer's resolved config (``num_features`` included).
        feature_names: names of the F input features, in order.
        normalizer: ``{"enabled": bool, "log1p": bool}``.
        training: free-form facts about training (loss, data, metrics, run id).
        name / version: registry name and version, when loaded from a registry.
    """

    architecture: str
    model_config: dict[str, Any]
    feature_names: list[str]
    normalizer: dict[str, Any] = field(default_factory=lambda: {"enabled": True, "log1p": True})
    training: dict[str, Any] = field(default_factory=dict)
    ltr_version: str = __version__
    name: str | None = None
    version: str | None = None
    mflop_per_list: dict[str, float] | None = None
    """Arithmetic of one forward pass by list length (:func:`ltr.inference.mflop_per_list`),
    when the writer counted it (``ltr train`` does); ``ltr info`` counts it otherwise."""

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @property
    def context_dim(self) -> int:
        """C, the size of the per-query context vector the model takes (0 = none)."""
        return int(self.model_config.get("context_dim") or 0)

    @property
    def uses_initial_rank(self) -> bool:
        """Whether the model takes each candidate's initial rank."""
        return bool(self.model_config.get("use_initial_rank", False))

    def to_json(self) -> dict[str, Any]:
        extra = {} if self.mflop_per_list is None else {"mflop_per_list": self.mflop_per_list}
        return {
            **extra,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture,
            "model_config": self.model_config,
            "feature_names": self.feature_names,
            "normalizer": self.normalizer,
            "training": self.training,
            "ltr_version": self.ltr_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> Manifest:
        if data.get("format") != FORMAT:
            raise ArtifactError(f"{where} is not an ltr model manifest")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ArtifactError(
                f"{where} was written by a newer ltr (format {data['format_version']}); upgrade ltr"
            )
        return cls(
            architecture=data["architecture"],
            model_config=data["model_config"],
            feature_names=list(data["feature_names"]),
            normalizer=data.get("normalizer", {"enabled": False}),
            training=data.get("training", {}),
            ltr_version=data.get("ltr_version", "unknown"),
            mflop_per_list=data.get("mflop_per_list"),
        )


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode, CPU) with its manifest and source."""

    model: torch.nn.Module
    manifest: Manifest
    path: Path
    source: str

    @property
    def served_name(self) -> str:
        """The model name a server answers with: the registry name, else the folder's."""
        return self.manifest.name or self.path.name

    @property
    def served_version(self) -> str:
        """The version a server answers with: the registry version, else the training run's
        id, else ``unversioned``."""
        return str(self.manifest.version or "unversioned")

    @property
    def onnx_path(self) -> Path | None:
        p = self.path / ONNX
        return p if p.exists() else None


def replace_folder(tmp: Path, target: Path) -> Path:
    """Move the finished folder ``tmp`` to ``target``, replacing any folder there: the old one
    is moved aside before the new one moves in, so a reader finds the old folder or the new
    one, never half of either (``tmp`` should sit beside ``target``: same file system)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.replace(old)
        tmp.replace(target)
        shutil.rmtree(old)
    else:
        tmp.replace(target)
    return target


def build_model(manifest: Manifest) -> torch.nn.Module:
    """Construct an (untrained) RankingModel from a manifest, or a RankingEnsemble of them for an
    ensemble's (``ltr ensemble``). A tree ensemble's (``gbdt``, ``ltr lightgbm-model``) has
    empty trees until its state dict is loaded."""
    from ltr.data.normalize import FeatureNormalizer
    from ltr.models import RankingModel, build_scorer
    from ltr.models.ensemble import ENSEMBLE, RankingEnsemble
    from ltr.models.gbdt import GBDT, GBDTConfig, GBDTScorer

    if manifest.architecture == ENSEMBLE:
        config = manifest.model_config
        members = [
            build_model(
                Manifest(
                    architecture=member["architecture"],
                    model_config=member["model_config"],
                    feature_names=manifest.feature_names,
                    normalizer=member.get("normalizer", {"enabled": False}),
                )
            )
            for member in config["members"]
        ]
        return RankingEnsemble(members, config.get("combine", "zscore"))
    if manifest.architecture == GBDT:
        scorer: torch.nn.Module = GBDTScorer(GBDTConfig(**manifest.model_config))
    else:
        scorer = build_scorer(manifest.architecture, dict(manifest.model_config))
    normalizer = None
    if manifest.normalizer.get("enabled", False):
        normalizer = FeatureNormalizer(
            manifest.num_features, log1p=bool(manifest.normalizer.get("log1p", True))
        )
    return RankingModel(scorer, normalizer)


def save_model(model: torch.nn.Module, manifest: Manifest, directory: str | Path) -> Path:
    """Write ``model`` and its manifest to ``directory`` (created; files replaced atomically)."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp_weights = directory / f".{WEIGHTS}.tmp"
    torch.save(model.state_dict(), tmp_weights)
    tmp_weights.replace(directory / WEIGHTS)
    tmp_manifest = directory / f".{MANIFEST}.tmp"
    tmp_manifest.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    tmp_manifest.replace(directory / MANIFEST)
    return directory


def check_weights(feature_names: list[str], weights: dict[str, float]) -> None:
    """Refuse (:class:`ConfigError`) weights of features not among ``feature_names``."""
    from ltr.errors import ConfigError

    unknown = [f for f in weights if f not in feature_names]
    if unknown:
        raise ConfigError(f"no feature {unknown[0]!r} among the {len(feature_names)} features")


def save_linear_model(
    directory: str | Path,
    feature_names: list[str],
    weights: dict[str, float],
    featurizer: str | Path | None = None,
    facts: dict | None = None,
) -> Path:
    """A hand-set linear scorer as an artifact: ``score = sum of weights[f] * feature f`` over
    the raw features (no normaliser). It exports, serves and scores like a trained model, so a
    ranking already in production (BM25, say: ``{"f25": 1.0}`` on LETOR 4) can be served as the
    model a challenger is interleaved with, or evaluated beside trained ones. Its version is
    the folder's name (as a training run's id would be).

    ``featurizer`` (a text featurizer folder, ``ltr text-features``' ``OUT/featurizer``, or a
    text model's bundled one) is bundled into the artifact, so that the scorer also reranks
    texts (``RerankText``, ``ltr rerank-text``); it must write ``feature_names``. ``facts`` go
    into the manifest's training record (an MLflow ``run_id`` for the version, say).

    Raises:
        ConfigError: a weight names no feature, or ``featurizer`` writes other features.
    """
    check_weights(feature_names, weights)
    check_featurizer(featurizer, feature_names)
    directory = Path(directory)
    manifest = Manifest(
        architecture="mlp",
        model_config={"num_features": len(feature_names), "hidden_sizes": [], "dropout": 0.0},
        feature_names=list(feature_names),
        normalizer={"enabled": False},
        training={"run_id": directory.name, "linear_weights": dict(weights), "data": {}}
        | dict(facts or {}),
    )
    import torch

    model = build_model(manifest)
    (linear,) = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        for feature, weight in weights.items():
            linear.weight[0, feature_names.index(feature)] = float(weight)
    return _save_with_featurizer(model.eval(), manifest, directory, featurizer)


LIGHTGBM_FILE = "lightgbm_model.txt"
"""The LightGBM model file a ``gbdt`` artifact was read from, kept in it for the record."""


def save_lightgbm_model(
    directory: str | Path,
    booster: Any,
    feature_names: list[str] | None = None,
    featurizer: str | Path | None = None,
    facts: dict | None = None,
) -> Path:
    """A LightGBM model (a LambdaMART, say) as an artifact that exports, serves, evaluates and
    is interleaved like a trained ``ltr`` model (:mod:`ltr.models.gbdt`). Its score is
    LightGBM's raw score (``predict(raw_score=True)``; averaged over the trees for a random
    forest, as ``predict`` does), over the raw features (no normaliser). Its version is the
    folder's name.

    Args:
        booster: a ``lightgbm.Booster`` or the path of a model file (``Booster.save_model``).
        feature_names: the features the artifact takes, in order (a data file's, say). The
            booster's features are found among them by name; a booster whose names are
            LightGBM's defaults (``Column_0``...) reads them by position. None: the booster's
            own names (a booster without names then needs ``feature_names``).
        featurizer: a text featurizer folder to bundle (as in :func:`save_linear_model`).
        facts: go into the manifest's training record.

    Raises:
        ConfigError: the file is no LightGBM model, a tree cannot be read (categorical split,
            linear tree, multi-class), or the features do not match.
    """
    import lightgbm

    from ltr.errors import ConfigError
    from ltr.models.gbdt import from_lightgbm

    if not isinstance(booster, lightgbm.Booster):
        source = Path(booster)
        if not source.is_file():
            raise ConfigError(f"no LightGBM model file at {source}")
        try:
            booster = lightgbm.Booster(model_file=str(source))
        except lightgbm.basic.LightGBMError as exc:
            raise ConfigError(f"{source} is not a LightGBM model file: {exc}") from None
    scorer, own_names = from_lightgbm(booster.dump_model())
    return _save_trees(
        directory,
        scorer,
        own_names,
        feature_names,
        featurizer,
        facts,
        lambda path: booster.save_model(str(path / LIGHTGBM_FILE)),
    )


XGBOOST_FILE = "xgboost_model.json"
"""The XGBoost model file a ``gbdt`` artifact was read from, kept in it for the record."""


def save_xgboost_model(
    directory: str | Path,
    booster: Any,
    feature_names: list[str] | None = None,
    featurizer: str | Path | None = None,
    facts: dict | None = None,
) -> Path:
    """An XGBoost model (``rank:ndcg``, say) as an artifact, like :func:`save_lightgbm_model`.
    Its score is XGBoost's margin (``predict(output_margin=True)``) over every tree.

    Args:
        booster: the path of a JSON model file (``Booster.save_model("model.json")``), or an
            object with ``save_raw`` (an ``xgboost.Booster``).
        feature_names: as for :func:`save_lightgbm_model`; a booster without feature names
            (XGBoost's default) reads its columns by position.

    Raises:
        ConfigError: the file is no XGBoost JSON model, or it cannot be read (see
            :func:`ltr.models.gbdt.from_xgboost`), or the features do not match.
    """
    from ltr.errors import ConfigError
    from ltr.models.gbdt import from_xgboost

    if hasattr(booster, "save_raw"):
        raw = bytes(booster.save_raw(raw_format="json"))
    else:
        source = Path(booster)
        if not source.is_file():
            raise ConfigError(f"no XGBoost model file at {source}")
        raw = source.read_bytes()
    try:
        model = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(
            "the XGBoost model is not JSON: save it with booster.save_model('model.json') "
            "(a .ubj or old binary file cannot be read)"
        ) from None
    scorer, own_names = from_xgboost(model)
    return _save_trees(
        directory,
        scorer,
        own_names,
        feature_names,
        featurizer,
        facts,
        lambda path: (path / XGBOOST_FILE).write_bytes(raw),
    )


def _save_trees(
    directory: str | Path,
    scorer: Any,
    own_names: list[str] | None,
    feature_names: list[str] | None,
    featurizer: str | Path | None,
    facts: dict | None,
    keep_source: Callable[[Path], object],
) -> Path:
    from ltr.errors import ConfigError
    from ltr.models import RankingModel
    from ltr.models.gbdt import GBDT

    if feature_names is None and own_names is None:
        raise ConfigError(
            "the model's features have no names: give the features it reads, in order (--like DATA)"
        )
    names = list(feature_names) if feature_names is not None else list(own_names or [])
    scorer.set_features(_booster_columns(own_names, names, scorer.config.num_features), len(names))
    check_featurizer(featurizer, names)
    directory = Path(directory)
    manifest = Manifest(
        architecture=GBDT,
        model_config=dict(vars(scorer.config)),
        feature_names=names,
        normalizer={"enabled": False},
        training={"run_id": directory.name, "trees": scorer.config.num_trees, "data": {}}
        | dict(facts or {}),
    )
    path = _save_with_featurizer(RankingModel(scorer).eval(), manifest, directory, featurizer)
    keep_source(path)
    return path


def _booster_columns(own: list[str] | None, names: list[str], count: int) -> list[int]:
    """For each of the booster's ``count`` features (named ``own``, or None: unnamed), its
    column among ``names``."""
    from ltr.errors import ConfigError

    if own is None:
        if count != len(names):
            raise ConfigError(
                f"the model reads {count} unnamed features but {len(names)} features were "
                "given; its columns are read by position, so the counts must agree"
            )
        return list(range(count))
    missing = [name for name in own if name not in names]
    if missing:
        raise ConfigError(
            f"the model's feature {missing[0]!r} is not among the {len(names)} features given "
            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
        )
    return [names.index(name) for name in own]


def _save_with_featurizer(
    model: torch.nn.Module, manifest: Manifest, directory: Path, featurizer: str | Path | None
) -> Path:
    path = save_model(model, manifest, directory)
    if featurizer is not None:
        from ltr.text.featurizer import bundle_featurizer

        bundle_featurizer(featurizer, path)
    return path


def check_featurizer(featurizer: str | Path | None, feature_names: list[str]) -> None:
    """Refuse (:class:`ConfigError`) a text featurizer that writes other features than
    ``feature_names``."""
    from ltr.errors import ConfigError

    if featurizer is None:
        return
    from ltr.text.featurizer import TextFeaturizer

    writes = TextFeaturizer.load(featurizer).feature_names
    if writes != list(feature_names):
        raise ConfigError(
            f"the featurizer at {featurizer} writes {writes}, not the features given "
            f"({list(feature_names)})"
        )


def is_mlflow_uri(source: str) -> bool:
    return source.startswith(MLFLOW_SCHEMES)


def resolve_artifact_dir(
    source: str | Path, manifest: str = MANIFEST
) -> tuple[Path, dict[str, str]]:
    """Local directory holding the artifact for ``source`` (the one with the ``manifest`` file:
    ``ltr_model.json`` for rankers, ``lm_model.json`` for language models), and registry facts
    if any."""
    text = str(source)
    info: dict[str, str] = {}
    if is_mlflow_uri(text):
        from ltr.tracking import download_model

        local, info = download_model(text)
    else:
        local = Path(text)
    if not local.exists():
        raise ArtifactError(f"no model at {text}: the path does not exist")
    if (local / manifest).exists():
        return local, info
    # An MLflow pyfunc model directory keeps the ltr artifact in a folder under artifacts/.
    for candidate in sorted(local.glob(f"artifacts/*/{manifest}")):
        return candidate.parent, info
    if not is_mlflow_uri(text):
        _refuse_near_miss(local, manifest)
    writer = "`ltr train`" if manifest == MANIFEST else "`ltr pretrain`"
    what = "is a file, not a model folder" if local.is_file() else "holds no model of this kind"
    raise ArtifactError(
        f"{text} {what} (no {manifest}); pass a directory written by {writer} or an MLflow URI "
        "of one"
    )


NEAR_MISS_DEPTH = 3
"""How far above and below a path that is no artifact folder :func:`resolve_artifact_dir` looks
for one, to name it."""


def _refuse_near_miss(path: Path, manifest: str, shown: int = 4, scanned: int = 2000) -> None:
    """Raise naming the artifact folder ``path`` lies inside (a file such as its model.onnx),
    else the artifact folders below ``path`` (at most ``NEAR_MISS_DEPTH`` levels down, ``shown``
    of them named, at most ``scanned`` folders looked into); return when there is neither."""
    for parent in [path.parent, *path.parent.parents][:NEAR_MISS_DEPTH]:
        if (parent / manifest).is_file():
            what = "a file" if path.is_file() else "a folder"
            raise ArtifactError(
                f"{path} is {what} inside the model folder {parent}; pass the folder: {parent}",
                nearby=[parent],
            )
    found: list[Path] = []
    level, looked = [path], 0
    for _ in range(NEAR_MISS_DEPTH):
        below = []
        for folder in level:
            try:
                children = sorted(c for c in folder.iterdir() if c.is_dir())
            except OSError:  # unreadable: nothing to name there
                continue
            for child in children:
                looked += 1
                if looked > scanned:
                    break
                if (child / manifest).is_file():
                    found.append(child)
                elif not child.name.startswith("."):
                    below.append(child)
        level = below
    if not found:
        return
    names = ", ".join(map(str, found[:shown])) + (
        f" and {len(found) - shown} more" if len(found) > shown else ""
    )
    if len(found) == 1:
        hint = f"the model folder {names} is below it; pass that folder"
    else:
        hint = f"model folders are below it: {names}; pass one of them"
    raise ArtifactError(
        f"{path} holds no model of this kind (no {manifest}), but {hint}", nearby=found
    )


def load_model(source: str | Path) -> LoadedModel:
    """Load a model artifact from a directory or an MLflow URI, ready for inference."""
    import torch

    path, info = resolve_artifact_dir(source)
    manifest = Manifest.from_json(json.loads((path / MANIFEST).read_text()), path)
    manifest.name = info.get("name") or manifest.training.get("registered_model")
    manifest.version = info.get("version") or manifest.training.get("run_id")
    weights = path / WEIGHTS
    if not weights.exists():
        raise ArtifactError(f"{path} has a manifest but no {WEIGHTS}")
    model = build_model(manifest)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights} does not match its manifest: {exc}") from None
    model.eval()
    return LoadedModel(model=model, manifest=manifest, path=path, source=str(source))
