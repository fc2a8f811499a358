"""The featurizer's document cache: keys, saving and loading, that a cached document is neither
tokenised nor encoded again, that cached and fresh rows agree, and that ``ltr text-features
--no-document-cache`` keeps none."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from ltr.artifact import ArtifactError
from ltr.cli import main
from ltr.data.parquet import read_parquet
from ltr.errors import ConfigError
from ltr.text import featurizer as featurizer_module
from ltr.text.cache import CACHE_FILES, DocumentCache, RecentDocuments, text_key
from ltr.text.collection import load_collection
from ltr.text.config import TextDataConfig
from ltr.text.features import build_text_features
from ltr.text.featurizer import LexicalStats, TextFeaturizer

from .conftest import unit_mean_hidden


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def small_cache(texts: list[str], dim: int = 3, vocabulary: int = 6) -> DocumentCache:
    n = len(texts)
    counts = sparse.csr_matrix(np.arange(n * vocabulary).reshape(n, vocabulary) % 3)
    return DocumentCache.build(texts, counts, np.arange(n) + 1.0, {"enc": unit_rows(n, dim)})


def test_keys_lookup_and_repeated_texts():
    texts = ["alpha", "beta", "alpha", "gamma é"]
    vectors = unit_rows(4, 3)
    counts = sparse.csr_matrix(np.eye(4, 5))
    cache = DocumentCache.build(texts, counts, np.array([1.0, 2, 3, 4]), {"enc": vectors})
    assert len(cache) == 3  # "alpha" kept once: its last row
    rows = cache.lookup(["gamma é", "delta", "alpha", "Alpha", "beta"])
    assert rows[1] == -1 and rows[3] == -1  # unseen, and case matters
    np.testing.assert_array_equal(cache.vectors["enc"][rows[[0, 2, 4]]], vectors[[3, 2, 1]])
    np.testing.assert_array_equal(cache.lengths[rows[[0, 2, 4]]], [4, 3, 2])
    np.testing.assert_array_equal(cache.counts[rows[[0, 2, 4]]].toarray(), np.eye(4, 5)[[3, 2, 1]])
    assert text_key("gamma é") == hashlib.blake2b("gamma é".encode(), digest_size=16).digest()


def test_lookup_agrees_with_a_dictionary_of_the_texts():
    """Binary search over the sorted keys finds every cached text's own row and no other:
    checked against a plain dict from text to the row it was built from."""
    rng = np.random.default_rng(7)
    texts = [f"document {i} " + "x" * int(rng.integers(0, 5)) for i in range(500)]
    vectors = unit_rows(len(texts), 4)
    counts = sparse.csr_matrix(rng.integers(0, 3, size=(len(texts), 9)))
    cache = DocumentCache.build(texts, counts, np.arange(len(texts)) + 1.0, {"enc": vectors})
    built_from = {t: i for i, t in enumerate(texts)}  # a repeated text: its last row
    asked = [*rng.choice(texts, 300), *(f"missing {i}" for i in range(100)), ""]
    rng.shuffle(asked)
    rows = cache.lookup(asked)
    for text, row in zip(asked, rows, strict=True):
        if text not in built_from:
            assert row == -1, text
            continue
        i = built_from[text]
        np.testing.assert_array_equal(cache.vectors["enc"][row], vectors[i])
        assert cache.lengths[row] == i + 1.0
        np.testing.assert_array_equal(cache.counts[row].toarray()[0], counts[i].toarray()[0])
    assert cache.lookup([]).shape == (0,)
    keys = [bytes(k) for k in cache.keys]
    assert keys == sorted(set(keys))  # bytewise order, each key once


def test_saved_as_a_folder_and_loaded_memory_mapped(tmp_path):
    cache = small_cache(["a", "b", "c"])
    path = cache.save(tmp_path / "f" / "documents")
    assert sorted(p.name for p in path.parent.iterdir()) == ["documents"]  # no temporary
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["cache.json", *(f"{n}.npy" for n in CACHE_FILES), "vectors_enc.npy"]
    )
    back = DocumentCache.load(path, vocabulary_size=6, dims={"enc": 3})
    for array in (back.vectors["enc"], back.indices, back.term_counts, back.lengths):
        assert mapped(array)
    np.testing.assert_array_equal(back.vectors["enc"], cache.vectors["enc"])
    np.testing.assert_array_equal(back.counts.toarray(), cache.counts.toarray())
    np.testing.assert_array_equal(back.lengths, cache.lengths)
    np.testing.assert_array_equal(back.lookup(["b", "a", "z"]), cache.lookup(["b", "a", "z"]))
    assert (back.lookup(["b", "a", "z"]) >= 0).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="read-only"):
        back.vectors["enc"][0, 0] = 1.0  # what was loaded cannot change the files
    assert (path / "keys.npy").stat().st_mode & 0o044 == (~umask() & 0o044)
    cache.save(path)  # saved again over itself: replaced whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["documents"]


def test_a_cache_of_ltr_0_1_loads(tmp_path):
    """A featurizer saved by ltr 0.1 holds ``documents.npz``: rows in the order the texts came,
    keys unsorted. It still loads, and each text finds its own row."""
    texts = ["zeta", "alpha", "mu", "beta"]
    vectors = unit_rows(4, 3)
    counts = sparse.csr_matrix(np.array([[1, 0, 2], [0, 3, 0], [1, 1, 1], [0, 0, 4]]))
    keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(4, 16)
    np.savez(
        tmp_path / "documents.npz",
        keys=keys,
        lengths=np.array([3.0, 3, 3, 4]),
        counts_indptr=counts.indptr,
        counts_indices=counts.indices,
        counts_data=counts.data.astype(np.int32),
        vocabulary_size=np.array(3),
        vectors_enc=vectors,
    )
    cache = DocumentCache.load(tmp_path / "documents.npz", 3, {"enc": 3})
    rows = cache.lookup(["mu", "zeta", "beta", "alpha", "omega"])
    assert rows[-1] == -1
    counts_got, lengths, got = cache.rows(rows[:4])
    np.testing.assert_array_equal(got["enc"], vectors[[2, 0, 3, 1]])
    np.testing.assert_array_equal(counts_got.toarray(), counts.toarray()[[2, 0, 3, 1]])
    np.testing.assert_array_equal(lengths, [3.0, 3, 4, 3])


def mapped(array: np.ndarray) -> bool:
    """Whether ``array``'s memory is a memory-mapped file."""
    while isinstance(array, np.ndarray):
        array = array.base
    return isinstance(array, memoryview) and isinstance(array.obj, mmap.mmap)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_broken_caches_are_named(tmp_path):
    good = small_cache(["a", "b"]).save(tmp_path / "good")
    cases = [
        ({"vocabulary_size": 7, "dims": {"enc": 3}}, "counts 6 terms but the featurizer's vo"),
        ({"vocabulary_size": 6, "dims": {"enc": 8}}, "3 dimensions but the encoder gives 8"),
        ({"vocabulary_size": 6, "dims": {"other": 3}}, r"vectors of \['enc'\] but the feat"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ArtifactError, match=match):
            DocumentCache.load(good, **kwargs)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ArtifactError, match=r"junk\.npz: not a readable document cache"):
        DocumentCache.load(tmp_path / "junk.npz", 6, {"enc": 3})
    with pytest.raises(ArtifactError, match="not a readable document cache"):
        DocumentCache.load(tmp_path / "missing", 6, {"enc": 3})

    def damaged(name: str, change) -> Path:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        change(folder)
        return folder

    def save_npy(file: str, array):
        return lambda folder: np.save(folder / file, array)

    keys = np.load(good / "keys.npy")
    broken = {
        "no-meta": lambda folder: (folder / "cache.json").unlink(),
        "truncated": lambda folder: (folder / "counts_indices.npy").write_bytes(b"\x93NUMPY"),
        "unsorted": save_npy("keys.npy", keys[::-1]),
        "short-vectors": save_npy("vectors_enc.npy", np.zeros((1, 3), dtype=np.float32)),
        "offsets": save_npy("counts_indptr.npy", np.array([0, 5, 2])),
        "cut-short": lambda folder: (folder / "vectors_enc.npy").write_bytes(
            (good / "vectors_enc.npy").read_bytes()[:-4]
        ),
    }
    for name, change in broken.items():
        with pytest.raises(ArtifactError, match=rf"{name}: "):
            DocumentCache.load(damaged(name, change), 6, {"enc": 3})
    newer = damaged("newer", lambda f: (f / "cache.json").write_text(json.dumps(
        {**json.loads((good / "cache.json").read_text()), "format_version": 99})))  # fmt: skip
    with pytest.raises(ArtifactError, match="newer ltr; upgrade"):
        DocumentCache.load(newer, 6, {"enc": 3})
    c = small_cache(["a", "b"])
    short = {"enc": c.vectors["enc"][:1]}
    with pytest.raises(ArtifactError, match="2 keys but 'enc' vectors of shape"):
        DocumentCache(c.keys, c.indptr, c.indices, c.term_counts, 6, c.lengths, short)


