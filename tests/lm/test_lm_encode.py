"""encode_texts: mean-pooled hidden states, independent of batching and padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltr.errors import ConfigError
from ltr.lm.encode import encode_texts
from ltr.lm.model import LMConfig, TransformerLM
from ltr.lm.tokenizer import train_tokenizer

TEXTS = ["to be", "or not to be, that is the question", "a", "whether 'tis nobler in the mind"]


@pytest.fixture(scope="module", params=["learned", "rotary"])
def model_and_tokenizer(request):
    tok = train_tokenizer(["".join(TEXTS) + "xyz"], kind="char")
    torch.manual_seed(0)
    config = LMConfig(
        kind="masked", vocab_size=tok.vocab_size, block_size=16, d_model=16, num_heads=2,
        num_layers=2, d_ff=32, dropout=0.0, positional=request.param,
    )  # fmt: skip
    return TransformerLM(config).eval(), tok


def by_hand(model, tok, text: str) -> np.ndarray:
    ids = torch.tensor([tok.encode(text)[:16]])
    with torch.no_grad():
        h = model.hidden(ids)[0]  # (T, d), no padding at all
    v = h.mean(0).numpy()
    return v / np.linalg.norm(v)


def test_vectors_are_the_normalised_mean_of_each_texts_hidden_states(model_and_tokenizer):
    model, tok = model_and_tokenizer
    got = encode_texts(model, tok, TEXTS, batch_size=3)  # padded batches of mixed lengths
    expected = np.stack([by_hand(model, tok, t) for t in TEXTS])
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # the second text is longer than block_size (16): only its first 16 tokens count
    assert len(tok.encode(TEXTS[1])) > 16


def test_unnormalised_vectors_and_errors(model_and_tokenizer):
    model, tok = model_and_tokenizer
    raw = encode_texts(model, tok, TEXTS[:2], normalize=False, batch_size=1)
    unit = encode_texts(model, tok, TEXTS[:2])
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=2e-6)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    with pytest.raises(ConfigError, match="text 1 is empty"):
        encode_texts(model, tok, ["to be", ""])
    with pytest.raises(ConfigError, match="batch_size"):
        encode_texts(model, tok, TEXTS, batch_size=0)
