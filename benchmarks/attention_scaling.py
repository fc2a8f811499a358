"""How SetRank's cost grows with list length: full self-attention (MSAB) vs induced (IMSAB).

Forward + backward of SetRank (default config, 46 features like MQ2008, one list per batch) for
several list lengths. MSAB and IMSAB are timed side by side in one process (interleaved
repetitions, median after warm-up); peak memory is the peak RSS of a fresh subprocess per
configuration. Writes its section of ``docs/BENCHMARKS.md``.

Run: ``python -m benchmarks.attention_scaling [--lengths 100 1000 10000]``
(``--attention-dropouts 0.0 0.1`` by default)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks._report import command_line, markdown_table, write_section
from ltr.models import SetRank, SetRankConfig

BLOCKS = ("msab", "imsab")
NUM_FEATURES = 46
SLOW_SECONDS = 10.0  # a warm-up slower than this: one warm-up and at most 3 repetitions
FILL_SECONDS = 3.0  # fast configs repeat (up to MAX_REPS) until each has had about this long
MAX_REPS = 50


@dataclass
class Timing:
    median_ms: float | None  # None = skipped
    reps: int
    note: str = ""


@dataclass
class Memory:
    peak_mb: float
    delta_mb: float


def build(block: str, dropout: float) -> SetRank:
    """SetRank with the default config except the block kind (and the dropout under study)."""
    torch.manual_seed(0)
    config = SetRankConfig(num_features=NUM_FEATURES, block=block, attention_dropout=dropout)
    return SetRank(config).train()


def inputs(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One list of ``length`` candidates: features [1, L, 46] and an all-True mask [1, L]."""
    g = torch.Generator().manual_seed(length)
    return torch.randn(1, length, NUM_FEATURES, generator=g), torch.ones(1, length, dtype=bool)


def step(model: SetRank, features: torch.Tensor, mask: torch.Tensor) -> float:
    """One forward + backward; returns seconds."""
    start = time.perf_counter()
    model(features, mask).sum().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def estimated_gb(block: str, length: int, dropout: float) -> float:
    """Rough peak memory: with attention dropout, CPU SDPA's math path keeps ~4 [nh, L, L] float
    tensors per block for backward (11 GB measured at L=10,000); otherwise memory is O(L)."""
    config = SetRankConfig(num_features=NUM_FEATURES)
    if block != "msab" or dropout == 0.0:
        return 0.5
    return 4 * config.num_blocks * config.num_heads * length * length * 4 / 2**30


