"""Distillation: does one SetRank trained to follow a seed ensemble keep the ensemble's gain?

For each official LETOR fold, the teacher is the ensemble of the default SetRank's seeds 1..K
(``ltr ensemble``; the members trained by ``benchmarks.ensemble`` into the same ``--work-dir``,
or trained here if missing). Students are the same config trained with seeds 1..S and
``distill.teacher`` set to the fold's teacher (``--weight``, ``--temperature``); each is compared
with the same seed trained without it. Test NDCG@10 (gain 2^rel - 1, lists with no relevant
document counted as 1), mean ± sd over folds; paired per fold (t-test) and per query (Wilcoxon).

``--student KEY=VALUE ...`` gives students (and the plain seeds they are compared with) their own
config overrides, e.g. ``model.d_model=32 model.num_blocks=1`` for a student much cheaper than the
teacher's members: compression, where a teacher's soft targets are said to help most. The report
then gives each model's parameters and matrix-product MFLOP per list of 100 candidates.

Run: ``python -m benchmarks.distill [--folds 1 2 3 4 5] [--students 3] [--weight 1]
[--student model.d_model=32 model.num_blocks=1]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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
    shape = student_tag(args.student)
    tag = f"distill-w{args.weight:g}-t{args.temperature:g}{shape}"
    systems = {"teacher": load_model(teacher_dir)}
    for seed in range(1, args.students + 1):
        print(f"{args.dataset} fold {number}: student seed {seed} of {args.students}", flush=True)
        extra = {
            **args.student,
            "distill.teacher": str(teacher_dir),
            "distill.weight": args.weight,
            "distill.temperature": args.temperature,
        }
        folder = base / f"{tag}-seed{seed}"
        student = train_member(root, number, seed, folder, CONFIG, extra)
        systems[f"student {seed}"] = load_model(student)
        # the same seed and shape without the teacher (the teacher's own member when the student
        # has the members' shape: trained once)
        plain_dir = base / (f"plain{shape}-seed{seed}" if shape else f"seed{seed}")
        plain = train_member(root, number, seed, plain_dir, CONFIG, args.student)
        systems[f"plain {seed}"] = load_model(plain)
        if shape:  # and the teacher's members' own shape, to price the smaller one
            member = train_member(root, number, seed, base / f"seed{seed}")
            systems[f"member {seed}"] = load_model(member)
    record = {
        "fold": number,
        "systems": {},
        "cost": {
            k: cost(v)
            for k, v in (
                ("teacher", systems["teacher"]),
                ("member", members[0]),
                ("student", systems["student 1"]),
            )
        },
    }
    for name, loaded in systems.items():
        test = score_lists(loaded.model, fold.test)
        valid = score_lists(loaded.model, fold.valid)
        record["systems"][name] = {
            "test": evaluate(test, fold.test)[HEADLINE]["ndcg@10"],
            "valid": evaluate(valid, fold.valid)[HEADLINE]["ndcg@10"],
            "per_query": per_query_ndcg10(test, fold.test),
        }
    return record


def student_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["model.d_model=32", ...]`` -> ``{"model.d_model": 32, ...}`` (values read as YAML)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--student takes KEY=VALUE pairs, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def student_tag(overrides: dict[str, Any]) -> str:
    """A folder-name suffix naming the student's overrides ("" for none)."""
    return "".join(f"-{k.rpartition('.')[2]}{v}" for k, v in sorted(overrides.items()))


def cost(loaded) -> tuple[int, float]:
    """(parameters, matrix-product MFLOP for one list of 100 candidates) of a loaded model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = loaded.model.eval().requires_grad_(False)
    x = torch.zeros(1, 100, loaded.manifest.num_features)
    with FlopCounterMode(display=False) as counter:
        net(x, torch.ones(1, 100, dtype=torch.bool))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() / 1e6


def report(args, records: list[dict], seconds: float) -> str:

    s = args.students
    folds = [r["fold"] for r in records]

    def mean_of(prefix: str, r: dict, key: str) -> float:
        return float(np.mean([r["systems"][f"{prefix} {k}"][key] for k in range(1, s + 1)]))

    def per_query(prefix: str, r: dict) -> np.ndarray:
        return np.mean([r["systems"][f"{prefix} {k}"]["per_query"] for k in range(1, s + 1)], 0)

    shape = ", ".join(f"`{k}={v}`" for k, v in args.student.items())
    rows = []
    for label, get, which in (
        (
            f"teacher: ensemble of {args.teacher_seeds} seeds",
            lambda r, k: r["systems"]["teacher"][k],
            "teacher",
        ),
        (
            f"one seed{' of the student shape' if shape else ''} (mean of seeds 1..{s})",
            lambda r, k: mean_of("plain", r, k),
            "student",
        ),
        (f"distilled (mean of seeds 1..{s})", lambda r, k: mean_of("student", r, k), "student"),
        *(
            [
                (
                    f"one seed of the members' shape (mean of seeds 1..{s})",
                    lambda r, k: mean_of("member", r, k),
                    "member",
                )
            ]
            if shape
            else []
        ),
    ):
        params, mflop = records[0]["cost"][which]
        rows.append(
            [
                label,
                f"{params:,}",
                f"{mflop:.1f}",
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
    if args.student:
        member = (lambda r: mean_of("member", r, "test"), lambda r: per_query("member", r))
        comparisons.append(
            compare("one seed of the members' shape − one seed of the student's", *member, *plain)
        )
    return "\n".join(
        [
            f"{args.dataset.upper() if args.dataset == 'mq2008' else 'OHSUMED'} official folds "
            f"{', '.join(map(str, folds))}: the default SetRank (`{CONFIG}`"
            f"{', with ' + shape if shape else ''}) trained with seeds "
            f"1..{s} twice, without and with `distill.teacher` set to the fold's ensemble of "
            f"seeds 1..{args.teacher_seeds} of the default SetRank (`ltr ensemble`, the teacher), "
            f"distillation weight {args.weight:g} and temperature {args.temperature:g} beside the "
            "config's ListMLE. Test and validation NDCG@10 (lists with no relevant document "
            f"counted as 1), mean ± sd over folds; rows for seeds are means over the {s} seeds. "
            "MFLOP = the matrix products of one forward pass over a list of 100 candidates "
            f"(PyTorch's FlopCounterMode). Total {seconds / 60:.0f} min.",
            "",
            markdown_table(
                ["model", "parameters", "MFLOP per list", "test NDCG@10", "valid NDCG@10"], rows
            ),
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
    p.add_argument(
        "--student",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for students and their plain seeds (e.g. model.d_model=32)",
    )
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/ltr-bench-ensemble"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    args.student = student_overrides(args.student)
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
        into = "into a smaller model" if args.student else "into one model"
        write_section(
            f"distill{suffix}{'-small' if args.student else ''}",
            f"Distilling a seed ensemble {into} ({name})",
            command_line("distill", argv),
            body,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
