"""Text files to token streams, stream splits, causal/masked windows and BERT masking.

Windows are checked on the stream ``arange(N)``, where a window's start is its first value, so
every expected slice is recomputed by hand. Masking statistics use binomial tolerances.
"""

from __future__ import annotations

import gzip
import itertools
import lzma
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ltr.errors import ConfigError, DataFormatError
from ltr.lm.data import CausalWindows, MaskedWindows, encode_corpus, read_texts, split_stream
from ltr.lm.masking import MaskedCollator, mask_tokens
from ltr.lm.tokenizer import TextTokenizer, train_tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "data" / "tinyshakespeare" / "input.txt.xz"
SPECIAL = (0, 1, 2, 3, 4, 5)
MASK_ID = 2


@pytest.fixture(scope="module")
def shakespeare() -> str:
    with lzma.open(SHAKESPEARE, "rt", encoding="utf-8") as fh:
        text = fh.read(20_000)
    return text[: text.rfind("\n") + 1]  # whole lines


@pytest.fixture(scope="module")
def indented(shakespeare: str) -> str:
    """Shakespeare with indented lines and trailing spaces: whitespace runs across newlines."""
    lines = shakespeare.splitlines(keepends=True)
    out = []
    for i, line in enumerate(lines):
        if i % 3 == 1:
            line = "  " + line
        elif i % 3 == 2:
            line = line.replace("\n", " \n")
        out.append(line)
    return "".join(out) + "\n\n   last\n"


@pytest.fixture(scope="module")
def bpe(indented: str) -> TextTokenizer:
    return train_tokenizer([indented], kind="bpe", vocab_size=1024)


@pytest.fixture(scope="module")
def char(indented: str) -> TextTokenizer:
    return train_tokenizer([indented], kind="char")


