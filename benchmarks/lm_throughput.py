"""Language-model speed on this machine: training tokens a second, and generation.

The model is the one ``configs/lm/gpt_shakespeare.yaml`` trains (4 layers of 128, vocabulary
1,024; dropout as in the preset). Training steps (forward, backward, AdamW step) of the causal and
the masked kind, at two sequence lengths with the same tokens a batch, are timed side by side in
one process: interleaved repetitions, median after warm-up, ratios to the causal model at 128.
Greedy generation is timed for one and for eight sequences at once, with the key/value cache and
without it (every new token re-running the last ``block_size`` tokens), for text that fits in
``block_size`` and for text that runs past it; the two are interleaved and their ratio reported.
Writes its section of ``docs/BENCHMARKS.md``.

On a GPU (``--device cuda``, optionally ``--precision bf16-mixed`` as ``ltr pretrain
--trainer.precision bf16-mixed`` trains, and ``--tokens-per-batch`` to fill the card) the section
is written beside the CPU one.

Run: ``python -m benchmarks.lm_throughput [--reps 7] [--no-write]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks._report import command_line, markdown_table, write_section
from ltr.lm.config import load_pretrain_config
from ltr.lm.generate import generate
from ltr.lm.model import TransformerLM, token_cross_entropy
from ltr.lm.tokenizer import SPECIAL_TOKENS

PRESET = Path(__file__).resolve().parent.parent / "configs" / "lm" / "gpt_shakespeare.yaml"
VOCAB = 1024
TOKENS_PER_BATCH = 32 * 128
BLOCKS = (128, 256)  # the same tokens a batch at both sequence lengths


def build(kind: str, block: int, device: str) -> tuple[TransformerLM, torch.optim.Optimizer]:
    config = load_pretrain_config(PRESET).model
    config = replace(config, kind=kind, block_size=block, vocab_size=VOCAB)
    torch.manual_seed(0)
    model = TransformerLM(config).train().to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def batch(kind: str, block: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens; a masked batch predicts 15 % of them (the others labelled -100)."""
    g = torch.Generator().manual_seed(block)
    ids = torch.randint(len(SPECIAL_TOKENS), VOCAB, (size, block + 1), generator=g)
    if kind == "causal":
        x, y = ids[:, :-1], ids[:, 1:]
    else:
        x = ids[:, :-1]
        chosen = torch.rand(x.shape, generator=g) < 0.15
        x, y = torch.where(chosen, 2, x), torch.where(chosen, x, -100)
    return x.to(device), y.to(device)


def sync(device: str) -> None:
    """Wait for the GPU's queued work, so that a host clock reads the time it took."""
    if device != "cpu":
        torch.cuda.synchronize(device)


def train_step(model, optimizer, x, y, *, device: str = "cpu", bf16: bool = False) -> float:
    sync(device)
    start = time.perf_counter()
    with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
        loss = token_cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    sync(device)
    return time.perf_counter() - start


GENERATION = ((1, 127), (8, 127), (1, 300), (8, 300))  # (sequences, new tokens each)


def generation_table(model: TransformerLM, reps: int, device: str = "cpu") -> str:
    """Seconds and tokens a second of greedy generation with the cache and without it."""
    spent: dict[tuple[int, int, bool], list[float]] = {}
    for sequences, _ in GENERATION:
        generate(model, torch.full((sequences, 1), 5, device=device), 8, temperature=0)  # warm-up
    for _ in range(reps):
        for sequences, new in GENERATION:
            for use_cache in (False, True):
                prompt = torch.full((sequences, 1), 5, device=device)
                sync(device)
                start = time.perf_counter()
                generate(model, prompt, new, temperature=0, use_cache=use_cache)
                sync(device)
                spent.setdefault((sequences, new, use_cache), []).append(
                    time.perf_counter() - start
                )
    rows = []
    for sequences, new in GENERATION:
        plain = statistics.median(spent[(sequences, new, False)])
        cached = statistics.median(spent[(sequences, new, True)])
        rows.append(
            [
                sequences,
                new,
                f"{plain:.2f}",
                f"{sequences * new / plain:,.0f}",
                f"{cached:.2f}",
                f"{sequences * new / cached:,.0f}",
                f"{plain / cached:.2f}",
            ]
        )
    return markdown_table(
        [
            "sequences",
            "new tokens each",
            "s, no cache",
            "tokens / s, no cache",
            "s, cache",
            "tokens / s, cache",
            "speed-up",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="timed steps per configuration")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--precision", choices=["32", "bf16-mixed"], default="32", help="training steps' precision"
    )
    parser.add_argument(
        "--tokens-per-batch", type=int, default=TOKENS_PER_BATCH, help="tokens in a training batch"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    device, bf16, tokens = args.device, args.precision == "bf16-mixed", args.tokens_per_batch
    if device != "cpu":
        from ltr.predictor import resolve_device

        device = str(resolve_device(device))

    cases = {}
    for kind in ("causal", "masked"):
        for block in BLOCKS:
            model, opt = build(kind, block, device)
            cases[(kind, block)] = (model, opt, *batch(kind, block, tokens // block, device))
    times: dict[tuple[str, int], list[float]] = {key: [] for key in cases}
    for case in cases.values():  # warm-up
        train_step(*case, device=device, bf16=bf16)
    for _ in range(args.reps):  # interleaved: every configuration sees the same machine noise
        for key, case in cases.items():
            times[key].append(train_step(*case, device=device, bf16=bf16))
    base = statistics.median(times[("causal", 128)])
    rows = []
    for (kind, block), values in times.items():
        median = statistics.median(values)
        rows.append(
            [
                kind,
                block,
                tokens // block,
                f"{median * 1000:.1f}",
                f"{tokens / median:,.0f}",
                f"{median / base:.2f}",
            ]
        )
    params = cases[("causal", 128)][0].num_parameters()
    train_table = markdown_table(
        ["kind", "block_size", "batch", "ms / step (median)", "tokens / s", "time vs causal 128"],
        rows,
    )

    model = cases[("causal", 128)][0].eval()
    gen_table = generation_table(model, reps=3, device=device)
    where = f"on `{device}`, precision {args.precision}" if device != "cpu" else "on the CPU"
    body = (
        f"The `configs/lm/gpt_shakespeare.yaml` model ({params:,} parameters, vocabulary "
        f"{VOCAB}), random tokens, {where}; {args.reps} interleaved timed steps per row after one "
        f"warm-up step each, {tokens:,} tokens a batch.\n\n"
        "Training steps (forward, backward, AdamW):\n\n"
        f"{train_table}\n\n"
        "A masked model computes the same attention and feed-forward work as a causal one; its "
        "loss covers only the 15 % masked tokens. Twice the sequence length at the same tokens "
        "a batch doubles the attention-score work per token; the last column shows what that "
        "costs at this width, where the projections and feed-forward layers dominate.\n\n"
        "Greedy generation from a one-token prompt, with the key/value cache and without it "
        "(median of 3 interleaved runs each). 127 new tokens fill `block_size` 128; past it the "
        "window slides, and each step re-runs the whole window with or without the cache:\n\n"
        f"{gen_table}"
    )
    print(body)
    command = command_line("lm_throughput", argv)
    if not args.no_write:  # a GPU run keeps its own section beside the CPU one
        gpu = device != "cpu"
        name, title = "lm_throughput", "Language-model throughput"
        if gpu:
            name, title = f"{name}_cuda", f"{title} (GPU)"
        write_section(name, title, command, body)


if __name__ == "__main__":
    main()
