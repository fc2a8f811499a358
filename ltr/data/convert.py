"""Streamed conversion of LETOR/SVMlight files to ltr Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ltr.data.parquet import DEFAULT_ROW_GROUP_ROWS, ParquetListWriter, query_starts
from ltr.data.stats import DataStats
from ltr.data.svmlight import iter_svmlight, scan_num_features


def convert_files(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    num_features: int | None = None,
    group_file: str | Path | None = None,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> dict[str, object]:
    """Convert ``inputs`` (concatenated in order) to one Parquet file; return its statistics.

    Memory stays bounded by one chunk of rows; the output appears only when complete.
    """
    for path in inputs:
        if not Path(path).exists():
            raise FileNotFoundError(f"no such input file: {path}")
    width = num_features or max(scan_num_features(p) for p in inputs)
    stats = DataStats()
    with ParquetListWriter(output, width, row_group_rows=row_group_rows) as writer:
        for path in inputs:
            for chunk in iter_svmlight(path, num_features=width, group_file=group_file):
                writer.write(chunk)
                offsets = [*query_starts(chunk.qids), len(chunk)]
                stats.update(chunk.labels, chunk.features, offsets)
    return stats.summary()