def test_prefetch_reads_every_mapped_file_once_and_survives_their_removal(tmp_path):
    cache = small_cache(["a", "b", "c"])
    assert cache.prefetch() is None  # in memory: nothing to read
    path = cache.save(tmp_path / "documents")
    back = DocumentCache.load(path, 6, {"enc": 3})
    back.prefetch().join(timeout=30)
    assert back.prefetched_bytes == sum(f.stat().st_size for f in path.glob("*.npy"))
    gone = DocumentCache.load(path, 6, {"enc": 3})
    (path / "vectors_enc.npy").unlink()  # the mapping stays valid; the file is gone
    thread = gone.prefetch()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert 0 < gone.prefetched_bytes < back.prefetched_bytes
    np.testing.assert_array_equal(gone.rows([0])[2]["enc"], back.rows([0])[2]["enc"])


def test_a_damaged_row_is_named_when_it_is_used(tmp_path):
    """Loading reads the keys and offsets only; a row whose vector is not finite, or whose
    term lies outside the vocabulary, is refused when a call uses it, and the other rows
    still serve."""
    cache = small_cache(["a", "b", "c"])
    path = cache.save(tmp_path / "documents")
    rows = cache.lookup(["a", "b", "c"])
    vectors = np.load(path / "vectors_enc.npy")
    vectors[rows[1], 2] = np.nan
    np.save(path / "vectors_enc.npy", vectors)
    back = DocumentCache.load(path, 6, {"enc": 3})
    with pytest.raises(ArtifactError, match=r"documents: cached 'enc' vectors are not finite"):
        back.rows(rows[[0, 1]])
    _, _, fine = back.rows(rows[[0, 2]])
    np.testing.assert_array_equal(fine["enc"], cache.vectors["enc"][rows[[0, 2]]])
    indices = np.load(path / "counts_indices.npy")
    indices[-1] = 6  # the vocabulary has 6 terms: columns 0..5
    np.save(path / "counts_indices.npy", indices)
    back = DocumentCache.load(path, 6, {"enc": 3})
    with pytest.raises(ArtifactError, match="outside the 6 vocabulary terms"):
        back.rows([len(cache) - 1])


