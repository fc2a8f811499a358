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

On disk the cache is a folder of ``.npy`` files (:data:`CACHE_FILES`) with its rows in the order
of their keys, and it is loaded memory-mapped: loading reads the keys and row offsets only, a
lookup is a binary search, and a call reads from disk just the rows it uses. A server starts at
once on a collection of any size, its memory holds only the pages its calls touch, and the
processes of one machine (server workers, pods on one node) share those pages through the page
cache. Caches written by ltr 0.1's featurizers (one ``documents.npz``) still load, into memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import shutil
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import sparse

from ltr.artifact import ArtifactError, replace_folder

log = logging.getLogger(__name__)

KEY_BYTES = 16
PREFETCH_CHUNK = 8 << 20
CACHE_FORMAT = "ltr-document-cache"
CACHE_FORMAT_VERSION = 2
CACHE_META = "cache.json"
CACHE_FILES = ("keys", "lengths", "counts_indptr", "counts_indices", "counts_data")
"""The arrays of every cache (``<name>.npy``), beside ``vectors_<encoder>.npy`` per encoder."""


def text_key(text: str) -> bytes:
    """The cache key of a text: BLAKE2b-128 of its UTF-8 bytes (lone surrogates kept)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


def map_npy(path: Path, random_access: bool = True) -> np.ndarray:
    """The array of the ``.npy`` file ``path``, memory-mapped read-only. With ``random_access``
    the kernel's read-ahead is off (``MADV_RANDOM``): a call reads the pages of its rows, not
    the 128 KiB around each, so the page cache holds what the calls use."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
        if fortran_order or dtype.hasobject:
            raise ValueError(f"{path.name} is not a C-ordered array of numbers")
        count = int(np.prod(shape))
        if offset + count * dtype.itemsize > path.stat().st_size:
            raise ValueError(f"{path.name} is shorter than its header says")
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if random_access and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)


def row_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored entries of CSR rows ``rows`` (repeats allowed), one row after the other:
    ``(entry [E] positions in the data and indices arrays, offsets [len(rows) + 1])``, row
    ``r``'s entries at ``entry[offsets[r]:offsets[r + 1]]``."""
    starts = indptr[rows]
    sizes = indptr[rows + 1] - starts
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1]), offsets


def _as_void(keys: np.ndarray) -> np.ndarray:
    """``[N, 16]`` uint8 keys as ``[N]`` 16-byte scalars, which sort and search bytewise."""
    return np.ascontiguousarray(keys).view(f"V{KEY_BYTES}").ravel()


def _strictly_increasing(keys: np.ndarray) -> bool:
    """Whether ``[N, 16]`` uint8 keys are in strictly increasing bytewise order."""
    if len(keys) < 2:
        return True
    halves = np.ascontiguousarray(keys).view(">u8")  # (N, 2): big-endian, so bytewise order
    hi, lo = halves[:, 0], halves[:, 1]
    return bool(np.all((hi[1:] > hi[:-1]) | ((hi[1:] == hi[:-1]) & (lo[1:] > lo[:-1]))))


