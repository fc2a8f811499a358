"""``pretrain(config)``: tokenizer, corpus, language model and Lightning Trainer, tracked in MLflow.

Steps: seed everything; load or train the tokenizer; encode the corpus into one token stream and
hold out its end for validation; train with early stopping and best-checkpoint selection on the
validation loss; reload the best weights; measure the held-out loss once more; save the model
directory (model, config, tokenizer); for a causal model write a sample continuation; log it all
to MLflow.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ltr.config import to_dict
from ltr.errors import ConfigError
from ltr.lm.artifact import TOKENIZER, save_lm
from ltr.lm.config import PretrainConfig
from ltr.lm.data import encode_corpus, read_texts, split_stream
from ltr.lm.generate import generate, start_tokens
from ltr.lm.model import TransformerLM
from ltr.lm.module import LMDataModule, LMModule, evaluate_windows
from ltr.lm.tokenizer import TextTokenizer, train_tokenizer
from ltr.train.datamodule import resolve_data_path
from ltr.train.run import (
    RESUME_DIR,
    build_trainer,
    finish_resumable,
    load_best_weights,
    resume_point,
    run_callbacks,
    start_lightning,
)


@dataclass
class PretrainResult:
    """What a pretraining run produced."""

    artifact_dir: Path
    best_epoch: int | None
    epochs: int
    seconds: float
    num_parameters: int
    train_tokens: int
    valid_tokens: int
    scored_tokens: int = 0
    """Held-out tokens the final metrics were measured on (``data.max_valid_windows`` caps it)."""
    valid_metrics: dict[str, float] = field(default_factory=dict)
    sample: str | None = None
    run_id: str | None = None
    registered_version: str | None = None
    alias_uri: str | None = None
    resolved_config: dict[str, Any] = field(default_factory=dict)


def load_tokenizer(config: PretrainConfig, files: list[Path], verbose: bool) -> TextTokenizer:
    """The configured tokenizer file, or one trained on the corpus."""
    if config.data.tokenizer:
        return TextTokenizer.load(resolve_data_path(config.data.tokenizer))
    return train_tokenizer(
        read_texts(files),
        kind=config.data.tokenizer_kind,
        vocab_size=config.data.vocab_size,
        show_progress=verbose,
    )


def pretrain(
    config: PretrainConfig, *, verbose: bool = True, resume: bool = False
) -> PretrainResult:
    """Pretrain a causal or masked language model as described by ``config``.

    With ``resume`` an interrupted run in the same ``output_dir`` goes on from the end of its
    last complete epoch, in the same MLflow run, with the tokenizer it started with.
    """
    started = time.perf_counter()
    start_lightning(config.trainer)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    files = [resolve_data_path(p) for p in config.data.files]
    output = Path(config.output_dir)
    resume_dir = output / RESUME_DIR
    ckpt_path, run_id = resume_point(resume_dir, resume, to_dict(config), verbose=verbose)
    saved = resume_dir / TOKENIZER
    # A resumed run keeps the tokenizer it started with; the processes Lightning starts for
    # the other local ranks of a DDP run (after this one saved its tokenizer) take this one's.
    if saved.exists() and (ckpt_path is not None or int(os.environ.get("LOCAL_RANK", 0)) > 0):
        tokenizer = TextTokenizer.load(saved)
    else:
        tokenizer = load_tokenizer(config, files, verbose)
        resume_dir.mkdir(parents=True, exist_ok=True)
        tmp = resume_dir / f".{TOKENIZER}.{os.getpid()}.tmp"
        tokenizer.save(tmp)
        os.replace(tmp, saved)
    if config.model.vocab_size and config.model.vocab_size != tokenizer.vocab_size:
        raise ConfigError(
            f"model.vocab_size is {config.model.vocab_size} but the tokenizer has "
            f"{tokenizer.vocab_size} tokens; leave model.vocab_size at 0 to take the tokenizer's"
        )
    model_config = replace(config.model, vocab_size=tokenizer.vocab_size)
    stream = encode_corpus(tokenizer, files, separator_id=tokenizer.eos_id, show_progress=verbose)
    block = model_config.block_size
    train_ids, valid_ids = split_stream(stream, config.data.valid_fraction, min_len=block + 1)
    model = TransformerLM(model_config)
    datamodule = LMDataModule(
        config.data,
        tokenizer,
        train_ids,
        valid_ids,
        kind=model_config.kind,
        block_size=block,
        seed=config.trainer.seed,
    )
    resolved = to_dict(config)
    resolved["model"] = to_dict(model_config)
    total_steps = config.data.steps_per_epoch * config.trainer.max_epochs
    module = LMModule(model, config.optim, total_steps=total_steps)
    run = run_callbacks(
        output,
        config.tracking,
        resolved,
        run_id=run_id,
        monitor="val/loss",
        mode="min",
        patience=config.trainer.early_stopping_patience,
    )
    checkpoint, tracking, callbacks = run.checkpoint, run.tracking, run.callbacks
    trainer = build_trainer(config.trainer, callbacks, output, verbose=verbose)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if not trainer.is_global_zero:
            return PretrainResult(output / "model", None, trainer.current_epoch, 0.0, 0, 0, 0)
        best_epoch = load_best_weights(module, checkpoint)
        model.eval()
        valid = evaluate_windows(model, datamodule.val_dataloader())
        scored = int(valid.pop("tokens"))
        result = PretrainResult(
            artifact_dir=output / "model",
            best_epoch=best_epoch,
            epochs=trainer.current_epoch,
            seconds=0.0,
            num_parameters=model.num_parameters(),
            train_tokens=len(train_ids),
            valid_tokens=len(valid_ids),
            scored_tokens=scored,
            valid_metrics={f"val/{k}": v for k, v in valid.items()},
            resolved_config=resolved,
        )
        training = {
            "data": [str(p) for p in files],
            "best_epoch": best_epoch,
            "valid_metrics": result.valid_metrics,
            "train_tokens": result.train_tokens,
            "valid_tokens": result.valid_tokens,
            "scored_tokens": result.scored_tokens,
        }
        if tracking.tracker is not None:
            training["run_id"] = tracking.tracker.run_id
        model.cpu()
        save_lm(model, tokenizer, result.artifact_dir, training)
        if model.is_causal and config.sample_tokens:
            result.sample = sample_text(model, tokenizer, config.sample_tokens, config.trainer.seed)
            (output / "sample.txt").write_text(result.sample)
        if tracking.tracker is not None:
            _log_final(tracking.tracker, result, config, output)
        tracking.close()
        finish_resumable(resume_dir)
        result.seconds = time.perf_counter() - started
        return result
    except BaseException:
        tracking.close(failed=True)
        raise


def sample_text(model: TransformerLM, tokenizer: TextTokenizer, tokens: int, seed: int) -> str:
    """``tokens`` tokens written by a causal model with no prompt (temperature 0.8, top-k 50)."""
    generator = torch.Generator().manual_seed(seed)
    start, skip = start_tokens(tokenizer, [])
    prompt = torch.tensor([start])
    ids = generate(model, prompt, tokens, temperature=0.8, top_k=50, generator=generator)
    return tokenizer.decode(ids[0, skip:].tolist())


def _log_final(tracker, result: PretrainResult, config: PretrainConfig, output: Path) -> None:
    final = dict(result.valid_metrics)
    final["num_parameters"] = float(result.num_parameters)
    tracker.log_metrics({f"final/{k.removeprefix('val/')}": v for k, v in final.items()})
    if result.best_epoch is not None:
        tracker.log_params({"best_epoch": result.best_epoch})
    if result.sample is not None:
        tracker.log_artifact(output / "sample.txt")
    result.run_id = tracker.run_id
    if config.tracking.log_model:
        logged = tracker.log_lm(
            result.artifact_dir,
            d_model=config.model.d_model,
            registered_name=config.tracking.registered_model,
            alias=config.tracking.alias,
        )
        result.registered_version = logged.registered_version
        result.alias_uri = logged.alias_uri
