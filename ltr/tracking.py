"""MLflow tracking: the only module in ltr that imports mlflow.

Default (nothing configured): an embedded store, ``sqlite:///<cwd>/mlflow.db`` for runs and the
model registry, with artifacts under ``<cwd>/mlartifacts``. Set ``MLFLOW_TRACKING_URI`` (or
``tracking.tracking_uri`` in a config) to use a real ``mlflow server`` instead.

Open the UI on the embedded store with::

    mlflow ui --backend-store-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.exceptions
import mlflow.pyfunc
import numpy as np
import pandas as pd

from ltr import __version__
from ltr.config import flatten
from ltr.data.list_inputs import CONTEXT
from ltr.errors import ConfigError, LtrError

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
PYFUNC_ARTIFACT_KEY = "ltr_model"
LM_ARTIFACT_KEY = "ltr_lm"


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """``explicit``, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store in the cwd."""
    if explicit:
        return explicit
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def local_store_path(uri: str) -> Path | None:
    """The file or folder a local tracking URI keeps its store in (``sqlite:///x.db`` ->
    ``x.db``, ``file:///x`` or a plain path -> ``x``); None for a server or an in-memory
    store."""
    from urllib.parse import unquote, urlparse

    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    if "://" not in uri and not uri.startswith(("databricks", "sqlite:")):
        return Path(uri)
    return None


def require_store(
    tracking_uri: str | None = None,
    error: type[LtrError] = ConfigError,
    *,
    option: str | None = "--tracking-uri",
) -> None:
    """Refuse a local tracking store that does not exist, before MLflow is asked anything:
    MLflow creates an empty store for any URI it opens, so a read (a registry listing, a
    model download) from the wrong folder would leave an empty ``mlflow.db`` behind and then
    report that the model is missing, rather than that the store is. ``option`` is the
    command's own option for the URI, if it has one (for the message).

    Raises:
        error: the URI (``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``)
            names a local file or folder that does not exist.
    """
    uri = resolve_tracking_uri(tracking_uri)
    path = local_store_path(uri)
    if path is None or path.exists():
        return
    if tracking_uri:
        source, fix = "the URI given", "give the URI of the store that holds it"
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        source, fix = "from $MLFLOW_TRACKING_URI", "set MLFLOW_TRACKING_URI to the store's URI"
    else:
        source = "the default, mlflow.db in the current folder"
        name = f"{option} or the" if option else "the"
        fix = (
            f"run in the folder that holds mlflow.db, or name the store with {name} "
            "MLFLOW_TRACKING_URI environment variable"
        )
    raise error(
        f"there is no MLflow tracking store at {uri} ({source}): {path.absolute()} does not "
        f"exist; {fix}"
    )


def _configure(tracking_uri: str | None = None) -> None:
    """Quiet mlflow's logging and point it at the resolved tracking URI.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment; that is
    undone here so the URI resolved for one call cannot leak into the next (or into children).
    """
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"mlflow(\..*)?")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@dataclass
class LoggedModel:
    """Where a trained model went."""

    run_id: str
    run_uri: str
    """``runs:/<run_id>/model``."""
    model_uri: str
    """MLflow's own URI for the logged model."""
    registered_name: str | None = None
    registered_version: str | None = None
    alias_uri: str | None = None
    """``models:/<name>@<alias>`` when an alias was set."""


class RunTracker:
    """One MLflow run: parameters, metrics, artifacts and the model.

    Created by :func:`start_run`; tests read back what was logged through the MLflow client.
    """

    def __init__(self, run) -> None:
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def log_config(self, config: Mapping[str, Any]) -> None:
        """Log the resolved config as ``config.yaml`` and its flattened entries as parameters."""
        mlflow.log_dict(dict(config), "config.yaml")
        flat = flatten(config)
        params = {k: _param_value(v) for k, v in flat.items()}
        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 parameters
            mlflow.log_params(dict(items[i : i + 100]))

    def log_params(self, params: Mapping[str, Any]) -> None:
        mlflow.log_params({k: _param_value(v) for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {_metric_key(k): float(v) for k, v in metrics.items() if np.isfinite(float(v))}
        if clean:
            mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dict(self, content: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.log_dict(dict(content), artifact_file)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifacts(str(directory), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags(dict(tags))

    def log_model(
        self,
        artifact_dir: str | Path,
        *,
        feature_names: list[str],
        context_columns: Sequence[str] = (),
        context_dim: int = 0,
        registered_name: str | None = None,
        alias: str | None = None,
    ) -> LoggedModel:
        """Log an ltr artifact directory as an MLflow pyfunc model with a signature.

        The pyfunc model takes a DataFrame with a ``qid`` column and one column per feature and
        returns one score per row (lists are scored whole, grouped by ``qid``). A model with a
        context vector of ``context_dim`` values also takes ``context_columns``: one column of
        lists of ``context_dim`` floats, or ``context_dim`` float columns. When
        ``registered_name`` is given the model is registered and ``alias`` points at the new
        version.
        """
        from mlflow.models import infer_signature

        example = pd.DataFrame({"qid": ["q1", "q1"]})
        for name in feature_names:
            example[name] = np.zeros(2, dtype=np.float64)
        if (
            context_dim
            and len(context_columns) == 1
            and (context_dim > 1 or context_columns[0] == CONTEXT)
        ):  # one list column (a lone value in a column not named `context` is a float column)
            example[context_columns[0]] = [np.zeros(context_dim), np.zeros(context_dim)]
        elif context_dim:
            for name in context_columns:
                example[name] = np.zeros(2, dtype=np.float64)
        signature = infer_signature(example, pd.DataFrame({"score": np.zeros(2)}))
        info = _log_pyfunc(
            name="model",
            python_model=LtrPyfuncModel(),
            artifacts={PYFUNC_ARTIFACT_KEY: str(artifact_dir)},
            signature=signature,
            pip_requirements=[f"ltr=={__version__}", "torch", "pandas"],
            registered_model_name=registered_name,
        )
        return self._logged(info, "model", registered_name, alias)

    def log_lm(
        self,
        artifact_dir: str | Path,
        *,
        d_model: int,
        registered_name: str | None = None,
        alias: str | None = None,
        cross: bool = False,
    ) -> LoggedModel:
        """Log a language-model directory as an MLflow pyfunc text encoder under ``lm``.

        ``mlflow.pyfunc.load_model(uri).predict(DataFrame(text=[...]))`` returns one unit
        vector of ``d_model`` floats per text (:func:`ltr.lm.encode.encode_texts`); for a
        cross-encoder (``cross``) ``predict(DataFrame(query=[...], text=[...]))`` returns each
        pair's ``score``. ``ltr.lm.artifact.load_lm(uri)`` loads the model itself. With
        ``registered_name`` the model is registered and ``alias`` points at the new version.
        """
        from mlflow.models import infer_signature

        if cross:
            signature = infer_signature(
                pd.DataFrame({"query": ["a"], "text": ["b"]}),
                pd.DataFrame({"score": np.zeros(1, dtype=np.float32)}),
            )
        else:
            signature = infer_signature(
                pd.DataFrame({"text": ["a", "b"]}), np.zeros((2, d_model), dtype=np.float32)
            )
        info = _log_pyfunc(
            name="lm",
            python_model=LtrTextEncoderModel(),
            artifacts={LM_ARTIFACT_KEY: str(artifact_dir)},
            signature=signature,
            pip_requirements=[f"ltr=={__version__}", "torch", "tokenizers", "pandas"],
            registered_model_name=registered_name,
        )
        return self._logged(info, "lm", registered_name, alias)

    def _logged(self, info, name: str, registered_name: str | None, alias: str | None):
        logged = LoggedModel(
            run_id=self.run_id,
            run_uri=f"runs:/{self.run_id}/{name}",
            model_uri=info.model_uri,
            registered_name=registered_name,
        )
        if registered_name:
            version = str(info.registered_model_version)
            logged.registered_version = version
            if alias:
                client = mlflow.MlflowClient()
                client.set_registered_model_alias(registered_name, alias, version)
                logged.alias_uri = f"models:/{registered_name}@{alias}"
        return logged


# What MLflow prints on registering a version; every command that registers one says so itself
# (the models:/ URI and version), so these lines only repeat it.
_REGISTRY_CHATTER = (
    "Successfully registered model ",
    "Registered model ",  # "... already exists. Creating a new version of this model..."
    "Created version ",
)


def _log_pyfunc(**kwargs: Any):
    """``mlflow.pyfunc.log_model(**kwargs)`` without MLflow's advice to log models as code and
    without its registration messages (:data:`_REGISTRY_CHATTER`); anything else it writes to
    stderr is passed on, all of it when the call fails."""
    import io

    captured = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(**kwargs)
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise
    lines = captured.getvalue().splitlines(keepends=True)
    sys.stderr.write("".join(line for line in lines if not line.startswith(_REGISTRY_CHATTER)))
    return info


def check_run(
    run_id: str,
    tracking_uri: str | None = None,
    *,
    doing: str = "log to",
    option: str = "--tracking-uri",
) -> None:
    """Raise a :class:`ConfigError` naming the store unless it holds run ``run_id``
    (``option``: how the command names the store, for the message)."""
    require_store(tracking_uri, option=option)
    _configure(tracking_uri)
    try:
        mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConfigError(
            f"cannot {doing} MLflow run {run_id}: the tracking store "
            f"{resolve_tracking_uri(tracking_uri)} does not have it; {doing} it with the same "
            "tracking URI"
        ) from None


@contextmanager
def start_run(
    *,
    experiment: str,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[RunTracker]:
    """Start (and end) an MLflow run in ``experiment``, creating the experiment if needed.

    With a local SQLite store (the embedded default), a new experiment keeps its artifacts in
    ``mlartifacts/`` beside the database file. With ``run_id`` the existing run is reopened
    (a resumed training run) and goes on logging where it stopped.
    A run that raises is marked FAILED.
    """
    _configure(tracking_uri)
    if run_id is not None:
        check_run(run_id, tracking_uri, doing="resume", option="--tracking.tracking_uri")
        with mlflow.start_run(run_id=run_id, nested=nested) as run:
            yield RunTracker(run)
        return
    uri = resolve_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):  # a local store keeps artifacts beside its database
            location = (Path(uri[len("sqlite:///") :]).parent / DEFAULT_ARTIFACTS).as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, nested=nested, tags=dict(tags or {})
    ) as run:
        yield RunTracker(run)


def start_parent_run(
    tracking: Any, default_name: str, run_type: str, run_id: str | None = None
) -> contextlib.AbstractContextManager[RunTracker]:
    """The parent run of a command that nests training runs under it (``ltr cv``, ``ltr tune``):
    in ``tracking``'s experiment and store (a tracking config section), named
    ``tracking.run_name`` or ``default_name``, tagged ``ltr.run_type = run_type``; ``run_id``
    reopens it instead."""
    return start_run(
        experiment=tracking.experiment,
        run_name=tracking.run_name or default_name,
        tracking_uri=tracking.tracking_uri,
        tags={"ltr.run_type": run_type},
        run_id=run_id,
    )


def mark_failed() -> None:
    """End the active run with status FAILED (a training run that raised)."""
    mlflow.end_run(status="FAILED")


def model_cache_dir() -> Path:
    """Where downloaded registry/run models are kept: ``$LTR_CACHE_DIR/models`` or
    ``~/.cache/ltr/models``."""
    root = os.environ.get("LTR_CACHE_DIR") or Path.home() / ".cache" / "ltr"
    return Path(root) / "models"


def cached_download(path: str | Path) -> Path | None:
    """The :func:`model_cache_dir` entry (one immutable version or run) that ``path`` lies in,
    or None for a path outside the cache (a local artifact, a temporary download)."""
    root = model_cache_dir().resolve()
    path = Path(path).resolve()
    for parent in [path, *path.parents]:
        if parent.parent == root:
            return parent if (parent / ".complete").is_file() else None
    return None


def download_model(uri: str, tracking_uri: str | None = None) -> tuple[Path, dict[str, str]]:
    """Download an MLflow model URI to a local folder; return it with registry facts.

    For ``models:/name@alias`` and ``models:/name/version`` the facts hold ``name``,
    ``version`` and ``run_id`` so that servers and reports can say which version they use.
    Versions and runs are immutable, so each is downloaded once into :func:`model_cache_dir`
    (keyed by tracking URI and version, written under a temporary name and renamed when
    complete); a failed download leaves nothing behind.
    """
    from ltr.artifact import ArtifactError

    if uri.startswith(("models:/", "runs:/")):  # read from the tracking store
        # a model is loaded by its URI alone: only the environment names another store
        require_store(tracking_uri, ArtifactError, option=None)
    _configure(tracking_uri)
    info: dict[str, str] = {}
    immutable: str | None = None
    try:
        if uri.startswith("models:/"):
            info.update(_registry_facts(uri))
            immutable = f"models:/{info['name']}/{info['version']}"
        elif uri.startswith("runs:/"):
            immutable = uri
    except mlflow.exceptions.MlflowException as exc:
        hint = _registry_hint(uri, exc, tracking_uri)
        raise ArtifactError(f"cannot resolve model {uri}: {hint}") from None
    if immutable is not None:
        key = f"{resolve_tracking_uri(tracking_uri)}|{immutable}"
        final = model_cache_dir() / hashlib.sha256(key.encode()).hexdigest()[:32]
        marker = final / ".complete"
        if marker.exists():
            return final / marker.read_text().strip(), info
        final.parent.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    else:
        target = Path(tempfile.mkdtemp(prefix="ltr-model-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
    except Exception as exc:  # MLflow raises several exception types for a missing model
        shutil.rmtree(target, ignore_errors=True)
        raise ArtifactError(f"cannot download model {uri}: {exc}") from None
    if immutable is None:
        return local, info
    relative = local.resolve().relative_to(target.resolve())
    (target / ".complete").write_text(str(relative))
    try:
        target.rename(final)
    except OSError:  # another process finished the same download first: use its copy
        shutil.rmtree(target, ignore_errors=True)
        if not marker.exists():
            raise
    return final / marker.read_text().strip(), info


def _registry_facts(uri: str) -> dict[str, str]:
    rest = uri[len("models:/") :]
    client = mlflow.MlflowClient()
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, _, version = rest.partition("/")
        mv = client.get_model_version(name, version)
    return {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id or ""}


def _registry_hint(uri: str, exc: Exception, tracking_uri: str | None) -> str:
    """MLflow's message for a ``models:/`` URI it could not resolve, with what the registry has
    instead: the model's aliases and versions, or the registered names when the name is wrong."""
    message = str(getattr(exc, "message", exc)).rstrip(". ")
    rest = uri[len("models:/") :]
    name = rest.split("@", 1)[0].partition("/")[0]
    try:
        versions = list_versions(name, tracking_uri)
    except ConfigError as missing:  # no such model: the names the registry has
        return f"{message}; {str(missing).split('; ', 1)[-1]}"
    except Exception:  # the store itself failed: MLflow's message is all there is
        return message
    if "@" in rest:
        aliases = sorted(f"{a} (version {v.version})" for v in versions for a in v.aliases)
        has = ", ".join(aliases) if aliases else "none"
        return (
            f"{message}; {name} has aliases: {has}; point one at a version with "
            f"`ltr registry alias {name} ALIAS VERSION` or `ltr registry promote`"
        )
    shown = ", ".join(v.version for v in sorted(versions, key=lambda v: int(v.version)))
    return f"{message}; {name} has versions {shown}"


def resolve_alias(name: str, alias: str, tracking_uri: str | None = None) -> str:
    """Current version number behind ``models:/name@alias`` (for servers that poll).

    Raises:
        ArtifactError: the store is missing, or has no such model or alias (the message lists
            the model's aliases, or the registered names), as :func:`download_model` says.
    """
    from ltr.artifact import ArtifactError

    require_store(tracking_uri, ArtifactError, option=None)
    _configure(tracking_uri)
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException as exc:
        uri = f"models:/{name}@{alias}"
        raise ArtifactError(
            f"cannot resolve model {uri}: {_registry_hint(uri, exc, tracking_uri)}"
        ) from None


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model."""

    version: str
    aliases: tuple[str, ...]
    run_id: str
    created: float
    """Seconds since the epoch."""


def list_versions(name: str, tracking_uri: str | None = None) -> list[RegisteredVersion]:
    """Every version of the registered model ``name``, newest first.

    Raises:
        ConfigError: the registry has no model of that name (the names it has are listed), or
            the tracking URI names a local store that does not exist (:func:`require_store`).
    """
    require_store(tracking_uri)
    _configure(tracking_uri)
    client = mlflow.MlflowClient()
    found = client.search_model_versions(f"name = '{_quoted(name)}'")
    if not found:
        known = sorted(m.name for m in client.search_registered_models())
        raise ConfigError(
            f"no registered model {name!r} in {resolve_tracking_uri(tracking_uri)}"
            + (f"; it has {', '.join(known)}" if known else "; it has none")
        )
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    versions = [
        RegisteredVersion(
            version=str(v.version),
            aliases=tuple(sorted(aliases.get(str(v.version), []))),
            run_id=v.run_id or "",
            created=(v.creation_timestamp or 0) / 1000.0,
        )
        for v in found
    ]
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def set_alias(name: str, alias: str, version: str, tracking_uri: str | None = None) -> str | None:
    """Point ``models:/name@alias`` at ``version``; returns the version it named before (None
    if it was not set).

    Raises:
        ConfigError: no such model or version.
    """
    return _point(name, alias, str(version), list_versions(name, tracking_uri))


def _point(name: str, alias: str, version: str, versions: list[RegisteredVersion]) -> str | None:
    """Point ``alias`` at ``version`` of ``versions`` (the model's, as listed); returns the
    version it named before."""
    known = [v.version for v in versions]
    if version not in known:
        raise ConfigError(
            f"{name} has no version {version}; it has {', '.join(sorted(known, key=int))}"
        )
    before = next((v.version for v in versions if alias in v.aliases), None)
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return before


def promote(
    name: str, source_alias: str, target_alias: str, tracking_uri: str | None = None
) -> tuple[str | None, str]:
    """Point ``target_alias`` at the version ``source_alias`` names (a candidate becomes the
    champion); returns ``(version target_alias named before or None, version it names now)``.

    Raises:
        ConfigError: no such model, or ``source_alias`` is not set.
    """
    versions = list_versions(name, tracking_uri)
    source = next((v.version for v in versions if source_alias in v.aliases), None)
    if source is None:
        set_aliases = sorted({a for v in versions for a in v.aliases})
        raise ConfigError(
            f"{name} has no alias {source_alias!r}"
            + (f"; its aliases are {', '.join(set_aliases)}" if set_aliases else "; it has none")
        )
    return _point(name, target_alias, source, versions), source


def _quoted(name: str) -> str:
    """``name`` for a single-quoted MLflow search filter."""
    return name.replace("\\", "\\\\").replace("'", "\\'")


def get_run(run_id: str, tracking_uri: str | None = None):
    """The MLflow run object (params, metrics, tags) for ``run_id``."""
    require_store(tracking_uri)
    _configure(tracking_uri)
    return mlflow.MlflowClient().get_run(run_id)


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _metric_key(name: str) -> str:
    # MLflow metric names allow letters, digits and _ - . : / and space; '@' and '=' are not.
    return name.replace("@", "_at_").replace("=", "")


class LtrPyfuncModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: ``DataFrame(qid, <features>) -> DataFrame(score)``.

    Lets ``mlflow.pyfunc.load_model(uri).predict(df)`` score lists with the same loader and
    model as every other ltr entry point.
    """

    def load_context(self, context) -> None:
        from ltr.artifact import load_model

        self.loaded = load_model(context.artifacts[PYFUNC_ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from ltr.inference import score_frame

        return pd.DataFrame({"score": score_frame(self.loaded, model_input)})


class LtrTextEncoderModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper of a language model as a text encoder:
    ``DataFrame(text) -> [N, d_model]`` unit vectors (mean-pooled final hidden states), or of a
    cross-encoder: ``DataFrame(query, text) -> DataFrame(score)``, one score per row's pair."""

    def load_context(self, context) -> None:
        from ltr.lm.artifact import load_lm

        self.loaded = load_lm(context.artifacts[LM_ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from ltr.lm.encode import encode_texts

        texts = [str(t) for t in model_input["text"]]
        if self.loaded.is_cross:
            from ltr.text.featurizer import encoder_similarities

            if "query" not in model_input:
                raise ConfigError(
                    "this is a cross-encoder: give each row a query column beside its text"
                )
            queries = [str(q) for q in model_input["query"]]
            index = np.arange(len(texts), dtype=np.int64)[:, None]  # row i: its own text
            scores = encoder_similarities(self.loaded, queries, texts, index)[:, 0]
            return pd.DataFrame({"score": scores})
        return encode_texts(self.loaded.model, self.loaded.tokenizer, texts)
