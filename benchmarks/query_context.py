"""The query's encoder vector as SetRank's context input, against the same features without it.

One query split (``configs/text/cranfield.yaml``: 60/20/20 of the judged queries, seed 0),
every number NDCG@10 over each query's BM25 top-100 (the reranking convention):

1. ``ltr pretrain`` a masked LM on the documents (``configs/text/bert_cranfield.yaml``);
2. ``ltr finetune`` it on the training queries (``ft``, λ = 0.5, cross-fitted with
   ``--crossfit-folds`` fold encoders);
3. ``ltr text-features --encoder ft=... --context-encoder ft``: the lexical columns and
   ``sim_ft``, and every row carrying its query's ``ft`` vector as ``context`` (a training
   query's column and vector both from the fold encoder that did not see it);
4. the default SetRank (``configs/setrank_imsab.yaml``) trained on those files with ``--seeds``
   twice, all equal but ``model.context_dim``: 0 (the context column is ignored) and the
   encoder's ``d_model`` (the vector is projected and added to every candidate, PRM-style);
5. the cost of a reranking call, ``TextReranker`` on each test query's candidate texts with the
   two models, side by side in turns (the context model encodes the query once more).

    python -m benchmarks.query_context          # writes its section of docs/BENCHMARKS.md
    python -m benchmarks.query_context --pretrain-epochs 1 --finetune-epochs 1 \
        --crossfit-folds 2 --seeds 0 --no-write                  # a smoke run

Cranfield is read from ``../shared/data/cranfield`` (``--collection``); it is not bundled.
With ``--workdir DIR --resume`` a run that stopped goes on: the encoders, the feature files and
each SetRank model found in ``DIR`` are read back instead of trained again (the section says
which).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks._chain import add_chain_arguments, start_chain
from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.text_rerank import (
    TEXT_CONFIG,
    finished_lm,
    run_lightgbm,
    run_setrank,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_chain_arguments(parser)
    parser.add_argument("--crossfit-folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--repeats", type=int, default=3, help="timed turns per model")
    args = parser.parse_args(argv)

    from ltr.artifact import MANIFEST
    from ltr.text.config import load_finetune_config
    from ltr.text.features import build_text_features
    from ltr.text.finetune import finetune

    work, collection, cpu, times, pre = start_chain(parser, args, "ltr-query-context-")
    ft = finished_lm(work / "finetune-ft", args.crossfit_folds)
    if ft is not None:
        times.reused.append("fine-tuning")
    else:
        started = time.perf_counter()
        config = load_finetune_config(
            TEXT_CONFIG,
            {
                "encoder": str(pre.artifact_dir),
                "data.collection": collection,
                "data.split": args.split,
                "crossfit_folds": args.crossfit_folds,
                "trainer.max_epochs": args.finetune_epochs,
                "tracking.enabled": False,
                **cpu,
                "output_dir": str(work / "finetune-ft"),
            },
        )
        ft = finetune(config, verbose=False)
        times.since("fine-tuning (with its fold encoders)", started)

    data = load_finetune_config(
        TEXT_CONFIG, {"data.collection": collection, "data.split": args.split}
    ).data
    folder = work / "features"
    if (folder / "features.json").exists():
        facts = json.loads((folder / "features.json").read_text())
        context_dim = int(facts["context_dim"])
        times.reused.append("the feature files")
    else:
        started = time.perf_counter()
        built = build_text_features(
            data, {"ft": str(ft.artifact_dir)}, folder, context_encoder="ft"
        )
        context_dim = built.context_dim
        times.since("text features", started)

    variants = {
        "lexical + sim_ft": ({}, ""),
        "lexical + sim_ft + query context (ft)": ({"model.context_dim": context_dim}, "-context"),
    }
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
    read_back = 0
    for seed in args.seeds:  # the variants of one seed side by side
        for label, (options, tag) in variants.items():
            existed = (work / f"setrank-{folder.name}{tag}-{seed}" / "model" / MANIFEST).exists()
            started = time.perf_counter()
            results[label].append(run_setrank(folder, seed, work, cpu, options, tag))
            if existed:
                read_back += 1
            else:
                times.since(f"SetRank {label}, seed {seed}", started)
            print(f"{label}, seed {seed}: valid / test {results[label][-1]}", flush=True)
    if read_back:
        times.reused.append(f"{read_back} SetRank models")

    timing = time_rerankers(work, folder, data, args.seeds[0], variants, args.repeats)

    rows = []
    for label, pairs in results.items():
        valid, test = np.array(pairs).T
        rows.append([f"SetRank, {label}", len(pairs), mean_sd(valid), mean_sd(test), timing[label]])
    for label, with_context in (
        ("LightGBM lambdarank, lexical + sim_ft", False),
        ("LightGBM lambdarank, lexical + sim_ft + the query vector as features", True),
    ):
        valid, test = run_lightgbm(folder, with_query_vector if with_context else None)
        rows.append([label, "—", f"{valid:.4f}", f"{test:.4f}", "—"])
    base, ctx = (np.array(results[label]) for label in variants)
    diff = ctx - base  # (seeds, 2) per-seed differences
    better = int((diff[:, 1] > 0).sum())
    bm25 = ft.metrics
    name = args.collection.resolve().name
    title = name.capitalize() if name != "scifact" else "SciFact"
    split = f", its `{args.split}` queries" if args.split else ""
    body = (
        f"{title}{split}; BM25's top-100 candidates per query; NDCG@10, exp2 gain, lists with "
        "no relevant candidate count 1. One masked LM (`configs/text/bert_cranfield.yaml`, "
        f"{pre.num_parameters:,} parameters, {args.pretrain_epochs} epochs) fine-tuned with "
        f"`configs/text/cranfield.yaml` (λ = 0.5, {args.finetune_epochs} epochs at most) and "
        f"{args.crossfit_folds} cross-fitted fold encoders; `ltr text-features --encoder ft=... "
        f"--context-encoder ft` (the context: {context_dim} values per query). The default "
        f"SetRank trained on the same files with {len(args.seeds)} seeds "
        f"({', '.join(map(str, args.seeds))}), all equal but `model.context_dim`. BM25 alone: "
        f"valid {bm25['valid/bm25_ndcg@10']:.4f}, test {bm25['test/bm25_ndcg@10']:.4f}.\n\n"
        + markdown_table(
            ["reranker", "seeds", "valid NDCG@10", "test NDCG@10", "ms per list (rerank call)"],
            rows,
        )
        + "\n\nWith the context against without, per seed (test): "
        + ", ".join(f"{d:+.4f}" for d in diff[:, 1])
        + f"; mean {diff[:, 1].mean():+.4f}, better in {better} of {len(diff)} seeds "
        f"(valid: mean {diff[:, 0].mean():+.4f}).\n\n"
        f"*ms per list*: `TextReranker.scores` on each test query's candidate texts (lexical "
        "columns, the query encoded, documents from the featurizer's cache), PyTorch backend, "
        f"seed {args.seeds[0]}'s models, median over the test queries of the best of "
        f"{args.repeats} turns taken side by side.\n\n" + times.sentence()
    )
    print(body)
    if not args.no_write:
        command = command_line("query_context", argv)
        section = "query_context" if name == "cranfield" else f"query_context_{name}"
        write_section(section, f"Query context on {title}", command, body)


def with_query_vector(path: Path):
    """A feature file as a ``ListDataset`` whose rows carry their query's context vector as more
    features (how a tree model, which has no per-list input, can be given it)."""
    import pyarrow.parquet as pq

    from ltr.data.dataset import ListDataset, load_dataset
    from ltr.data.list_inputs import resolve

    size = pq.read_schema(path).field("context").type.list_size
    d = load_dataset(path, context=resolve({"context_dim": size}))
    per_row = np.repeat(d.context, np.diff(d.offsets), axis=0)  # (N, C)
    return ListDataset(np.hstack([d.features, per_row]), d.labels, d.offsets, d.qids, d.doc_ids)


def mean_sd(values: np.ndarray) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def time_rerankers(
    work: Path, folder: Path, data, seed: int, variants: dict, repeats: int
) -> dict[str, str]:
    """Median ms of one ``TextReranker.scores`` call per test list, each model's best of
    ``repeats`` turns (the models take turns on every list)."""
    from ltr.text.candidates import TextTask
    from ltr.text.rerank import TextReranker

    task = TextTask.load(data)
    lists = task.lists["test"]
    docs = task.collection.doc_texts
    rerankers = {
        label: TextReranker.load(
            work / f"setrank-{folder.name}{tag}-{seed}" / "model", backend="torch"
        )
        for label, (_, tag) in variants.items()
    }
    best: dict[str, list[float]] = {label: [] for label in variants}
    for q, query in enumerate(lists.query_texts):
        texts = [docs[i] for i in lists.doc_index[q]]
        turns: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(repeats):
            for label, reranker in rerankers.items():
                started = time.perf_counter()
                reranker.scores(query, texts)
                turns[label].append(time.perf_counter() - started)
        for label in variants:
            best[label].append(min(turns[label]))
    return {label: f"{1000 * statistics.median(values):.2f}" for label, values in best.items()}


if __name__ == "__main__":
    main()
