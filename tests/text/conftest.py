"""A small synthetic text collection with learnable relevance, and a tiny untrained encoder.

The collection has ``TOPICS`` topics, each with its own made-up words (rare: no other topic uses
them). Every document belongs to one topic and holds some of its words among common filler
words; every query names two words of its topic. A query's relevant documents are exactly the
documents of its topic: grade 2 when the document shares a word with the query, else 1. So both
BM25 and a text encoder that learns "same topic words = similar" can rank well, while an
untrained encoder, whose mean-pooled vectors are dominated by filler words and positions, cannot.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ltr.lm.artifact import save_lm
from ltr.lm.model import LMConfig, TransformerLM
from ltr.lm.tokenizer import train_tokenizer

TOPIC_WORDS = [
    ["zorbax", "quillet", "mepron", "dravik", "solunt", "farnel"],
    ["grelbo", "tuvask", "nimrel", "pexalt", "corvine", "halvet"],
    ["brontil", "vesmar", "klopid", "yarnex", "duprel", "wistan"],
    ["fendrix", "lumaro", "sketral", "obrin", "tazzle", "merquin"],
    ["paxton", "gildrew", "ruvelo", "snipra", "columbex", "jastor"],
]
FILLER = [
    "study", "report", "data", "model", "analysis", "effect", "measure", "value", "method",
    "system", "result", "sample", "process", "level", "rate", "test", "field", "change",
    "group", "case",
]  # fmt: skip
DOCS_PER_TOPIC = 7
QUERIES_PER_TOPIC = 3


@dataclass(frozen=True)
class SyntheticCollection:
    """Where the collection was written and what it holds (for expected values in tests)."""

    root: Path
    docs: list[dict]
    queries: list[dict]
    qrels: dict[str, dict[str, int]]
    topic_of_doc: dict[str, int]
    topic_of_query: dict[str, int]


def write_jsonl(path: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.name.endswith(".xz"):
        path.write_bytes(lzma.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")


def make_synthetic_collection(root: Path, seed: int = 0) -> SyntheticCollection:
    rng = np.random.default_rng(seed)
    docs, queries, topic_of_doc, topic_of_query = [], [], {}, {}
    doc_words: dict[str, set[str]] = {}
    for t, words in enumerate(TOPIC_WORDS):
        for j in range(DOCS_PER_TOPIC):
            doc_id = f"d{t}{j}"
            topical = [str(w) for w in rng.choice(words, size=3, replace=False)]
            filler = [str(w) for w in rng.choice(FILLER, size=5, replace=False)]
            docs.append(
                {
                    "doc_id": doc_id,
                    "title": f"{topical[0].capitalize()} {filler[0]}",
                    "text": f"The {filler[1]} of {topical[1]} and {filler[2]} {filler[3]} "
                    f"{topical[2]} in the {filler[4]}.",
                }
            )
            topic_of_doc[doc_id] = t
            doc_words[doc_id] = set(topical)
        for j in range(QUERIES_PER_TOPIC):
            query_id = f"q{t}{j}"
            pair = [str(w) for w in rng.choice(words, size=2, replace=False)]
            queries.append({"query_id": query_id, "text": f"the {pair[0]} {pair[1]}"})
            topic_of_query[query_id] = t
    order = rng.permutation(len(docs))  # topics interleaved in the file
    docs = [docs[i] for i in order]
    qrels: dict[str, dict[str, int]] = {}
    for query in queries:
        q, words = query["query_id"], set(query["text"].split()[1:])
        qrels[q] = {
            doc["doc_id"]: 2 if doc_words[doc["doc_id"]] & words else 1
            for doc in docs
            if topic_of_doc[doc["doc_id"]] == topic_of_query[q]
        }
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "docs.jsonl.xz", docs)
    write_jsonl(root / "queries.jsonl", queries)
    rows = "".join(f"{q}\t{d}\t{rel}\n" for q, judged in qrels.items() for d, rel in judged.items())
    (root / "qrels.tsv").write_text("query_id\tdoc_id\trelevance\n" + rows, encoding="utf-8")
    return SyntheticCollection(root, docs, queries, qrels, topic_of_doc, topic_of_query)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> SyntheticCollection:
    """The synthetic collection (35 documents, 15 queries), written once per session."""
    return make_synthetic_collection(tmp_path_factory.mktemp("synthetic") / "synthetic")


def doc_text(doc: dict) -> str:
    """A document's text as the collection joins it: title, newline, text."""
    return f"{doc['title']}\n{doc['text']}"


BLOCK = 32


def tiny_lm(vocab_size: int, seed: int = 0, **overrides) -> TransformerLM:
    torch.manual_seed(seed)
    options = {
        "kind": "masked", "vocab_size": vocab_size, "block_size": BLOCK, "d_model": 16,
        "num_heads": 2, "num_layers": 1, "d_ff": 32, "dropout": 0.0,
    }  # fmt: skip
    options.update(overrides)
    return TransformerLM(LMConfig(**options)).eval()


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory, synthetic) -> Path:
    """A tiny untrained masked LM with a byte-level BPE tokenizer trained on the collection."""
    texts = [doc_text(d) for d in synthetic.docs] + [q["text"] for q in synthetic.queries]
    tokenizer = train_tokenizer(["\n".join(texts)], kind="bpe", vocab_size=400)
    model = tiny_lm(tokenizer.vocab_size)
    return save_lm(model, tokenizer, tmp_path_factory.mktemp("encoder") / "model")


