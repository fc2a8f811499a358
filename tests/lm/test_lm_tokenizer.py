"""Tokenizer glue: special ids, exact round trips, the char vocabulary, persistence, errors.

Expected values come from the text itself (its characters, its UTF-8 bytes, Python string
operations), never from the tokenizer under test.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models

from ltr.errors import ConfigError, DataFormatError
from ltr.lm.tokenizer import SPECIAL_TOKENS, TextTokenizer, train_tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "data" / "tinyshakespeare" / "input.txt.xz"

POEMS = (
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n\n"
    "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。\n"
)

# whitespace that a careless decoder inserts, drops or merges
TRICKY = [
    "",
    " ",
    "\n",
    "  leading spaces",
    "trailing spaces  ",
    "double  space and\n\nblank line\n",
    "\n\n\n three newlines",
    "tab\tand\r\nCRLF",
    " \n \n",
    "a [PAD] b [MASK][EOS] c[UNK]",  # special-token text is ordinary text
]


@pytest.fixture(scope="module")
def shakespeare() -> str:
    with lzma.open(SHAKESPEARE, "rt", encoding="utf-8") as fh:
        return fh.read(20_000)


@pytest.fixture(scope="module")
def bpe(shakespeare: str) -> TextTokenizer:
    return train_tokenizer([shakespeare], kind="bpe", vocab_size=1024)


@pytest.fixture(scope="module")
def char(shakespeare: str) -> TextTokenizer:
    return train_tokenizer([shakespeare, POEMS, *TRICKY], kind="char")


# ---------------------------------------------------------------------------------- special ids
@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_special_tokens_have_ids_0_to_5(kind, bpe, char):
    tok = bpe if kind == "bpe" else char
    assert SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]", "[EOS]")
    ids = (tok.pad_id, tok.unk_id, tok.mask_id, tok.cls_id, tok.sep_id, tok.eos_id)
    assert ids == (0, 1, 2, 3, 4, 5)
    assert tok.special_ids == (0, 1, 2, 3, 4, 5)
    assert tok.kind == kind
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tok.backend.token_to_id(token) == i
        assert tok.decode([i], skip_special=False) == token
        assert tok.decode([i]) == ""


# ---------------------------------------------------------------------------------- bpe
def test_bpe_vocab_size_is_the_requested_one(bpe):
    assert bpe.vocab_size == 1024
    assert len(bpe.backend.get_vocab()) == 1024


@pytest.mark.parametrize("text", TRICKY)
def test_bpe_round_trip_is_exact_on_whitespace(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_round_trip_corpus_chinese_and_unseen_characters(bpe, shakespeare):
    for text in [shakespeare, POEMS, "Ünïcödé ☃ 😀 \u0301e\u0301 \x00\x7f ﬁ", "ሰላም ዓለም"]:
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
        assert bpe.unk_id not in ids  # byte level: nothing is unknown


def test_bpe_text_naming_special_tokens_is_plain_text(bpe):
    text = "[PAD][UNK][MASK][CLS][SEP][EOS]"
    ids = bpe.encode(text)
    assert not set(ids) & set(bpe.special_ids)
    assert bpe.decode(ids) == text


def test_bpe_compresses_the_training_text(bpe, shakespeare):
    # merges make fewer tokens than UTF-8 bytes (the smallest vocabulary gives one per byte)
    assert len(bpe.encode(shakespeare)) < 0.6 * len(shakespeare.encode("utf-8"))


def test_bpe_smallest_vocabulary_is_one_token_per_byte(shakespeare):
    tok = train_tokenizer([shakespeare], kind="bpe", vocab_size=262)
    assert tok.vocab_size == 262
    for text in [shakespeare[:2000], POEMS]:
        ids = tok.encode(text)
        assert len(ids) == len(text.encode("utf-8"))
        assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_bpe_round_trip_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_a_single_string_is_one_text_not_characters():
    # iterated as characters, "hello" would be five one-letter texts and learn no merge
    tok = train_tokenizer("hello hello hello", kind="bpe", vocab_size=300)
    assert len(tok.encode("hello")) == 1


# ---------------------------------------------------------------------------------- char
def test_char_vocabulary_is_specials_plus_each_distinct_character(char, shakespeare):
    expected = set(shakespeare) | set(POEMS) | set("".join(TRICKY))
    vocab = char.backend.get_vocab()
    assert char.vocab_size == len(SPECIAL_TOKENS) + len(expected)
    assert set(vocab) == expected | set(SPECIAL_TOKENS)
    assert sorted(vocab.values()) == list(range(char.vocab_size))


def test_char_one_token_per_character(char, shakespeare):
    vocab = char.backend.get_vocab()
    text = shakespeare[:3000] + POEMS
    assert char.encode(text) == [vocab[c] for c in text]


@pytest.mark.parametrize("text", TRICKY)
def test_char_round_trip_is_exact_on_whitespace(char, text):
    assert char.decode(char.encode(text)) == text


def test_char_round_trip_corpus_and_poems(char, shakespeare):
    for text in [shakespeare, POEMS, "ab", "a  b"]:
        assert char.decode(char.encode(text)) == text


def test_char_unseen_characters_are_unk(char):
    assert "€" not in char.backend.get_vocab() and "😀" not in char.backend.get_vocab()
    ids = char.encode("a€b😀")
    vocab = char.backend.get_vocab()
    assert ids == [vocab["a"], char.unk_id, vocab["b"], char.unk_id]
    assert char.decode(ids) == "ab"
    assert char.decode(ids, skip_special=False) == "a[UNK]b[UNK]"


def test_char_special_token_text_is_characters(char):
    vocab = char.backend.get_vocab()
    text = "[PAD]"  # '[' , 'P', 'A', 'D', ']' all occur in the training text (TRICKY)
    assert char.encode(text) == [vocab[c] for c in text]
    assert char.decode(char.encode(text)) == text


def test_char_ignores_vocab_size_and_min_frequency():
    tok = train_tokenizer(["abcabcz"], kind="char", vocab_size=1, min_frequency=5)
    assert set(tok.backend.get_vocab()) == set("abcz") | set(SPECIAL_TOKENS)


# ---------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_save_load_and_string_give_identical_encodings(kind, bpe, char, shakespeare, tmp_path):
    tok = bpe if kind == "bpe" else char
    path = tmp_path / "tok.json"
    tok.save(path)
    texts = [shakespeare, POEMS, *TRICKY]
    expected = [tok.encode(t) for t in texts]
    for other in (TextTokenizer.load(path), TextTokenizer.from_str(tok.to_str())):
        assert other.kind == kind
        assert other.vocab_size == tok.vocab_size
        assert [other.encode(t) for t in texts] == expected
        assert other.encode_batch(texts) == expected
        # special-token text stays plain text after reloading (that flag is not in the JSON)
        assert other.decode(other.encode("x [MASK] y")) == "x [MASK] y"


def test_encode_batch_round_trips(bpe):
    texts = [*TRICKY, POEMS]
    assert [bpe.decode(ids) for ids in bpe.encode_batch(texts)] == texts


# ---------------------------------------------------------------------------------- errors
def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError, match=r"unknown tokenizer kind 'wordpiece'.*bpe, char"):
        train_tokenizer(["abc"], kind="wordpiece")


def test_bpe_vocab_too_small_says_the_minimum():
    with pytest.raises(ConfigError, match="at least 262"):
        train_tokenizer(["abc"], kind="bpe", vocab_size=261)


def test_char_without_text_is_an_error():
    with pytest.raises(ConfigError, match="empty"):
        train_tokenizer([""], kind="char")


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        TextTokenizer.load(path)


def test_load_a_model_folder_reads_its_tokenizer_file(tmp_path):
    """``--data.tokenizer runs/x/model`` means that model's tokenizer.json; a folder without
    one is named as such."""
    tok = train_tokenizer(["to be or not to be"], kind="char")
    (tmp_path / "model").mkdir()
    tok.save(tmp_path / "model" / "tokenizer.json")
    assert TextTokenizer.load(tmp_path / "model").to_str() == tok.to_str()
    with pytest.raises(FileNotFoundError, match=r"is a folder with no tokenizer\.json"):
        TextTokenizer.load(tmp_path)


def test_load_non_tokenizer_file_names_the_path(tmp_path):
    path = tmp_path / "garbage.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"garbage\.json"):
        TextTokenizer.load(path)


def test_load_foreign_tokenizer_without_our_special_tokens(tmp_path):
    path = tmp_path / "foreign.json"
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(path))
    with pytest.raises(DataFormatError, match=r"foreign\.json.*ids 0\.\.5"):
        TextTokenizer.load(path)


def test_from_str_garbage():
    with pytest.raises(DataFormatError, match="not a tokenizer JSON string"):
        TextTokenizer.from_str("")


def test_lone_surrogate_is_a_clear_error(bpe):
    with pytest.raises(DataFormatError, match="surrogate"):
        bpe.encode("ok \ud800")
    with pytest.raises(DataFormatError, match="surrogate"):
        bpe.encode_batch(["ok", "\udfff"])


def test_a_bpe_mask_takes_the_space_before_it_and_a_char_mask_does_not(bpe, char):
    from ltr.cli.generate import encode_prompt

    ids = encode_prompt(bpe, "My lord, I [MASK] you.", masks=True)
    assert ids == [*bpe.encode("My lord, I"), bpe.mask_id, *bpe.encode(" you.")]
    assert all(bpe.decode([i]) != " " for i in ids)  # no lone space token left
    assert bpe.decode([bpe.encode(" will")[0]]).startswith(" ")  # words carry their space
    twice = encode_prompt(bpe, "[MASK] and [MASK]", masks=True)
    assert twice == [bpe.mask_id, *bpe.encode(" and"), bpe.mask_id]
    chars = encode_prompt(char, "I [MASK] you", masks=True)
    assert chars == [*char.encode("I "), char.mask_id, *char.encode(" you")]
