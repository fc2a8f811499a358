"""TransformerLM against explicit GPT/BERT forward passes; masks, loss, pooling, decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltr.errors import ConfigError
from ltr.lm.generate import fill_mask, generate, sample_next
from ltr.lm.model import LMConfig, TransformerLM, mean_pool, token_cross_entropy

V, D, HEADS, LAYERS, D_FF, BLOCK = 23, 16, 2, 2, 24, 12


def small_lm(kind: str = "causal", **overrides) -> TransformerLM:
    torch.manual_seed(0)
    config = dict(
        kind=kind, vocab_size=V, block_size=BLOCK, d_model=D, num_heads=HEADS,
        num_layers=LAYERS, d_ff=D_FF, dropout=0.0,
    )  # fmt: skip
    config.update(overrides)
    model = TransformerLM(LMConfig(**config)).double().eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or skipped one shows
        for name, p in model.named_parameters():
            if "norm" in name or name.startswith("ln_f"):
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.3, 0.3)
            elif name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
    return model


def turn(x: torch.Tensor) -> torch.Tensor:
    """RoFormer's rotary positions by complex multiplication: pair i of a head at position p
    times exp(j p / 10000^(2i/hs)). ``x`` is ``[B, T, hs]``."""
    t, hs = x.shape[1], x.shape[2]
    theta = 10000.0 ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)  # (hs/2,)
    angle = torch.arange(t, dtype=torch.float64)[:, None] * theta  # (T, hs/2)
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], hs // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).reshape(x.shape)


def reference_logits(model: TransformerLM, ids: torch.Tensor, causal: bool) -> torch.Tensor:
    """GPT-2 / BERT pre-LN forward written out from the formulas, reading the model's weights
    (learned positions added to the embeddings, or rotary ones turning queries and keys)."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    t = ids.shape[1]
    rotary = model.config.positional == "rotary"
    x = sd["tok_emb.weight"][ids]  # (B, T, d)
    if not rotary:
        x = x + sd["pos_emb.embedding.weight"][:t]
    hs = D // HEADS
    for i in range(LAYERS):
        p = f"blocks.{i}.mab."

        def lin(z, name, p=p):
            return z @ sd[p + name + ".weight"].T + sd[p + name + ".bias"]

        h = F.layer_norm(x, (D,), sd[p + "norm_attn.weight"], sd[p + "norm_attn.bias"])
        q, k, v = (lin(h, f"attn.{n}_proj") for n in "qkv")  # (B, T, d) each
        out = torch.zeros_like(x)
        for head in range(HEADS):
            s = slice(head * hs, (head + 1) * hs)
            qh, kh = (turn(z[..., s]) if rotary else z[..., s] for z in (q, k))  # (B, T, hs)
            scores = qh @ kh.transpose(1, 2) / math.sqrt(hs)  # (B, T, T)
            if causal:
                scores = scores.masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf"))
            out[..., s] = scores.softmax(-1) @ v[..., s]
        x = x + lin(out, "attn.out_proj")
        h = F.layer_norm(x, (D,), sd[p + "norm_ffn.weight"], sd[p + "norm_ffn.bias"])
        x = x + lin(F.gelu(lin(h, "ffn.fc")), "ffn.proj")
    x = F.layer_norm(x, (D,), sd["ln_f.weight"], sd["ln_f.bias"])
    return x @ sd["tok_emb.weight"].T  # tied head


@pytest.mark.parametrize("positional", ["learned", "rotary"])
@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_forward_matches_explicit_formulas(kind: str, positional: str) -> None:
    model = small_lm(kind, positional=positional)
    ids = torch.randint(0, V, (3, 9), generator=torch.Generator().manual_seed(1))
    expected = reference_logits(model, ids, causal=kind == "causal")
    torch.testing.assert_close(model(ids), expected, rtol=1e-9, atol=1e-9)


def test_rotary_model_has_no_position_parameters_and_still_sees_order() -> None:
    learned, rotary = small_lm("masked"), small_lm("masked", positional="rotary")
    assert learned.num_parameters() - rotary.num_parameters() == BLOCK * D
    assert not any("pos" in name for name in rotary.state_dict())
    ids = torch.randint(0, V, (1, 8), generator=torch.Generator().manual_seed(5))
    swapped = ids[:, [1, 0, *range(2, 8)]]  # the first two tokens trade places
    # without positions, self-attention is equivariant: swapping inputs would swap outputs
    assert not torch.allclose(rotary(swapped)[:, [1, 0]], rotary(ids)[:, :2], atol=1e-6)