# ------------------------------------------------------------------- in the featurizer
@pytest.fixture(scope="module")
def built(tmp_path_factory, synthetic, encoder_dir):
    """The same feature files made with the document cache and without it."""
    root = tmp_path_factory.mktemp("document_cache")
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    encoders = {"pre": str(encoder_dir)}
    cached = build_text_features(config, encoders, root / "cached")
    plain = build_text_features(config, encoders, root / "plain", cache_documents=False)
    return cached, plain


def loaded(files) -> TextFeaturizer:
    return TextFeaturizer.load(files.directory / "featurizer")


def test_the_cache_holds_every_collection_document(built, synthetic):
    cached, plain = built
    featurizer = loaded(cached)
    cache = featurizer.cache
    texts = load_collection(synthetic.root).doc_texts
    rows = cache.lookup(texts)
    assert len(cache) == len(set(texts)) and (rows >= 0).all()
    # counts as scikit-learn counts the vocabulary's terms; every term is in the vocabulary
    counter = CountVectorizer(stop_words="english", vocabulary=featurizer.lexical.terms)
    want = counter.transform(texts).toarray()
    np.testing.assert_array_equal(cache.counts[rows].toarray(), want)
    np.testing.assert_array_equal(cache.lengths[rows], want.sum(axis=1))
    # each cached vector is the document's own encoding (one unpadded row, float64)
    lm = featurizer.encoders["pre"]
    block = lm.model.config.block_size
    for text in texts[:5]:
        ids = lm.tokenizer.encode_batch([text])[0][:block]
        want = unit_mean_hidden(lm.model, ids)
        got = cache.vectors["pre"][cache.lookup([text])[0]]
        np.testing.assert_allclose(got, want, atol=2e-6)
    assert json.loads((cached.directory / "features.json").read_text())["document_cache"] is True
    assert loaded(plain).cache is None
    assert not (plain.directory / "featurizer" / "documents").exists()