@dataclass
class DocumentCache:
    """Row ``i`` belongs to the text whose key is ``keys[i]``; rows are in key order.

    The arrays may be memory-mapped files (:meth:`load`): :meth:`rows` gathers what a call
    needs and checks it, so a damaged file is named when a row of it is used.
    """

    keys: np.ndarray
    """``[N, 16]`` uint8 text keys (:func:`text_key`), strictly increasing bytewise."""
    indptr: np.ndarray
    """``[N + 1]`` int64: row ``i``'s terms are ``indices[indptr[i]:indptr[i + 1]]``."""
    indices: np.ndarray
    """``[nnz]`` int32 vocabulary columns."""
    term_counts: np.ndarray
    """``[nnz]`` int32 how often each of those terms occurs in the document."""
    vocabulary_size: int
    lengths: np.ndarray
    """``[N]`` float64 counted terms of the document (stop words left out)."""
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    """Per encoder name: ``[N, d]`` float32 unit vectors."""
    source: str = "the document cache"
    """Where it was loaded from (for errors)."""
    files: tuple[Path, ...] = field(default=(), repr=False, compare=False)
    """The files its arrays are mapped from (none when it lives in memory)."""
    prefetched_bytes: int = field(default=0, repr=False, compare=False)
    """How much of :attr:`files` :meth:`prefetch` has read so far."""

    def __post_init__(self) -> None:
        n, where = len(self.keys), self.source
        if self.keys.ndim != 2 or self.keys.shape[1] != KEY_BYTES or self.keys.dtype != np.uint8:
            raise ArtifactError(
                f"{where}: keys must be [N, {KEY_BYTES}] uint8, got {self.keys.shape} "
                f"{self.keys.dtype}"
            )
        if self.indptr.shape != (n + 1,) or self.lengths.shape != (n,):
            raise ArtifactError(
                f"{where}: {n} keys but {len(self.indptr)} term offsets and "
                f"{len(self.lengths)} lengths (want {n + 1} and {n})"
            )
        if self.indices.shape != self.term_counts.shape or self.indices.ndim != 1:
            raise ArtifactError(
                f"{where}: {self.indices.shape} term columns but {self.term_counts.shape} counts"
            )
        ends = (int(self.indptr[0]), int(self.indptr[-1])) if n else (0, 0)
        if ends != (0, len(self.indices)) or np.any(np.diff(self.indptr) < 0):
            raise ArtifactError(
                f"{where}: term offsets must rise from 0 to the {len(self.indices)} terms"
            )
        for name, v in self.vectors.items():
            if v.ndim != 2 or len(v) != n:
                raise ArtifactError(f"{where}: {n} keys but {name!r} vectors of shape {v.shape}")
            if v.dtype != np.float32:
                raise ArtifactError(f"{where}: {name!r} vectors must be float32, got {v.dtype}")
        if not _strictly_increasing(self.keys):
            raise ArtifactError(f"{where}: keys must be unique and sorted")

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        counts: sparse.csr_matrix,
        lengths: np.ndarray,
        vectors: Mapping[str, np.ndarray],
    ) -> DocumentCache:
        """The cache of ``texts[i]``'s rows (a text given twice is kept once, its last row)."""
        row_of = {text_key(t): i for i, t in enumerate(texts)}
        rows = np.fromiter(row_of.values(), dtype=np.int64, count=len(row_of))
        for name, v in vectors.items():
            if not np.isfinite(v[rows]).all():
                raise ArtifactError(f"{name!r} vectors to cache must be finite")
        keys = np.frombuffer(b"".join(row_of), dtype=np.uint8).reshape(-1, KEY_BYTES)
        return cls._in_key_order(keys, rows, counts, lengths, vectors)

    @classmethod
    def _in_key_order(
        cls,
        keys: np.ndarray,
        rows: np.ndarray,
        counts: sparse.csr_matrix,
        lengths: np.ndarray,
        vectors: Mapping[str, np.ndarray],
        source: str = "the document cache",
    ) -> DocumentCache:
        """The cache whose entry for ``keys[i]`` is row ``rows[i]`` of the other arguments, its
        rows put in key order (each row's terms once, sorted, as the lexical scores want)."""
        order = np.argsort(_as_void(keys), kind="stable")
        rows = rows[order]
        picked = sparse.csr_matrix(counts[rows])
        picked.sum_duplicates()
        return cls(
            keys[order].copy(),
            picked.indptr.astype(np.int64),
            picked.indices.astype(np.int32),
            picked.data.astype(np.int32),
            int(counts.shape[1]),
            np.asarray(lengths, dtype=np.float64)[rows],
            {n: np.ascontiguousarray(v[rows], dtype=np.float32) for n, v in vectors.items()},
            source=source,
        )

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def counts(self) -> sparse.csr_matrix:
        """``[N, V]`` float64 term counts of every row (reads them all: for small caches)."""
        return self.rows(np.arange(len(self)))[0]

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """``[n]`` int64: each text's row, -1 where it is not cached (a binary search each)."""
        return self.find([text_key(t) for t in texts])

    def find(self, keys: Sequence[bytes]) -> np.ndarray:
        """``[n]`` int64: the row of each :func:`text_key`, -1 where it is not cached."""
        if not len(keys):
            return np.zeros(0, dtype=np.int64)
        wanted = _as_void(np.frombuffer(b"".join(keys), dtype=np.uint8))
        stored = _as_void(self.keys)
        rows = np.searchsorted(stored, wanted)
        inside = rows < len(stored)
        found = np.zeros(len(keys), dtype=bool)
        found[inside] = stored[rows[inside]] == wanted[inside]
        return np.where(found, rows, -1).astype(np.int64)

    def rows(self, rows: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray, dict[str, np.ndarray]]:
        """Rows ``rows`` (valid row numbers): ``[n, V]`` float64 term counts, ``[n]`` lengths,
        and per encoder ``[n, d]`` float32 vectors, read (from disk if mapped) and checked."""
        rows = np.asarray(rows, dtype=np.int64)
        take, indptr = row_entries(self.indptr, rows)
        indices = np.asarray(self.indices[take], dtype=np.int32)
        data = np.asarray(self.term_counts[take], dtype=np.float64)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.vocabulary_size):
            raise ArtifactError(
                f"{self.source}: a cached row has a term outside the {self.vocabulary_size} "
                "vocabulary terms; the cache is damaged (run `ltr text-features` again)"
            )
        counts = sparse.csr_matrix((data, indices, indptr), shape=(len(rows), self.vocabulary_size))
        vectors = {}
        for name, v in self.vectors.items():
            vectors[name] = np.asarray(v[rows], dtype=np.float32)
            if not np.isfinite(vectors[name]).all():
                raise ArtifactError(
                    f"{self.source}: cached {name!r} vectors are not finite; the cache is "
                    "damaged (run `ltr text-features` again)"
                )
        return counts, np.asarray(self.lengths[rows], dtype=np.float64), vectors

    def prefetch(self) -> threading.Thread | None:
        """Read the mapped files once, front to back, in a background thread, so that they sit in
        the page cache: on a machine that has not read them yet, calls then find their rows in
        memory instead of waiting on the disk row by row. The process's memory does not grow
        (one 8 MiB buffer); the pages are the page cache's, which the kernel drops first when
        memory runs short. Returns the thread (None for a cache in memory)."""
        if not self.files:
            return None

        def read() -> None:
            buffer = bytearray(PREFETCH_CHUNK)
            for path in self.files:
                try:
                    with open(path, "rb", buffering=0) as f:
                        while n := f.readinto(buffer):
                            self.prefetched_bytes += n
                except OSError as exc:  # the files went (a model swap): nothing to warm
                    log.warning("document cache prefetch stopped at %s: %s", path, exc)
                    return
            log.info("document cache %s read into the page cache (%d bytes)", self.source,
                     self.prefetched_bytes)  # fmt: skip

        thread = threading.Thread(target=read, name="ltr-document-cache-prefetch", daemon=True)
        thread.start()
        return thread

    def save(self, path: str | Path) -> Path:
        """Write the folder ``path`` whole: a reader sees the old cache or the new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        arrays = {
            "keys": self.keys,
            "lengths": self.lengths,
            "counts_indptr": self.indptr,
            "counts_indices": self.indices,
            "counts_data": self.term_counts,
            **{f"vectors_{name}": v for name, v in self.vectors.items()},
        }
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        meta = {
            "format": CACHE_FORMAT,
            "format_version": CACHE_FORMAT_VERSION,
            "documents": len(self),
            "vocabulary_size": self.vocabulary_size,
            "encoders": {name: int(v.shape[1]) for name, v in self.vectors.items()},
        }
        (tmp / CACHE_META).write_text(json.dumps(meta))
        return replace_folder(tmp, path)

    @classmethod
    def load(cls, path: str | Path, vocabulary_size: int, dims: Mapping[str, int]) -> DocumentCache:
        """Read what :meth:`save` wrote (memory-mapped), or an ltr 0.1 ``documents.npz`` (into
        memory), for a featurizer of ``vocabulary_size`` terms whose encoders give vectors of
        ``dims`` (name -> width)."""
        path = Path(path)
        try:
            if path.is_dir():
                meta = json.loads((path / CACHE_META).read_text())
                if meta.get("format") != CACHE_FORMAT:
                    raise ValueError(f"{CACHE_META} is not an ltr document cache's")
                if int(meta.get("format_version", 0)) > CACHE_FORMAT_VERSION:
                    raise ArtifactError(
                        f"{path} was written by a newer ltr; upgrade ltr to load it"
                    )
                arrays = {  # keys and offsets are read whole by the checks below
                    name: map_npy(path / f"{name}.npy", name not in ("keys", "counts_indptr"))
                    for name in CACHE_FILES
                }
                v = int(meta["vocabulary_size"])
                names = [str(n) for n in meta.get("encoders", {})]
                vectors = {n: map_npy(path / f"vectors_{n}.npy") for n in names}
                cache = cls(
                    arrays["keys"],  # read by the checks: 16 bytes a document
                    arrays["counts_indptr"],  # 8 bytes a document
                    arrays["counts_indices"],
                    arrays["counts_data"],
                    v,
                    arrays["lengths"],
                    vectors,
                    source=str(path),
                    files=tuple(
                        path / f"{n}.npy" for n in (*CACHE_FILES, *(f"vectors_{n}" for n in names))
                    ),
                )
            else:
                cache, v = cls._load_npz(path)
        except ArtifactError as exc:
            if str(exc).startswith(str(path)):
                raise
            raise ArtifactError(f"{path}: not a readable document cache ({exc})") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: not a readable document cache ({exc})") from None
        if v != vocabulary_size:
            raise ArtifactError(
                f"{path}: the cache counts {v} terms but the featurizer's vocabulary has "
                f"{vocabulary_size}; the cache belongs to another featurizer"
            )
        if sorted(cache.vectors) != sorted(dims):
            raise ArtifactError(
                f"{path}: the cache holds vectors of {sorted(cache.vectors)} but the featurizer's "
                f"encoders are {sorted(dims)}"
            )
        for name, dim in dims.items():
            got = cache.vectors[name]
            if got.shape[1] != dim:
                raise ArtifactError(
                    f"{path}: cached {name!r} vectors have {got.shape[1]} dimensions but the "
                    f"encoder gives {dim}"
                )
        return cache

    @classmethod
    def _load_npz(cls, path: Path) -> tuple[DocumentCache, int]:
        """An ltr 0.1 cache (one ``.npz``, keys unsorted), read into memory and put in key order."""
        with np.load(path, allow_pickle=False) as data:
            n, v = len(data["keys"]), int(data["vocabulary_size"])
            counts = sparse.csr_matrix(
                (data["counts_data"], data["counts_indices"], data["counts_indptr"]),
                shape=(n, v),
            )
            names = [k.removeprefix("vectors_") for k in data.files if k.startswith("vectors_")]
            vectors = {name: data[f"vectors_{name}"] for name in names}
            keys, lengths = data["keys"], data["lengths"]
        if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or keys.dtype != np.uint8:
            raise ValueError(f"keys must be [N, {KEY_BYTES}] uint8, got {keys.shape}")
        for name, array in vectors.items():
            if array.dtype != np.float32 or not np.isfinite(array).all():
                raise ValueError(f"cached {name!r} vectors must be finite float32")
            if len(array) != n:
                raise ValueError(f"{n} cache keys but {name!r} vectors of shape {array.shape}")
        cache = cls._in_key_order(keys, np.arange(n), counts, lengths, vectors, source=str(path))
        return cache, v


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