def test_causal_logits_ignore_later_tokens_and_masked_ones_do_not() -> None:
    ids = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(2))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % V
    causal, masked = small_lm("causal"), small_lm("masked")
    torch.testing.assert_close(causal(changed)[:, :6], causal(ids)[:, :6], rtol=0, atol=0)
    assert not torch.allclose(causal(changed)[:, 6:], causal(ids)[:, 6:])
    assert not torch.allclose(masked(changed)[:, :6], masked(ids)[:, :6], atol=1e-6)


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_padding_after_the_text_changes_nothing(kind: str) -> None:
    model = small_lm(kind)
    ids = torch.randint(0, V, (1, 7), generator=torch.Generator().manual_seed(3))
    padded = torch.cat([ids, torch.tensor([[5, 9, 1]])], dim=1)  # three padded slots
    mask = torch.tensor([[True] * 7 + [False] * 3])
    torch.testing.assert_close(model(padded, mask)[:, :7], model(ids), rtol=1e-10, atol=1e-10)
    other = padded.clone()
    other[:, 7:] = torch.tensor([[0, 2, 4]])
    torch.testing.assert_close(model(other, mask)[:, :7], model(ids), rtol=1e-10, atol=1e-10)


def test_sinusoidal_positions_and_untied_head() -> None:
    model = small_lm("causal", positional="sinusoidal", tie_weights=False)
    assert model.head.weight is not model.tok_emb.weight
    ids = torch.tensor([[1, 2, 3]])
    pe = model.pos_emb.table[:3].double()  # (3, d)
    x = model.tok_emb.weight[ids] + pe
    h = model.blocks[1](model.blocks[0](x, is_causal=True), is_causal=True)
    torch.testing.assert_close(model(ids), model.head(model.ln_f(h)))


def test_parameter_count_by_formula() -> None:
    model = small_lm("causal")
    per_layer = 4 * (D * D + D) + 2 * 2 * D + (D * D_FF + D_FF) + (D_FF * D + D)
    expected = V * D + BLOCK * D + LAYERS * per_layer + 2 * D  # tied head adds nothing
    assert model.num_parameters() == expected
    untied = small_lm("causal", tie_weights=False)
    assert untied.num_parameters() == expected + V * D


def test_token_cross_entropy_by_hand_ignores_minus_100() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 5))
    labels = np.array([[1, -100, 4], [0, 2, -100]])
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = [
        log_softmax[b, t, labels[b, t]] for b in range(2) for t in range(3) if labels[b, t] >= 0
    ]
    expected = -np.mean(picked)
    got = token_cross_entropy(torch.tensor(logits), torch.tensor(labels))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_mean_pool_averages_real_tokens_only() -> None:
    hidden = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    expected = torch.stack([(hidden[0, 0] + hidden[0, 1]) / 2, hidden[1, 0]])
    torch.testing.assert_close(mean_pool(hidden, mask), expected)
    torch.testing.assert_close(mean_pool(hidden, None), hidden.mean(1))


def test_config_errors_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="kind"):
        LMConfig(kind="seq2seq")
    with pytest.raises(ConfigError, match=r"positional must be one of .*'rotary'.*, got 'alibi'"):
        LMConfig(positional="alibi")
    with pytest.raises(ConfigError, match=r"head size .* must be even, got 5"):
        TransformerLM(LMConfig(vocab_size=10, d_model=10, num_heads=2, positional="rotary"))
    with pytest.raises(ConfigError, match="divisible"):
        TransformerLM(LMConfig(vocab_size=10, d_model=10, num_heads=3))
    with pytest.raises(ConfigError, match="vocab_size"):
        TransformerLM(LMConfig())
    with pytest.raises(ConfigError, match="block_size"):
        small_lm()(torch.zeros(1, BLOCK + 1, dtype=torch.long))


# ---- decoding -------------------------------------------------------------------------------


def test_sample_next_greedy_and_top_k_one_are_argmax() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    assert sample_next(logits, temperature=0).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert sample_next(logits, temperature=5.0, top_k=1, generator=g).tolist() == [1, 0]


