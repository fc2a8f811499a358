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


def score_frame(loaded, frame) -> np.ndarray:
    """Score a pandas DataFrame with a ``qid`` column and one column per model feature.

    Rows are grouped into lists by ``qid`` (rows of a query need not be contiguous) and each list
    is scored whole; returns ``[rows]`` float32 scores in the frame's row order.
    """
    from ltr.errors import DataFormatError

    if int(loaded.manifest.model_config.get("context_dim") or 0):
        raise DataFormatError(
            "this model needs a context vector per query, which a feature frame cannot carry; "
            "score it with `ltr score` (context columns) or through the gRPC server"
        )
    names = loaded.manifest.feature_names
    missing = [c for c in ["qid", *names] if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataFormatError(f"the input lacks column(s) {shown} that the model needs")
    codes, uniques = _factorize(frame["qid"].to_numpy())
    order = np.argsort(codes, kind="stable")
    features = frame[names].to_numpy(dtype=np.float32)[order]
    labels = np.zeros(len(frame), dtype=np.float32)
    counts = np.bincount(codes, minlength=len(uniques))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    dataset = ListDataset(features, labels, offsets, np.asarray(uniques, dtype=object))
    sorted_scores = score_lists(loaded.model, dataset)
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64), uniques