def write(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    if path.suffix == ".xz":
        path.write_bytes(lzma.compress(data))
    elif path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------- read_texts
@pytest.mark.parametrize("name", ["plain.txt", "packed.xz", "packed.gz"])
def test_read_texts_gives_each_file_exactly(tmp_path, indented, name):
    path = write(tmp_path / name, indented)
    assert "".join(read_texts(path)) == indented
    assert "".join(read_texts([path, path], chunk_lines=7)) == indented + indented


def test_read_texts_cuts_only_between_non_space_and_newline(tmp_path, indented):
    path = write(tmp_path / "t.txt", indented)
    pieces = list(read_texts(path, chunk_lines=5))
    assert len(pieces) > 10
    for piece, following in itertools.pairwise(pieces):
        assert piece.count("\n") >= 5
        assert piece[-1] == "\n" and not piece[-2].isspace()
        assert not following[0].isspace()


def test_read_texts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        list(read_texts(tmp_path / "missing.txt"))


@pytest.mark.parametrize("name", ["bad.txt", "bad.gz"])
def test_read_texts_invalid_utf8_names_file_and_line(tmp_path, name):
    raw = b"fine\nline two \xff broken\nthree\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(DataFormatError, match=rf"{name}, line 2: not valid UTF-8 \(byte 0xff"):
        list(read_texts(path))


def test_read_texts_truncated_xz(tmp_path, indented):
    path = tmp_path / "cut.xz"
    path.write_bytes(lzma.compress(indented.encode())[:300])
    with pytest.raises(DataFormatError, match=r"cut\.xz.*damaged or truncated"):
        list(read_texts(path))


# ---------------------------------------------------------------------------------- encode_corpus
def test_chunked_encoding_equals_whole_text_bpe(tmp_path, bpe, indented):
    path = write(tmp_path / "corpus.xz", indented)
    whole = bpe.encode(indented)
    # the test corpus is one where cutting at every newline does change the tokens
    naive = [i for ids in bpe.encode_batch(indented.splitlines(keepends=True)) for i in ids]
    assert naive != whole
    for chunk_lines in (1, 3, 1000):
        ids = encode_corpus(bpe, path, chunk_lines=chunk_lines)
        assert ids.dtype == np.int32 and ids.ndim == 1
        assert ids.tolist() == whole


def test_chunked_encoding_equals_whole_text_char(tmp_path, char, indented):
    path = write(tmp_path / "corpus.txt", indented)
    vocab = char.backend.get_vocab()
    expected = [vocab[c] for c in indented]
    assert encode_corpus(char, path, chunk_lines=2).tolist() == expected


def test_encode_corpus_separator_between_files_only(tmp_path, char):
    a = write(tmp_path / "a.txt", "First Citizen:\n")
    b = write(tmp_path / "b.gz", "All:\nSpeak.\n")
    vocab = char.backend.get_vocab()
    ea = [vocab[c] for c in "First Citizen:\n"]
    eb = [vocab[c] for c in "All:\nSpeak.\n"]
    assert encode_corpus(char, [a, b], separator_id=char.eos_id).tolist() == [*ea, 5, *eb]
    assert encode_corpus(char, [a, b]).tolist() == ea + eb
    assert encode_corpus(char, a, separator_id=5).tolist() == ea


def test_encode_corpus_progress_bar_does_not_change_result(tmp_path, bpe, indented):
    path = write(tmp_path / "c.txt", indented)
    assert encode_corpus(bpe, path, show_progress=True).tolist() == bpe.encode(indented)


def test_encode_corpus_errors(tmp_path, char):
    with pytest.raises(ConfigError, match="no text files"):
        encode_corpus(char, [])
    with pytest.raises(FileNotFoundError, match=r"gone\.txt"):
        encode_corpus(char, tmp_path / "gone.txt")


# ---------------------------------------------------------------------------------- split_stream
def test_split_stream_is_a_contiguous_tail():
    ids = np.arange(100, dtype=np.int32)
    train, valid = split_stream(ids, 0.1)
    assert train.tolist() == list(range(90))
    assert valid.tolist() == list(range(90, 100))
    train, valid = split_stream(np.arange(10), 0.25)  # cut at int(10 * 0.75) = 7
    assert train.tolist() == list(range(7)) and valid.tolist() == [7, 8, 9]


def test_split_stream_too_short_names_the_numbers():
    with pytest.raises(ConfigError, match=r"validation split would hold 10 tokens of 100.*17"):
        split_stream(np.arange(100), 0.1, min_len=17)
    with pytest.raises(ConfigError, match="training split would hold 5 tokens of 100"):
        split_stream(np.arange(100), 0.95, min_len=6)
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError, match="valid_fraction"):
            split_stream(np.arange(100), fraction)


# ---------------------------------------------------------------------------------- windows
def test_causal_random_windows_are_stream_slices():
    n, block = 1000, 16
    ds = CausalWindows(np.arange(n, dtype=np.int32), block, num_samples=2000, seed=3)
    assert len(ds) == 2000
    starts = []
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.int64 and y.dtype == torch.int64
        assert x.shape == (block,) and y.shape == (block,)
        s = int(x[0])
        assert 0 <= s <= n - block - 1
        assert x.tolist() == list(range(s, s + block))
        assert y.tolist() == list(range(s + 1, s + block + 1))
        assert torch.equal(y[:-1], x[1:])
        starts.append(s)
    # uniform over the n - block starts: mean (n - block - 1) / 2, sd of the mean ~ 6.3
    num_starts = n - block
    sd = math.sqrt((num_starts**2 - 1) / 12 / len(starts))
    assert abs(np.mean(starts) - (num_starts - 1) / 2) < 5 * sd
    assert min(starts) < 20 and max(starts) > num_starts - 21


def test_causal_random_windows_reach_both_ends_of_a_tight_stream():
    block = 8
    ds = CausalWindows(torch.arange(block + 2), block, num_samples=64, seed=0)
    assert {int(ds[i][0][0]) for i in range(len(ds))} == {0, 1}
    ds = CausalWindows(torch.arange(block + 1), block, num_samples=4)
    x, y = ds[3]
    assert x.tolist() == list(range(block)) and y.tolist() == list(range(1, block + 1))


def test_random_windows_reproducible_and_change_with_epoch_and_seed():
    stream = np.arange(10_000)
    a = CausalWindows(stream, 32, num_samples=50, seed=7)
    b = CausalWindows(stream, 32, num_samples=50, seed=7)
    starts_a = [int(a[i][0][0]) for i in range(50)]
    assert [int(b[i][0][0]) for i in reversed(range(50))] == starts_a[::-1]  # order-free
    b.set_epoch(1)
    starts_b1 = [int(b[i][0][0]) for i in range(50)]
    assert sum(s != t for s, t in zip(starts_a, starts_b1, strict=True)) > 45
    b.set_epoch(0)
    assert [int(b[i][0][0]) for i in range(50)] == starts_a
    c = CausalWindows(stream, 32, num_samples=50, seed=8)
    assert sum(int(c[i][0][0]) != starts_a[i] for i in range(50)) > 45
    assert len(set(starts_a)) > 45  # items of one epoch differ from each other


def test_random_windows_do_not_depend_on_workers():
    ds = CausalWindows(np.arange(5000), 16, num_samples=24, seed=1)
    ds.set_epoch(2)
    serial = [x for x, _ in DataLoader(ds, batch_size=4)]
    parallel = [x for x, _ in DataLoader(ds, batch_size=4, num_workers=2)]
    assert all(torch.equal(p, q) for p, q in zip(serial, parallel, strict=True))


@pytest.mark.parametrize(("n", "count"), [(100, 6), (97, 6), (96, 5), (17, 1)])
def test_causal_valid_windows_cover_the_stream_once_in_order(n, count):
    block = 16  # count = (n - 1) // 16 by hand
    ds = CausalWindows(np.arange(n, dtype=np.int32), block, random=False)
    assert len(ds) == count
    xs = torch.cat([ds[i][0] for i in range(count)])
    ys = torch.cat([ds[i][1] for i in range(count)])
    assert xs.tolist() == list(range(count * block))
    assert ys.tolist() == list(range(1, count * block + 1))
    assert n - count * block - 1 < block  # what is left could not make another window
    with pytest.raises(IndexError):
        ds[count]


@pytest.mark.parametrize(("n", "count"), [(100, 6), (96, 6), (95, 5), (16, 1)])
def test_masked_valid_windows_cover_the_stream_once_in_order(n, count):
    block = 16  # count = n // 16 by hand
    ds = MaskedWindows(np.arange(n), block, random=False)
    assert len(ds) == count
    assert torch.cat([ds[i] for i in range(count)]).tolist() == list(range(count * block))


def test_masked_random_windows_are_stream_slices():
    n, block = 300, 20
    ds = MaskedWindows(np.arange(n), block, num_samples=500, seed=5)
    starts = set()
    for i in range(len(ds)):
        x = ds[i]
        assert x.dtype == torch.int64 and x.shape == (block,)
        s = int(x[0])
        assert x.tolist() == list(range(s, s + block))
        starts.add(s)
    assert min(starts) == 0 and max(starts) == n - block  # 281 starts, 500 draws


def test_short_stream_names_both_numbers():
    with pytest.raises(ConfigError, match=r"holds 16 tokens but block_size 16 needs at least 17"):
        CausalWindows(np.arange(16), 16, num_samples=1)
    with pytest.raises(ConfigError, match=r"holds 15 tokens but block_size 16 needs at least 16"):
        MaskedWindows(np.arange(15), 16, random=False)


def test_window_argument_errors():
    with pytest.raises(ConfigError, match="num_samples"):
        CausalWindows(np.arange(100), 8)  # random without num_samples
    with pytest.raises(ConfigError, match="num_samples"):
        CausalWindows(np.arange(100), 8, random=False, num_samples=3)
    with pytest.raises(ConfigError, match="1-D"):
        CausalWindows(np.zeros((4, 30), dtype=np.int64), 8, random=False)


# ---------------------------------------------------------------------------------- mask_tokens
def test_mask_tokens_statistics():
    vocab, rows, length = 50, 2000, 128
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (rows, length), generator=g)
    lengths = torch.randint(64, length + 1, (rows, 1), generator=g)
    pad_mask = torch.arange(length)[None, :] < lengths  # True = real token
    original = ids.clone()
    inputs, labels = mask_tokens(
        ids,
        mask_id=MASK_ID,
        vocab_size=vocab,
        special_ids=SPECIAL,
        generator=torch.Generator().manual_seed(1),
        pad_mask=pad_mask,
    )
    assert torch.equal(ids, original)  # not modified in place
    assert labels.dtype == torch.int64 and inputs.dtype == ids.dtype

    ids_np, inputs_np, labels_np = ids.numpy(), inputs.numpy(), labels.numpy()
    eligible = (ids_np >= 6) & pad_mask.numpy()
    chosen = labels_np != -100
    assert not (chosen & ~eligible).any()  # special and padded positions never chosen
    assert (labels_np[chosen] == ids_np[chosen]).all()
    assert (inputs_np[~chosen] == ids_np[~chosen]).all()

    def close(observed: int, trials: int, p: float) -> bool:
        return abs(observed / trials - p) < 5 * math.sqrt(p * (1 - p) / trials)

    n_eligible, n_chosen = int(eligible.sum()), int(chosen.sum())
    assert close(n_chosen, n_eligible, 0.15)
    k = vocab - len(SPECIAL)  # random replacements are uniform over k ids, 1/k of them a no-op
    was_masked = chosen & (inputs_np == MASK_ID)
    kept = chosen & (inputs_np == ids_np)
    replaced = chosen & ~was_masked & ~kept
    assert close(int(was_masked.sum()), n_chosen, 0.8)
    assert close(int(kept.sum()), n_chosen, 0.1 + 0.1 / k)
    assert close(int(replaced.sum()), n_chosen, 0.1 * (1 - 1 / k))
    drawn = inputs_np[replaced]
    assert drawn.min() >= 6 and drawn.max() < vocab  # never a special id
    assert set(drawn.tolist()) == set(range(6, vocab))  # ~60 draws of each of 44 ids


