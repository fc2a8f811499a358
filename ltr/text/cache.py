"""What the featurizer knows of a collection's documents ahead of time, looked up by their text.

Featurizing a candidate means tokenising it (the lexical columns) and encoding it with every
text encoder (a forward pass of a language model each). The documents a first stage returns
mostly come from a collection known ahead, so ``ltr text-features`` analyses and encodes the whole
collection once and saves the results with the featurizer: each document's vocabulary term
counts and counted length, and each encoder's vector. A candidate found in the cache then costs a
lookup; only the query, and documents the cache does not hold, are tokenised and encoded.

A document is found by a 128-bit BLAKE2b digest of its exact text (UTF-8), so an edited document
is simply a miss. A cached row is what the featurizer computes for that text afresh (vectors to
float rounding: the batch a text is encoded in differs).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import sparse

from ltr.artifact import ArtifactError

KEY_BYTES = 16


def text_key(text: str) -> bytes:
    """The cache key of a text: BLAKE2b-128 of its UTF-8 bytes (lone surrogates kept)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


@dataclass
class DocumentCache:
    """Row ``i`` belongs to the text whose key is ``keys[i]``."""

    keys: np.ndarray
    """``[N, 16]`` uint8 text keys (:func:`text_key`), unique."""
    counts: sparse.csr_matrix
    """``[N, V]`` how often each vocabulary term occurs in the document."""
    lengths: np.ndarray
    """``[N]`` float64 counted terms of the document (stop words left out)."""
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    """Per encoder name: ``[N, d]`` float32 unit vectors."""

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.keys.ndim != 2 or self.keys.shape[1] != KEY_BYTES or self.keys.dtype != np.uint8:
            raise ArtifactError(f"cache keys must be [N, {KEY_BYTES}] uint8, got {self.keys.shape}")
        if self.counts.shape[0] != n or self.lengths.shape != (n,):
            raise ArtifactError(
                f"{n} cache keys but term counts of shape {self.counts.shape} and "
                f"{self.lengths.shape[0]} lengths"
            )
        for name, v in self.vectors.items():
            if v.ndim != 2 or len(v) != n:
                raise ArtifactError(f"{n} cache keys but {name!r} vectors of shape {v.shape}")

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        counts: sparse.csr_matrix,
        lengths: np.ndarray,
        vectors: Mapping[str, np.ndarray],
    ) -> DocumentCache:
        """The cache of ``texts[i]``'s rows (a text given twice is kept once)."""
        row_of = {text_key(t): i for i, t in enumerate(texts)}  # a repeated text: its last row
        rows = np.fromiter(row_of.values(), dtype=np.int64, count=len(row_of))
        keys = np.frombuffer(b"".join(row_of), dtype=np.uint8).reshape(-1, KEY_BYTES).copy()
        return cls(
            keys,
            sparse.csr_matrix(counts[rows], dtype=np.float64),
            np.asarray(lengths, dtype=np.float64)[rows],
            {n: np.ascontiguousarray(v[rows], dtype=np.float32) for n, v in vectors.items()},
        )

    def __len__(self) -> int:
        return len(self.keys)

    @cached_property
    def _index(self) -> dict[bytes, int]:
        return {row.tobytes(): i for i, row in enumerate(self.keys)}

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """``[n]`` int64: each text's row, -1 where it is not cached."""
        index = self._index
        return np.fromiter((index.get(text_key(t), -1) for t in texts), np.int64, len(texts))

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.npz``) whole: a reader sees the old file or the new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "keys": self.keys,
            "lengths": self.lengths,
            "counts_indptr": self.counts.indptr,
            "counts_indices": self.counts.indices,
            "counts_data": self.counts.data.astype(np.int32),
            "vocabulary_size": np.array(self.counts.shape[1]),
            **{f"vectors_{name}": v for name, v in self.vectors.items()},
        }
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as out:  # the umask's permissions, as every other artifact file
            np.savez(out, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, vocabulary_size: int, dims: Mapping[str, int]) -> DocumentCache:
        """Read what :meth:`save` wrote, for a featurizer of ``vocabulary_size`` terms whose
        encoders give vectors of ``dims`` (name -> width)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                n, v = len(data["keys"]), int(data["vocabulary_size"])
                counts = sparse.csr_matrix(
                    (data["counts_data"].astype(np.float64), data["counts_indices"],
                     data["counts_indptr"]),
                    shape=(n, v),
                )  # fmt: skip
                names = [k.removeprefix("vectors_") for k in data.files if k.startswith("vectors_")]
                vectors = {name: data[f"vectors_{name}"] for name in names}
                cache = cls(data["keys"], counts, data["lengths"], vectors)
        except (OSError, ValueError, KeyError, ArtifactError) as exc:
            raise ArtifactError(f"{path}: not a readable document cache ({exc})") from None
        if v != vocabulary_size:
            raise ArtifactError(
                f"{path}: the cache counts {v} terms but the featurizer's vocabulary has "
                f"{vocabulary_size}; the cache belongs to another featurizer"
            )
        if sorted(vectors) != sorted(dims):
            raise ArtifactError(
                f"{path}: the cache holds vectors of {sorted(vectors)} but the featurizer's "
                f"encoders are {sorted(dims)}"
            )
        for name, dim in dims.items():
            got = vectors[name]
            if got.shape[1] != dim:
                raise ArtifactError(
                    f"{path}: cached {name!r} vectors have {got.shape[1]} dimensions but the "
                    f"encoder gives {dim}"
                )
            if got.dtype != np.float32 or not np.isfinite(got).all():
                raise ArtifactError(f"{path}: cached {name!r} vectors must be finite float32")
        return cache


class RecentDocument(NamedTuple):
    """One document as :class:`RecentDocuments` keeps it."""

    indices: np.ndarray
    """int32 vocabulary columns of its terms."""
    counts: np.ndarray
    """float64 count of each of those terms."""
    length: float
    unknown: frozenset[str]
    """Its terms outside the vocabulary."""
    vectors: dict[str, np.ndarray]
    """Per encoder: its ``[d]`` float32 unit vector."""


class RecentDocuments:
    """The ``capacity`` documents featurized most recently that the :class:`DocumentCache`
    lacks, kept analysed and encoded in memory, the least recently used dropped first.

    A served collection changes: documents indexed after ``ltr text-features`` ran are not in
    the document cache, and the first stage returns the same new documents to many queries.
    With this memory each is tokenised and encoded once, not on every call (until it is
    dropped). Keys are :func:`text_key` digests; safe to share between threads.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[bytes, RecentDocument] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, keys: Sequence[bytes]) -> list[RecentDocument | None]:
        """Each key's document (None when not kept); the ones found become the most recent."""
        out: list[RecentDocument | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                out.append(entry)
        return out

    def put(
        self,
        keys: Sequence[bytes],
        counts: sparse.csr_matrix,
        lengths: np.ndarray,
        unknown: Sequence[frozenset[str]],
        vectors: Mapping[str, np.ndarray],
    ) -> None:
        """Keep document ``i`` (row ``i`` of each argument) under ``keys[i]``, as the most
        recent, dropping the least recently used beyond :attr:`capacity`."""
        indptr = counts.indptr
        entries = [
            RecentDocument(
                counts.indices[indptr[i] : indptr[i + 1]].astype(np.int32),
                counts.data[indptr[i] : indptr[i + 1]].astype(np.float64),
                float(lengths[i]),
                unknown[i],
                {name: np.array(v[i], dtype=np.float32) for name, v in vectors.items()},
            )
            for i in range(len(keys))
        ]
        with self._lock:
            for key, entry in zip(keys, entries, strict=True):
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
