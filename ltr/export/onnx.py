"""ONNX export with a parity check: ``model.onnx`` is written only if ORT agrees with PyTorch.

The whole :class:`~ltr.models.RankingModel` is exported (feature normaliser included) with
``torch.onnx.export(dynamo=True)`` and dynamic ``batch`` and ``list`` dimensions. Inputs::

    features      [B, L, F] float32
    mask          [B, L]    bool      (True = real candidate)
    initial_rank  [B, L]    int64     (only for models with use_initial_rank)
    context       [B, C]    float32   (only for models with context_dim > 0)

Output ``scores [B, L]`` float32. The graph is first written to a temporary file beside the target;
both engines then score the same padded batches of real lists, and only when
``max |onnx - torch| <= atol`` (default 1e-5) over every real candidate is the file renamed to
``model.onnx``. A graph that disagrees is deleted and :class:`ParityError` is raised.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ltr.artifact import ONNX, LoadedModel
from ltr.data.list_inputs import ListInputs, resolve
from ltr.errors import ConfigError, DataFormatError, LtrError

DEFAULT_ATOL = 1e-5
DEFAULT_MAX_LISTS = 64
PARITY_BATCH = 16


class ExportError(LtrError):
    """The model could not be exported to ONNX."""


class ParityError(ExportError):
    """ONNX Runtime and PyTorch disagree on the parity data; nothing was written."""


@dataclass(frozen=True)
class ParityBatch:
    """One padded batch for the parity check (shapes as the model's inputs)."""

    features: np.ndarray  # (B, L, F) float32
    mask: np.ndarray  # (B, L) bool
    initial_rank: np.ndarray | None = None  # (B, L) int64
    context: np.ndarray | None = None  # (B, C) float32


@dataclass(frozen=True)
class ParityReport:
    """What the parity check compared and found."""

    lists: int
    candidates: int
    max_abs_diff: float
    atol: float
    data: str
    """Where the lists came from (file names, or ``synthetic ...``)."""

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.atol


def input_names(loaded: LoadedModel) -> list[str]:
    """The ONNX graph's input names for this model, in order."""
    manifest = loaded.manifest
    names = ["features", "mask"]
    if manifest.uses_initial_rank:
        names.append("initial_rank")
    if manifest.context_dim:
        names.append("context")
    return names


class _Signature(nn.Module):
    """The model with named inputs, so that unused optional inputs stay out of the graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        features: Tensor,
        mask: Tensor,
        initial_rank: Tensor | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        return self.model(features, mask, initial_rank, context)


def _example_inputs(loaded: LoadedModel, names: Sequence[str]) -> dict[str, Tensor]:
    f = loaded.manifest.num_features
    batch, length = 2, 7  # > 1 so that neither dimension is specialised to a constant
    inputs = {
        "features": torch.randn(batch, length, f),
        "mask": torch.ones(batch, length, dtype=torch.bool),
    }
    if "initial_rank" in names:
        inputs["initial_rank"] = torch.arange(1, length + 1).expand(batch, length).contiguous()
    if "context" in names:
        inputs["context"] = torch.randn(batch, loaded.manifest.context_dim)
    return inputs


def export_graph(loaded: LoadedModel, path: str | Path) -> Path:
    """Export ``loaded.model`` to ONNX at ``path`` (no parity check; see :func:`export_checked`)."""
    from torch.export import Dim

    from ltr.models.gbdt import GBDTScorer

    path = Path(path)
    scorer = getattr(loaded.model, "scorer", None)
    if isinstance(scorer, GBDTScorer) and isinstance(loaded.model.normalizer, nn.Identity):
        from ltr.export.gbdt import export_gbdt_graph

        return export_gbdt_graph(scorer, path)  # ONNX-ML's tree operator, not gathers
    names = input_names(loaded)
    batch, length = Dim("batch", min=1), Dim("list", min=1)
    every = {
        "features": {0: batch, 1: length},
        "mask": {0: batch, 1: length},
        "initial_rank": {0: batch, 1: length},
        "context": {0: batch},
    }
    shapes = {name: every[name] for name in names}
    module = _Signature(loaded.model.eval()).eval()
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (),
                kwargs=_example_inputs(loaded, names),
                dynamo=True,
                input_names=names,
                output_names=["scores"],
                dynamic_shapes=shapes,
                optimize=True,
                verbose=False,
            )
            program.save(str(path), external_data=False)
    except Exception as exc:  # the exporter raises many exception types
        raise ExportError(f"exporting {loaded.source} to ONNX failed: {exc}") from exc
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    return path


def parity_batches_from_lists(
    loaded: LoadedModel,
    lists: Sequence[np.ndarray],
    *,
    contexts: np.ndarray | None = None,
    batch_size: int = PARITY_BATCH,
    seed: int = 0,
) -> list[ParityBatch]:
    """Pad candidate lists (each ``[n, F]``) into batches the way the server does.

    Initial ranks (if the model uses them) are the lists' own order 1..n. A context vector (if
    the model uses one) is the list's row of ``contexts [len(lists), C]``, else drawn from a
    seeded standard normal (LETOR files and synthetic lists carry none).
    """
    rng = np.random.default_rng(seed)
    names = input_names(loaded)
    if contexts is not None and len(contexts) != len(lists):
        raise ValueError(f"{len(contexts)} context vectors for {len(lists)} lists")
    out: list[ParityBatch] = []
    for start in range(0, len(lists), batch_size):
        chunk = lists[start : start + batch_size]
        longest = max(len(x) for x in chunk)
        f = chunk[0].shape[1]
        features = np.zeros((len(chunk), longest, f), dtype=np.float32)  # (B, L, F)
        mask = np.zeros((len(chunk), longest), dtype=bool)  # (B, L)
        for b, x in enumerate(chunk):
            features[b, : len(x)] = x
            mask[b, : len(x)] = True
        rank = None
        if "initial_rank" in names:
            rank = np.where(mask, np.arange(1, longest + 1)[None, :], 0).astype(np.int64)
        context = None
        if "context" in names and contexts is not None:
            context = np.asarray(contexts[start : start + batch_size], dtype=np.float32)  # (B, C)
        elif "context" in names:
            dim = loaded.manifest.context_dim
            context = rng.standard_normal((len(chunk), dim)).astype(np.float32)  # (B, C)
        out.append(ParityBatch(features, mask, rank, context))
    return out


def lists_from_files(
    paths: Sequence[str | Path],
    max_lists: int = DEFAULT_MAX_LISTS,
    *,
    context: ListInputs | None = None,
    num_features: int | None = None,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Up to ``max_lists`` candidate lists ``[n, F]`` from LETOR/Parquet files, spread evenly
    over the data and always including the longest list, with their ``[lists, C]`` context
    vectors when ``context`` names the Parquet columns that hold them (else None).

    Raises:
        DataFormatError: ``num_features`` is given and the data has another feature count.
    """
    from ltr.data.dataset import load_dataset

    data = load_dataset(list(paths), context=context, num_features=num_features)
    if num_features is not None and data.num_features != num_features:
        raise DataFormatError(
            f"the data has {data.num_features} features but the model expects {num_features}"
        )
    count = min(max_lists, len(data))
    picks = set(np.linspace(0, len(data) - 1, count).round().astype(int).tolist())
    picks.add(int(np.argmax(data.list_lengths)))
    order = sorted(picks)
    contexts = None if data.context is None else data.context[order]  # (lists, C)
    return [data[i].features for i in order], contexts


