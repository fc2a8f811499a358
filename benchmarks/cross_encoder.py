"""Cross-encoder against bi-encoder on a text collection: one pretrained LM fine-tuned both ways.

One query split (``configs/text/cranfield.yaml``: 60/20/20 of the judged queries, seed 0),
every number NDCG@10 over each query's BM25 top-100 (the reranking convention):

1. ``ltr pretrain`` a masked LM on the documents (``configs/text/bert_cranfield.yaml``);
2. ``ltr finetune`` it with ``configs/text/cranfield.yaml`` twice, everything equal but
   ``architecture``: ``bi`` (query and document encoded apart, cosine of their vectors) and
   ``cross`` (``query [SEP] document`` read as one sequence, a linear head on the pooled states);
3. each encoder alone ranks the validation and test queries' candidates;
4. the cost of a reranking call: the featurizer of ``ltr text-features`` (what ``ltr
   rerank-text`` and the server's ``RerankText`` run) turns the test queries' candidate lists
   into feature rows with the lexical columns alone, with the bi-encoder's column (the
   collection's documents encoded ahead, as ``ltr text-features`` caches them) and with the
   cross-encoder's (nothing to cache: every pair is read afresh). Timed side by side in one
   process, in turns, the median of ``--repeats``.

    python -m benchmarks.cross_encoder          # writes its section of docs/BENCHMARKS.md
    python -m benchmarks.cross_encoder --pretrain-epochs 1 --finetune-epochs 1 --no-write

Cranfield is read from ``../shared/data/cranfield`` (``--collection``); it is not bundled.
``--collection ../shared/data/scifact --split train`` runs SciFact (its own section).
With ``--workdir DIR --resume`` a run that stopped goes on: the pretrained and fine-tuned
encoders found in ``DIR`` are read back instead of trained again (the section says which).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._chain import add_chain_arguments, start_chain
from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.text_rerank import TEXT_CONFIG, finished_lm

ARCHITECTURES = ("bi", "cross")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_chain_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timed turns per featurizer")
    args = parser.parse_args(argv)

    from ltr.text.candidates import TextTask
    from ltr.text.config import load_finetune_config
    from ltr.text.encoder import mean_ndcg
    from ltr.text.finetune import finetune

    work, collection, cpu, times, pre = start_chain(parser, args, "ltr-cross-encoder-")
    tuned = {}
    for arch in ARCHITECTURES:
        folder = work / f"finetune-{arch}"
        tuned[arch] = finished_lm(folder)
        if tuned[arch] is not None:
            times.reused.append(f"fine-tuning {arch}")
            continue
        started = time.perf_counter()
        config = load_finetune_config(
            TEXT_CONFIG,
            {
                "encoder": str(pre.artifact_dir),
                "architecture": arch,
                "data.collection": collection,
                "data.split": args.split,
                "trainer.max_epochs": args.finetune_epochs,
                "tracking.enabled": False,
                **cpu,
                "output_dir": str(folder),
            },
        )
        tuned[arch] = finetune(config, verbose=False)
        times.since(f"fine-tuning {arch}", started)

    config = load_finetune_config(
        TEXT_CONFIG, {"data.collection": collection, "data.split": args.split}
    )
    task = TextTask.load(config.data)
    paths = {arch: tuned[arch].artifact_dir for arch in ARCHITECTURES}
    timing = time_featurizers(task, paths, args.repeats)
    train_ndcg = {arch: training_ndcg(task, paths[arch], config.data) for arch in ARCHITECTURES}
    shuffled = {part: random_order_ndcg(task.lists[part]) for part in ("train", "valid", "test")}

    m = {arch: tuned[arch].metrics for arch in ARCHITECTURES}
    train_bm25 = mean_ndcg(task.lists["train"].bm25, task.lists["train"].labels)
    rows = [
        ["random order (mean ± sd of 200 shuffles)", "—",
         *(f"{mean:.4f} ± {sd:.4f}" for mean, sd in shuffled.values())],
        ["BM25 (first stage)", "—", f"{train_bm25:.4f}", f"{m['bi']['valid/bm25_ndcg@10']:.4f}",
         f"{m['bi']['test/bm25_ndcg@10']:.4f}"],
        ["bi-encoder, pretrained (cosine of mean-pooled vectors)", "—", "—",
         f"{m['bi']['valid/pretrained_ndcg@10']:.4f}", f"{m['bi']['test/pretrained_ndcg@10']:.4f}"],
    ]  # fmt: skip
    for arch in ARCHITECTURES:
        rows.append(
            [
                f"{arch}-encoder, fine-tuned",
                tuned[arch].best_epoch,
                f"{train_ndcg[arch]:.4f}",
                f"{m[arch]['valid/finetuned_ndcg@10']:.4f}",
                f"{m[arch]['test/finetuned_ndcg@10']:.4f}",
            ]
        )
    lists = len(task.lists["test"])
    candidates = task.lists["test"].doc_index.shape[1]
    base = timing["lexical columns alone"]
    cost_rows = [
        [label, f"{value:.2f}", f"{1000 * value / lists:.1f}", f"{value / base:.1f}×"]
        for label, value in timing.items()
    ]
    name = args.collection.resolve().name
    title = name.capitalize() if name != "scifact" else "SciFact"
    split = f", its `{args.split}` queries" if args.split else ""
    body = (
        f"{title}{split} ({len(task.lists['train'])} training, "
        f"{len(task.lists['valid'])} validation, {lists} test queries; BM25 top-"
        f"{candidates} candidates). NDCG@10 over the candidate lists, exp2 gain, lists with no "
        "relevant candidate count 1. Both encoders start from the same masked LM "
        f"(`configs/text/bert_cranfield.yaml`, {pre.num_parameters:,} parameters, "
        f"{args.pretrain_epochs} epochs) and are fine-tuned with `configs/text/cranfield.yaml` "
        f"(λ = 0.5, {args.finetune_epochs} epochs at most, early stopping on validation "
        "NDCG@10), `architecture: bi` or `architecture: cross`; nothing else differs.\n\n"
        + markdown_table(
            ["ranker alone", "best epoch", "train NDCG@10", "valid NDCG@10", "test NDCG@10"], rows
        )
        + "\n\n*train*: the fine-tuning queries' own lists, all their candidates (what the "
        "encoder was trained on; the lists it trained on were 16 of them at a time)."
        + f"\n\nFeature rows for the {lists} test queries' candidate lists ({lists * candidates:,} "
        f"(query, document) pairs) from their texts, by the featurizer `ltr rerank-text` and "
        f"`RerankText` run, median of {args.repeats} turns taken side by side:\n\n"
        + markdown_table(["featurizer", "seconds", "ms per list", "× lexical alone"], cost_rows)
        + "\n\nThe bi-encoder's documents were encoded ahead (the document cache `ltr "
        "text-features` saves with the featurizer), so a call encodes its query only; the "
        "cross-encoder reads every (query, document) pair, and nothing can be cached.\n\n"
        + times.sentence()
    )
    print(body)
    if not args.no_write:
        command = command_line("cross_encoder", argv)
        section = "cross_encoder" if name == "cranfield" else f"cross_encoder_{name}"
        heading = f"Cross-encoder against bi-encoder on {title}"
        write_section(section, heading, command, body)


def training_ndcg(task, model_dir: Path, data) -> float:
    """NDCG@10 of the encoder alone on the training queries' lists (all their candidates),
    their texts cut as ``ltr finetune`` cuts them with the data section ``data``."""
    from ltr.lm.artifact import load_lm
    from ltr.text.encoder import TokenizedTexts, encoder_scores, mean_ndcg

    loaded = load_lm(model_dir)
    block = loaded.model.config.block_size
    texts = TokenizedTexts.build(
        loaded.tokenizer,
        task.collection,
        max_doc_tokens=min(data.max_doc_tokens or block, block),
        max_query_tokens=min(data.max_query_tokens, block),
    )
    lists = task.lists["train"]
    return mean_ndcg(encoder_scores(loaded.model, texts, lists, head=loaded.head), lists.labels)


def random_order_ndcg(lists, draws: int = 200, seed: int = 0) -> tuple[float, float]:
    """Mean and sd over ``draws`` shuffles of NDCG@10 of the lists in a random order."""
    import numpy as np

    from ltr.text.encoder import mean_ndcg

    rng = np.random.default_rng(seed)
    values = [mean_ndcg(rng.random(lists.labels.shape), lists.labels) for _ in range(draws)]
    return float(np.mean(values)), float(np.std(values))


def time_featurizers(task, encoders: dict[str, Path], repeats: int) -> dict[str, float]:
    """Median seconds for each featurizer to turn the test lists into rows, timed in turns."""
    from ltr.text.featurizer import TextFeaturizer

    docs = task.collection.doc_texts
    lexical = TextFeaturizer.fit(docs)
    bi = TextFeaturizer.fit(docs, {"bi": str(encoders["bi"])})
    cross = TextFeaturizer.fit(docs, {"cross": str(encoders["cross"])})
    for featurizer in (lexical, bi, cross):
        featurizer.cache_documents(docs)
    featurizers = {
        "lexical columns alone": lexical,
        "lexical + bi-encoder (documents cached)": bi,
        "lexical + cross-encoder": cross,
    }
    test = task.lists["test"]
    times: dict[str, list[float]] = {label: [] for label in featurizers}
    for _ in range(repeats):
        for label, featurizer in featurizers.items():
            started = time.perf_counter()
            featurizer.features(test.query_texts, docs, test.doc_index)
            times[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) for label, values in times.items()}


if __name__ == "__main__":
    main()
