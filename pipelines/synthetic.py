"""Synthetic ranking data in the ltr Parquet schema, generated and written in a stream.

Each query gets a list length drawn uniformly from ``[min_list, max_list]``; each candidate gets
``F`` standard-normal features, and a hidden relevance ``r = x . w + 0.5 * noise`` (``w`` fixed
by the seed). Labels are graded by ``r``: 2 above the 95th percentile of ``r``'s (normal)
distribution, 1 above the 75th, else 0 -- so a model can learn something and a random scorer
cannot. Rows are generated ``chunk_rows`` at a time, so 10^7 rows never sit in memory.

Run ``python -m pipelines.synthetic OUT.parquet --rows 1000000`` to write a file.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltr.data.parquet import ParquetListWriter, chunk_to_table, schema
from ltr.data.svmlight import RowChunk

DEFAULT_FEATURES = 46


def synthetic_chunks(
    num_rows: int,
    *,
    num_features: int = DEFAULT_FEATURES,
    min_list: int = 10,
    max_list: int = 100,
    seed: int = 0,
    chunk_rows: int = 65_536,
) -> Iterator[RowChunk]:
    """Yield :class:`RowChunk` blocks of whole queries adding up to exactly ``num_rows`` rows.

    The last query is cut short if needed to hit ``num_rows`` (it keeps at least one row).
    """
    if num_rows < 1 or not 1 <= min_list <= max_list:
        raise ValueError("need num_rows >= 1 and 1 <= min_list <= max_list")
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=num_features) / np.sqrt(num_features)  # [F], |w| ~ 1
    spread = float(np.sqrt(weights @ weights + 0.25))  # standard deviation of the relevance
    done, query = 0, 0
    while done < num_rows:
        lengths = []
        total = 0
        while total < chunk_rows and done + total < num_rows:
            n = int(rng.integers(min_list, max_list + 1))
            n = min(n, num_rows - done - total)
            lengths.append(n)
            total += n
        features = rng.standard_normal((total, num_features), dtype=np.float32)  # [n, F]
        relevance = features @ weights + 0.5 * rng.standard_normal(total)  # [n]
        labels = np.select([relevance > 1.645 * spread, relevance > 0.674 * spread], [2.0, 1.0])
        qids = np.repeat([f"q{query + i:08d}" for i in range(len(lengths))], lengths)
        position = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        doc_ids = np.char.add(np.char.add(qids.astype(str), "-"), position.astype(str))
        yield RowChunk(
            qids=qids.astype(object),
            doc_ids=doc_ids.astype(object),
            labels=labels.astype(np.float32),
            features=features,
        )
        done += total
        query += len(lengths)


def write_synthetic(
    path: str | Path,
    num_rows: int,
    *,
    num_features: int = DEFAULT_FEATURES,
    min_list: int = 10,
    max_list: int = 100,
    seed: int = 0,
    row_group_rows: int = 65_536,
    align_row_groups: bool = True,
) -> Path:
    """Write ``num_rows`` synthetic rows to ``path`` (atomically) and return the path.

    Args:
        align_row_groups: cut row groups at query boundaries (as ``ltr convert`` does); with
            ``False`` every row group has exactly ``row_group_rows`` rows and queries straddle
            row groups (to exercise scorers that must keep lists whole).
    """
    path = Path(path)
    chunks = synthetic_chunks(
        num_rows,
        num_features=num_features,
        min_list=min_list,
        max_list=max_list,
        seed=seed,
        chunk_rows=max(row_group_rows, 4096),
    )
    if align_row_groups:
        with ParquetListWriter(path, num_features, row_group_rows=row_group_rows) as writer:
            for chunk in chunks:
                writer.write(chunk)
        return path
    file_schema = schema(num_features)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(tmp, file_schema, compression="zstd") as writer:
        pending = None
        for chunk in chunks:
            table = chunk_to_table(chunk, file_schema)
            if pending is not None:
                table = pa.concat_tables([pending, table])
            whole = len(table) // row_group_rows * row_group_rows
            if whole:
                writer.write_table(table.slice(0, whole), row_group_size=row_group_rows)
            pending = table.slice(whole)
        if pending is not None and len(pending):
            writer.write_table(pending, row_group_size=row_group_rows)
    tmp.replace(path)
    return path


def write_context_task(
    path: str | Path,
    num_queries: int,
    *,
    num_features: int = 8,
    list_length: int = 20,
    seed: int = 0,
    task_seed: int = 0,
) -> Path:
    """Write a ranking task that only a model reading the context vector can learn.

    Every query gets a context vector ``[s, z]`` (list column ``context``): ``s`` is -1 or +1,
    ``z`` standard normal and unused (a distractor). A candidate's hidden relevance is
    ``s * (x . w) + 0.3 * noise`` with standard-normal features ``x`` and ``w`` fixed by
    ``task_seed`` (files with one ``task_seed`` and different ``seed`` are splits of one task),
    graded 2 / 1 / 0 at the 90th / 70th percentiles of the file's relevances. Query ids
    (``s<seed>-q<n>``) differ between splits, so splits can be loaded together (CV partitions).
    Half the queries want large ``x . w`` and half small: from features alone a model can at
    best put candidates with extreme ``x . w`` first (about half of them relevant), while with
    the context it can approach NDCG 1.
    """
    if num_queries < 1 or list_length < 1:
        raise ValueError("need num_queries >= 1 and list_length >= 1")
    weights = np.random.default_rng(task_seed).normal(size=num_features) / np.sqrt(num_features)
    rng = np.random.default_rng([task_seed, seed])
    n = num_queries * list_length
    sign = rng.choice([-1.0, 1.0], size=num_queries)  # [Q]
    context = np.column_stack([sign, rng.standard_normal(num_queries)]).astype(np.float32)
    features = rng.standard_normal((n, num_features), dtype=np.float32)  # [N, F]
    relevance = np.repeat(sign, list_length) * (features @ weights)
    relevance += 0.3 * rng.standard_normal(n)  # [N]
    high, mid = np.quantile(relevance, [0.9, 0.7])
    labels = np.select([relevance > high, relevance > mid], [2.0, 1.0]).astype(np.float32)
    qids = np.repeat([f"s{seed}-q{q:06d}" for q in range(num_queries)], list_length)
    doc_ids = [f"{q}-{i % list_length}" for i, q in enumerate(qids)]
    chunk = RowChunk(qids.astype(object), np.asarray(doc_ids, dtype=object), labels, features)
    table = chunk_to_table(chunk, schema(num_features))
    per_row = pa.FixedSizeListArray.from_arrays(
        pa.array(np.repeat(context, list_length, axis=0).reshape(-1)), context.shape[1]
    )
    table = table.append_column("context", per_row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write synthetic ranking data (ltr schema)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--rows", type=int, help="rows to write (the plain task)")
    parser.add_argument("--features", type=int, default=DEFAULT_FEATURES)
    parser.add_argument("--min-list", type=int, default=10)
    parser.add_argument("--max-list", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row-group-rows", type=int, default=65_536)
    parser.add_argument("--straddle", action="store_true", help="let queries straddle row groups")
    parser.add_argument(
        "--context-task",
        type=int,
        metavar="QUERIES",
        help="instead: QUERIES lists of --max-list candidates with 8 features and a context "
        "vector that decides which candidates are relevant (see write_context_task); files "
        "with different --seed are splits of one task",
    )
    args = parser.parse_args(argv)
    if args.context_task is not None:
        write_context_task(
            args.output, args.context_task, list_length=args.max_list, seed=args.seed
        )
        print(f"wrote {args.context_task:,} queries with context vectors to {args.output}")
        return 0
    if args.rows is None:
        parser.error("give --rows (or --context-task QUERIES)")
    write_synthetic(
        args.output,
        args.rows,
        num_features=args.features,
        min_list=args.min_list,
        max_list=args.max_list,
        seed=args.seed,
        row_group_rows=args.row_group_rows,
        align_row_groups=not args.straddle,
    )
    print(f"wrote {args.rows:,} rows to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