def parity_lists(
    loaded: LoadedModel,
    paths: Sequence[str | Path],
    max_lists: int = DEFAULT_MAX_LISTS,
    *,
    context_columns: Sequence[str] | None = None,
) -> tuple[list[ParityBatch], str]:
    """Parity batches from real files, with the model's real inputs where the files have them.

    A model with a context vector reads it from Parquet files (``context_columns``, default the
    columns it was trained with); LETOR files cannot carry one, so there the vectors are drawn
    at random, and the description says so.

    Returns the batches and a description of the data.
    """
    config = loaded.manifest.model_config
    described = ", ".join(str(p) for p in paths)
    dim = loaded.manifest.context_dim
    letor = any(Path(p).suffix != ".parquet" for p in paths)
    if dim and letor:
        if context_columns:
            raise ConfigError(
                "--context-columns needs Parquet data; LETOR files carry no context vector"
            )
        lists, _ = lists_from_files(paths, max_lists, num_features=loaded.manifest.num_features)
        batches = parity_batches_from_lists(loaded, lists)
        return batches, f"{described} (context vectors drawn at random: LETOR carries none)"
    inputs = None
    if dim:
        inputs = resolve(
            config,
            context_columns=context_columns,
            trained_context_columns=loaded.manifest.training.get("context_columns"),
        )
    elif context_columns:
        raise ConfigError("this model takes no context vector; leave out --context-columns")
    lists, contexts = lists_from_files(
        paths, max_lists, context=inputs, num_features=loaded.manifest.num_features
    )
    return parity_batches_from_lists(loaded, lists, contexts=contexts), described