def test_a_featurizer_of_ltr_0_1_loads_and_gives_the_same_rows(built, synthetic, tmp_path):
    """ltr 0.1 saved the cache as ``documents.npz`` (featurizer format 1); such a featurizer
    still loads, and its rows are the ones the folder cache gives."""
    cached, _ = built
    old = tmp_path / "featurizer"
    shutil.copytree(cached.directory / "featurizer", old)
    cache = loaded(cached).cache
    shuffled = np.random.default_rng(0).permutation(len(cache))  # 0.1 kept the texts' order
    counts = cache.counts[shuffled]
    np.savez(
        old / "documents.npz",
        keys=np.asarray(cache.keys)[shuffled],
        lengths=np.asarray(cache.lengths)[shuffled],
        counts_indptr=counts.indptr,
        counts_indices=counts.indices,
        counts_data=counts.data.astype(np.int32),
        vocabulary_size=np.array(cache.vocabulary_size),
        vectors_pre=np.asarray(cache.vectors["pre"])[shuffled],
    )
    shutil.rmtree(old / "documents")
    manifest = json.loads((old / "featurizer.json").read_text())
    manifest.update(format_version=1, document_cache="documents.npz")
    (old / "featurizer.json").write_text(json.dumps(manifest))
    docs = load_collection(synthetic.root).doc_texts
    lists = [docs[:6], docs[10:14]]
    queries = ["grelbo tuvask", "zorbax"]
    featurizer = TextFeaturizer.load(old)
    assert featurizer.documents_seen["cache"] == 0
    got = featurizer.list_features(queries, lists)
    assert featurizer.documents_seen["cache"] == 10  # every document from the old cache
    for a, b in zip(got, loaded(cached).list_features(queries, lists), strict=True):
        np.testing.assert_array_equal(a, b)


def test_files_made_with_and_without_the_cache_agree(built):
    cached, plain = built
    for part in ("train", "valid", "test"):
        with_cache, _ = read_parquet(cached.files[part])
        without, _ = read_parquet(plain.files[part])
        np.testing.assert_allclose(with_cache.features, without.features, rtol=1e-5, atol=2e-6)


def test_cached_and_new_documents_mixed_get_the_uncached_rows(built, synthetic):
    """Lists mixing cached documents, unseen ones (with terms the vocabulary lacks, shared with
    the query) and repeats, in any order, get the rows of the featurizer without a cache."""
    cached, plain = built
    with_cache, without = loaded(cached), loaded(plain)
    docs = load_collection(synthetic.root).doc_texts
    new = ["zorbax blorptic quillet", "blorptic alone", "", "grelbo grelbo frumious"]
    lists = [
        [new[0], docs[3], new[1], docs[0], new[2]],
        [docs[5], new[3], docs[5], docs[9], new[0]],
    ]
    queries = ["zorbax blorptic", "frumious grelbo tuvask"]
    for got, want in zip(
        with_cache.list_features(queries, lists), without.list_features(queries, lists), strict=True
    ):
        np.testing.assert_allclose(got[:, :5], want[:, :5], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[:, 5], want[:, 5], atol=2e-6)
    coverage = with_cache.list_features(queries, lists)[0][:, 3]
    np.testing.assert_allclose(coverage[[0, 2]], [1.0, 0.5])  # blorptic counts, as zorbax does


