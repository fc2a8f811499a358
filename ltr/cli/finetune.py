"""``ltr finetune``: fine-tune a pretrained language model into a query-document text encoder."""

from __future__ import annotations

import argparse

from ltr.cli._training import add_training_arguments, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a pretrained LM on a text collection's judgments (L_task + λ·L_pretrain)",
        description="Fine-tune a language model from ltr pretrain into a text encoder for "
        "reranking (architecture: bi, vectors compared by cosine; or architecture: cross, a "
        "cross-encoder that reads query [SEP] document as one sequence): a listwise loss over "
        "each training query's BM25 candidates plus lm_weight "
        "times the model's own language-model loss on the collection's documents. Any config "
        "entry can be overridden with a dotted option, e.g. --lm_weight 0 --trainer.max_epochs 5. "
        "Runs are tracked in MLflow (experiment ltr-text).",
        epilog="example: ltr finetune --config configs/text/cranfield.yaml "
        "--encoder runs/pretrain-cranfield/model",
    )
    add_training_arguments(p, "configs/text/")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from ltr.text.config import load_finetune_config

    config = load_config(args, load_finetune_config)
    if config is None:
        return 0
    from ltr.text.finetune import finetune

    result = finetune(config, verbose=not args.quiet, resume=args.resume)
    if result.seconds == 0.0:  # a non-zero rank of a distributed run
        return 0
    q = result.queries
    print(
        f"\nfine-tuned on {q['train']} training queries ({q['valid']} validation, {q['test']} "
        f"test) in {result.seconds:.0f} s; best epoch {result.best_epoch} of {result.epochs}"
    )
    print("NDCG@10 over BM25's candidates   BM25    pretrained  fine-tuned  (recall)")
    m = result.metrics
    for part in ("valid", "test"):
        if f"{part}/bm25_ndcg@10" in m:
            bm25, tuned = m[f"{part}/bm25_ndcg@10"], m[f"{part}/finetuned_ndcg@10"]
            recall = m[f"{part}/recall"]
            # a new cross-encoder's head is random: it has no pretrained score
            pre = m.get(f"{part}/pretrained_ndcg@10")
            pre_text = "   —  " if pre is None else f"{pre:.4f}"
            print(f"  {part:<31}{bm25:.4f}  {pre_text}      {tuned:.4f}      ({recall:.3f})")
    if result.folds:
        print(
            f"cross-fitted encoders ({len(result.folds)}, in {result.artifact_dir / 'crossfit'}):"
        )
        for fold in result.folds:
            print(
                f"  fold {fold.fold}: without {len(fold.held_out)} training queries, best epoch "
                f"{fold.best_epoch} of {fold.epochs}; NDCG@10 valid "
                f"{fold.metrics['valid/finetuned_ndcg@10']:.4f}, on the queries it left out "
                f"{fold.metrics['held_out/finetuned_ndcg@10']:.4f}"
            )
    print(f"model directory: {result.artifact_dir}")
    if result.run_id:
        print(f"MLflow run:      runs:/{result.run_id}/lm")
    if result.alias_uri:
        print(f"registered:      {result.alias_uri} (version {result.registered_version})")
    return 0