def available_gb() -> float:
    """MemAvailable from /proc/meminfo (inf where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("inf")


def too_big(block: str, length: int, dropout: float) -> str:
    """A note if this configuration would not fit in memory, else ''."""
    need, have = estimated_gb(block, length, dropout), available_gb()
    return f"skipped: needs ~{need:.0f} GB, {have:.0f} GB free" if need > 0.8 * have else ""


def time_side_by_side(length: int, dropout: float, reps: int, warmup: int) -> dict[str, Timing]:
    """Median fwd+bwd milliseconds of each block at one length, repetitions interleaved."""
    features, mask = inputs(length)
    models, times, counts, notes = {}, {}, {}, {}
    for block in BLOCKS:
        notes[block] = too_big(block, length, dropout)
        if notes[block]:
            continue
        models[block] = build(block, dropout)
        first = step(models[block], features, mask)
        for _ in range(0 if first > SLOW_SECONDS else warmup - 1):
            first = step(models[block], features, mask)
        counts[block] = min(reps, 3) if first > SLOW_SECONDS else max(reps, MAX_REPS)
        times[block] = []
    start, r = time.perf_counter(), 0
    while True:  # rounds of one call per block, order alternating to cancel drift
        pending = [block for block in models if len(times[block]) < counts[block]]
        enough = all(len(times[block]) >= min(reps, counts[block]) for block in models)
        if not pending or (enough and time.perf_counter() - start > FILL_SECONDS * len(models)):
            break
        for block in pending if r % 2 == 0 else pending[::-1]:
            times[block].append(step(models[block], features, mask))
        r += 1
    return {
        block: Timing(statistics.median(times[block]) * 1e3, len(times[block]))
        if block in models
        else Timing(None, 0, notes[block])
        for block in BLOCKS
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` is not used because Linux
    carries it over from the parent across fork + exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def probe(block: str, length: int, dropout: float) -> None:
    """Subprocess entry: one warm-up and one measured fwd+bwd, print peak RSS as JSON."""
    model = build(block, dropout)
    features, mask = inputs(length)
    before = peak_rss_mb()
    step(model, features, mask)
    step(model, features, mask)
    peak = peak_rss_mb()
    print(json.dumps({"peak_mb": peak, "delta_mb": peak - before}))


def measure_memory(block: str, length: int, dropout: float) -> Memory | str:
    """Peak RSS of a fresh interpreter running one configuration (or why it was not measured)."""
    note = too_big(block, length, dropout)
    if note:
        return note
    cmd = [sys.executable, "-m", "benchmarks.attention_scaling", "--probe", block, str(length)]
    cmd += ["--attention-dropouts", str(dropout), "--threads", str(torch.get_num_threads())]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return f"failed (exit {result.returncode})"
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return Memory(data["peak_mb"], data["delta_mb"])


def fmt_ms(t: Timing) -> str:
    return t.note if t.median_ms is None else f"{t.median_ms:,.1f}"


def fmt_growth(t: Timing, prev: Timing | None, ratio: float) -> str:
    if prev is None or t.median_ms is None or prev.median_ms is None:
        return "–"
    return f"×{t.median_ms / prev.median_ms:,.1f} (L ×{ratio:.3g})"


def fmt_memory(m: Memory | str | None) -> str:
    if m is None:
        return "not measured"
    return m if isinstance(m, str) else f"{m.peak_mb:,.0f} (+{m.delta_mb:,.0f})"


def table(
    lengths: list[int],
    timings: dict[int, dict[str, Timing]],
    memory: dict[tuple[str, int], Memory | str],
) -> str:
    rows = []
    for i, n in enumerate(lengths):
        t = timings[n]
        prev = timings[lengths[i - 1]] if i > 0 else None
        ratio = n / lengths[i - 1] if i > 0 else 1.0
        msab, imsab = t["msab"], t["imsab"]
        both = msab.median_ms is not None and imsab.median_ms is not None
        rows.append(
            [
                f"{n:,}",
                fmt_ms(msab),
                fmt_growth(msab, prev["msab"] if prev else None, ratio),
                fmt_ms(imsab),
                fmt_growth(imsab, prev["imsab"] if prev else None, ratio),
                f"{msab.median_ms / imsab.median_ms:,.1f}" if both else "–",  # type: ignore[operator]
                fmt_memory(memory.get(("msab", n))),
                fmt_memory(memory.get(("imsab", n))),
                f"{msab.reps} / {imsab.reps}",
            ]
        )
    headers = [
        "list length",
        "MSAB ms",
        "MSAB growth",
        "IMSAB ms",
        "IMSAB growth",
        "MSAB / IMSAB",
        "MSAB peak RSS MB (+fwd/bwd)",
        "IMSAB peak RSS MB (+fwd/bwd)",
        "reps MSAB / IMSAB",
    ]
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    """Parse options, measure, print the tables and write the benchmark section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument(
        "--attention-dropouts",
        type=float,
        nargs="+",
        default=[0.1, 0.0],
        help="one table per value; 0.1 is SetRankConfig's default",
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per config")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per config")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--probe", nargs=2, metavar=("BLOCK", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.probe:
        probe(args.probe[0], int(args.probe[1]), args.attention_dropouts[0])
        return

    lengths = sorted(args.lengths)
    config = SetRankConfig(num_features=NUM_FEATURES)
    memory: dict[tuple[str, int, float], Memory | str] = {}
    if not args.no_memory:  # first, while this process holds little memory of its own
        for dropout in args.attention_dropouts:
            for n in lengths:
                for block in BLOCKS:
                    m = memory[block, n, dropout] = measure_memory(block, n, dropout)
                    print(f"dropout={dropout} {block} L={n}: peak RSS {fmt_memory(m)} MB")
    sections = []
    for dropout in args.attention_dropouts:
        timings = {}
        for n in lengths:
            timings[n] = time_side_by_side(n, dropout, args.reps, args.warmup)
            print(
                f"dropout={dropout} L={n}: "
                + ", ".join(f"{b} {fmt_ms(t)} ms" for b, t in timings[n].items())
            )
        title = f"### attention_dropout = {dropout:g}" + (
            " (SetRankConfig default)" if dropout == config.attention_dropout else ""
        )
        sections.append(
            title
            + "\n\n"
            + table(lengths, timings, {k[:2]: v for k, v in memory.items() if k[2] == dropout})
        )
        print("\n" + sections[-1] + "\n")

    body = (
        f"SetRank, default config (d_model {config.d_model}, {config.num_heads} heads, "
        f"{config.num_blocks} blocks, d_ff {config.d_ff}, IMSAB with {config.num_inducing} "
        f"inducing points, pre-LN), {NUM_FEATURES} features, one list per batch, training mode. "
        "Time = median milliseconds of forward + backward (of the sum of scores) after warm-up, "
        f"at least {args.reps} repetitions (more, up to {MAX_REPS}, for fast configs until they "
        f"fill {FILL_SECONDS:g} s; 3 when one call takes over {SLOW_SECONDS:g} s), MSAB and IMSAB "
        "interleaved in the same process. Growth = time at this length / time at the previous "
        "one (linear cost grows like L, quadratic like L²). Peak RSS = `VmHWM` of a fresh "
        "subprocess doing one warm-up and one measured fwd+bwd; in brackets, the part above the "
        "RSS after building the model and its input.\n\n"
        + "\n\n".join(sections)
        + "\n\nWith attention dropout > 0, PyTorch's CPU `scaled_dot_product_attention` takes its "
        "math path, which materialises the `[B, heads, L, L]` weights (and a dropout mask) for "
        "backward; with dropout 0 (and always in eval/serving) it uses the fused kernel, whose "
        "memory is O(L) even for MSAB — the time is still quadratic."
    )
    command = command_line("attention_scaling", argv)
    if not args.no_write:
        write_section("attention_scaling", "Attention scaling: MSAB vs IMSAB", command, body)


if __name__ == "__main__":
    main()
