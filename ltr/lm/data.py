"""Text files to token tensors for language-model pretraining.

The pipeline, nanoGPT style: :func:`encode_corpus` turns text files into one ``int32`` token
stream, :func:`split_stream` cuts a validation tail off it, and the datasets cut the stream into
fixed-length windows:

* :class:`CausalWindows` gives ``(x, y)`` pairs with ``y`` = ``x`` shifted by one (GPT).
* :class:`MaskedWindows` gives windows ``x``; :class:`ltr.lm.masking.MaskedCollator` masks a
  batch of them into ``(inputs, labels)`` (BERT).

Training datasets draw windows at random starts, reproducibly: item ``i`` of epoch ``e`` depends
only on ``(seed, e, i)``, whatever the number of DataLoader workers. Validation datasets give the
non-overlapping consecutive windows of the stream, in order.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ltr.data.svmlight import open_text
from ltr.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from ltr.lm.tokenizer import TextTokenizer

DEFAULT_CHUNK_LINES = 256
_CHUNKS_PER_BATCH = 64
"""Label of positions that take no part in the loss (``F.cross_entropy``'s ``ignore_index``)."""


# ---------------------------------------------------------------------------------- reading text
def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _safe_cut(previous_line: str, next_line: str) -> bool:
    """Whether text may be cut between two lines without changing any tokenizer's output.

    True when ``previous_line`` ends in a non-space character and a newline and ``next_line``
    starts with a non-space character. Then byte-level BPE's pre-tokenizer regex (GPT-2's,
    whose whitespace rules ``\\s+(?!\\S)|\\s+`` look one character ahead) makes the newline a
    token of its own with or without the cut, and no other token spans it. A cut inside a run
    of whitespace (``"a \\nb"``, ``"a\\n\\nb"``, ``"a\\n  b"``) would change the tokens.
    Python's ``str.isspace`` covers every character the regex's Unicode ``\\s`` matches.
    """
    return (
        len(previous_line) >= 2
        and previous_line[-1] == "\n"
        and not previous_line[-2].isspace()
        and bool(next_line)
        and not next_line[0].isspace()
    )


def _open_bytes(path: Path):
    with path.open("rb") as fh:
        head = fh.read(6)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _utf8_error(path: Path) -> DataFormatError:
    """Locate the first invalid UTF-8 byte of ``path`` (error path only: reads the whole file)."""
    with _open_bytes(path) as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return DataFormatError(
            f"{path}, line {line}: not valid UTF-8 (byte {data[exc.start]:#04x} at offset "
            f"{exc.start}); re-encode the file as UTF-8"
        )
    return DataFormatError(f"{path}: not valid UTF-8 text; re-encode the file as UTF-8")


def is_jsonl(path: Path) -> bool:
    """Whether ``path`` names a JSON-lines file (``.jsonl``, optionally ``.xz`` / ``.gz``)."""
    name = path.name.lower()
    return name.removesuffix(".xz").removesuffix(".gz").endswith(".jsonl")


def _jsonl_lines(path: Path, fh) -> Iterator[str]:
    """The documents of a JSON-lines file as text lines: each object's ``title`` (when present and
    not empty) and ``text``, one blank line after each document."""
    for number, raw in enumerate(fh, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataFormatError(
                f"{path}, line {number}: a JSON-lines text file needs an object with a string "
                '"text" field on every line'
            )
        title = record.get("title")
        parts = [title.strip()] if isinstance(title, str) and title.strip() else []
        if record["text"].strip():
            parts.append(record["text"].strip())
        if parts:
            yield from ("\n".join(parts) + "\n").splitlines(keepends=True)
            yield "\n"


def _file_chunks(path: Path, chunk_lines: int) -> Iterator[str]:
    """Yield one file's text in pieces of at least ``chunk_lines`` lines, cut at safe places.

    Joining the pieces gives the file's text exactly (line endings normalised to ``\\n``); for a
    JSON-lines file, the text of its documents (see :func:`read_texts`).
    """
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist or is not a file; check the path")
    try:
        with open_text(path) as fh:
            pending: list[str] = []
            for line in _jsonl_lines(path, fh) if is_jsonl(path) else fh:
                if len(pending) >= chunk_lines and _safe_cut(pending[-1], line):
                    yield "".join(pending)
                    pending = []
                pending.append(line)
            if pending:
                yield "".join(pending)
    except UnicodeDecodeError:
        raise _utf8_error(path) from None
    except (lzma.LZMAError, gzip.BadGzipFile, EOFError) as exc:
        raise DataFormatError(
            f"{path}: the compressed file is damaged or truncated ({exc}); fetch it again"
        ) from None


def read_texts(
    paths: str | Path | Iterable[str | Path], *, chunk_lines: int = DEFAULT_CHUNK_LINES
) -> Iterator[str]:
    """Yield the text of plain, ``.xz`` or ``.gz`` UTF-8 files, in pieces of whole lines.

    A JSON-lines file (``.jsonl``, e.g. a text collection's ``docs.jsonl.xz``) gives the text of
    its documents instead: each line's ``title`` (if any) and ``text`` fields on their own lines,
    and a blank line after each document.

    Each file comes as pieces of at least ``chunk_lines`` lines (the last may be shorter), cut
    only where a cut cannot change tokenization (see :func:`encode_corpus`); joining a file's
    pieces gives its text exactly, with line endings normalised to ``\\n``. Suited as the
    ``texts`` of :func:`ltr.lm.tokenizer.train_tokenizer`.

    Raises:
        FileNotFoundError: a path does not exist.
        DataFormatError: a file is not valid UTF-8 (the message gives the line) or a compressed
            file is damaged.
    """
    if chunk_lines < 1:
        raise ConfigError(f"chunk_lines must be at least 1, got {chunk_lines}")
    for path in _as_paths(paths):
        yield from _file_chunks(path, chunk_lines)


def encode_corpus(
    tokenizer: TextTokenizer,
    paths: str | Path | Iterable[str | Path],
    *,
    separator_id: int | None = None,
    show_progress: bool = False,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> np.ndarray:
    """Encode text files into one token stream.

    Each file is encoded on its own (no token spans two files) and the files' tokens are
    concatenated in order, with ``separator_id`` (e.g. ``tokenizer.eos_id``) between two files
    when given. Files are read in pieces of about ``chunk_lines`` lines and encoded in parallel
    batches; pieces are cut only after a newline that has a non-space character on each side,
    where the result equals encoding the whole text at once.

    Args:
        tokenizer: the tokenizer.
        paths: one path or several; plain, ``.xz`` or ``.gz`` UTF-8 text.
        separator_id: token id put between consecutive files; ``None`` = nothing.
        show_progress: show a progress bar (characters read).
        chunk_lines: minimum lines per piece.

    Returns:
        ``[N]`` int32 token ids.

    Raises:
        ConfigError: no paths given.
        FileNotFoundError, DataFormatError: as :func:`read_texts`.
    """
    path_list = _as_paths(paths)
    if not path_list:
        raise ConfigError("no text files given; pass at least one path")
    if chunk_lines < 1:
        raise ConfigError(f"chunk_lines must be at least 1, got {chunk_lines}")
    parts: list[np.ndarray] = []
    with tqdm(desc="encoding", unit="char", unit_scale=True, disable=not show_progress) as progress:
        for k, path in enumerate(path_list):
            if k > 0 and separator_id is not None:
                parts.append(np.array([separator_id], dtype=np.int32))
            progress.set_postfix_str(path.name)
            batch: list[str] = []
            for chunk in _file_chunks(path, chunk_lines):
                batch.append(chunk)
                if len(batch) == _CHUNKS_PER_BATCH:
                    parts.extend(_encode_batch(tokenizer, batch, progress))
                    batch = []
            if batch:
                parts.extend(_encode_batch(tokenizer, batch, progress))
    if not parts:
        return np.zeros(0, dtype=np.int32)
    return np.concatenate(parts)


def _encode_batch(tokenizer: TextTokenizer, batch: list[str], progress: tqdm) -> list[np.ndarray]:
    encoded = [np.asarray(ids, dtype=np.int32) for ids in tokenizer.encode_batch(batch)]
    progress.update(sum(len(text) for text in batch))
    return encoded


def split_stream(
    ids: np.ndarray, valid_fraction: float, *, min_len: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a token stream into a training head and a validation tail (nanoGPT's 90/10 split).

    Args:
        ids: ``[N]`` token stream.
        valid_fraction: share of the stream for validation, in ``(0, 1)``; the cut is at
            ``int(N * (1 - valid_fraction))``.
        min_len: least number of tokens each side must hold (``block_size + 1`` for
            :class:`CausalWindows`, ``block_size`` for :class:`MaskedWindows`).

    Returns:
        ``(train, valid)``: views ``ids[:cut]`` and ``ids[cut:]``.

    Raises:
        ConfigError: ``valid_fraction`` outside ``(0, 1)`` or a side shorter than ``min_len``.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(
            f"valid_fraction must be between 0 and 1 (exclusive), got {valid_fraction}"
        )
    n = len(ids)
    cut = int(n * (1.0 - valid_fraction))
    for side, length in (("training", cut), ("validation", n - cut)):
        if length < min_len:
            raise ConfigError(
                f"the {side} split would hold {length} tokens of {n} but at least {min_len} "
                "are needed; add text, change data.valid_fraction or use a smaller model.block_size"
            )
    return ids[:cut], ids[cut:]


# ---------------------------------------------------------------------------------- windows
def derive_seed(*parts: object) -> int:
    """A 64-bit seed that depends on every part (stable across runs, platforms and processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class _Windows(Dataset):
    """Windows of ``block_size + extra_tokens`` consecutive tokens of a 1-D stream, at random or
    consecutive starts."""

    extra_tokens = 0

    def __init__(
        self,
        ids: np.ndarray | Tensor,
        block_size: int,
        *,
        random: bool = True,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        span = block_size + self.extra_tokens
        stream = torch.as_tensor(np.asarray(ids) if not isinstance(ids, Tensor) else ids)
        if stream.dim() != 1:
            raise ConfigError(f"the token stream must be 1-D, got shape {tuple(stream.shape)}")
        if stream.is_floating_point() or stream.dtype == torch.bool:
            raise ConfigError(f"the token stream must hold integer ids, got {stream.dtype}")
        if block_size < 1:
            raise ConfigError(f"block_size must be at least 1, got {block_size}")
        n = stream.numel()
        if n < span:
            raise ConfigError(
                f"the token stream holds {n} tokens but block_size {block_size} needs at least "
                f"{span}; use a smaller model.block_size or more text"
            )
        if random and (num_samples is None or num_samples < 1):
            raise ConfigError(
                f"random windows need num_samples >= 1 (e.g. steps * batch_size), got {num_samples}"
            )
        if not random and num_samples is not None:
            raise ConfigError(
                "num_samples applies to random (training) windows only; leave it unset when "
                "random=False"
            )
        self.stream = stream  # (N,)
        self.block_size = block_size
        self.span = span
        self.random = random
        self.seed = seed
        self.epoch = 0
        if random:
            self._len = int(num_samples)
        else:  # consecutive windows step by block_size; the tail that fits no window is dropped
            self._len = (n - (span - block_size)) // block_size

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        """Draw the random windows of ``epoch`` (no effect on consecutive windows)."""
        self.epoch = epoch

    def start(self, index: int) -> int:
        """First stream position of window ``index``."""
        if not 0 <= index < self._len:
            raise IndexError(f"window index {index} out of range [0, {self._len})")
        if not self.random:
            return index * self.block_size
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, index))
        num_starts = self.stream.numel() - self.span + 1
        return int(torch.randint(num_starts, (1,), generator=generator).item())

    def window(self, index: int) -> Tensor:
        """``[span]`` int64 tokens of window ``index``."""
        s = self.start(index)
        return self.stream[s : s + self.span].long()  # (span,)


class CausalWindows(_Windows):
    """``(x, y)`` windows for next-token prediction: ``y[t]`` is the token after ``x[t]``.

    Both come from the stream slice ``ids[s : s + block_size + 1]``: ``x`` is its first
    ``block_size`` tokens and ``y`` its last ``block_size``.

    Args:
        ids: ``[N]`` integer token stream, ``N >= block_size + 1``.
        block_size: window length ``T``.
        random: True (training): ``num_samples`` windows at random starts, item ``i`` drawn
            from a generator seeded by ``(seed, epoch, i)`` (see :meth:`set_epoch`). False
            (validation): the ``(N - 1) // T`` consecutive windows at starts ``0, T, 2T, ...``;
            their ``x`` cover ``ids[: len * T]`` once, in order.
        num_samples: number of random windows per epoch (e.g. ``steps * batch_size``); only
            with ``random=True``.
        seed: seed of the random starts.

    Raises:
        ConfigError: the stream is shorter than ``block_size + 1`` (or bad arguments).
    """

    extra_tokens = 1  # a window spans block_size + 1 stream tokens

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """``(x, y)``, each ``[T]`` int64."""
        chunk = self.window(index)  # (T + 1,)
        return chunk[:-1], chunk[1:]


class MaskedWindows(_Windows):
    """Windows ``x`` of ``block_size`` tokens for masked-language-model training.

    Mask batches of them with :class:`MaskedCollator`.

    Args:
        ids: ``[N]`` integer token stream, ``N >= block_size``.
        block_size: window length ``T``.
        random: True (training): ``num_samples`` windows at random starts seeded by
            ``(seed, epoch, i)``. False (validation): the ``N // T`` consecutive windows at
            starts ``0, T, 2T, ...``, covering ``ids[: len * T]`` once, in order.
        num_samples: number of random windows per epoch; only with ``random=True``.
        seed: seed of the random starts.

    Raises:
        ConfigError: the stream is shorter than ``block_size`` (or bad arguments).
    """

    extra_tokens = 0  # a window spans block_size + 0 stream tokens

    def __getitem__(self, index: int) -> Tensor:
        """``x``: ``[T]`` int64."""
        return self.window(index)