@pytest.fixture
def config_file(tmp_path, synthetic, encoder_dir) -> Path:
    """A one-epoch ``ltr finetune`` config of the synthetic collection, writing to
    ``tmp_path/ft``."""
    config = {
        "encoder": str(encoder_dir),
        "data": {"collection": str(synthetic.root), "candidates": 6, "list_size": 4},
        "lm_weight": 0,
        "optim": {"lr": 1e-3, "warmup_steps": 0},
        "trainer": {"max_epochs": 1, "progress_bar": False, "accelerator": "cpu"},
        "tracking": {"enabled": False},
        "output_dir": str(tmp_path / "ft"),
    }
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_setrank(files: dict, output: Path, epochs: int, **options) -> Path:
    """The default SetRank trained for ``epochs`` on text feature files (``ltr train`` bundles
    their featurizer into the artifact), ``options`` overriding its config (dotted keys);
    returns the model directory."""
    from ltr.train.config import load_train_config
    from ltr.train.run import train

    overrides = {
        "data.train": [str(files["train"])],
        "data.valid": [str(files["valid"])],
        "data.test": [str(files["test"])],
        "data.letor_root": None,
        "data.batch_size": 4,
        "trainer.max_epochs": epochs,
        "trainer.progress_bar": False,
        "trainer.accelerator": "cpu",
        "tracking.enabled": False,
        "output_dir": str(output),
        **options,
    }
    repo = Path(__file__).resolve().parents[2]
    config = load_train_config(repo / "configs" / "setrank_imsab.yaml", overrides)
    return train(config, verbose=False).artifact_dir


def offline_test_lists(test_file: Path, model_dir: Path, synthetic: SyntheticCollection):
    """``(query text, ids, texts, offline scores)`` of each list of a written test file, in its
    order, the scores from ``ltr evaluate``'s offline path (which reads a context model's
    vectors from the file)."""
    from ltr.data.dataset import load_dataset
    from ltr.data.list_inputs import resolve
    from ltr.data.parquet import read_parquet
    from ltr.inference import score_lists
    from ltr.predictor import load_predictor
    from ltr.text.collection import load_collection

    loaded = load_predictor(str(model_dir))
    manifest = loaded.loaded.manifest
    inputs = resolve(
        manifest.model_config, trained_context_columns=manifest.training.get("context_columns")
    )
    offline = score_lists(loaded.model, load_dataset(test_file, context=inputs))
    chunk, _ = read_parquet(test_file)
    collection = load_collection(synthetic.root)
    text_of = dict(zip(collection.doc_ids, collection.doc_texts, strict=True))
    query_of = {q["query_id"]: q["text"] for q in synthetic.queries}
    qids = np.asarray([str(q) for q in chunk.qids])
    for q in dict.fromkeys(qids):
        rows = np.flatnonzero(qids == q)
        ids = [str(d) for d in chunk.doc_ids[rows]]
        yield query_of[q], ids, [text_of[d] for d in ids], offline[rows]


def check_served_as_offline(tmp: Path, model_dir: Path, test_file: Path, synthetic):
    """Start a real ``ltr serve`` on ``model_dir`` (ONNX Runtime, exported on load), send every
    list of ``test_file`` as ``RerankText`` and check each candidate gets the offline path's
    score; returns the served model's spec (``GetModelInfo``)."""
    from ltr.serve.client import RerankerClient
    from tests.serve._helpers import ServerProcess

    process = ServerProcess(tmp, model_dir)
    server = process.wait_ready()
    try:
        with RerankerClient(server.target) as client:
            for query, ids, texts, offline in offline_test_lists(test_file, model_dir, synthetic):
                ranked = client.rerank_text(query, texts, ids)
                want = dict(zip(ids, offline.tolist(), strict=True))
                np.testing.assert_allclose(
                    ranked.scores, [want[i] for i in ranked.ids], rtol=1e-5, atol=1e-5
                )
            return client.model_info().spec
    finally:
        assert process.stop() == 0, process.log()


@pytest.fixture(scope="session")
def trained(tmp_path_factory, synthetic, encoder_dir):
    """Feature files with one encoder, and the default SetRank trained on them for 2 epochs
    (``ltr train`` bundles the files' featurizer into the artifact)."""
    from ltr.text.config import TextDataConfig
    from ltr.text.features import build_text_features

    work = tmp_path_factory.mktemp("text_rerank")
    config = TextDataConfig(collection=str(synthetic.root), candidates=10)
    files = build_text_features(config, {"pre": str(encoder_dir)}, work / "features")
    return files, train_setrank(files.files, work / "setrank", epochs=2)


def unit_mean_hidden(model: TransformerLM, ids: list[int]) -> np.ndarray:
    """The unit mean of the final hidden states of one unpadded row of token ids (float64)."""
    with torch.no_grad():
        h = model.hidden(torch.tensor([ids]))[0]  # (T, d)
    v = h.mean(0).numpy().astype(np.float64)
    return v / np.linalg.norm(v)


def hand_ndcg(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k written out: gain 2^y - 1, discount 1 / log2(rank + 1), the ideal order from
    the list's own labels, a list with no relevant item counts 1; equal scores put the lower
    label first (pessimistic)."""
    values = []
    for s, y in zip(np.asarray(scores), np.asarray(labels, dtype=np.float64), strict=True):
        order = np.lexsort((y, -s))  # by descending score, then ascending label
        gains = 2.0 ** y[order][:k] - 1
        ideal = 2.0 ** np.sort(y)[::-1][:k] - 1
        discounts = 1 / np.log2(np.arange(2, len(gains) + 2))
        idcg = float(ideal @ discounts)
        values.append(1.0 if idcg == 0 else float(gains @ discounts) / idcg)
    return float(np.mean(values))
