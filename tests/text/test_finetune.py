"""Fine-tuning a language model into a text encoder: training lists, the loss of a step by hand,
a real run on the synthetic collection (it learns), and the ``ltr finetune`` /
``ltr text-features`` commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from ltr.cli import main
from ltr.errors import ConfigError
from ltr.lm.artifact import load_lm
from ltr.lm.data import MaskedWindows
from ltr.lm.encode import encode_texts
from ltr.lm.masking import MaskedCollator
from ltr.text.bm25 import BM25
from ltr.text.candidates import CandidateLists, retrieve
from ltr.text.collection import load_collection, split_queries
from ltr.text.config import load_finetune_config
from ltr.text.encoder import TokenizedTexts
from ltr.text.featurizer import TextFeaturizer
from ltr.text.finetune import (
    FinetuneDataModule,
    FinetuneModule,
    ListBatchCollator,
    TrainingLists,
    finetune,
)

from .conftest import BLOCK, hand_ndcg, tiny_lm, unit_mean_hidden


# ---------------------------------------------------------------------------- training lists
def lists_of(labels: np.ndarray) -> CandidateLists:
    q, k = labels.shape
    return CandidateLists(
        query_ids=[f"q{i}" for i in range(q)],
        query_texts=[f"text {i}" for i in range(q)],
        doc_index=np.arange(100, 100 + q * k).reshape(q, k),  # distinct per slot
        bm25=np.zeros((q, k)),
        labels=labels.astype(np.float32),
        relevant=(labels > 0).sum(axis=1),
    )


LABELS = np.array(
    [
        [0, 0, 0, 2, 0, 0, 0, 1, 0, 0],  # 2 relevant: all kept
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # none: left out
        [1, 2, 1, 1, 0, 3, 1, 2, 1, 0],  # 8 relevant: capped at list_size - 1 = 4
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # 1 relevant
    ]
)


def test_cli_finetune_print_config_refuses_an_unknown_loss(capsys):
    """The loss is checked when the config is loaded, not once the encoder and the collection
    are; ``--print-config`` prints no such config."""
    assert main(["finetune", "--print-config", "--loss", "listmel"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "unknown loss 'listmel'; valid names" in err
    assert main(["finetune", "--print-config", "--loss", "listnet"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["loss"] == "listnet"


def test_training_lists_put_relevant_candidates_first():
    lists = lists_of(LABELS)
    ds = TrainingLists(lists, list_size=5, seed=0)
    assert len(ds) == 3 and ds.rows.tolist() == [0, 2, 3]
    for index in range(len(ds)):
        row, docs, labels = ds[index]
        assert len(docs) == len(labels) == 5 and len(set(docs.tolist())) == 5
        slot = docs - lists.doc_index[row, 0]  # the candidate slot of each listed document
        assert labels.tolist() == LABELS[row, slot].tolist()
        n_relevant = min(int((LABELS[row] > 0).sum()), 4)
        assert (labels[:n_relevant] > 0).all(), labels
    for index in (0, 2):  # queries 0 and 3: every relevant candidate is kept, then the others
        _, _, labels = ds[index]
        n_relevant = int((labels > 0).sum())
        assert n_relevant == (LABELS[ds.rows[index]] > 0).sum()
        assert (labels[n_relevant:] == 0).all(), labels
    # query 0: both relevant candidates first; query 3: its single one first
    assert sorted(ds[0][1][:2].tolist()) == [103, 107]
    assert ds[2][1][0] == 139


def test_training_lists_cap_the_relevant_candidates_at_list_size_minus_one():
    ds = TrainingLists(lists_of(LABELS), list_size=5, seed=0)
    for epoch in range(10):
        ds.set_epoch(epoch)
        _, _, labels = ds[1]  # query 2: 8 relevant of 10 candidates
        assert (labels > 0).sum() == 4, (epoch, labels)


def test_training_lists_are_seeded_per_epoch_and_item():
    lists = lists_of(LABELS)
    a, b = TrainingLists(lists, 5, seed=3), TrainingLists(lists, 5, seed=3)
    for epoch in (0, 1):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i][1], b[i][1])
            np.testing.assert_array_equal(a[i][1], a[i][1])  # item i does not depend on calls
    a.set_epoch(0)
    first = [a[i][1].copy() for i in range(len(a))]
    a.set_epoch(1)
    assert any(not np.array_equal(first[i], a[i][1]) for i in range(len(a)))
    other = TrainingLists(lists, 5, seed=4)
    assert any(not np.array_equal(first[i], other[i][1]) for i in range(len(a)))


def test_training_lists_shorter_than_list_size_and_errors():
    ds = TrainingLists(lists_of(LABELS), list_size=50, seed=0)
    assert ds.list_size == 10 and len(ds[0][1]) == 10
    with pytest.raises(ConfigError, match="no training query has a relevant document"):
        TrainingLists(lists_of(np.zeros((3, 6))), list_size=4)


# ---------------------------------------------------------------------------- one training step
@pytest.fixture(scope="module")
def collection(synthetic):
    return load_collection(synthetic.root)


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    return load_lm(encoder_dir).tokenizer


def test_collator_pads_queries_and_listed_documents(collection, tokenizer):
    lists = retrieve(collection, BM25(collection.doc_texts), ["q00", "q11"], k=6)
    texts = TokenizedTexts.build(tokenizer, collection, max_doc_tokens=BLOCK, max_query_tokens=9)
    items = [
        (1, lists.doc_index[1, [2, 0]], np.array([1.0, 0.0])),
        (0, lists.doc_index[0, :2], np.array([2.0, 1.0])),
    ]
    batch = ListBatchCollator(texts, lists)(items)
    assert batch["labels"].tolist() == [[1.0, 0.0], [2.0, 1.0]]
    assert batch["docs"].shape[0] == batch["doc_mask"].shape[0] == 4
    queries = [tokenizer.encode(t)[:9] for t in (lists.query_texts[1], lists.query_texts[0])]
    for i, ids in enumerate(queries):
        assert batch["query"][i][batch["query_mask"][i]].tolist() == ids
        assert (batch["query"][i][~batch["query_mask"][i]] == tokenizer.pad_id).all()
    docs = [*lists.doc_index[1, [2, 0]], *lists.doc_index[0, :2]]
    for j, d in enumerate(docs):
        assert batch["docs"][j][batch["doc_mask"][j]].tolist() == tokenizer.encode(
            collection.doc_texts[d]
        )


@pytest.mark.filterwarnings("ignore:You are trying to")  # self.log() outside a Trainer
def test_training_step_loss_is_softmax_cross_entropy_plus_lm_weight_times_lm_loss(
    collection, tokenizer
):
    lists = retrieve(collection, BM25(collection.doc_texts), ["q00", "q11", "q22"], k=8)
    texts = TokenizedTexts.build(
        tokenizer, collection, max_doc_tokens=BLOCK, max_query_tokens=BLOCK
    )
    ds = TrainingLists(lists, list_size=5, seed=0)
    items = [ds[i] for i in range(len(ds))]
    task_batch = ListBatchCollator(texts, lists)(items)
    windows = MaskedWindows(texts.stream(tokenizer.eos_id), BLOCK, num_samples=4, seed=0)
    inputs, targets = MaskedCollator.from_tokenizer(tokenizer, seed=0)(
        [windows[i] for i in range(4)]
    )
    model = tiny_lm(tokenizer.vocab_size, seed=1)  # dropout 0
    temperature, lm_weight = 0.1, 0.3

    # by hand: each text encoded alone (no padding), cosine / temperature, softmax cross-entropy
    # with label-proportional targets, averaged over the lists
    per_list = []
    for row, docs, labels in items:
        q = unit_mean_hidden(model, tokenizer.encode(lists.query_texts[row]))
        d = np.stack(
            [unit_mean_hidden(model, tokenizer.encode(collection.doc_texts[i])) for i in docs]
        )
        s = d @ q / temperature
        log_p = s - s.max() - np.log(np.exp(s - s.max()).sum())
        per_list.append(-(labels / labels.sum() * log_p).sum())
    task = float(np.mean(per_list))
    # by hand: mean -log p(original token) over the masked positions only
    with torch.no_grad():
        log_p = torch.log_softmax(model(inputs).double(), dim=-1)
    chosen = targets != -100
    assert 0 < chosen.sum() < chosen.numel()
    lm = float(-log_p[chosen, targets[chosen]].mean())

    def step(weight: float, batch: dict) -> float:
        config = load_finetune_config(
            None, {"encoder": "unused", "lm_weight": weight, "temperature": temperature}
        )
        module = FinetuneModule(model, config, total_steps=None)
        with torch.no_grad():
            return float(module.training_step(batch, 0))

    both = {"task": task_batch, "lm": (inputs, targets)}
    assert step(lm_weight, both) == pytest.approx(task + lm_weight * lm, rel=1e-5)
    assert step(0.0, {"task": task_batch}) == pytest.approx(task, rel=1e-5)
    assert lm_weight * lm > 1e-3 * task  # the LM term is large enough to be seen


def test_lm_batches_are_drawn_only_with_a_positive_lm_weight(collection, tokenizer):
    lists = retrieve(collection, BM25(collection.doc_texts), ["q00", "q11", "q22"], k=8)
    texts = TokenizedTexts.build(
        tokenizer, collection, max_doc_tokens=BLOCK, max_query_tokens=BLOCK
    )
    config = load_finetune_config(None, {"data.batch_size": 2, "data.lm_batch_size": 3})

    def loaders(with_lm: bool) -> dict:
        return FinetuneDataModule(
            config.data, texts, tokenizer, lists, lists, kind="masked", block_size=BLOCK,
            with_lm=with_lm, seed=0,
        ).train_dataloader()  # fmt: skip

    assert list(loaders(False)) == ["task"]
    with_lm = loaders(True)
    assert sorted(with_lm) == ["lm", "task"]
    assert len(with_lm["lm"]) == len(with_lm["task"]) == 2  # ceil(3 queries / 2) batches
    inputs, targets = next(iter(with_lm["lm"]))
    assert inputs.shape == targets.shape == (3, BLOCK)


# ---------------------------------------------------------------------------- a real run
CANDIDATES = 15


def finetune_overrides(tmp: Path, synthetic, encoder_dir: Path, **extra) -> dict:
    base = {
        "encoder": str(encoder_dir),
        "data.collection": str(synthetic.root),
        "data.candidates": CANDIDATES,
        "data.list_size": 16,
        "data.batch_size": 3,
        "data.lm_batch_size": 4,
        "lm_weight": 0.5,
        "optim.lr": 3e-3,
        "optim.warmup_steps": 0,
        "trainer.max_epochs": 6,
        "trainer.early_stopping_patience": None,
        "trainer.progress_bar": False,
        "trainer.accelerator": "cpu",
        "tracking.tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "tracking.experiment": "text-tests",
        "tracking.registered_model": "text-tests-encoder",
        "output_dir": str(tmp / "out"),
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def run(tmp_path_factory, synthetic, encoder_dir):
    tmp = tmp_path_factory.mktemp("finetune")
    config = load_finetune_config(None, finetune_overrides(tmp, synthetic, encoder_dir))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        return config, finetune(config, verbose=False)


def split_lists(synthetic, part: str) -> CandidateLists:
    collection = load_collection(synthetic.root)
    ids = dict(zip(("train", "valid", "test"), split_queries(collection.query_ids), strict=True))
    return retrieve(collection, BM25(collection.doc_texts), ids[part], k=CANDIDATES)


def hand_encoder_ndcg(model_dir: Path, synthetic, lists: CandidateLists) -> float:
    """NDCG@10 of the cosines of ``encode_texts`` vectors (nothing is cut: texts are short)."""
    loaded = load_lm(model_dir)
    collection = load_collection(synthetic.root)
    docs = encode_texts(loaded.model, loaded.tokenizer, collection.doc_texts)
    queries = encode_texts(loaded.model, loaded.tokenizer, lists.query_texts)
    scores = np.einsum("qd,qkd->qk", queries, docs[lists.doc_index])
    return hand_ndcg(scores, lists.labels)


def test_finetuned_model_directory_and_reported_metrics(run, synthetic, encoder_dir):
    _, result = run
    assert result.queries == {"train": 9, "valid": 3, "test": 3}
    loaded = load_lm(result.artifact_dir)
    training = loaded.training
    assert training["finetuned_from"] == str(encoder_dir)
    assert training["collection"] == str(synthetic.root)
    assert training["lm_weight"] == 0.5 and training["loss"] == "softmax"
    assert training["best_epoch"] == result.best_epoch
    assert training["metrics"] == pytest.approx(result.metrics)
    assert training["run_id"] == result.run_id
    original = load_lm(encoder_dir).model.state_dict()
    tuned = loaded.model.state_dict()
    assert not all(torch.equal(original[k], tuned[k]) for k in original)  # it trained
    for part in ("valid", "test"):
        lists = split_lists(synthetic, part)
        m = result.metrics
        assert m[f"{part}/finetuned_ndcg@10"] == pytest.approx(
            hand_encoder_ndcg(result.artifact_dir, synthetic, lists), abs=1e-6
        )
        assert m[f"{part}/pretrained_ndcg@10"] == pytest.approx(
            hand_encoder_ndcg(encoder_dir, synthetic, lists), abs=1e-6
        )
        assert m[f"{part}/bm25_ndcg@10"] == pytest.approx(
            hand_ndcg(lists.bm25, lists.labels), abs=1e-12
        )
        # share of each query's relevant documents among its candidates, by hand
        shares = [
            (lists.labels[i] > 0).sum() / sum(1 for y in synthetic.qrels[q].values() if y > 0)
            for i, q in enumerate(lists.query_ids)
        ]
        assert m[f"{part}/recall"] == pytest.approx(np.mean(shares))
    assert result.metrics["valid/recall"] < 1  # some relevant documents are not candidates


def test_fine_tuning_learns_the_synthetic_task(run):
    _, result = run
    m = result.metrics
    assert m["valid/finetuned_ndcg@10"] > m["valid/pretrained_ndcg@10"] + 0.15
    assert m["test/finetuned_ndcg@10"] > m["test/pretrained_ndcg@10"] + 0.1


def test_run_is_tracked_and_the_best_epoch_is_saved(run):
    config, result = run
    client = MlflowClient(tracking_uri=config.tracking.tracking_uri)
    mlflow_run = client.get_run(result.run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["lm_weight"] == "0.5"
    final = mlflow_run.data.metrics["final/test/finetuned_ndcg_at_10"]
    assert final == pytest.approx(result.metrics["test/finetuned_ndcg@10"])
    history = client.get_metric_history(result.run_id, "val/ndcg_at_10")
    values = [h.value for h in sorted(history, key=lambda h: h.step)]
    assert len(values) == result.epochs == 6
    assert result.best_epoch == int(np.argmax(values))
    # the saved weights are the best epoch's: they reproduce its validation NDCG
    assert result.metrics["valid/finetuned_ndcg@10"] == pytest.approx(max(values), abs=1e-5)
    lm_losses = client.get_metric_history(result.run_id, "train/lm_loss")
    assert len(lm_losses) == 6 and all(np.isfinite(h.value) for h in lm_losses)
    assert result.alias_uri == "models:/text-tests-encoder@candidate"


# ---------------------------------------------------------------------------- the commands


def test_cli_finetune_then_text_features(config_file, tmp_path, capsys):
    assert main(["finetune", "--config", str(config_file), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned on 9 training queries (3 validation, 3 test)" in out
    assert "best epoch 0 of 1" in out
    assert f"model directory: {tmp_path / 'ft' / 'model'}" in out
    metrics = load_lm(tmp_path / "ft" / "model").training["metrics"]
    for part in ("valid", "test"):
        row = next(line for line in out.splitlines() if line.startswith(f"  {part} "))
        numbers = row.split()[1:]
        assert numbers == [
            f"{metrics[f'{part}/bm25_ndcg@10']:.4f}",
            f"{metrics[f'{part}/pretrained_ndcg@10']:.4f}",
            f"{metrics[f'{part}/finetuned_ndcg@10']:.4f}",
            f"({metrics[f'{part}/recall']:.3f})",
        ]
    argv = ["text-features", "--config", str(config_file), "--out", str(tmp_path / "feat")]
    assert main([*argv, "--encoder", f"ft={tmp_path / 'ft' / 'model'}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "features: bm25, bm25_log_rank, tfidf_cosine, query_coverage, doc_log_length, sim_ft"
    )
    for line, (part, rows) in zip(
        lines[1:4], [("train", 54), ("valid", 18), ("test", 18)], strict=True
    ):
        assert line.split()[:3] == [part, str(rows), "rows"]
        assert line.endswith(str(tmp_path / "feat" / f"{part}.parquet"))
    names = lines[0][len("features: ") :].split(", ")
    for line, name in zip(lines[4:10], names, strict=True):  # each column's NDCG@10 alone
        assert line.startswith(f"  NDCG@10 of {name} alone: train ")
    featurizer = tmp_path / "feat" / "featurizer"
    assert lines[10].startswith(f"featurizer: {featurizer} ") and len(lines) == 11
    assert TextFeaturizer.load(featurizer).feature_names == lines[0][len("features: ") :].split(
        ", "
    )


def test_cli_errors_are_one_line(tmp_path, synthetic, capsys):
    root = str(synthetic.root)
    assert main(["finetune", "--data.collection", root, "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltr finetune: error: no encoder given") and err.count("\n") == 1
    missing = str(tmp_path / "nowhere")
    argv = ["finetune", "--data.collection", root, "--encoder", missing]
    assert main([*argv, "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltr finetune: error: no model at") and err.count("\n") == 1
    argv = ["text-features", "--data.collection", root, "--out", str(tmp_path / "f")]
    assert main([*argv, "--encoder", f"ft={missing}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltr text-features: error: no model at") and err.count("\n") == 1
    assert main([*argv, "--encoder", "ft"]) == 2
    err = capsys.readouterr().err
    assert "NAME=MODEL" in err and err.count("\n") == 1


def test_cli_print_config_needs_no_encoder(capsys):
    assert (
        main(["finetune", "--print-config", "--data.candidates", "7", "--lm_weight", "0.25"]) == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["encoder"] == ""
    assert printed["data"]["candidates"] == 7 and printed["lm_weight"] == 0.25


def uninterrupted_run(tmp_path: Path, synthetic, encoder_dir: Path, monkeypatch, **extra):
    """``(result, options, cut_dir)``: a whole run in ``tmp_path/whole`` and the options of the
    same run in ``tmp_path/cut``, to be interrupted there (the cwd is left at ``whole``)."""
    whole_dir, cut_dir = tmp_path / "whole", tmp_path / "cut"
    whole_dir.mkdir()
    cut_dir.mkdir()
    monkeypatch.chdir(whole_dir)
    whole = finetune(
        load_finetune_config(None, finetune_overrides(whole_dir, synthetic, encoder_dir, **extra)),
        verbose=False,
    )
    return whole, finetune_overrides(cut_dir, synthetic, encoder_dir, **extra), cut_dir


@pytest.mark.slow
def test_finetune_resumes_after_sigkill_to_the_uninterrupted_weights(
    tmp_path, synthetic, encoder_dir, monkeypatch
):
    """As ``ltr train --resume`` (tests/train/test_train_resume.py): killed after its first
    epoch, resumed, it ends with the weights, metrics and MLflow run of an uninterrupted run
    (each epoch's lists and LM windows are drawn from the seed and the epoch)."""
    from tests.train.test_train_resume import assert_same_weights, run_and_kill

    whole, options, cut_dir = uninterrupted_run(
        tmp_path, synthetic, encoder_dir, monkeypatch, **{"trainer.max_epochs": 4}
    )
    run_id = run_and_kill("finetune", options, cut_dir / "out", cwd=cut_dir)
    monkeypatch.chdir(cut_dir)
    resumed = finetune(load_finetune_config(None, options), verbose=False, resume=True)
    assert resumed.epochs == whole.epochs == 4
    assert resumed.run_id == run_id and resumed.best_epoch == whole.best_epoch
    assert resumed.metrics == whole.metrics
    assert_same_weights(
        torch.load(resumed.artifact_dir / "model.pt"), torch.load(whole.artifact_dir / "model.pt")
    )
    client = MlflowClient(tracking_uri=options["tracking.tracking_uri"])
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(run_id, "val/ndcg_at_10")}
    assert steps == set(range(4))


# ---------------------------------------------------------------------------- shipped presets
REPO = Path(__file__).resolve().parents[2]


def test_text_presets_load_and_name_the_shared_data() -> None:
    """configs/text/ holds the Cranfield presets. Cranfield is not bundled (see docs/TEXT.md):
    its paths must point into the project's shared data folder, never at a file that a fresh
    clone would be expected to have."""
    from ltr.lm.config import load_pretrain_config

    pretrain_config = load_pretrain_config(REPO / "configs" / "text" / "bert_cranfield.yaml")
    finetune_config = load_finetune_config(REPO / "configs" / "text" / "cranfield.yaml")
    assert pretrain_config.model.kind == "masked"
    paths = [*pretrain_config.data.files, finetune_config.data.collection]
    assert all(Path(p).parts[:3] == ("..", "shared", "data") for p in paths), paths
    assert finetune_config.encoder == str(Path(pretrain_config.output_dir) / "model")