def recorded_data(loaded: LoadedModel) -> list[Path]:
    """The test (else valid, else train) files recorded in the manifest, if they exist here."""
    data = loaded.manifest.training.get("data") or {}
    for split in ("test", "valid", "train"):
        paths = [Path(p) for p in data.get(split, [])]
        if paths and all(p.exists() for p in paths):
            return paths
    return []


def synthetic_lists(
    loaded: LoadedModel, *, count: int = 16, seed: int = 0, lengths: Sequence[int] = (1, 10, 100)
) -> list[np.ndarray]:
    """Lists whose normalised features are standard normal (the normaliser inverted).

    For a model with a fitted normaliser (mean ``m``, std ``s``, optional signed log1p), raw
    features are ``x = t`` or ``x = sign(t) * expm1(|t|)`` with ``t = m + s * z``, ``z ~ N(0, 1)``.
    Used only when no real data is at hand (export on load without data).
    """
    rng = np.random.default_rng(seed)
    f = loaded.manifest.num_features
    normalizer = getattr(loaded.model, "normalizer", None)
    mean = getattr(normalizer, "mean", None)
    m = mean.detach().double().numpy() if mean is not None else np.zeros(f)
    s = normalizer.std.detach().double().numpy() if mean is not None else np.ones(f)
    log1p = bool(getattr(normalizer, "log1p", False))
    out = []
    for i in range(count):
        n = lengths[i % len(lengths)]
        t = m + s * rng.standard_normal((n, f))
        x = np.sign(t) * np.expm1(np.abs(t)) if log1p else t
        out.append(x.astype(np.float32))
    return out


def check_parity(
    loaded: LoadedModel,
    onnx_path: str | Path,
    batches: Sequence[ParityBatch],
    *,
    atol: float = DEFAULT_ATOL,
    data: str = "",
) -> ParityReport:
    """Score ``batches`` with PyTorch and with ONNX Runtime; report the largest difference.

    Only real candidates (mask True) are compared; a non-finite score on either side counts as
    an infinite difference.
    """
    from ltr.export.onnx_predictor import OnnxPredictor
    from ltr.predictor import TorchPredictor

    engine = OnnxPredictor(loaded, onnx_path=onnx_path, threads=1)
    reference = TorchPredictor(loaded)
    worst, lists, candidates = 0.0, 0, 0
    for b in batches:
        got = engine.predict(b.features, b.mask, b.initial_rank, b.context)  # (B, L)
        want = reference.predict(b.features, b.mask, b.initial_rank, b.context)  # (B, L)
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))[b.mask]
        worst = max(worst, float(np.max(np.where(np.isfinite(diff), diff, np.inf))))
        lists += int(b.mask.shape[0])
        candidates += int(b.mask.sum())
    return ParityReport(lists, candidates, worst, atol, data)


def export_checked(
    loaded: LoadedModel,
    out_dir: str | Path,
    batches: Sequence[ParityBatch],
    *,
    atol: float = DEFAULT_ATOL,
    data: str = "",
) -> ParityReport:
    """Export, check parity on ``batches``, then atomically write ``out_dir/model.onnx``.

    Raises:
        ParityError: the engines disagree by more than ``atol`` (nothing is written).
        ExportError: the exporter failed.
    """
    if not batches:
        raise ExportError("no lists to check ONNX parity on; give a data file with lists")
    import os
    import tempfile

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a name of its own: processes exporting the same model at once never share a file
    handle, name = tempfile.mkstemp(prefix=f".{ONNX}.", suffix=".tmp", dir=out_dir)
    os.close(handle)
    tmp = Path(name)
    try:
        export_graph(loaded, tmp)
        report = check_parity(loaded, tmp, batches, atol=atol, data=data)
        if not report.passed:
            raise ParityError(
                f"ONNX Runtime and PyTorch differ by up to {report.max_abs_diff:.3g} on "
                f"{report.lists} lists of {data or 'the parity data'} (allowed {atol:g}), so "
                f"{ONNX} was not written; serve this model with the torch backend"
            )
        tmp.replace(out_dir / ONNX)
        return report
    finally:
        tmp.unlink(missing_ok=True)