class Counting:
    """Counts the texts a featurizer tokenises for its lexical columns and the token rows its
    encoder embeds."""

    def __init__(self, featurizer: TextFeaturizer) -> None:
        self.analysed, self.embedded = 0, 0
        analyzer = featurizer.lexical.analyzer

        def analyse(text):
            self.analysed += 1
            return analyzer(text)

        featurizer.lexical.__dict__["analyzer"] = analyse
        featurizer.encoders["pre"].model.tok_emb.register_forward_hook(self.embed)

    def embed(self, module, args, output) -> None:
        self.embedded += args[0].shape[0]


def test_cached_documents_are_neither_tokenised_nor_encoded_again(built, synthetic):
    cached, _ = built
    featurizer = loaded(cached)
    texts = load_collection(synthetic.root).doc_texts[:8]
    count = Counting(featurizer)
    featurizer.list_features(["zorbax quillet"], [texts])
    assert (count.analysed, count.embedded) == (1, 1)  # the query only
    featurizer.list_features(["zorbax quillet"], [[*texts[:3], "a text nobody cached"]])
    assert (count.analysed, count.embedded) == (1 + 2, 1 + 2)  # the query and the new text


def test_what_the_cache_holds_is_what_the_columns_use(built, synthetic):
    """Planting another vector and another length for one cached document moves its sim and
    length columns to what they give, and nothing else."""
    cached, _ = built
    featurizer = loaded(cached)
    texts = load_collection(synthetic.root).doc_texts[:4]
    before = featurizer.list_features(["grelbo tuvask"], [texts])[0]
    cache = featurizer.cache
    cache.vectors["pre"], cache.lengths = np.array(cache.vectors["pre"]), np.array(cache.lengths)
    row = cache.lookup([texts[2]])[0]
    planted = unit_rows(1, cache.vectors["pre"].shape[1], seed=3)[0]
    cache.vectors["pre"][row] = planted
    cache.lengths[row] = 41.0
    after = featurizer.list_features(["grelbo tuvask"], [texts])[0]
    lm = featurizer.encoders["pre"]
    query = unit_mean_hidden(lm.model, lm.tokenizer.encode_batch(["grelbo tuvask"])[0])
    assert after[2, 5] == pytest.approx(float(planted @ query), abs=2e-6)
    assert after[2, 4] == pytest.approx(np.log1p(41.0))
    np.testing.assert_array_equal(
        np.delete(after, 2, axis=0)[:, 3:], np.delete(before, 2, 0)[:, 3:]
    )


def test_documents_with_terms_outside_the_vocabulary_are_not_cached():
    featurizer = TextFeaturizer(LexicalStats.fit(["apple banana", "cherry tart"]))
    featurizer.cache_documents(["banana cherry", "banana kiwi", "tart"])
    assert len(featurizer.cache) == 2
    np.testing.assert_array_equal(featurizer.cache.lookup(["banana kiwi", "tart"]), [-1, 1])
    got = featurizer.list_features(["kiwi tart"], [["banana kiwi", "tart", "banana cherry"]])[0]
    np.testing.assert_allclose(got[:, 3], [0.5, 0.5, 0.0])  # kiwi, met in the uncached text


# ------------------------------------------------------------------- recent documents
def kept(recent: RecentDocuments) -> list[bytes]:
    """The keys kept, least recently used first."""
    return list(recent._entries)


def test_recent_documents_drop_the_least_recently_used():
    recent = RecentDocuments(2)
    counts = sparse.csr_matrix(np.array([[2.0, 0, 1], [0, 1, 0], [1, 1, 1]]))
    vectors = {"enc": unit_rows(3, 4)}
    keys = [text_key(t) for t in ("a", "b", "c")]
    recent.put(
        keys[:2],
        counts[:2],
        np.array([3.0, 1.0]),
        [frozenset(), {"x"}],
        {"enc": vectors["enc"][:2]},
    )
    got = recent.get([keys[1], keys[2], keys[0]])
    assert got[1] is None
    np.testing.assert_array_equal(got[0].indices, [1])
    assert (got[0].length, got[0].unknown) == (1.0, {"x"})
    np.testing.assert_array_equal(got[2].indices, [0, 2])
    np.testing.assert_array_equal(got[2].counts, [2.0, 1.0])
    np.testing.assert_array_equal(got[2].vectors["enc"], vectors["enc"][0])
    assert kept(recent) == [keys[1], keys[0]]  # "a" was read last
    recent.put([keys[2]], counts[2:], np.array([3.0]), [frozenset()], {"enc": vectors["enc"][2:]})
    assert kept(recent) == [keys[0], keys[2]] and len(recent) == 2  # "b" dropped
    with pytest.raises(ValueError, match="at least 1"):
        RecentDocuments(0)