def test_mask_tokens_at_least_one_per_row_with_an_eligible_position():
    rows, length = 300, 40
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (rows, length), generator=g)  # all special...
    cols = torch.randint(0, length, (rows,), generator=g)
    ids[torch.arange(rows), cols] = 17  # ...but one ordinary token per row
    ids[-1] = 0  # ...except the last row: nothing eligible
    pad_mask = torch.ones(rows, length, dtype=torch.bool)
    pad_mask[-2, cols[-2]] = False  # the only eligible token of this row is padding
    _, labels = mask_tokens(
        ids,
        mask_id=MASK_ID,
        vocab_size=30,
        special_ids=SPECIAL,
        mask_prob=0.01,
        generator=torch.Generator().manual_seed(2),
        pad_mask=pad_mask,
    )
    for r in range(rows - 2):
        assert (labels[r] != -100).nonzero().flatten().tolist() == [int(cols[r])]
        assert int(labels[r, cols[r]]) == 17
    assert (labels[-2:] == -100).all()


def test_mask_tokens_mask_prob_one_and_reproducibility():
    ids = torch.randint(6, 100, (8, 64), generator=torch.Generator().manual_seed(0))
    kwargs = {"mask_id": MASK_ID, "vocab_size": 100, "special_ids": SPECIAL}
    _, labels = mask_tokens(ids, mask_prob=1.0, **kwargs)
    assert torch.equal(labels, ids)
    a = mask_tokens(ids, generator=torch.Generator().manual_seed(5), **kwargs)
    b = mask_tokens(ids, generator=torch.Generator().manual_seed(5), **kwargs)
    c = mask_tokens(ids, generator=torch.Generator().manual_seed(6), **kwargs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_mask_tokens_errors():
    ids = torch.arange(6, 20)[None]
    for p in (0.0, 1.5):
        with pytest.raises(ConfigError, match="mask_prob"):
            mask_tokens(ids, mask_id=2, vocab_size=20, special_ids=SPECIAL, mask_prob=p)
    with pytest.raises(ConfigError, match="special"):
        mask_tokens(ids, mask_id=2, vocab_size=6, special_ids=SPECIAL)


# ---------------------------------------------------------------------------------- collator
def collator(seed: int = 0, *, fixed: bool = False) -> MaskedCollator:
    return MaskedCollator(
        mask_id=MASK_ID, vocab_size=1000, special_ids=SPECIAL, seed=seed, fixed=fixed
    )


def test_collator_masks_a_stacked_batch():
    batch = [torch.arange(6 + 64 * i, 6 + 64 * (i + 1)) for i in range(4)]
    inputs, labels = collator()(batch)
    x = torch.stack(batch)
    assert inputs.shape == (4, 64) and labels.shape == (4, 64)
    chosen = labels != -100
    assert chosen.any(dim=1).all()
    assert torch.equal(labels[chosen], x[chosen])
    assert torch.equal(inputs[~chosen], x[~chosen])


def test_collator_reproducible_and_different_across_batches_seeds_epochs():
    ds = MaskedWindows(np.arange(6, 5006), 64, num_samples=32, seed=0)

    def masks(seed: int, epoch: int, workers: int = 0) -> list[torch.Tensor]:
        ds.set_epoch(epoch)
        collate = collator(seed)
        collate.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=8, collate_fn=collate, num_workers=workers)
        return [labels != -100 for _, labels in loader]

    first = masks(0, 0)
    assert all(torch.equal(p, q) for p, q in zip(first, masks(0, 0), strict=True))
    assert all(torch.equal(p, q) for p, q in zip(first, masks(0, 0, workers=2), strict=True))
    assert not torch.equal(first[0], first[1])  # batches differ
    assert not any(torch.equal(p, q) for p, q in zip(first, masks(1, 0), strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(first, masks(0, 1), strict=True))


def test_collator_epoch_changes_the_mask_of_the_same_batch_unless_fixed():
    batch = [torch.arange(6 + 64 * i, 6 + 64 * (i + 1)) for i in range(4)]
    for fixed in (False, True):
        collate = collator(fixed=fixed)
        before = collate(batch)[1]
        collate.set_epoch(1)
        after = collate(batch)[1]
        assert torch.equal(before, after) == fixed
        collate.set_epoch(0)
        assert torch.equal(collate(batch)[1], before)


def test_collator_fixed_validation_batches_get_the_same_mask_every_epoch():
    ds = MaskedWindows(np.arange(6, 1006), 50, random=False)
    collate = collator(fixed=True)
    loader = DataLoader(ds, batch_size=5, collate_fn=collate)
    one = [labels for _, labels in loader]
    ds.set_epoch(3)
    collate.set_epoch(3)
    assert all(torch.equal(p, q) for p, q in zip(one, [lab for _, lab in loader], strict=True))


def test_collator_from_tokenizer_uses_its_ids(indented):
    tok = train_tokenizer([indented], kind="char")
    col = MaskedCollator.from_tokenizer(tok, mask_prob=0.5, seed=3)
    assert (col.mask_id, col.vocab_size, col.special_ids) == (2, tok.vocab_size, SPECIAL)
    assert col.mask_prob == 0.5 and col.seed == 3 and not col.fixed


# ---------------------------------------------------------------------------------- JSON lines
JSONL_LINES = [
    '{"doc_id": "a", "title": "Wing flutter", "text": "Flutter of swept wings."}',
    "",
    '{"doc_id": "b", "text": "Heat transfer.\\nIn slabs."}',  # no title, two lines of text
    "   ",
    '{"doc_id": 3, "title": "", "text": "  x  "}',  # empty title, text stripped
    '{"doc_id": "c", "title": " Only a title ", "text": "  "}',  # blank text
    '{"doc_id": "d", "title": "", "text": ""}',  # nothing at all: no lines
    '{"doc_id": "e", "title": "Last", "text": "Done."}',
]
JSONL_TEXT = (
    "Wing flutter\nFlutter of swept wings.\n\n"
    "Heat transfer.\nIn slabs.\n\n"
    "x\n\n"
    "Only a title\n\n"
    "Last\nDone.\n\n"
)


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.xz", "docs.jsonl.gz"])
def test_read_texts_gives_the_documents_of_a_jsonl_file(tmp_path, name):
    path = write(tmp_path / name, "\n".join(JSONL_LINES) + "\n")
    assert "".join(read_texts(path)) == JSONL_TEXT
    assert "".join(read_texts(path, chunk_lines=1)) == JSONL_TEXT
    assert "".join(read_texts([path, path], chunk_lines=2)) == JSONL_TEXT + JSONL_TEXT


@pytest.mark.parametrize(
    ("lines", "number", "match"),
    [
        (['{"text": "ok"}', "", "{not json"], 3, "not valid JSON"),
        (['{"text": "ok"}', '{"title": "no text"}'], 2, 'string "text" field'),
        (['{"text": 5}'], 1, 'string "text" field'),
        (['["text"]'], 1, 'string "text" field'),
    ],
)
def test_read_texts_bad_jsonl_line_names_it(tmp_path, lines, number, match):
    path = write(tmp_path / "docs.jsonl.xz", "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"docs\.jsonl\.xz, line {number}: .*{match}"):
        "".join(read_texts(path))


def test_encode_corpus_of_a_jsonl_file_encodes_its_documents(tmp_path, bpe, char):
    path = write(tmp_path / "docs.jsonl.xz", "\n".join(JSONL_LINES) + "\n")
    for tok in (bpe, char):
        expected = np.asarray(tok.encode(JSONL_TEXT), dtype=np.int32)
        np.testing.assert_array_equal(encode_corpus(tok, path), expected)
        np.testing.assert_array_equal(encode_corpus(tok, path, chunk_lines=1), expected)
    # with a plain-text file after it: each file encoded alone, the separator between them
    plain = write(tmp_path / "notes.txt", "plain text\n")
    both = encode_corpus(bpe, [path, plain], separator_id=bpe.eos_id)
    expected = [*bpe.encode(JSONL_TEXT), bpe.eos_id, *bpe.encode("plain text\n")]
    assert both.tolist() == expected
