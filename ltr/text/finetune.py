"""``finetune(config)``: a pretrained language model becomes a query-document text encoder.

The encoder maps a text to the unit mean of its final hidden states (as
:func:`ltr.lm.encode.encode_texts`); a document's score for a query is their cosine similarity
divided by a temperature. Training minimises ``L = L_task + λ·L_pretrain``:

* ``L_task``: a listwise loss of :mod:`ltr.losses` (softmax cross-entropy by default) over lists
  drawn from each training query's BM25 candidates, with the collection's graded judgments;
* ``L_pretrain``: the model's own language-model loss (masked or next-token) on windows of the
  collection's documents, which keeps the encoder a language model of this text while the task
  loss, from a few hundred judged queries, pulls it towards relevance.

With ``architecture: cross`` the model is a cross-encoder instead (:mod:`ltr.text.cross`): it
reads each (query, document) pair as one sequence and a linear head, trained with it, scores
the pair; the head is saved with the model.

Validation after every epoch ranks each validation query's BM25 candidates by the encoder alone
(NDCG@10); the best epoch's weights are saved as a language-model directory (the format of
``ltr pretrain``), logged to MLflow and registered, so that ``ltr text-features --encoder`` and
``load_lm`` take it like any pretrained model.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MeanMetric

from ltr.artifact import replace_folder
from ltr.config import to_dict
from ltr.errors import ConfigError
from ltr.lm.artifact import LM_MANIFEST, LoadedLM, load_lm, save_lm
from ltr.lm.data import CausalWindows, MaskedWindows, derive_seed
from ltr.lm.masking import MaskedCollator
from ltr.lm.model import TransformerLM, token_cross_entropy
from ltr.lm.tokenizer import TextTokenizer
from ltr.losses import build_loss
from ltr.metrics import ndcg
from ltr.text.candidates import CandidateLists, TextTask
from ltr.text.config import FinetuneConfig, TextDataConfig, check_finetune_config
from ltr.text.cross import new_head, pair_row, pair_scores
from ltr.text.encoder import NDCG_K, TokenizedTexts, encode, encoder_scores, mean_ndcg
from ltr.train.module import (
    TrainingDivergedError,
    adamw_with_schedule,
    log_reduced,
    stepping_batches,
)
from ltr.train.run import (
    RESUME_CHECKPOINT,
    RESUME_DIR,
    build_trainer,
    finish_resumable,
    load_best_weights,
    resume_point,
    run_callbacks,
    start_lightning,
)


# ------------------------------------------------------------------------------- data
class TrainingLists(Dataset):
    """One item per training query: ``list_size`` of its candidates, its relevant ones first.

    A query's list holds its relevant candidates (at most ``list_size - 1``, chosen at random
    when there are more) and, to fill the list, other candidates drawn at random; item ``i`` of
    epoch ``e`` depends only on ``(seed, e, i)``. Queries with no relevant candidate teach the
    listwise loss nothing and are left out.
    """

    def __init__(self, lists: CandidateLists, list_size: int, seed: int = 0):
        self.lists = lists
        self.rows = lists.with_positive()
        if len(self.rows) == 0:
            raise ConfigError(
                "no training query has a relevant document among its BM25 candidates; "
                "raise data.candidates or check the judgments"
            )
        self.list_size = min(list_size, lists.doc_index.shape[1])
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        row = int(self.rows[index])
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, index))
        labels = self.lists.labels[row]
        relevant = np.flatnonzero(labels > 0)
        keep = rng.permutation(relevant)[: self.list_size - 1]
        rest = np.setdiff1d(np.arange(len(labels)), keep)
        # others first; relevant candidates beyond the cap only when too few others are left
        fill = np.concatenate(
            [rng.permutation(rest[labels[rest] <= 0]), rng.permutation(rest[labels[rest] > 0])]
        )
        slots = np.concatenate([keep, fill[: self.list_size - len(keep)]])
        return row, self.lists.doc_index[row, slots], labels[slots]


@dataclass
class ListBatchCollator:
    """Pads a batch of ``(query row, documents, labels)`` items into encoder inputs: queries and
    documents apart (a bi-encoder), or with ``cross`` each (query, document) pair as one row
    ``query [SEP] document`` of at most ``block_size`` tokens (a cross-encoder)."""

    texts: TokenizedTexts
    lists: CandidateLists
    cross: bool = False
    block_size: int = 0

    def __call__(self, batch: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> dict[str, Tensor]:
        queries = [self.texts.queries[self.lists.query_ids[row]] for row, _, _ in batch]
        labels = torch.from_numpy(np.stack([labels for _, _, labels in batch])).float()
        if self.cross:
            pairs = [
                pair_row(query, self.texts.docs[i], self.texts.sep_id, self.block_size)
                for query, (_, index, _) in zip(queries, batch, strict=True)
                for i in index
            ]
            pair_ids, pair_mask = self.texts.pad(pairs)
            return {
                "pairs": pair_ids,  # (B * L, T)
                "pair_mask": pair_mask,  # (B * L, T)
                "labels": labels,  # (B, L)
            }
        docs = [self.texts.docs[i] for _, index, _ in batch for i in index]
        query_ids, query_mask = self.texts.pad(queries)
        doc_ids, doc_mask = self.texts.pad(docs)
        return {
            "query": query_ids,  # (B, Tq)
            "query_mask": query_mask,  # (B, Tq)
            "docs": doc_ids,  # (B * L, Td)
            "doc_mask": doc_mask,  # (B * L, Td)
            "labels": labels,  # (B, L)
        }


class ValidationLists(Dataset):
    """One item per query: all its candidates, in BM25 order."""

    def __init__(self, lists: CandidateLists):
        self.lists = lists

    def __len__(self) -> int:
        return len(self.lists)

    def __getitem__(self, row: int) -> tuple[int, np.ndarray, np.ndarray]:
        return row, self.lists.doc_index[row], self.lists.labels[row]


class FinetuneDataModule(L.LightningDataModule):
    """Training lists (and, with ``lm_weight`` > 0, language-model windows of the collection's
    text, as many batches as there are list batches) and validation lists."""

    def __init__(
        self,
        config: TextDataConfig,
        texts: TokenizedTexts,
        tokenizer: TextTokenizer,
        train: CandidateLists,
        valid: CandidateLists,
        *,
        kind: str,
        block_size: int,
        with_lm: bool,
        seed: int,
        cross: bool = False,
    ):
        super().__init__()
        self.config = config
        self.train_set = TrainingLists(train, config.list_size, seed=seed)
        self.train_collate = ListBatchCollator(texts, train, cross, block_size)
        self.valid_set = ValidationLists(valid)
        self.valid_collate = ListBatchCollator(texts, valid, cross, block_size)
        self.lm_set: CausalWindows | MaskedWindows | None = None
        self.lm_collate = None
        if with_lm:
            steps = math.ceil(len(self.train_set) / config.batch_size)
            stream = texts.stream(tokenizer.eos_id)
            n = steps * config.lm_batch_size
            if kind == "causal":
                self.lm_set = CausalWindows(stream, block_size, num_samples=n, seed=seed)
            else:
                self.lm_set = MaskedWindows(stream, block_size, num_samples=n, seed=seed)
                self.lm_collate = MaskedCollator.from_tokenizer(
                    tokenizer, mask_prob=config.mask_prob, seed=seed
                )

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)
        if self.lm_set is not None:
            self.lm_set.set_epoch(epoch)
        if self.lm_collate is not None:
            self.lm_collate.set_epoch(epoch)

    def train_dataloader(self) -> dict[str, DataLoader]:
        loaders = {
            "task": DataLoader(
                self.train_set,
                batch_size=self.config.batch_size,
                shuffle=False,
                collate_fn=self.train_collate,
            )
        }
        if self.lm_set is not None:
            loaders["lm"] = DataLoader(
                self.lm_set, batch_size=self.config.lm_batch_size, collate_fn=self.lm_collate
            )
        return loaders

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.valid_set, batch_size=2, collate_fn=self.valid_collate)


# ------------------------------------------------------------------------------- model
def list_scores(
    model: TransformerLM,
    batch: dict[str, Tensor],
    temperature: float,
    head: torch.nn.Module | None = None,
) -> Tensor:
    """``[B, L]`` cosine similarity of each query with its listed documents / temperature, or
    with a cross-encoder's ``head`` the score of each (query, document) pair read together."""
    if head is not None:
        b, length = batch["labels"].shape
        return pair_scores(model, head, batch["pairs"], batch["pair_mask"]).view(b, length)
    queries = encode(model, batch["query"], batch["query_mask"])  # (B, d)
    docs = encode(model, batch["docs"], batch["doc_mask"])  # (B * L, d)
    b, length = batch["labels"].shape
    docs = docs.view(b, length, -1)  # (B, L, d)
    return torch.einsum("bd,bld->bl", queries, docs) / temperature