def test_recent_documents_are_not_computed_again_and_give_the_same_rows(built, synthetic):
    """Documents outside the cache (some with terms the vocabulary lacks), met a second time in
    another order beside cached ones, are neither tokenised nor encoded again, and every list
    gets the rows of a featurizer that keeps nothing."""
    cached, _ = built
    featurizer, reference = loaded(cached), loaded(cached)
    featurizer.keep_recent(10)
    docs = load_collection(synthetic.root).doc_texts
    new = ["zorbax blorptic quillet", "blorptic alone", "grelbo grelbo frumious", "tuvask study"]
    count = Counting(featurizer)
    first = featurizer.list_features(["zorbax blorptic"], [[new[0], docs[1], new[1], new[2]]])
    assert (count.analysed, count.embedded) == (1 + 3, 1 + 3)
    lists = [[docs[4], new[2], new[3], new[0]], [new[1], docs[2], new[0]]]
    queries = ["frumious grelbo blorptic", "blorptic zorbax"]
    second = featurizer.list_features(queries, lists)
    assert (count.analysed, count.embedded) == (4 + 2 + 1, 4 + 2 + 1)  # two queries, new[3]
    assert featurizer.documents_seen == {"cache": 3, "recent": 4, "computed": 4}
    for got, want in zip(
        [*first, *second],
        [*reference.list_features(["zorbax blorptic"], [[new[0], docs[1], new[1], new[2]]]),
         *reference.list_features(queries, lists)],
        strict=True,
    ):  # fmt: skip
        np.testing.assert_allclose(got[:, :5], want[:, :5], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[:, 5], want[:, 5], atol=2e-6)


def test_a_dropped_recent_document_is_computed_again(built):
    cached, _ = built
    featurizer = loaded(cached).keep_recent(2)
    count = Counting(featurizer)
    new = ["blorptic one", "blorptic two", "blorptic three"]
    featurizer.list_features(["blorptic"], [new])  # keeps the last two
    featurizer.list_features(["blorptic"], [new[1:]])
    assert featurizer.documents_seen["recent"] == 2
    featurizer.list_features(["blorptic"], [new[:1]])
    assert featurizer.documents_seen["computed"] == 4 and count.embedded == 3 + 1 + 1 + 2
    assert loaded(cached).keep_recent(0).recent is None
    with pytest.raises(ConfigError, match=">= 0"):
        loaded(cached).keep_recent(-1)


def test_text_features_cli_without_the_cache(tmp_path, synthetic, encoder_dir):
    out = tmp_path / "feats"
    code = main(
        [
            "text-features",
            "--out", str(out),
            "--encoder", f"pre={encoder_dir}",
            "--no-document-cache",
            "--quiet",
            "--data.collection", str(synthetic.root),
            "--data.candidates", "5",
        ]
    )  # fmt: skip
    assert code == 0
    assert json.loads((out / "features.json").read_text())["document_cache"] is False
    assert TextFeaturizer.load(out / "featurizer").cache is None


# ------------------------------------------------------------------- resuming the encoding
REAL_ENCODE = featurizer_module._encode


class Interrupt(Exception):
    pass


def encode_then_fail(monkeypatch, after: int) -> list[int]:
    """Make the featurizer's encoder pass count the texts of each call and fail on call
    ``after + 1``; return the counts."""
    from ltr.text import featurizer as module

    calls, real = [], REAL_ENCODE

    def encode(lm, texts, progress=None):
        if len(calls) == after:
            raise Interrupt("killed")
        calls.append(len(texts))
        return real(lm, texts, progress)

    monkeypatch.setattr(module, "_encode", encode)
    return calls


