"""Distillation: does one SetRank trained to follow a seed ensemble keep the ensemble's gain?

For each official LETOR fold, the teacher is the ensemble of the default SetRank's seeds 1..K
(``ltr ensemble``; the members trained by ``benchmarks.ensemble`` into the same ``--work-dir``,
or trained here if missing). Students are the same config trained with seeds 1..S and
``distill.teacher`` set to the fold's teacher (``--weight``, ``--temperature``); each is compared
with the same seed trained without it. Test NDCG@10 (gain 2^rel - 1, lists with no relevant
document counted as 1), mean ± sd over folds; paired per fold (t-test) and per query (Wilcoxon).

Run: ``python -m benchmarks.distill [--folds 1 2 3 4 5] [--students 3] [--weight 1]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks._report import command_line, markdown_table, write_section
from benchmarks.ensemble import CONFIG, paired_row, train_member
from benchmarks.quality_cv import (
    DEFAULT_DATA_ROOT,
    HEADLINE,
    dataset_root,
    evaluate,
    load_fold,
    mean_sd,
    per_query_ndcg10,
)


def run_fold(args, root: Path, number: int) -> dict:
    from ltr.artifact import load_model
    from ltr.ensemble import save_ensemble
    from ltr.inference import score_lists

    fold = load_fold(root, number)
    base = args.work_dir / args.dataset / f"fold{number}"
    members = [
        load_model(train_member(root, number, seed, base / f"seed{seed}"))
        for seed in range(1, args.teacher_seeds + 1)
    ]
    teacher_dir = base / f"teacher{args.teacher_seeds}"
    if not (teacher_dir / "ltr_model.json").exists():
        save_ensemble(members, teacher_dir)
    tag = f"distill-w{args.weight:g}-t{args.temperature:g}"
    systems = {"teacher": load_model(teacher_dir).model}
    for seed in range(1, args.students + 1):
        print(f"{args.dataset} fold {number}: student seed {seed} of {args.students}", flush=True)
        extra = {
            "distill.teacher": str(teacher_dir),
            "distill.weight": args.weight,
            "distill.temperature": args.temperature,
        }
        folder = base / f"{tag}-seed{seed}"
        student = train_member(root, number, seed, folder, CONFIG, extra)
        systems[f"student {seed}"] = load_model(student).model
        # the same seed without the teacher: the teacher's member, trained once
        plain = train_member(root, number, seed, base / f"seed{seed}")
        systems[f"plain {seed}"] = load_model(plain).model
    record = {"fold": number, "systems": {}}
    for name, module in systems.items():
        test = score_lists(module, fold.test)
        record["systems"][name] = {
            "test": evaluate(test, fold.test)[HEADLINE]["ndcg@10"],
            "valid": evaluate(score_lists(module, fold.valid), fold.valid)[HEADLINE]["ndcg@10"],
            "per_query": per_query_ndcg10(test, fold.test),
        }
    return record


def report(args, records: list[dict], seconds: float) -> str:

    s = args.students
    folds = [r["fold"] for r in records]

    def mean_of(prefix: str, r: dict, key: str) -> float:
        return float(np.mean([r["systems"][f"{prefix} {k}"][key] for k in range(1, s + 1)]))

    def per_query(prefix: str, r: dict) -> np.ndarray:
        return np.mean([r["systems"][f"{prefix} {k}"]["per_query"] for k in range(1, s + 1)], 0)

    rows = []
    for label, get in (
        (
            f"teacher: ensemble of {args.teacher_seeds} seeds",
            lambda r, k: r["systems"]["teacher"][k],
        ),
        (f"one seed (mean of seeds 1..{s})", lambda r, k: mean_of("plain", r, k)),
        (f"distilled (mean of seeds 1..{s})", lambda r, k: mean_of("student", r, k)),
    ):
        rows.append(
            [
                label,
                mean_sd([get(r, "test") for r in records]),
                mean_sd([get(r, "valid") for r in records]),
            ]
        )

    def compare(name, a, a_q, b, b_q):
        return paired_row(records, name, a, a_q, b, b_q, query_counts=False)

    student = (lambda r: mean_of("student", r, "test"), lambda r: per_query("student", r))
    plain = (lambda r: mean_of("plain", r, "test"), lambda r: per_query("plain", r))
    teacher = (
        lambda r: r["systems"]["teacher"]["test"],
        lambda r: np.asarray(r["systems"]["teacher"]["per_query"]),
    )
    comparisons = [
        compare("distilled − one seed", *student, *plain),
        compare("teacher − distilled", *teacher, *student),
        compare("teacher − one seed", *teacher, *plain),
    ]
    return "\n".join(
        [
            f"{args.dataset.upper() if args.dataset == 'mq2008' else 'OHSUMED'} official folds "
            f"{', '.join(map(str, folds))}: the default SetRank (`{CONFIG}`) trained with seeds "
            f"1..{s} twice, without and with `distill.teacher` set to the fold's ensemble of "
            f"seeds 1..{args.teacher_seeds} (`ltr ensemble`, the teacher), distillation weight "
            f"{args.weight:g} and temperature {args.temperature:g} beside the config's ListMLE. "
            "Test and validation NDCG@10 (lists with no relevant document counted as 1), "
            f"mean ± sd over folds; rows for seeds are means over the {s} seeds. "
            f"Total {seconds / 60:.0f} min.",
            "",
            markdown_table(["model", "test NDCG@10", "valid NDCG@10"], rows),
            "",
            markdown_table(
                [
                    "difference in test NDCG@10",
                    f"per fold ({', '.join(map(str, folds))})",
                    "mean ± sd",
                    "folds won",
                    "paired t p",
                    "Wilcoxon p (queries)",
                ],
                comparisons,
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["mq2008", "ohsumed"], default="mq2008")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--teacher-seeds", type=int, default=5)
    p.add_argument("--students", type=int, default=3, help="student seeds 1..N")
    p.add_argument("--weight", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/ltr-bench-ensemble"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    root = dataset_root(args.dataset, args.data_root)
    started = time.perf_counter()
    records = [run_fold(args, root, number) for number in args.folds]
    body = report(args, records, time.perf_counter() - started)
    print(body)
    if not args.no_write:
        suffix = "" if args.dataset == "mq2008" else f"-{args.dataset}"
        name = "MQ2008" if args.dataset == "mq2008" else "OHSUMED"
        write_section(
            f"distill{suffix}",
            f"Distilling a seed ensemble into one model ({name})",
            command_line("distill", argv),
            body,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
