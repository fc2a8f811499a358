"""The featurizer's document-vector cache: keys, saving and loading, that a cached document is
not encoded again, that cached and freshly encoded vectors give the same rows, and that
``ltr text-features --no-vector-cache`` keeps none."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from ltr.artifact import ArtifactError
from ltr.cli import main
from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.text.collection import load_collection
from ltr.text.config import TextDataConfig
from ltr.text.features import build_text_features
from ltr.text.featurizer import TextFeaturizer
from ltr.text.vectors import VectorCache, text_key

from .conftest import unit_mean_hidden


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_keys_lookup_and_repeated_texts():
    texts = ["alpha", "beta", "alpha", "gamma é"]
    vectors = unit_rows(4, 3)
    cache = VectorCache.build(texts, vectors)
    assert len(cache) == 3  # "alpha" kept once: its last row
    rows = cache.lookup(["gamma é", "delta", "alpha", "Alpha", "beta"])
    assert rows[1] == -1 and rows[3] == -1  # unseen, and case matters
    np.testing.assert_array_equal(cache.vectors[rows[[0, 2, 4]]], vectors[[3, 2, 1]])
    assert text_key("gamma é") == hashlib.blake2b("gamma é".encode(), digest_size=16).digest()


def test_saved_and_loaded_whole(tmp_path):
    cache = VectorCache.build(["a", "b"], unit_rows(2, 5))
    path = cache.save(tmp_path / "v" / "enc.npz")
    back = VectorCache.load(path, dim=5)
    np.testing.assert_array_equal(back.vectors, cache.vectors)
    np.testing.assert_array_equal(back.lookup(["b", "a", "c"]), [1, 0, -1])
    assert sorted(p.name for p in path.parent.iterdir()) == ["enc.npz"]  # no temporary left


def test_broken_caches_are_named(tmp_path):
    good = VectorCache.build(["a", "b"], unit_rows(2, 5)).save(tmp_path / "good.npz")
    with pytest.raises(ArtifactError, match="5 dimensions but the encoder gives 8"):
        VectorCache.load(good, dim=8)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ArtifactError, match=r"junk\.npz: not a readable vector cache"):
        VectorCache.load(tmp_path / "junk.npz", dim=5)
    with pytest.raises(ArtifactError, match="not a readable vector cache"):
        VectorCache.load(tmp_path / "missing.npz", dim=5)
    np.savez(tmp_path / "short.npz", keys=np.zeros((3, 16), np.uint8), vectors=unit_rows(2, 5))
    with pytest.raises(ArtifactError, match="3 cache keys but vectors of shape"):
        VectorCache.load(tmp_path / "short.npz", dim=5)
    bad = unit_rows(2, 5)
    bad[1, 0] = np.nan
    VectorCache.build(["a", "b"], bad).save(tmp_path / "nan.npz")
    with pytest.raises(ArtifactError, match="finite float32"):
        VectorCache.load(tmp_path / "nan.npz", dim=5)


# ------------------------------------------------------------------- in the featurizer
@pytest.fixture(scope="module")
def built(tmp_path_factory, synthetic, encoder_dir):
    """The same feature files made with the vector cache and without it."""
    root = tmp_path_factory.mktemp("vector_cache")
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    encoders = {"pre": str(encoder_dir)}
    cached = build_text_features(config, encoders, root / "cached")
    plain = build_text_features(config, encoders, root / "plain", cache_vectors=False)
    return cached, plain


def test_the_cache_holds_every_collection_document(built, synthetic):
    cached, plain = built
    featurizer = TextFeaturizer.load(cached.directory / "featurizer")
    cache = featurizer.vector_caches["pre"]
    texts = load_collection(synthetic.root).doc_texts
    assert len(cache) == len(set(texts)) and (cache.lookup(texts) >= 0).all()
    # each cached vector is the document's own encoding (one unpadded row, float64)
    lm = featurizer.encoders["pre"]
    block = lm.model.config.block_size
    for text in texts[:5]:
        ids = lm.tokenizer.encode_batch([text])[0][:block]
        want = unit_mean_hidden(lm.model, ids)
        np.testing.assert_allclose(cache.vectors[cache.lookup([text])[0]], want, atol=2e-6)
    manifest = json.loads((cached.directory / "features.json").read_text())
    assert manifest["vector_cache"] is True
    assert TextFeaturizer.load(plain.directory / "featurizer").vector_caches == {}
    assert not (plain.directory / "featurizer" / "vectors").exists()


def test_files_made_with_and_without_the_cache_agree(built):
    cached, plain = built
    for part in ("train", "valid", "test"):
        with_cache, _ = read_parquet(cached.files[part])
        without, _ = read_parquet(plain.files[part])
        np.testing.assert_allclose(with_cache.features, without.features, rtol=1e-5, atol=2e-6)


class RowCounter:
    """Counts the token rows an encoder's passes embed."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = model.tok_emb.register_forward_hook(self.hook)

    def hook(self, module, args, output) -> None:
        self.rows += args[0].shape[0]


