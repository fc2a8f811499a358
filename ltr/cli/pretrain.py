"""``ltr pretrain``: pretrain a GPT-style or BERT-style language model on plain text."""

from __future__ import annotations

import argparse

from ltr.cli._training import add_training_arguments, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain a causal (GPT) or masked (BERT) language model on text, tracked in MLflow",
        description="Pretrain a language model on the shared attention blocks. Any config entry "
        "can be overridden with a dotted option, e.g. --model.kind masked --model.num_layers 2 "
        "--trainer.max_epochs 5. Runs are tracked in MLflow (experiment ltr-lm).",
        epilog="example: ltr pretrain --config configs/lm/gpt_shakespeare.yaml",
    )
    add_training_arguments(p, "configs/lm/")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from ltr.lm.config import load_pretrain_config

    config = load_config(args, load_pretrain_config)
    if config is None:
        return 0
    from ltr.lm.pretrain import pretrain

    result = pretrain(config, verbose=not args.quiet, resume=args.resume)
    if result.seconds == 0.0:  # a non-zero rank of a distributed run
        return 0
    m = result.valid_metrics
    print(
        f"\npretrained a {config.model.kind} LM of {result.num_parameters:,} parameters on "
        f"{result.train_tokens:,} tokens in {result.seconds:.0f} s; best epoch "
        f"{result.best_epoch} of {result.epochs}"
    )
    print(
        f"held-out ({result.scored_tokens:,} of {result.valid_tokens:,} tokens): loss per token "
        f"{m['val/loss']:.4f}, perplexity {m['val/ppl']:.2f}, accuracy {m['val/accuracy']:.4f}"
    )
    if result.sample is not None:
        print(f"\nsample:\n{result.sample}\n")
    print(f"model directory: {result.artifact_dir}")
    if result.run_id:
        print(f"MLflow run:      runs:/{result.run_id}/lm")
    if result.alias_uri:
        print(f"registered:      {result.alias_uri} (version {result.registered_version})")
    return 0