def _frequencies(draws: torch.Tensor, n: int) -> np.ndarray:
    return np.bincount(draws.numpy(), minlength=n) / len(draws)


def _within(freq: np.ndarray, p: np.ndarray, n: int) -> None:
    """Each empirical frequency within 5 binomial standard errors of its probability."""
    tolerance = 5 * np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.all(np.abs(freq - p) <= tolerance), (freq, p)


def test_sampling_follows_temperature_top_k_and_top_p() -> None:
    n = 20000
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = torch.tensor(np.log(probs)).repeat(n, 1)  # (n, 4)
    g = torch.Generator().manual_seed(1)
    # temperature 2: p^(1/2), renormalised
    tempered = np.sqrt(probs) / np.sqrt(probs).sum()
    _within(_frequencies(sample_next(logits, temperature=2.0, generator=g), 4), tempered, n)
    # top-k 2: the two likeliest, renormalised
    top2 = np.array([0.5, 0.3, 0, 0]) / 0.8
    _within(_frequencies(sample_next(logits, top_k=2, generator=g), 4), top2, n)
    # top-p 0.7: 0.5 alone is short of 0.7, 0.5 + 0.3 reaches it; 0.15 and 0.05 are cut
    _within(_frequencies(sample_next(logits, top_p=0.7, generator=g), 4), top2, n)
    # top-p 0.9: 0.5 + 0.3 = 0.8 < 0.9, so 0.15 joins
    top3 = np.array([0.5, 0.3, 0.15, 0]) / 0.95
    _within(_frequencies(sample_next(logits, top_p=0.9, generator=g), 4), top3, n)


def test_sampling_errors() -> None:
    logits = torch.zeros(1, 3)
    for kwargs in ({"temperature": -1.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ConfigError):
            sample_next(logits, **kwargs)


def cycle_model(kind: str, period: list[int], steps: int = 300) -> TransformerLM:
    """A small model trained on one token cycle repeated (it must learn the cycle)."""
    torch.manual_seed(0)
    config = LMConfig(
        kind=kind, vocab_size=V, block_size=BLOCK, d_model=32, num_heads=2, num_layers=2,
        d_ff=64, dropout=0.0,
    )  # fmt: skip
    model = TransformerLM(config)
    stream = torch.tensor(period * 40)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        starts = torch.randint(0, len(stream) - BLOCK - 1, (16,), generator=g)
        x = torch.stack([stream[s : s + BLOCK] for s in starts.tolist()])  # (16, BLOCK)
        if kind == "causal":
            y = torch.stack([stream[s + 1 : s + BLOCK + 1] for s in starts.tolist()])
        else:
            chosen = torch.rand(x.shape, generator=g) < 0.2
            y = torch.where(chosen, x, torch.full_like(x, -100))
            x = torch.where(chosen, torch.full_like(x, 2), x)  # 2 plays [MASK]
        loss = token_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


PERIOD = [7, 3, 11, 19, 4, 15, 8]


def test_greedy_generation_continues_a_learned_cycle() -> None:
    model = cycle_model("causal", PERIOD)
    prompt = torch.tensor([PERIOD[2:6]])  # starts mid-cycle
    out = generate(model, prompt, 20, temperature=0)
    cycle = PERIOD * 5
    expected = cycle[2 : 2 + 24]
    assert out[0].tolist() == expected  # runs past block_size: the window slides


def test_generation_stops_rows_at_eos_and_keeps_the_shape() -> None:
    model = cycle_model("causal", PERIOD)
    prompt = torch.tensor([[7, 3], [15, 8]])
    out = generate(model, prompt, 6, temperature=0, eos_id=19)
    # row 0: 7 3 -> 11 19 | then eos forever; row 1: 15 8 -> 7 3 11 19 | eos
    assert out.tolist() == [[7, 3, 11, 19, 19, 19, 19, 19], [15, 8, 7, 3, 11, 19, 19, 19]]


def test_fill_mask_recovers_a_hidden_cycle_token() -> None:
    model = cycle_model("masked", PERIOD, steps=1000)
    ids = torch.tensor((PERIOD * 2)[:BLOCK])
    ids[5] = 2  # hide PERIOD[5] = 15
    ids[9] = 2  # hide PERIOD[2] = 11
    tokens, probs = fill_mask(model, ids, mask_id=2, top_k=3)
    assert tokens[:, 0].tolist() == [15, 11]
    assert probs.shape == (2, 3) and torch.all(probs[:, :-1] >= probs[:, 1:])
    assert float(probs[:, 0].min()) > 0.5


def test_fill_mask_leaves_out_the_tokens_it_is_told_to() -> None:
    """The special tokens are never proposed; the others keep the model's probabilities."""
    model = cycle_model("masked", PERIOD, steps=50)
    ids = torch.tensor((PERIOD * 2)[:BLOCK])
    ids[5] = 2
    every, every_p = fill_mask(model, ids, mask_id=2, top_k=V)
    some, some_p = fill_mask(model, ids, mask_id=2, top_k=V, exclude=range(6))
    kept = [(t, p) for t, p in zip(every[0].tolist(), every_p[0].tolist(), strict=True) if t >= 6]
    assert list(zip(some[0].tolist(), some_p[0].tolist(), strict=True)) == kept


def test_decoding_refuses_the_wrong_kind_of_model() -> None:
    with pytest.raises(ConfigError, match="causal"):
        generate(small_lm("masked"), torch.tensor([[1]]), 3)
    with pytest.raises(ConfigError, match="masked"):
        fill_mask(small_lm("causal"), torch.tensor([1, 2]), mask_id=2)
    with pytest.raises(ConfigError, match="no \\[MASK\\]"):
        fill_mask(small_lm("masked"), torch.tensor([1, 3]), mask_id=2)


@pytest.mark.parametrize("positional", ["learned", "rotary"])
def test_cached_pieces_give_the_reference_logits(positional: str) -> None:
    """Fed in pieces of 4, 1, 3, 1 and 3 tokens through a cache, the logits at every position
    are the causal formula's over the whole sequence (positions and the causal mask offset by
    what is cached)."""
    model = small_lm("causal", positional=positional)
    ids = torch.randint(0, V, (2, BLOCK), generator=torch.Generator().manual_seed(4))
    cache = model.new_cache(2)
    pieces, start = [], 0
    for size in (4, 1, 3, 1, 3):
        pieces.append(model(ids[:, start : start + size], cache=cache))
        start += size
        assert cache.length == start
    expected = reference_logits(model, ids, causal=True)
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, rtol=0, atol=1e-10)


