"""``ltr rerank-text``'s two formats say the same thing, an empty query is refused in-process
as the server refuses it, and the text commands' help examples name the presets' run folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ltr.cli import build_parser, main
from ltr.errors import InputError
from ltr.text.rerank import TextReranker

from .conftest import doc_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hits_file(synthetic, tmp_path) -> Path:
    path = tmp_path / "hits.jsonl"
    docs = synthetic.docs[:5]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_json_and_table_give_the_same_ranks(trained, synthetic, hits_file, capsys):
    _, model_dir = trained
    docs = synthetic.docs[:5]
    argv = ["rerank-text", "--model", str(model_dir), "--query", "the zorbax",
            "--docs", str(hits_file), "--backend", "torch"]  # fmt: skip
    assert main([*argv, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)["candidates"]
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["rank", "id", "score", "given"]
    ids = [d["doc_id"] for d in docs]
    expected = TextReranker.load(model_dir, backend="torch").rerank(
        "the zorbax", [doc_text(d) for d in docs], ids
    )
    for row, line, hit, rank in zip(printed, table[1:], expected, range(1, 6), strict=True):
        assert set(row) == {"rank", "id", "score", "given"}
        assert row["rank"] == rank and row["id"] == hit.id
        assert ids[row["given"] - 1] == hit.id  # 1-based place in --docs
        cells = line.split()
        assert [int(cells[0]), cells[1], int(cells[3])] == [row["rank"], row["id"], row["given"]]


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_refused_as_the_server_refuses_it(trained, hits_file, query, capsys):
    _, model_dir = trained
    reranker = TextReranker.load(model_dir, backend="torch")
    with pytest.raises(InputError, match="the query text is empty"):
        reranker.rerank(query, ["a text", "another"])
    argv = ["rerank-text", "--model", str(model_dir), "--query", query, "--docs", str(hits_file)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "ltr rerank-text: error: the query text is empty; give the query's words\n"


def test_help_examples_name_the_presets_run_folders():
    written = {
        yaml.safe_load(path.read_text())["output_dir"]
        for path in (REPO / "configs" / "text").glob("*.yaml")
    }
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("finetune", "text-features", "rerank-text"):
        epilog = commands[name].epilog
        runs = re.findall(r"runs/[\w.-]+/model", epilog)
        assert runs, name
        for run in runs:
            assert run.removesuffix("/model") in written, (name, run)


def test_rerank_text_names_a_missing_docs_file(tmp_path, capsys):
    argv = ["rerank-text", "--model", str(tmp_path / "m"), "--query", "q", "--docs"]
    for docs, what in ((tmp_path / "hits.jsonl", "does not exist"), (tmp_path, "is a folder")):
        assert main([*argv, str(docs)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"ltr rerank-text: error: --docs {docs} {what}; give the candidates as a JSON-lines "
            "file (doc_id, optional title, text)\n"
        )
