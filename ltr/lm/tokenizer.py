"""Text tokenizers for language-model pretraining: thin glue over Hugging Face ``tokenizers``.

Two kinds, both trained from raw text by :func:`train_tokenizer`:

* ``"bpe"``: byte-level BPE (GPT-2 style). Every string is encodable, nothing maps to ``[UNK]``,
  and ``decode(encode(text)) == text`` holds exactly for any ``str`` (non-ASCII included).
* ``"char"``: one token per Unicode code point seen in training, no merges. Characters not seen in
  training encode as ``[UNK]``; the round trip is exact for text made of seen characters. Meant
  for small character-level models (Shakespeare, Chinese poetry).

Every trained tokenizer holds :data:`SPECIAL_TOKENS` at ids ``0..5`` in that order. ``encode``
never adds special tokens, and text that happens to contain e.g. ``"[PAD]"`` is encoded as plain
text (never as the special id), so decoding gives that text back. Decoding never inserts or drops
whitespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ltr.errors import ConfigError, DataFormatError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]", "[EOS]")
"""Special tokens, at ids ``0..5`` in this order in every tokenizer made here."""

TOKENIZER_KINDS = ("bpe", "char")

_BYTE_ALPHABET_SIZE = 256
MIN_BPE_VOCAB_SIZE = len(SPECIAL_TOKENS) + _BYTE_ALPHABET_SIZE
"""Smallest ``vocab_size`` for ``kind="bpe"``: the special tokens plus the 256 byte symbols."""

_MODEL_KIND = {"BPE": "bpe", "WordLevel": "char"}


class TextTokenizer:
    """A trained tokenizer with this project's special tokens; wraps a ``tokenizers.Tokenizer``.

    Build one with :func:`train_tokenizer`, :meth:`load` or :meth:`from_str`; the constructor
    checks that ``tokenizer`` has the special tokens at ids ``0..5`` and a known model type.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        kind = _MODEL_KIND.get(type(tokenizer.model).__name__)
        if kind is None:
            raise DataFormatError(
                f"tokenizer model {type(tokenizer.model).__name__} is not one made by "
                f"train_tokenizer (expected one of {', '.join(sorted(_MODEL_KIND))}); "
                "train a new one with ltr.lm.tokenizer.train_tokenizer"
            )
        ids = tuple(tokenizer.token_to_id(token) for token in SPECIAL_TOKENS)
        if ids != tuple(range(len(SPECIAL_TOKENS))):
            found = ", ".join(f"{t}={i}" for t, i in zip(SPECIAL_TOKENS, ids, strict=True))
            raise DataFormatError(
                f"tokenizer special tokens must have ids 0..5 in the order {SPECIAL_TOKENS}, "
                f"found {found}; train a new one with ltr.lm.tokenizer.train_tokenizer"
            )
        # By default ``tokenizers`` turns "[PAD]" etc. in raw text into the special ids (and
        # decode(skip_special) would then drop them); encode them as ordinary text instead. The
        # flag is not saved in the JSON, so it is set on every construction.
        tokenizer.encode_special_tokens = True
        self._tokenizer = tokenizer
        self._kind = kind

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        """``"bpe"`` or ``"char"``."""
        return self._kind

    @property
    def vocab_size(self) -> int:
        """Number of token ids (special tokens included); ids are ``0..vocab_size - 1``."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def pad_id(self) -> int:
        return SPECIAL_TOKENS.index("[PAD]")

    @property
    def unk_id(self) -> int:
        return SPECIAL_TOKENS.index("[UNK]")

    @property
    def mask_id(self) -> int:
        return SPECIAL_TOKENS.index("[MASK]")

    @property
    def cls_id(self) -> int:
        return SPECIAL_TOKENS.index("[CLS]")

    @property
    def sep_id(self) -> int:
        return SPECIAL_TOKENS.index("[SEP]")

    @property
    def eos_id(self) -> int:
        return SPECIAL_TOKENS.index("[EOS]")

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids of :data:`SPECIAL_TOKENS`, in that order: ``(0, 1, 2, 3, 4, 5)``."""
        return tuple(range(len(SPECIAL_TOKENS)))

    @property
    def backend(self) -> Tokenizer:
        """The wrapped ``tokenizers.Tokenizer`` (do not change its settings)."""
        return self._tokenizer

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; no special tokens are added.

        Raises:
            DataFormatError: ``text`` is not valid Unicode (holds lone surrogates).
        """
        try:
            return self._tokenizer.encode(text, add_special_tokens=False).ids
        except TypeError:
            _raise_if_not_unicode([text])
            raise

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (encoded in parallel threads); no special tokens are added."""
        texts = list(texts)
        try:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        except TypeError:
            _raise_if_not_unicode(texts)
            raise
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of ``ids``; special tokens are left out when ``skip_special``.

        Whitespace is reproduced exactly. A ``"bpe"`` id sequence cut inside a multi-byte
        character decodes that character as U+FFFD.
        """
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the tokenizer as a ``tokenizers`` JSON file (read it back with :meth:`load`)."""
        self._tokenizer.save(str(path))

    @classmethod
    def load(cls, path: str | Path) -> TextTokenizer:
        """Read a tokenizer JSON file written by :meth:`save` (or the ``tokenizer.json`` of the
        model folder ``path`` names).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            DataFormatError: ``path`` is not a tokenizer file made by :func:`train_tokenizer`.
        """
        path = Path(path)
        if path.is_dir() and (path / "tokenizer.json").is_file():  # a model folder: its file
            path = path / "tokenizer.json"
        if not path.is_file():
            what = "is a folder with no tokenizer.json" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"tokenizer file {path} {what}; check the path")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for every failure
            raise DataFormatError(
                f"{path} is not a tokenizer JSON file ({exc}); pass the file written by "
                "TextTokenizer.save"
            ) from None
        try:
            return cls(tokenizer)
        except DataFormatError as exc:
            raise DataFormatError(f"{path}: {exc}") from None

    def to_str(self) -> str:
        """The tokenizer as a JSON string, for embedding in model artifacts."""
        return self._tokenizer.to_str()

    @classmethod
    def from_str(cls, s: str) -> TextTokenizer:
        """Rebuild a tokenizer from :meth:`to_str` output.

        Raises:
            DataFormatError: ``s`` is not a tokenizer JSON string made by this module.
        """
        try:
            tokenizer = Tokenizer.from_str(s)
        except Exception as exc:  # tokenizers raises a bare Exception for every failure
            raise DataFormatError(
                f"not a tokenizer JSON string ({exc}); pass the output of TextTokenizer.to_str"
            ) from None
        return cls(tokenizer)

    def __repr__(self) -> str:
        return f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"


