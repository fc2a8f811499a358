"""Text reranking on Cranfield: BM25, text encoders, and rerankers on lexical + encoder features.

One run, one query split (``configs/text/cranfield.yaml``: 60/20/20 of the 225 judged queries,
seed 0), every number NDCG@10 over each query's BM25 top-100 (the reranking convention):

1. ``ltr pretrain`` a masked LM on the documents (``configs/text/bert_cranfield.yaml``);
2. ``ltr finetune`` it twice on the training queries: ``L_task + 0.5·L_pretrain`` (``ft``,
   cross-fitted: ``--crossfit-folds`` more encoders, each without a fifth of the training
   queries) and, to see what the language-model term does, ``L_task`` alone (``ft0``,
   ``lm_weight: 0``);
3. ``ltr text-features`` with the three encoders as ``sim_pre``, ``sim_ft``, ``sim_ft0``, twice:
   the training rows' ``sim_ft`` from the fold encoder that did not see the query
   (cross-fitted), and from the encoder trained on all of them (``--no-crossfit``);
4. the default SetRank (``configs/setrank_imsab.yaml``, three training seeds) and LightGBM
   lambdarank on the lexical features alone and with each encoder's similarity.

    python -m benchmarks.text_rerank           # writes its section of docs/BENCHMARKS.md
    python -m benchmarks.text_rerank --pretrain-epochs 1 --finetune-epochs 1 --no-write  # smoke

Cranfield is read from ``../shared/data/cranfield`` (``--collection``); it is not bundled.
Another collection (``--collection ../shared/data/scifact --split train``) runs the same chain
with the same configs, its data paths and split overridden, and writes a section of its own.

A run takes from minutes (Cranfield on a GPU) to most of an hour (SciFact on 2 cores). With
``--workdir DIR --resume`` a run that stopped goes on: every stage whose output is in ``DIR``
(the pretrained and fine-tuned encoders, the feature files, each SetRank model) is read back
instead of trained again.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks._report import DEFAULT_CONFIG, command_line, markdown_table, write_section

REPO_ROOT = Path(__file__).resolve().parent.parent
PRETRAIN_CONFIG = REPO_ROOT / "configs" / "text" / "bert_cranfield.yaml"
TEXT_CONFIG = REPO_ROOT / "configs" / "text" / "cranfield.yaml"
DEFAULT_COLLECTION = REPO_ROOT.parent / "shared" / "data" / "cranfield"
ENCODERS = ("pre", "ft", "ft0")
FEATURE_SETS = {
    "lexical": (),
    "lexical + sim_pre": ("sim_pre",),
    "lexical + sim_ft0": ("sim_ft0",),
    "lexical + sim_ft": ("sim_ft",),
    "lexical + sim_ft, cross-fitted": ("sim_ft",),
}
CROSSFITTED = "lexical + sim_ft, cross-fitted"
"""The one feature set whose training rows come from the cross-fitted features."""
SEEDS = (0, 1, 2)


def subset_features(source: Path, target: Path, extra: tuple[str, ...]) -> None:
    """Copy an ``ltr`` Parquet file keeping the lexical columns and ``extra``."""
    from ltr.data.parquet import ParquetListWriter, read_parquet
    from ltr.data.svmlight import RowChunk
    from ltr.text.features import LEXICAL_FEATURES

    chunk, names = read_parquet(source)
    keep = [*LEXICAL_FEATURES, *extra]
    columns = [names.index(name) for name in keep]
    with ParquetListWriter(target, len(keep), feature_names=keep) as writer:
        writer.write(RowChunk(chunk.qids, chunk.doc_ids, chunk.labels, chunk.features[:, columns]))


def ndcg10(scores: np.ndarray, data) -> float:
    from ltr.metrics import evaluate_grouped

    values = evaluate_grouped(
        np.asarray(scores, dtype=np.float64), data.labels, data.offsets, metrics=["ndcg@10"]
    )
    return float(values["ndcg@10"])


def run_setrank(
    folder: Path,
    seed: int,
    work: Path,
    on_device: dict[str, Any],
    options: dict[str, Any] | None = None,
    tag: str = "",
) -> tuple[float, float]:
    """Train the default SetRank on a feature folder (or read back the model an earlier run
    left in ``work``), ``options`` overriding its config (its models named with ``tag``):
    ``(valid, test)`` NDCG@10. A model with a context vector reads it from the files."""
    from ltr.artifact import MANIFEST, load_model
    from ltr.data.dataset import load_dataset
    from ltr.data.list_inputs import resolve
    from ltr.inference import score_lists
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    output = work / f"setrank-{folder.name}{tag}-{seed}"
    overrides: dict[str, Any] = {
        "data.train": [str(folder / "train.parquet")],
        "data.valid": [str(folder / "valid.parquet")],
        "data.test": [str(folder / "test.parquet")],
        "tracking.enabled": False,
        "trainer.progress_bar": False,
        "trainer.seed": seed,
        **on_device,
        **(options or {}),
        "output_dir": str(output),
    }
    if not (output / "model" / MANIFEST).exists():
        train(load_train_config(DEFAULT_CONFIG, overrides), verbose=False)
    loaded = load_model(output / "model")
    manifest = loaded.manifest
    inputs = resolve(
        manifest.model_config, trained_context_columns=manifest.training.get("context_columns")
    )
    scores = {}
    for part in ("valid", "test"):
        data = load_dataset(folder / f"{part}.parquet", context=inputs)
        scores[part] = ndcg10(score_lists(loaded.model, data), data)
    return scores["valid"], scores["test"]


def run_lightgbm(folder: Path, load: Callable[[Path], Any] | None = None) -> tuple[float, float]:
    """LightGBM lambdarank (``benchmarks.quality_cv``'s settings): ``(valid, test)`` NDCG@10;
    ``load`` reads a split's file into a ``ListDataset`` (default: ``load_dataset``)."""
    from benchmarks.quality_cv import train_lightgbm
    from ltr.data.dataset import load_dataset

    load = load or load_dataset
    data = {part: load(folder / f"{part}.parquet") for part in ("train", "valid", "test")}
    booster, _ = train_lightgbm(data["train"], data["valid"], threads=2)
    best = booster.best_iteration
    return tuple(
        ndcg10(booster.predict(data[part].features, num_iteration=best), data[part])
        for part in ("valid", "test")
    )


def finished_lm(folder: Path, crossfit_folds: int = 0) -> SimpleNamespace | None:
    """What ``pretrain`` / ``finetune`` returned for the model an earlier run saved in
    ``folder``, read back from its manifest; None when there is none (or it has not the
    ``crossfit_folds`` fold encoders asked for)."""
    from ltr.lm.artifact import LM_MANIFEST, load_lm

    if not (folder / "model" / LM_MANIFEST).exists():
        return None
    loaded = load_lm(folder / "model")
    training = loaded.training
    if crossfit_folds and training.get("crossfit", {}).get("folds") != crossfit_folds:
        return None
    return SimpleNamespace(
        artifact_dir=folder / "model",
        num_parameters=loaded.model.num_parameters(),
        valid_metrics=training.get("valid_metrics", {}),
        metrics=training.get("metrics", {}),
        best_epoch=training.get("best_epoch"),
        folds=[
            SimpleNamespace(best_epoch=epoch, metrics=metrics)
            for epoch, metrics in zip(
                training.get("crossfit", {}).get("best_epochs", []),
                training.get("crossfit", {}).get("metrics", []),
                strict=True,
            )
        ],
    )


def pretrained_lm(
    work: Path, docs: Path, epochs: int, overrides: dict[str, Any]
) -> tuple[SimpleNamespace, float | None]:
    """The masked LM of ``PRETRAIN_CONFIG`` pretrained on ``docs`` into ``work/pretrain``, or
    read back from there when an earlier run finished it: ``(result, seconds)``, seconds None
    when it was read back."""
    from ltr.lm.config import load_pretrain_config
    from ltr.lm.pretrain import pretrain

    pre = finished_lm(work / "pretrain")
    if pre is not None:
        return pre, None
    started = time.perf_counter()
    config = load_pretrain_config(
        PRETRAIN_CONFIG,
        {
            "data.files": [str(docs.resolve())],
            "trainer.max_epochs": epochs,
            "trainer.progress_bar": False,
            "tracking.enabled": False,
            **overrides,
            "output_dir": str(work / "pretrain"),
        },
    )
    return pretrain(config, verbose=False), time.perf_counter() - started


def finished_features(folder: Path, crossfit: bool) -> SimpleNamespace | None:
    """The feature files an earlier run wrote to ``folder`` (None when it did not finish, or
    cross-fitted where ``crossfit`` says not to or the other way round)."""
    import json

    if not (folder / "features.json").exists() or not (folder / "featurizer").is_dir():
        return None
    facts = json.loads((folder / "features.json").read_text())
    if bool(facts.get("crossfit")) != crossfit:
        return None
    files = {part: folder / f"{part}.parquet" for part in facts["rows"]}
    return SimpleNamespace(
        files=files, recall=facts["recall"], column_ndcg=facts.get("column_ndcg@10", {})
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=DEFAULT_COLLECTION)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument(
        "--crossfit-folds",
        type=int,
        default=5,
        help="fold encoders cross-fitted with ft (ltr finetune's crossfit_folds); default 5",
    )
    parser.add_argument(
        "--split", help="the collection's own query split to use (SciFact: train); default none"
    )
    parser.add_argument("--workdir", type=Path, help="keep models and features here")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --workdir: read back every stage an earlier run finished there",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda: where every training and the encoders run (its own section)",
    )
    parser.add_argument(
        "--encoders-only",
        action="store_true",
        help="stop after the feature files: no SetRank or LightGBM models (their rows left out)",
    )
    parser.add_argument(
        "--positional",
        choices=["learned", "sinusoidal", "rotary"],
        help="the encoders' position encoding (model.positional of the pretraining; default: "
        "the preset's). Another one writes a section of its own",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    gpu = args.device != "cpu"
    on_device = {"trainer.accelerator": "gpu" if gpu else "cpu", "trainer.devices": 1}

    from ltr.artifact import MANIFEST
    from ltr.data.dataset import load_dataset
    from ltr.text.collection import load_collection
    from ltr.text.config import load_finetune_config
    from ltr.text.features import build_text_features
    from ltr.text.finetune import finetune

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ltr-text-rerank-"))
    if args.resume and not args.workdir:
        parser.error("--resume needs the --workdir of the run to go on with")
    if work.exists() and any(work.iterdir()) and not args.resume:
        parser.error(
            f"--workdir {work} is not empty: give a new folder (runs must not share one), or "
            "--resume to go on with the run that left it"
        )
    work.mkdir(parents=True, exist_ok=True)
    collection = str(args.collection.resolve())
    docs = next(args.collection.glob("docs.jsonl*"))
    seconds: dict[str, float] = {}
    reused: list[str] = []  # stages read back from an earlier run (--resume)

    positional = {"model.positional": args.positional} if args.positional else {}
    pre, took = pretrained_lm(work, docs, args.pretrain_epochs, {**on_device, **positional})
    if took is None:
        reused.append("pretraining")
    else:
        seconds["pretrain"] = took
        print(f"pretraining took {seconds['pretrain'] / 60:.1f} min", flush=True)
    encoders = {"pre": str(pre.artifact_dir)}
    finetuned = {}
    for name, weight, folds in (("ft", 0.5, args.crossfit_folds), ("ft0", 0.0, 0)):
        started = time.perf_counter()
        config = load_finetune_config(
            TEXT_CONFIG,
            {
                "encoder": encoders["pre"],
                "data.collection": collection,
                "data.split": args.split,
                "lm_weight": weight,
                "crossfit_folds": folds,
                "trainer.max_epochs": args.finetune_epochs,
                "trainer.progress_bar": False,
                "tracking.enabled": False,
                **on_device,
                "output_dir": str(work / f"finetune-{name}"),
            },
        )
        finetuned[name] = finished_lm(work / f"finetune-{name}", folds)
        if finetuned[name] is not None:
            reused.append(f"fine-tuning {name}")
        else:
            finetuned[name] = finetune(config, verbose=False)
            seconds[f"finetune {name}"] = time.perf_counter() - started
            print(f"fine-tuning {name} took {seconds[f'finetune {name}'] / 60:.1f} min", flush=True)
        encoders[name] = str(finetuned[name].artifact_dir)

    data_config = load_finetune_config(
        TEXT_CONFIG, {"data.collection": collection, "data.split": args.split}
    ).data
    built = {}
    variants = (False, True) if args.crossfit_folds else (False,)
    feature_sets = {
        label: extra
        for label, extra in FEATURE_SETS.items()
        if args.crossfit_folds or label != CROSSFITTED
    }
    for crossfit, where in ((False, "features"), (True, "features-crossfit"))[: len(variants)]:
        built[crossfit] = finished_features(work / where, crossfit)
        if built[crossfit] is not None:
            reused.append(f"the feature files in {where}")
        else:
            started = time.perf_counter()
            built[crossfit] = build_text_features(
                data_config, encoders, work / where, crossfit=crossfit, device=args.device
            )
            seconds[where] = time.perf_counter() - started
            print(f"{where} took {seconds[where] / 60:.1f} min", flush=True)
    features = built[False]
    folders = {}
    for label, extra in feature_sets.items():
        source = built[True] if label == CROSSFITTED else features
        suffix = ["crossfit"] if label == CROSSFITTED else []
        folder = work / ("features-" + "-".join(["lexical", *extra, *suffix]))
        for part in ("train", "valid", "test"):
            subset_features(source.files[part], folder / f"{part}.parquet", extra)
        folders[label] = folder

    m = finetuned["ft"].metrics
    m0 = finetuned["ft0"].metrics
    rows: list[list[object]] = [
        [
            "BM25 (first stage)",
            "—",
            f"{m['valid/bm25_ndcg@10']:.4f}",
            f"{m['test/bm25_ndcg@10']:.4f}",
        ],
        [
            "encoder alone: pretrained",
            "—",
            f"{m['valid/pretrained_ndcg@10']:.4f}",
            f"{m['test/pretrained_ndcg@10']:.4f}",
        ],
        [
            "encoder alone: fine-tuned, λ = 0",
            "—",
            f"{m0['valid/finetuned_ndcg@10']:.4f}",
            f"{m0['test/finetuned_ndcg@10']:.4f}",
        ],
        [
            "encoder alone: fine-tuned, λ = 0.5",
            "—",
            f"{m['valid/finetuned_ndcg@10']:.4f}",
            f"{m['test/finetuned_ndcg@10']:.4f}",
        ],
    ]
    setrank_models = 0
    for label, folder in folders.items() if not args.encoders_only else ():
        setrank_models += sum(
            (work / f"setrank-{folder.name}-{seed}" / "model" / MANIFEST).exists() for seed in SEEDS
        )
        results = [run_setrank(folder, seed, work, on_device) for seed in SEEDS]
        valid = [v for v, _ in results]
        test = [t for _, t in results]
        rows.append(
            [
                f"SetRank: {label}",
                len(SEEDS),
                f"{statistics.mean(valid):.4f} ± {statistics.stdev(valid):.4f}",
                f"{statistics.mean(test):.4f} ± {statistics.stdev(test):.4f}",
            ]
        )
        print(rows[-1], flush=True)
    lightgbm_sets = ("lexical", "lexical + sim_ft", CROSSFITTED)[: len(variants) + 1]
    for label in lightgbm_sets if not args.encoders_only else ():
        valid, test = run_lightgbm(folders[label])
        rows.append([f"LightGBM lambdarank: {label}", 1, f"{valid:.4f}", f"{test:.4f}"])
    leak_rows = [
        [
            "encoder trained on all of them" if not crossfit else "cross-fitted",
            f"{built[crossfit].column_ndcg['train']['sim_ft']:.4f}",
            f"{built[crossfit].column_ndcg['valid']['sim_ft']:.4f}",
            f"{built[crossfit].column_ndcg['test']['sim_ft']:.4f}",
        ]
        for crossfit in variants
    ]
    folds = finetuned["ft"].folds

    if setrank_models:
        reused.append(f"{setrank_models} SetRank models")
    q = {part: len(np.unique(load_dataset(path).qids)) for part, path in features.files.items()}
    table = markdown_table(["ranker", "seeds", "valid NDCG@10", "test NDCG@10"], rows)
    times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) or "none timed"
    if reused:
        times += f" (read back from an earlier run in the same --workdir: {', '.join(reused)})"
    name = args.collection.resolve().name
    title = name.capitalize() if name != "scifact" else "SciFact"
    num_docs = len(load_collection(args.collection, split=args.split).doc_ids)
    split = f", its `{args.split}` queries" if args.split else ""
    body = (
        f"{title}{split} ({q['train']} training, {q['valid']} validation, "
        f"{q['test']} test queries; "
        f"BM25 top-{data_config.candidates} candidates, recall of the relevant documents "
        f"{features.recall['test']:.3f} on the test queries). NDCG@10 over the candidate lists "
        "(relevant documents BM25 missed are not counted), exp2 gain, lists with no relevant "
        "candidate count 1. Encoders: the masked LM of `configs/text/bert_cranfield.yaml` "
        + (f"with `model.positional: {args.positional}` " if args.positional else "")
        + f"({pre.num_parameters:,} parameters, {args.pretrain_epochs} epochs on the "
        f"{num_docs:,} documents, held-out masked-token accuracy "
        f"{pre.valid_metrics['val/accuracy']:.3f}), "
        f"fine-tuned {args.finetune_epochs} epochs at most with `configs/text/cranfield.yaml` "
        f"(best epochs {finetuned['ft'].best_epoch} for λ = 0.5, {finetuned['ft0'].best_epoch} "
        f"for λ = 0"
        + (
            f"; λ = 0.5 cross-fitted with `crossfit_folds: {args.crossfit_folds}`"
            if args.crossfit_folds
            else ""
        )
        + "). "
        + (
            "No rerankers trained (`--encoders-only`).\n\n"
            if args.encoders_only
            else "SetRank: `configs/setrank_imsab.yaml`, mean ± sd over training seeds; "
            "LightGBM: `benchmarks.quality_cv`'s settings.\n\n"
        )
        + f"{table}\n\n"
        + (
            "The two sets of feature files differ only in the training rows' `sim_ft`: from the "
            'encoder fine-tuned on those very training queries, or ("cross-fitted") from the '
            "fold encoder that was not trained on the query. Validation and test rows, and the "
            "featurizer a model is served with, use the encoder trained on all the training "
            "queries in both. "
            if args.crossfit_folds
            else ""
        )
        + "NDCG@10 of the `sim_ft` column alone:\n\n"
        + markdown_table(
            ["training rows' sim_ft from", "train lists", "valid lists", "test lists"], leak_rows
        )
        + (
            f"\n\nThe {len(folds)} fold encoders (each without 1/{len(folds)} of the "
            "training queries; best epochs "
            + ", ".join(str(f.best_epoch) for f in folds)
            + ") rank the queries they left out at NDCG@10 "
            + ", ".join(f"{f.metrics['held_out/finetuned_ndcg@10']:.3f}" for f in folds)
            + " and the validation queries at "
            + ", ".join(f"{f.metrics['valid/finetuned_ndcg@10']:.3f}" for f in folds)
            + "."
            if folds
            else ""
        )
        + (
            "\n\nEvery training ran on the GPU (precision `auto`: bf16 mixed where the GPU has "
            "it), and the feature files' encoders too."
            if gpu
            else ""
        )
        + f"\n\nTime on this machine: {times}."
    )
    print(body)
    if not args.no_write:
        command = command_line("text_rerank", argv)
        section = "text_rerank" if name == "cranfield" else f"text_rerank_{name}"
        heading = f"Text reranking on {title}"
        if args.positional:
            section += f"_{args.positional}"
            heading += f", {args.positional} positions"
        if gpu:
            section, heading = f"{section}_cuda", f"{heading} (GPU)"
        write_section(section, heading, command, body)


if __name__ == "__main__":
    main()
