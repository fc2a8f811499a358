"""Scoring whole datasets with a model: the offline path shared by evaluation and pipelines."""

from __future__ import annotations

import numpy as np
import torch

from ltr.data.dataset import ListDataset, collate_lists


@torch.inference_mode()
def score_lists(
    model: torch.nn.Module,
    dataset: ListDataset,
    *,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Score every candidate of every list; returns ``[N]`` float32 scores aligned with rows.

    Lists are batched by similar length (less padding) and always scored whole.
    """
    model.eval()
    scores = np.empty(dataset.num_rows, dtype=np.float32)
    order = np.argsort(dataset.list_lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        items = [dataset[int(q)] for q in order[start : start + batch_size]]
        batch = collate_lists(items).to(device)
        # initial ranks = input order, as in training (ignored by models that do not use them)
        out = model(batch.features, batch.mask, batch.initial_rank, batch.context)
        out = out.float().cpu().numpy()  # (B, L)
        for b, item in enumerate(items):
            scores[item.rows] = out[b, : len(item.rows)]
    return scores


def frame_context_columns(manifest) -> list[str]:
    """The columns a feature frame must carry a context model's per-query vector in: those it
    was trained with, else the list column ``context`` (empty for models without a context)."""
    from ltr.data.list_inputs import resolve

    trained = manifest.training.get("context_columns")
    return list(resolve(manifest.model_config, trained_context_columns=trained).context_columns)


def score_frame(loaded, frame) -> np.ndarray:
    """Score a pandas DataFrame with a ``qid`` column and one column per model feature.

    Rows are grouped into lists by ``qid`` (rows of a query need not be contiguous) and each list
    is scored whole; returns ``[rows]`` float32 scores in the frame's row order. A model with a
    context vector also reads it from the frame, from the columns it was trained with
    (:func:`frame_context_columns`): one list column or C numeric columns, the same on every
    row of a query. Models that use initial ranks get each query's rows in frame order.
    """
    import pyarrow as pa

    from ltr.data import list_inputs
    from ltr.errors import DataFormatError

    manifest = loaded.manifest
    names = manifest.feature_names
    context_columns = frame_context_columns(manifest)
    missing = [c for c in ["qid", *names, *context_columns] if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        extra = " (the per-query context vector)" if set(missing) & set(context_columns) else ""
        raise DataFormatError(f"the input lacks column(s) {shown} that the model needs{extra}")
    order, offsets, uniques = _group(frame["qid"].to_numpy())
    features = frame[names].to_numpy(dtype=np.float32)[order]
    context = None
    if context_columns:
        inputs = list_inputs.resolve(
            manifest.model_config,
            rank_from_order=manifest.uses_initial_rank,
            context_columns=context_columns,
            context_option="the model's context column names",
        )
        table = pa.Table.from_pandas(frame[context_columns].iloc[order], preserve_index=False)
        list_inputs.check_columns(inputs, table.schema, "the input")
        _, context = list_inputs.extract(inputs, table, offsets, lambda q: uniques[q])
    return _score_grouped(loaded.model, features, order, offsets, uniques, context)


def score_rows(loaded, features: np.ndarray, lists: np.ndarray) -> np.ndarray:
    """Score rows ``features [N, F]`` grouped into lists by ``lists [N]`` (any ids; a list's
    rows need not be contiguous), each list whole: ``[N]`` float32 scores in row order. For a
    model without a per-query context vector (:func:`score_frame` takes one from a frame)."""
    from ltr.errors import DataFormatError

    why = rows_unscorable(loaded)
    if why is not None:
        raise DataFormatError(why)
    features = np.asarray(features, dtype=np.float32)
    if len(lists) != len(features):
        raise DataFormatError(f"{len(lists)} list ids for {len(features)} feature rows")
    order, offsets, uniques = _group(np.asarray(lists))
    return _score_grouped(loaded.model, features[order], order, offsets, uniques, None)


def rows_unscorable(loaded) -> str | None:
    """Why :func:`score_rows` cannot score ``loaded``'s rows, or None when it can."""
    columns = frame_context_columns(loaded.manifest)
    if columns:
        return (
            f"the model reads a per-query context vector (from {', '.join(columns)}), which "
            "ltr drift does not read: it scores feature rows alone"
        )
    return None


def _group(lists: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row order that puts each list's rows together (stably), the lists' offsets in it,
    and the list ids in that order."""
    uniques, codes = np.unique(lists.astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques))
    return order, np.concatenate([[0], np.cumsum(counts)]), uniques


def _score_grouped(model, features, order, offsets, uniques, context) -> np.ndarray:
    """Score ``features`` (rows in ``order``, lists at ``offsets``); scores in the original
    row order."""
    labels = np.zeros(len(features), dtype=np.float32)
    dataset = ListDataset(
        features, labels, offsets, np.asarray(uniques, dtype=object), context=context
    )
    sorted_scores = score_lists(model, dataset)
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores


MFLOP_LENGTHS = (10, 100, 1000)
"""The list lengths ``ltr info`` gives a model's arithmetic for (:func:`mflop_per_list`)."""


def matmul_mflop(model: torch.nn.Module, manifest, length: int) -> float:
    """Millions of floating-point operations in the matrix products of ``model``'s forward pass
    over one list of ``length`` candidates (PyTorch's ``FlopCounterMode``; a multiply-add counts
    2); ``manifest`` says what inputs it takes. Tree models (``gbdt``) walk their trees with
    gathers and count 0. The model is left in the mode (train/eval) it was in.

    The counter's first use imports ``torch._dynamo`` (about 2 s here), which training has
    loaded already: ``ltr train`` keeps the counts in the manifest (:func:`mflop_per_list`)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(iter(model.parameters()), torch.empty(0)).device
    features = torch.zeros(1, length, manifest.num_features, device=device)
    mask = torch.ones(1, length, dtype=torch.bool, device=device)
    rank = (
        torch.arange(1, length + 1, device=device).unsqueeze(0)
        if manifest.uses_initial_rank
        else None
    )
    context = torch.zeros(1, manifest.context_dim, device=device) if manifest.context_dim else None
    training = model.training
    model.eval()
    # Not under no_grad or inference_mode, whose tensors the counter's module hooks refuse:
    # parameters are frozen for the pass instead, then given back their flags.
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as counter:
            model(features, mask, rank, context)
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(training)
    return counter.get_total_flops() / 1e6


def mflop_per_list(model: torch.nn.Module, manifest) -> dict[str, float]:
    """:func:`matmul_mflop` at each of :data:`MFLOP_LENGTHS`, keyed by the length as text (as
    the manifest keeps it)."""
    return {str(n): matmul_mflop(model, manifest, n) for n in MFLOP_LENGTHS}
