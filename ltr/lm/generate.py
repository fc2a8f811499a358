"""Decoding: sampling text from a causal LM and filling ``[MASK]`` slots with a masked LM."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.lm.model import TransformerLM


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick the next token of each row from its logits.

    ``temperature == 0`` is greedy (argmax). Otherwise the logits are divided by
    ``temperature``, cut to the ``top_k`` most likely tokens and then to the smallest set whose
    probability reaches ``top_p`` (nucleus sampling; the most likely token is always kept), and
    one token is drawn from the renormalised distribution.

    Args:
        logits: ``[B, V]``.

    Returns:
        ``[B]`` int64 token ids.
    """
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = logits / temperature  # (B, V)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)  # (B, V)
        before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above
        drop_sorted = before >= top_p  # (B, V); the first token always has before == 0
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # (B, V)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


def start_tokens(tokenizer, prompt_ids: list[int]) -> tuple[list[int], int]:
    """The ids to start generating from, and how many of them to leave out of the output.

    A prompt starts from itself. With no prompt the model starts from a line break (text begins
    after one more often than anywhere else), or from ``[EOS]`` if the tokenizer has no line
    break; that start is not part of the output.
    """
    if prompt_ids:
        return list(prompt_ids), 0
    newline = tokenizer.encode("\n")
    start = newline if newline and tokenizer.unk_id not in newline else [tokenizer.eos_id]
    return start, len(start)


@torch.no_grad()
def generate(
    model: TransformerLM,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue ``prompt`` by ``max_new_tokens`` tokens, one at a time.

    Each step gives the model the last ``block_size`` tokens and samples the next one with
    :func:`sample_next`. Rows that have produced ``eos_id`` keep emitting it.

    With ``use_cache`` (the default) the prompt runs once and each later step runs only the
    token just drawn, attending to the keys and values cached from the steps before
    (:meth:`TransformerLM.new_cache`). That holds while the text fits in ``block_size``: past it
    the window slides, every token moves to a new position, and each step re-runs the whole
    window as it does without the cache. The logits are the same either way (to float rounding).

    Args:
        model: a causal :class:`TransformerLM`.
        prompt: ``[B, T0]`` int64 token ids, ``T0 >= 1``.

    Returns:
        ``[B, T0 + max_new_tokens]`` (the prompt followed by the new tokens).
    """
    if not model.is_causal:
        raise ConfigError("generate needs a causal model; a masked model fills [MASK] slots")
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ConfigError("the prompt must hold at least one token")
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    was_training = model.training
    model.eval()
    ids = prompt
    block = model.config.block_size
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)  # (B,)
    cache = model.new_cache(prompt.shape[0]) if use_cache and prompt.shape[1] <= block else None
    try:
        for _ in range(max_new_tokens):
            if cache is not None and ids.shape[1] > block:
                cache = None  # the window slides from here on: positions change every step
            if cache is None:
                last = model.hidden(ids[:, -block:])[:, -1]  # (B, d)
            else:
                last = model.hidden(ids[:, cache.length :], cache=cache)[:, -1]  # (B, d)
            logits = model.head(last)  # (B, V)
            nxt = sample_next(
                logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )  # (B,)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            ids = torch.cat([ids, nxt[:, None]], dim=1)  # (B, T+1)
            if eos_id is not None and bool(done.all()):
                pad = torch.full(
                    (ids.shape[0], prompt.shape[1] + max_new_tokens - ids.shape[1]),
                    eos_id,
                    dtype=ids.dtype,
                    device=ids.device,
                )
                return torch.cat([ids, pad], dim=1)
        return ids
    finally:
        model.train(was_training)


@torch.no_grad()
def fill_mask(
    model: TransformerLM,
    ids: Tensor,
    mask_id: int,
    *,
    top_k: int = 5,
    exclude: Sequence[int] = (),
) -> tuple[Tensor, Tensor]:
    """The ``top_k`` most likely tokens, with probabilities, for every ``[MASK]`` of one sequence.

    Args:
        model: a masked :class:`TransformerLM`.
        ids: ``[T]`` int64 token ids containing ``mask_id`` at least once.
        exclude: token ids never proposed (the tokenizer's special tokens, which are not text);
            the probabilities of the others are the model's, not renormalised.

    Returns:
        ``(token_ids, probabilities)``, both ``[M, top_k]`` for the ``M`` masks in order, each row
        most likely first.
    """
    if model.is_causal:
        raise ConfigError("fill_mask needs a masked model; a causal model generates text")
    positions = (ids == mask_id).nonzero().flatten()  # (M,)
    if positions.numel() == 0:
        raise ConfigError("the text holds no [MASK] token to fill")
    was_training = model.training
    model.eval()
    try:
        probs = torch.softmax(model(ids[None, :])[0, positions].float(), dim=-1)  # (M, V)
    finally:
        model.train(was_training)
    if exclude:
        probs[:, list(exclude)] = -1.0  # below every probability: never among the top
    top = torch.topk(probs, min(top_k, probs.shape[-1] - len(set(exclude))), dim=-1)
    return top.indices, top.values  # (M, k), (M, k)
