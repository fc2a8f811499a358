"""``ltr generate``: continue a prompt with a causal LM, or fill ``[MASK]`` with a masked LM."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write text with a pretrained causal LM, or fill [MASK] slots with a masked LM",
        description="Load a model written by `ltr pretrain` (a directory or runs:/<id>/lm). A "
        "causal model continues the prompt; a masked model lists the most likely tokens for "
        "each [MASK] in it.",
        epilog='example: ltr generate --model runs/pretrain/model --prompt "ROMEO:" '
        "--max-new-tokens 200",
    )
    p.add_argument("--model", required=True, help="model directory or MLflow URI")
    p.add_argument("--prompt", default="", help="text to continue (causal) or to fill (masked)")
    p.add_argument(
        "--max-new-tokens", type=int, default=None, metavar="N", help="(causal; default 200)"
    )
    p.add_argument(
        "--temperature", type=float, default=None, help="0 = greedy (causal; default 0.8)"
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="sample among the K likeliest tokens (default 50); a masked model lists K (default 5)",
    )
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold (causal)")
    p.add_argument("--num-samples", type=int, default=None, metavar="N", help="(causal; default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device",
        default="cpu",
        help="where the model runs: cpu (default), cuda, cuda:N or auto; a seed gives the same "
        "samples again on the same kind of device, not across kinds",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="re-run the whole window for every token instead of caching keys and values "
        "(same text, slower; for checking the cache)",
    )
    p.set_defaults(func=run)


MASK = "[MASK]"


def encode_prompt(tok, prompt: str, *, masks: bool) -> list[int]:
    """Token ids of ``prompt``; with ``masks``, each literal ``[MASK]`` becomes the mask token
    (the tokenizer itself reads special-token text as plain characters).

    With a byte-level BPE tokenizer one space before a ``[MASK]`` goes into the mask, as RoBERTa's
    ``<mask>`` takes it: words carry their leading space there (``' will'``), so the masked
    tokens of training stood for a word and its space, and a lone space token before the mask
    is something the model never saw. A character tokenizer keeps the space: there a mask is one
    character.
    """
    if not masks:
        return tok.encode(prompt)
    parts = prompt.split(MASK)
    ids: list[int] = []
    for i, part in enumerate(parts):
        if i:
            ids.append(tok.mask_id)
        if tok.kind == "bpe" and i < len(parts) - 1 and part.endswith(" "):
            part = part[:-1]
        ids.extend(tok.encode(part))
    return ids


CAUSAL_ONLY = ("max_new_tokens", "temperature", "top_p", "num_samples", "no_cache")
"""Options that shape sampling, which a masked model does not do."""


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from ltr.errors import ConfigError
    from ltr.lm.artifact import load_lm
    from ltr.lm.generate import fill_mask, generate, start_tokens
    from ltr.predictor import resolve_device

    if args.num_samples is not None and args.num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {args.num_samples}")
    device = resolve_device(args.device)
    loaded = load_lm(args.model)
    model, tok = loaded.model.to(device), loaded.tokenizer
    sampling = [
        f"--{name.replace('_', '-')}"
        for name in CAUSAL_ONLY
        if getattr(args, name) is not None and getattr(args, name) is not False
    ]
    if not model.is_causal and sampling:
        raise ConfigError(
            f"{', '.join(sampling)}: {args.model} is a masked model, which lists the likeliest "
            "tokens for each [MASK] (--top-k of them) and samples nothing; these options are for "
            "causal models"
        )
    ids = encode_prompt(tok, args.prompt, masks=not model.is_causal)
    if tok.unk_id in ids:
        text = args.prompt.replace(MASK, "")
        unknown = sorted({c for c in text if tok.encode(c) == [tok.unk_id]})
        print(
            f"warning: the tokenizer does not know {', '.join(map(repr, unknown))}; "
            "they are read as [UNK] and left out of the output",
            file=sys.stderr,
        )
    if not model.is_causal:
        top_k = 5 if args.top_k is None else args.top_k
        found, probs = fill_mask(
            model, torch.tensor(ids, device=device), tok.mask_id, top_k=top_k,
            exclude=tok.special_ids,
        )  # fmt: skip
        for n, (row, p) in enumerate(zip(found.tolist(), probs.tolist(), strict=True), 1):
            options = ", ".join(f"{tok.decode([i])!r} {q:.3f}" for i, q in zip(row, p, strict=True))
            print(f"[MASK] {n}: {options}")
        return 0
    start, skip = start_tokens(tok, ids)
    samples = args.num_samples or 1
    prompt = torch.tensor([start] * samples, device=device)  # (N, T0)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = generate(
        model,
        prompt,
        200 if args.max_new_tokens is None else args.max_new_tokens,
        temperature=0.8 if args.temperature is None else args.temperature,
        top_k=50 if args.top_k is None else args.top_k,
        top_p=args.top_p,
        generator=generator,
        use_cache=not args.no_cache,
    )
    for n, row in enumerate(out.tolist()):
        if samples > 1:
            print(f"--- sample {n + 1}")
        print(tok.decode(row[skip:]))
    return 0
