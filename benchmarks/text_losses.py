"""Which loss for text reranking: SetRank with ListMLE, LambdaRank and softmax on text features.

The default SetRank (``configs/setrank_imsab.yaml``, ListMLE) was chosen on LETOR's MQ2008 and
OHSUMED, whose lists hold 20 to 150 documents with graded labels throughout. Text reranking
lists are BM25's top 100 with a few relevant documents each. This trains the same model on the
same ``ltr text-features`` files with each ``--losses`` entry and ``--seeds``, everything else
equal, and LightGBM lambdarank beside them; the loss with the best mean validation NDCG@10 is
the one to ship (``configs/text/setrank.yaml``).

    python -m benchmarks.text_losses --features DIR --name Cranfield

``DIR`` is a folder ``ltr text-features`` wrote (``train``/``valid``/``test.parquet``), e.g. the
``features`` folder of a ``benchmarks.query_context`` work folder. Each SetRank model is kept
beside it (``../setrank-<folder>-<loss>-<seed>``) and read back when there (the ListMLE models
of ``benchmarks.query_context`` are read back as they are: same config, same files).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.query_context import mean_sd
from benchmarks.text_rerank import run_lightgbm, run_setrank

DEFAULT_LOSS = "listmle"
"""The loss of ``configs/setrank_imsab.yaml``: its models are named without a loss."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True, help="ltr text-features output")
    parser.add_argument("--name", required=True, help="the collection's name, for the section")
    parser.add_argument("--losses", nargs="+", default=[DEFAULT_LOSS, "lambdarank", "softmax"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    from ltr.artifact import MANIFEST

    folder = args.features.resolve()
    work = folder.parent
    cpu = {"trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.progress_bar": False}
    rows, valid_means, read_back, seconds = [], {}, 0, []
    for loss in args.losses:
        tag = "" if loss == DEFAULT_LOSS else f"-{loss}"
        pairs = []
        for seed in args.seeds:
            existed = (work / f"setrank-{folder.name}{tag}-{seed}" / "model" / MANIFEST).exists()
            started = time.perf_counter()
            pairs.append(run_setrank(folder, seed, work, cpu, {"loss": loss}, tag))
            if existed:
                read_back += 1
            else:
                seconds.append(time.perf_counter() - started)
            print(f"{loss}, seed {seed}: valid / test {pairs[-1]}", flush=True)
        valid, test = np.array(pairs).T
        valid_means[loss] = valid.mean()
        rows.append([f"SetRank, {loss}", len(pairs), mean_sd(valid), mean_sd(test)])
    lgbm_valid, lgbm_test = run_lightgbm(folder)
    rows.append(["LightGBM lambdarank", "—", f"{lgbm_valid:.4f}", f"{lgbm_test:.4f}"])
    best = max(valid_means, key=valid_means.get)
    trained = len(seconds)
    body = (
        f"{args.name}: the `ltr text-features` files in `{folder.name}/` of a "
        "`benchmarks.query_context` work folder (lexical columns and `sim_ft`, cross-fitted; "
        "BM25's top-100 candidates per query). NDCG@10, exp2 gain, lists with no relevant "
        "candidate count 1. The default SetRank (`configs/setrank_imsab.yaml`) with each loss, "
        f"everything else equal, seeds {', '.join(map(str, args.seeds))}; LightGBM lambdarank "
        "with `benchmarks.quality_cv`'s settings.\n\n"
        + markdown_table(["reranker", "seeds", "valid NDCG@10", "test NDCG@10"], rows)
        + f"\n\nBest mean validation NDCG@10: {best} ({valid_means[best]:.4f}). "
        f"{trained} SetRank models trained here"
        + (f" ({statistics.median(seconds) / 60:.1f} min median)" if trained else "")
        + (f", {read_back} read back from earlier runs in the same folder" if read_back else "")
        + "."
    )
    print(body)
    if not args.no_write:
        command = command_line("text_losses", argv)
        section = "text_losses_" + args.name.lower().replace(" ", "_")
        write_section(section, f"Which loss for text: {args.name}", command, body)


if __name__ == "__main__":
    main()