def test_the_cache_refuses_what_it_cannot_hold() -> None:
    model = small_lm("causal")
    cache = model.new_cache(1)
    model(torch.ones(1, BLOCK - 1, dtype=torch.long), cache=cache)
    with pytest.raises(
        ConfigError, match=f"{BLOCK - 1} cached and 2 new tokens do not fit .*\\({BLOCK}\\)"
    ):
        model(torch.ones(1, 2, dtype=torch.long), cache=cache)
    assert cache.length == BLOCK - 1  # the refused call stored nothing
    with pytest.raises(ConfigError, match="no padding mask"):
        model(torch.ones(1, 1, dtype=torch.long), torch.ones(1, 1, dtype=torch.bool), cache=cache)
    with pytest.raises(ConfigError, match="causal model"):
        small_lm("masked").new_cache(1)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generation_with_the_cache_matches_generation_without(temperature: float) -> None:
    """Same tokens with and without the cache, past block_size too; with it, each step within
    the block runs one token, and past it the whole sliding window."""
    model = small_lm("causal")
    prompt = torch.tensor([[3, 5, 7], [1, 2, 4]])
    new = 2 * BLOCK
    runs = []
    for use_cache in (False, True):
        lengths: list[int] = []
        hidden = model.hidden
        model.hidden = lambda ids, *a, _h=hidden, _seen=lengths, **k: (
            _seen.append(ids.shape[1]) or _h(ids, *a, **k)
        )
        try:
            g = torch.Generator().manual_seed(9)
            out = generate(model, prompt, new, temperature=temperature, generator=g,
                           use_cache=use_cache)  # fmt: skip
        finally:
            del model.hidden
        runs.append((out, lengths))
    (plain, plain_lengths), (cached, cached_lengths) = runs
    assert torch.equal(plain, cached)
    assert plain_lengths == [min(3 + i, BLOCK) for i in range(new)]
    within = BLOCK - 3  # steps whose text still fits in the block after the prompt
    assert cached_lengths == [3] + [1] * within + [BLOCK] * (new - within - 1)