def parity_data_for(
    loaded: LoadedModel, paths: Sequence[str | Path] = (), *, max_lists: int = DEFAULT_MAX_LISTS
) -> tuple[list[ParityBatch], str]:
    """Parity batches from ``paths``, else from the data recorded in the manifest, else synthetic.

    Returns the batches and a description of where they came from.
    """
    files = [Path(p) for p in paths] or recorded_data(loaded)
    if files:
        return parity_lists(loaded, files, max_lists)
    lists = synthetic_lists(loaded)
    return parity_batches_from_lists(loaded, lists), "synthetic lists (no data file found)"


REFUSED = ".onnx-refused"
"""In a cached registry version: why its export failed, so that backend ``auto`` does not try
again on every load (``ltr export`` and the onnx backend do)."""


def cached_folder(loaded: LoadedModel) -> Path | None:
    """The folder of a registry version or run downloaded into the model cache (one per tracking
    URI and version: :func:`ltr.tracking.download_model`), else None."""
    from ltr.artifact import is_mlflow_uri

    if not is_mlflow_uri(loaded.source):
        return None
    from ltr.tracking import cached_download

    return loaded.path if cached_download(loaded.path) is not None else None


def export_into_cache(
    loaded: LoadedModel,
    paths: Sequence[str | Path] = (),
    *,
    atol: float = DEFAULT_ATOL,
    required: bool = True,
) -> Path | None:
    """``model.onnx`` of a registry version or run, exported (with the parity check) into its
    folder in the model cache the first time it is needed, and reused afterwards.

    Parity is checked on ``paths``, else the manifest's recorded data, else synthetic lists. The
    graph is written under a temporary name and renamed, so concurrent processes each find a
    whole graph or none. Returns None for a model outside the cache; when the export fails,
    raises if ``required``, else logs why (remembered in the folder) and returns None.
    """
    if loaded.onnx_path is not None:
        return loaded.onnx_path
    folder = cached_folder(loaded)
    if folder is None:
        return None
    refused = folder / REFUSED
    log = logging.getLogger("ltr.export")
    if not required and refused.is_file():
        return None
    batches, data = parity_data_for(loaded, paths)
    try:
        report = export_checked(loaded, folder, batches, atol=atol, data=data)
    except ExportError as exc:
        if required:
            raise
        _write_atomically(refused, str(exc))
        log.warning("%s runs on PyTorch: %s", loaded.source, exc)
        return None
    refused.unlink(missing_ok=True)
    log.info(
        "%s has no %s: exported into the model cache (%s); ONNX Runtime matches PyTorch to "
        "%.2g on %d lists of %s",
        loaded.source,
        ONNX,
        folder,
        report.max_abs_diff,
        report.lists,
        data,
    )
    return folder / ONNX


def _write_atomically(path: Path, text: str) -> None:
    import os
    import tempfile

    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(handle, "w") as f:
        f.write(text)
    Path(name).replace(path)


def ensure_onnx(
    loaded: LoadedModel, paths: Sequence[str | Path] = (), *, atol: float = DEFAULT_ATOL
) -> Path:
    """The artifact's ``model.onnx``, or one exported now (the server's default for artifacts
    without a graph, e.g. a version just registered by training).

    Export on load checks parity like ``ltr export`` does, on ``paths``, else the manifest's
    recorded data, else synthetic lists. A registry version or run goes into its folder in the
    model cache (:func:`export_into_cache`), where later loads find it; a local artifact folder
    is never written: its graph goes to a fresh temporary folder.
    """
    import tempfile

    cached = export_into_cache(loaded, paths, atol=atol)
    if cached is not None:
        return cached
    batches, data = parity_data_for(loaded, paths)
    out = Path(tempfile.mkdtemp(prefix="ltr-onnx-"))
    try:
        report = export_checked(loaded, out, batches, atol=atol, data=data)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    logging.getLogger("ltr.export").info(
        "%s has no %s: exported on load; ONNX Runtime matches PyTorch to %.2g on %d lists of %s",
        loaded.source,
        ONNX,
        report.max_abs_diff,
        report.lists,
        data,
    )
    return out / ONNX