def test_cached_documents_are_not_encoded_again(built, synthetic):
    cached, _ = built
    featurizer = TextFeaturizer.load(cached.directory / "featurizer")
    texts = load_collection(synthetic.root).doc_texts[:8]
    counter = RowCounter(featurizer.encoders["pre"].model)
    featurizer.list_features(["zorbax quillet"], [texts])
    assert counter.rows == 1  # the query only
    featurizer.list_features(["zorbax quillet"], [[*texts[:3], "a text nobody cached"]])
    assert counter.rows == 1 + 2  # the query and the new text


def test_a_cached_vector_is_what_the_sim_column_uses(built, synthetic):
    """Planting another vector for one document moves its similarity to the cosine with that
    vector, and only its own."""
    cached, _ = built
    featurizer = TextFeaturizer.load(cached.directory / "featurizer")
    texts = load_collection(synthetic.root).doc_texts[:4]
    before = featurizer.list_features(["grelbo tuvask"], [texts])[0]
    cache = featurizer.vector_caches["pre"]
    planted = unit_rows(1, cache.dim, seed=3)[0]
    cache.vectors[cache.lookup([texts[2]])[0]] = planted
    after = featurizer.list_features(["grelbo tuvask"], [texts])[0]
    lm = featurizer.encoders["pre"]
    query = unit_mean_hidden(lm.model, lm.tokenizer.encode_batch(["grelbo tuvask"])[0])
    assert after[2, 5] == pytest.approx(float(planted @ query), abs=2e-6)
    np.testing.assert_array_equal(np.delete(after, 2, axis=0), np.delete(before, 2, axis=0))
    np.testing.assert_array_equal(after[:, :5], before[:, :5])  # lexical columns untouched


def test_text_features_cli_without_the_cache(tmp_path, synthetic, encoder_dir, capsys):
    out = tmp_path / "feats"
    code = main(
        [
            "text-features",
            "--out", str(out),
            "--encoder", f"pre={encoder_dir}",
            "--no-vector-cache",
            "--quiet",
            "--data.collection", str(synthetic.root),
            "--data.candidates", "5",
        ]
    )  # fmt: skip
    assert code == 0
    assert json.loads((out / "features.json").read_text())["vector_cache"] is False
    assert TextFeaturizer.load(out / "featurizer").vector_caches == {}


def test_a_device_that_is_not_there_is_refused(built, monkeypatch):
    cached, _ = built
    featurizer = TextFeaturizer.load(cached.directory / "featurizer")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="no CUDA device"):
        featurizer.to("cuda")
    assert featurizer.to("auto") is featurizer  # auto falls back to the CPU
    assert next(featurizer.encoders["pre"].model.parameters()).device.type == "cpu"
