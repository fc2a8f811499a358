"""A text encoder's document vectors, computed once and looked up by the document's text.

Encoding candidate documents is nearly all the cost of reranking texts with an encoder feature
(a forward pass of the language model per document, every call). The documents a first stage
returns mostly come from a collection known ahead, so ``ltr text-features`` encodes the whole
collection once and saves the vectors with the featurizer; a candidate whose text is in the
cache then costs a dictionary lookup, and only the query and unseen documents are encoded.

A vector is found by a 128-bit BLAKE2b digest of the document's exact text (UTF-8), so an edited
document is simply a miss and is encoded afresh; a cached vector is what encoding that text
gives (to float rounding: the batch it was encoded in differs).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ltr.artifact import ArtifactError

KEY_BYTES = 16


def text_key(text: str) -> bytes:
    """The cache key of a text: BLAKE2b-128 of its UTF-8 bytes (lone surrogates kept)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


@dataclass
class VectorCache:
    """``vectors[i]`` is the encoder's vector of the text whose key is ``keys[i]``."""

    keys: np.ndarray
    """``[N, 16]`` uint8 text keys (:func:`text_key`), unique."""
    vectors: np.ndarray
    """``[N, d]`` float32 unit vectors."""

    def __post_init__(self) -> None:
        if self.keys.ndim != 2 or self.keys.shape[1] != KEY_BYTES or self.keys.dtype != np.uint8:
            raise ArtifactError(f"cache keys must be [N, {KEY_BYTES}] uint8, got {self.keys.shape}")
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.keys):
            raise ArtifactError(
                f"{len(self.keys)} cache keys but vectors of shape {self.vectors.shape}"
            )

    @classmethod
    def build(cls, texts: Sequence[str], vectors: np.ndarray) -> VectorCache:
        """The cache of ``texts[i] -> vectors[i]`` (a text given twice is kept once)."""
        keys = [text_key(t) for t in texts]
        row_of = dict(zip(keys, range(len(keys)), strict=True))  # a repeated text: its last row
        rows = np.fromiter(row_of.values(), dtype=np.int64, count=len(row_of))
        key_bytes = np.frombuffer(b"".join(row_of), dtype=np.uint8).reshape(-1, KEY_BYTES)
        return cls(key_bytes.copy(), np.ascontiguousarray(vectors[rows], dtype=np.float32))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    @cached_property
    def _index(self) -> dict[bytes, int]:
        return {row.tobytes(): i for i, row in enumerate(self.keys)}

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """``[n]`` int64: each text's row in :attr:`vectors`, -1 where it is not cached."""
        index = self._index
        return np.fromiter((index.get(text_key(t), -1) for t in texts), np.int64, len(texts))

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.npz``) whole: a reader sees the old file or the new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, keys=self.keys, vectors=self.vectors)
        Path(tmp.name).replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, dim: int) -> VectorCache:
        """Read what :meth:`save` wrote, for an encoder of width ``dim``."""
        try:
            with np.load(path, allow_pickle=False) as data:
                cache = cls(data["keys"], data["vectors"])
        except (OSError, ValueError, KeyError, ArtifactError) as exc:
            raise ArtifactError(f"{path}: not a readable vector cache ({exc})") from None
        if cache.dim != dim:
            raise ArtifactError(
                f"{path}: cached vectors have {cache.dim} dimensions but the encoder gives {dim}; "
                "the cache belongs to another encoder"
            )
        if cache.vectors.dtype != np.float32 or not np.isfinite(cache.vectors).all():
            raise ArtifactError(f"{path}: cached vectors must be finite float32")
        return cache