def _raise_if_not_unicode(texts: Sequence[object]) -> None:
    """Turn ``tokenizers``' "TextInputSequence must be str" into a clear error for bad strings."""
    for text in texts:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DataFormatError(
                    f"text holds a lone surrogate {text[exc.start]!r} at index {exc.start}, "
                    "which is not valid Unicode; decode the input with errors='replace'"
                ) from None


def train_tokenizer(
    texts: Iterable[str],
    *,
    kind: str = "bpe",
    vocab_size: int = 1024,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> TextTokenizer:
    """Train a tokenizer of the given kind on ``texts``.

    Args:
        texts: training texts, e.g. :func:`ltr.lm.data.read_texts`. A single ``str`` is taken
            as one text (not as an iterable of characters).
        kind: ``"bpe"`` (byte-level BPE) or ``"char"`` (one token per character).
        vocab_size: ``"bpe"``: the target vocabulary size, special tokens included (at least
            :data:`MIN_BPE_VOCAB_SIZE` = 262; fewer tokens result when the text supports fewer
            merges). ``"char"``: ignored, the vocabulary is the special tokens plus every
            distinct character of ``texts`` (read the result's ``vocab_size``).
        min_frequency: ``"bpe"``: a pair must occur at least this often to be merged.
            ``"char"``: ignored, every character seen is kept.
        show_progress: show the trainer's progress bars.

    Returns:
        The trained tokenizer; special tokens at ids ``0..5``, then (``"bpe"``) the 256 byte
        symbols and merges or (``"char"``) the characters, most frequent first.

    Raises:
        ConfigError: unknown ``kind``, ``vocab_size`` too small, or ``"char"`` with no text.
    """
    if isinstance(texts, str):
        texts = [texts]
    if kind == "bpe":
        if vocab_size < MIN_BPE_VOCAB_SIZE:
            raise ConfigError(
                f"vocab_size {vocab_size} is too small for a byte-level BPE tokenizer; use at "
                f"least {MIN_BPE_VOCAB_SIZE} ({len(SPECIAL_TOKENS)} special tokens + "
                f"{_BYTE_ALPHABET_SIZE} bytes)"
            )
        if min_frequency < 1:
            raise ConfigError(f"min_frequency must be at least 1, got {min_frequency}")
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))  # never used: every byte is known
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
    elif kind == "char":
        tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        # every code point (newlines included) is its own pre-token
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()  # join tokens as they are (default joins with " ")
        trainer = trainers.WordLevelTrainer(
            vocab_size=2**31 - 1,  # keep every character
            min_frequency=0,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=show_progress,
        )
    else:
        raise ConfigError(
            f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(TOKENIZER_KINDS)}"
        )
    tokenizer.train_from_iterator(texts, trainer)
    if kind == "char" and tokenizer.get_vocab_size() == len(SPECIAL_TOKENS):
        raise ConfigError("the training text is empty; pass at least one non-empty text")
    return TextTokenizer(tokenizer)