class FinetuneModule(L.LightningModule):
    """``L = L_task + lm_weight · L_pretrain``; validation NDCG@10 of the encoder alone.

    ``head``: a cross-encoder's score head, trained with the model (None: a bi-encoder).
    Logged per epoch: ``train/loss``, ``train/task_loss``, ``train/lm_loss`` (when used),
    ``train/lr`` and ``val/ndcg@10``."""

    def __init__(
        self,
        model: TransformerLM,
        config: FinetuneConfig,
        total_steps: int | None,
        head: torch.nn.Linear | None = None,
    ):
        super().__init__()
        self.model = model
        self.head = head
        self.config = config
        self.loss_fn = build_loss(config.loss)
        self.total_steps = total_steps
        self.train_losses = torch.nn.ModuleDict(
            {name: MeanMetric() for name in ("loss", "task_loss", "lm_loss")}
        )
        self.val_ndcg = MeanMetric()
        self.epoch_log: dict[str, float] = {}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        task_batch = batch["task"]
        scores = list_scores(self.model, task_batch, self.config.temperature, self.head)  # (B, L)
        labels = task_batch["labels"]
        mask = torch.ones_like(labels, dtype=torch.bool)
        task = self.loss_fn(scores, labels, mask=mask)
        loss = task
        self.train_losses["task_loss"].update(task.detach())
        if batch.get("lm") is not None:
            inputs, targets = batch["lm"]
            lm = token_cross_entropy(self.model(inputs), targets)
            loss = task + self.config.lm_weight * lm
            self.train_losses["lm_loss"].update(lm.detach())
        self.train_losses["loss"].update(loss.detach())
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        scores = list_scores(self.model, batch, 1.0, self.head)
        labels = batch["labels"]
        mask = torch.ones_like(labels, dtype=torch.bool)
        values = ndcg(scores, labels, mask=mask, k=NDCG_K, reduction="none")
        self.val_ndcg.update(values)

    def on_validation_epoch_end(self) -> None:
        log = {f"val/ndcg@{NDCG_K}": float(self.val_ndcg.compute())}
        self.val_ndcg.reset()
        for name, metric in self.train_losses.items():
            if metric.update_count:
                log[f"train/{name}"] = float(metric.compute())
                metric.reset()
        if "train/loss" in log:
            if not math.isfinite(log["train/loss"]):
                raise TrainingDivergedError(
                    f"training diverged: the training loss of epoch {self.current_epoch} is "
                    f"{log['train/loss']}; lower optim.lr or raise temperature"
                )
            log["train/lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        log_reduced(self, log, prog_bar=f"val/ndcg@{NDCG_K}")
        self.epoch_log = log

    def configure_optimizers(self):
        return adamw_with_schedule(
            self, self.config.optim, stepping_batches(self, self.total_steps)
        )


# ------------------------------------------------------------------------------- the run
CROSSFIT_DIR = "crossfit"
"""Where cross-fitted fold encoders live: ``<output_dir>/crossfit/fold<k>/`` while they train
(checkpoints, resume state, ``model/``), ``<model directory>/crossfit/fold<k>/`` once done."""


def crossfit_assignment(query_ids: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """Deal ``query_ids`` into ``folds`` held-out parts at random (seeded by ``seed``).

    Every id lands in exactly one part, part sizes differ by at most one, and each part keeps
    the ids' order. Encoder ``k`` of a cross-fitted run is trained without part ``k``.

    Raises:
        ConfigError: fewer than two folds, or more folds than ids.
    """
    ids = list(query_ids)
    if folds < 2:
        raise ConfigError(f"cross-fitting needs at least 2 folds, got {folds}")
    if folds > len(ids):
        raise ConfigError(
            f"crossfit_folds is {folds} but there are only {len(ids)} training queries"
        )
    order = np.random.default_rng([seed, 0xC0FF]).permutation(len(ids))
    return [[ids[i] for i in sorted(order[k::folds])] for k in range(folds)]


@dataclass
class FoldResult:
    """One cross-fitted encoder: the training queries it never saw and how it did."""

    fold: int
    held_out: list[str]
    best_epoch: int | None
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    """``valid/finetuned_ndcg@10`` (and ``held_out/finetuned_ndcg@10``: its held-out training
    queries, which it ranks as it would new ones)."""


@dataclass
class FinetuneResult:
    """What a fine-tuning run produced; metrics are NDCG@10 over BM25's candidate lists."""

    artifact_dir: Path
    best_epoch: int | None
    epochs: int
    seconds: float
    queries: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    """``{valid,test}/{bm25,pretrained,finetuned}_ndcg@10`` and ``{valid,test}/recall``."""
    run_id: str | None = None
    registered_version: str | None = None
    alias_uri: str | None = None
    folds: list[FoldResult] = field(default_factory=list)
    """The cross-fitted encoders (``crossfit_folds``), empty when there are none."""


@dataclass
class _Fit:
    """One fine-tuning run: its trainer, best epoch and (open) MLflow tracking."""

    trainer: L.Trainer
    best_epoch: int | None
    tracking: Any


def _fit(
    config: FinetuneConfig,
    model: TransformerLM,
    tokenizer: TextTokenizer,
    texts: TokenizedTexts,
    train: CandidateLists,
    valid: CandidateLists,
    *,
    head: torch.nn.Linear | None,
    resume: bool,
    verbose: bool,
) -> _Fit:
    """Fine-tune ``model`` (and a cross-encoder's ``head``) in place on ``train`` (early
    stopping on ``valid``) into ``config.output_dir``, resuming from its resume checkpoint when
    ``resume``; on return the best epoch's weights are loaded (rank zero) and the MLflow run is
    still open."""
    output = Path(config.output_dir)
    ckpt_path, run_id = resume_point(output / RESUME_DIR, resume, to_dict(config), verbose=verbose)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    datamodule = FinetuneDataModule(
        config.data,
        texts,
        tokenizer,
        train,
        valid,
        kind=model.config.kind,
        block_size=model.config.block_size,
        with_lm=config.lm_weight > 0,
        seed=config.trainer.seed,
        cross=head is not None,
    )
    steps = math.ceil(len(datamodule.train_set) / config.data.batch_size)
    module = FinetuneModule(model, config, steps * config.trainer.max_epochs, head)
    run = run_callbacks(
        output,
        config.tracking,
        to_dict(config),
        run_id=run_id,
        monitor=f"val/ndcg@{NDCG_K}",
        mode="max",
        patience=config.trainer.early_stopping_patience,
    )
    trainer = build_trainer(config.trainer, run.callbacks, output, verbose=verbose)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        best_epoch = load_best_weights(module, run.checkpoint) if trainer.is_global_zero else None
    except BaseException:
        run.tracking.close(failed=True)
        raise
    return _Fit(trainer, best_epoch, run.tracking)


def _has_resume_point(output: Path) -> bool:
    return (output / RESUME_DIR / RESUME_CHECKPOINT).exists()


def _crossfit(
    config: FinetuneConfig,
    task: TextTask,
    texts: TokenizedTexts,
    pretrained: TransformerLM,
    tokenizer: TextTokenizer,
    *,
    head: torch.nn.Linear | None,
    resume: bool,
    verbose: bool,
) -> list[FoldResult]:
    """Train (or, resuming, read back) the ``config.crossfit_folds`` fold encoders into
    ``<output_dir>/crossfit/fold<k>/model``. Fold runs are not tracked in MLflow: their results
    are logged with the run of the encoder trained on all the training queries."""
    work = Path(config.output_dir) / CROSSFIT_DIR
    train, valid = task.lists["train"], task.lists["valid"]
    parts = crossfit_assignment(train.query_ids, config.crossfit_folds, config.data.split_seed)
    results = []
    for k, held_out in enumerate(parts):
        output = work / f"fold{k}"
        done = output / "model" / LM_MANIFEST
        if resume and done.exists() and not _has_resume_point(output):
            facts = load_lm(output / "model").training
            if facts.get("held_out") == held_out:
                results.append(
                    FoldResult(k, held_out, facts["best_epoch"], facts["epochs"], facts["metrics"])
                )
                continue
        if verbose:
            print(
                f"cross-fitting: encoder {k + 1} of {len(parts)}, without {len(held_out)} of "
                f"the {len(train)} training queries",
                flush=True,
            )
        out_set = set(held_out)
        keep = [i for i, q in enumerate(train.query_ids) if q not in out_set]
        fold_config = replace(
            config,
            output_dir=str(output),
            tracking=replace(config.tracking, enabled=False),
        )
        model = copy.deepcopy(pretrained).train()
        fold_head = None if head is None else copy.deepcopy(head).train()
        fit = _fit(
            fold_config,
            model,
            tokenizer,
            texts,
            train.take(keep),
            valid,
            head=fold_head,
            resume=resume and _has_resume_point(output),
            verbose=verbose,
        )
        if not fit.trainer.is_global_zero:
            continue
        model.cpu().eval()
        if fold_head is not None:
            fold_head.cpu().eval()
        held = train.take([i for i, q in enumerate(train.query_ids) if q in out_set])
        metrics = {
            f"valid/finetuned_ndcg@{NDCG_K}": mean_ndcg(
                encoder_scores(model, texts, valid, head=fold_head), valid.labels
            ),
            f"held_out/finetuned_ndcg@{NDCG_K}": mean_ndcg(
                encoder_scores(model, texts, held, head=fold_head), held.labels
            ),
        }
        result = FoldResult(k, held_out, fit.best_epoch, fit.trainer.current_epoch, metrics)
        save_lm(
            model,
            tokenizer,
            output / "model",
            {
                "finetuned_from": str(config.encoder),
                "crossfit_fold": k,
                "held_out": held_out,
                "best_epoch": result.best_epoch,
                "epochs": result.epochs,
                "metrics": metrics,
            },
            head=fold_head,
        )
        fit.tracking.close()
        finish_resumable(output / RESUME_DIR)
        results.append(result)
    return results


def finetune(
    config: FinetuneConfig, *, verbose: bool = True, resume: bool = False
) -> FinetuneResult:
    """Fine-tune ``config.encoder`` on ``config.data.collection`` (see the module docstring).

    With ``config.crossfit_folds`` = K the K fold encoders are trained first, then the encoder
    on all the training queries, which is the same encoder a run without cross-fitting gives;
    the fold encoders are saved inside its model directory. ``resume`` goes on from where an
    interrupted run stopped: finished fold encoders are read back, not trained again.
    """
    check_finetune_config(config)
    started = time.perf_counter()
    start_lightning(config.trainer)
    output = Path(config.output_dir)
    if config.crossfit_folds:
        if resume and not (output / CROSSFIT_DIR).is_dir() and not _has_resume_point(output):
            resume_point(output / RESUME_DIR, True)  # raises: nothing to resume
        if not resume:
            shutil.rmtree(output / CROSSFIT_DIR, ignore_errors=True)
    loaded = load_lm(config.encoder)
    model, tokenizer = loaded.model.train(), loaded.tokenizer  # load_lm gives it in eval mode
    head = _starting_head(config, loaded)
    block = model.config.block_size
    task = TextTask.load(config.data)
    if "train" not in task.lists or "valid" not in task.lists:
        raise ConfigError("data.query_fractions leaves no training or no validation query")
    texts = TokenizedTexts.build(
        tokenizer,
        task.collection,
        max_doc_tokens=min(config.data.max_doc_tokens or block, block),
        max_query_tokens=min(config.data.max_query_tokens, block),
    )
    pretrained = {  # a new cross-encoder's head is random: its pretrained score means nothing
        f"{part}/pretrained_ndcg@{NDCG_K}": mean_ndcg(
            encoder_scores(model, texts, lists, head=loaded.head), lists.labels
        )
        for part, lists in task.lists.items()
        if part != "train" and (head is None or loaded.head is not None)
    }
    folds: list[FoldResult] = []
    if config.crossfit_folds:
        folds = _crossfit(
            config, task, texts, model, tokenizer, head=head, resume=resume, verbose=verbose
        )
    if folds and verbose:
        print(f"fine-tuning on all {len(task.lists['train'])} training queries", flush=True)
    main_resume = resume and (not config.crossfit_folds or _has_resume_point(output))
    fit = _fit(
        config,
        model,
        tokenizer,
        texts,
        task.lists["train"],
        task.lists["valid"],
        head=head,
        resume=main_resume,
        verbose=verbose,
    )
    tracking = fit.tracking
    try:
        if not fit.trainer.is_global_zero:
            return FinetuneResult(output / "model", None, fit.trainer.current_epoch, 0.0)
        best_epoch = fit.best_epoch
        model.cpu().eval()
        if head is not None:
            head.cpu().eval()
        metrics = dict(pretrained)
        for part, lists in task.lists.items():
            if part == "train":
                continue
            metrics[f"{part}/bm25_ndcg@{NDCG_K}"] = mean_ndcg(lists.bm25, lists.labels)
            metrics[f"{part}/finetuned_ndcg@{NDCG_K}"] = mean_ndcg(
                encoder_scores(model, texts, lists, head=head), lists.labels
            )
            metrics[f"{part}/recall"] = lists.recall()
        result = FinetuneResult(
            artifact_dir=output / "model",
            best_epoch=best_epoch,
            epochs=fit.trainer.current_epoch,
            seconds=0.0,
            queries={part: len(ids) for part, ids in task.split.parts().items()},
            metrics=metrics,
            folds=folds,
        )
        training = {
            "finetuned_from": str(config.encoder),
            "architecture": config.architecture,
            "collection": str(config.data.collection),
            "split": {"fractions": config.data.query_fractions, "seed": config.data.split_seed},
            "data_split": config.data.split,
            "train_queries": list(task.split.train),
            "loss": config.loss,
            "lm_weight": config.lm_weight,
            "best_epoch": best_epoch,
            "metrics": metrics,
        }
        if folds:
            training["crossfit"] = _install_folds(output, result.artifact_dir, folds)
        if tracking.tracker is not None:
            training["run_id"] = tracking.tracker.run_id
        save_lm(model, tokenizer, result.artifact_dir, training, head=head)
        if tracking.tracker is not None:
            _log_final(tracking.tracker, result, config, model.config.d_model)
        tracking.close()
        finish_resumable(output / RESUME_DIR)
        result.seconds = time.perf_counter() - started
        return result
    except BaseException:
        tracking.close(failed=True)
        raise


def _starting_head(config: FinetuneConfig, loaded: LoadedLM) -> torch.nn.Linear | None:
    """The score head a cross-encoder run starts from: the encoder's own when it is one
    already, else a new one (seeded by ``trainer.seed``); None for a bi-encoder run.

    Raises:
        ConfigError: a bi-encoder run was given a cross-encoder.
    """
    if config.architecture == "bi":
        if loaded.head is not None:
            raise ConfigError(
                f"{config.encoder} is a cross-encoder (it scores a query and a document read "
                "together); set architecture: cross to fine-tune it further"
            )
        return None
    if loaded.head is not None:
        return loaded.head.train()
    return new_head(loaded.model.config.d_model, config.trainer.seed).train()


def _install_folds(output: Path, artifact_dir: Path, folds: list[FoldResult]) -> dict[str, Any]:
    """Copy the fold encoders into the model directory (``crossfit/fold<k>``, replacing any
    there) and return what its manifest records of them."""
    target = artifact_dir / CROSSFIT_DIR
    tmp = artifact_dir / f".{CROSSFIT_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for fold in folds:
        shutil.copytree(
            output / CROSSFIT_DIR / f"fold{fold.fold}" / "model", tmp / f"fold{fold.fold}"
        )
    replace_folder(tmp, target)
    return {
        "folds": len(folds),
        "directory": CROSSFIT_DIR,
        "held_out": [fold.held_out for fold in folds],
        "best_epochs": [fold.best_epoch for fold in folds],
        "metrics": [fold.metrics for fold in folds],
    }


def _log_final(tracker, result: FinetuneResult, config: FinetuneConfig, d_model: int) -> None:
    final = {f"final/{k}": v for k, v in result.metrics.items()}
    for fold in result.folds:
        final.update({f"crossfit/fold{fold.fold}/{k}": v for k, v in fold.metrics.items()})
    tracker.log_metrics(final)
    if result.best_epoch is not None:
        tracker.log_params({"best_epoch": result.best_epoch})
    result.run_id = tracker.run_id
    if config.tracking.log_model:
        logged = tracker.log_lm(
            result.artifact_dir,
            d_model=d_model,
            registered_name=config.tracking.registered_model,
            alias=config.tracking.alias,
            cross=config.architecture == "cross",
        )
        result.registered_version = logged.registered_version
        result.alias_uri = logged.alias_uri