def test_an_interrupted_collection_encoding_goes_on_from_its_last_chunk(
    tmp_path, synthetic, encoder_dir, monkeypatch
):
    docs = load_collection(synthetic.root).doc_texts  # 35 documents: chunks of 8, 8, 8, 8, 3
    reference = TextFeaturizer.fit(docs, {"pre": str(encoder_dir)})
    reference.cache_documents(docs)
    partial = tmp_path / "partial"
    featurizer = TextFeaturizer.fit(docs, {"pre": str(encoder_dir)})
    encode_then_fail(monkeypatch, after=2)
    with pytest.raises(Interrupt):
        featurizer.cache_documents(docs, partial_dir=partial, chunk_size=8)
    assert sorted(p.name for p in (partial / "pre").glob("*.npy")) == ["000000.npy", "000001.npy"]
    calls = encode_then_fail(monkeypatch, after=99)
    assert featurizer.cache_documents(docs, partial_dir=partial, chunk_size=8) == 16
    assert calls == [8, 8, 3]  # only the chunks not done
    rows = featurizer.cache.lookup(docs)
    want = reference.cache.vectors["pre"][reference.cache.lookup(docs)]
    np.testing.assert_allclose(featurizer.cache.vectors["pre"][rows], want, atol=2e-6)
    # a broken chunk file is encoded again, the others read back
    (partial / "pre" / "000003.npy").write_bytes(b"not an array")
    calls.clear()
    assert featurizer.cache_documents(docs, partial_dir=partial, chunk_size=8) == 8 + 8 + 8 + 3
    assert calls == [8]


def test_chunks_of_another_encoder_or_other_documents_are_not_used(
    tmp_path, synthetic, encoder_dir, monkeypatch
):
    from ltr.lm.artifact import load_lm, save_lm

    from .conftest import tiny_lm

    docs = load_collection(synthetic.root).doc_texts
    partial = tmp_path / "partial"
    TextFeaturizer.fit(docs, {"pre": str(encoder_dir)}).cache_documents(
        docs, partial_dir=partial, chunk_size=8
    )
    other_lm = load_lm(encoder_dir)
    other = save_lm(
        tiny_lm(other_lm.tokenizer.vocab_size, seed=1), other_lm.tokenizer, tmp_path / "other"
    )
    featurizer = TextFeaturizer.fit(docs, {"pre": str(other)})
    calls = encode_then_fail(monkeypatch, after=99)
    assert featurizer.cache_documents(docs, partial_dir=partial, chunk_size=8) == 0
    assert sum(calls) == len(docs)
    calls.clear()  # the same encoder, but one document fewer
    assert featurizer.cache_documents(docs[1:], partial_dir=partial, chunk_size=8) == 0
    assert sum(calls) == len(docs) - 1


def test_text_features_goes_on_after_a_crash_and_cleans_up(
    tmp_path, synthetic, encoder_dir, monkeypatch, capsys
):
    from ltr.text import featurizer as module

    argv = ["text-features", "--encoder", f"pre={encoder_dir}", "--quiet"]
    argv += ["--data.collection", str(synthetic.root), "--data.candidates", "5"]
    monkeypatch.setattr(module, "ENCODE_CHUNK", 8)
    encode_then_fail(monkeypatch, after=3)
    with pytest.raises(Interrupt):
        main([*argv, "--out", str(tmp_path / "cut")])
    assert len(list((tmp_path / "cut" / ".document-cache-partial" / "pre").glob("*.npy"))) == 3
    calls = encode_then_fail(monkeypatch, after=99)
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resumed: 24 documents' vectors read back")
    assert not (tmp_path / "cut" / ".document-cache-partial").exists()
    assert calls[:2] == [8, 3]  # the chunks left, then the queries and the lists
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert not capsys.readouterr().out.startswith("resumed")
    for part in ("train", "valid", "test"):
        cut, _ = read_parquet(tmp_path / "cut" / f"{part}.parquet")
        whole, _ = read_parquet(tmp_path / "whole" / f"{part}.parquet")
        np.testing.assert_allclose(cut.features, whole.features, rtol=1e-5, atol=2e-6)


def test_a_device_that_is_not_there_is_refused(built, monkeypatch):
    featurizer = loaded(built[0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="no CUDA device"):
        featurizer.to("cuda")
    assert featurizer.to("auto") is featurizer  # auto falls back to the CPU
    assert next(featurizer.encoders["pre"].model.parameters()).device.type == "cpu"
