"""``ltr drift``: compare data with the features a model was trained on (:mod:`ltr.drift`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

PERIODS = ("hour", "day", "week")
"""``--every``'s choices: those of :func:`ltr.drift.period_starts` (not imported here, so that
building the parser does not import numpy)."""

DRIFT_FOUND = 1
"""Exit status when a feature passes ``--fail-above`` or ``--fail-out-of-range`` (errors exit
2)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="how far data's features are from the model's training data (PSI per feature)",
        description="Compare the features of DATA with the training profile the model carries "
        "(feature_profile.json, written by `ltr train`): per feature, the population stability "
        "index over the training deciles (below 0.1 stable, 0.1-0.25 moderate, above 0.25 "
        "major), the share of values outside the training range and the mean shift in training "
        "standard deviations; largest PSI first. When DATA is an impression log (with the "
        "model's score column) and the profile holds the model's scores of its training lists, "
        "the scores are compared too (--fail-score-above). DATA may be LETOR or ltr Parquet files, "
        "Parquet files with a column per feature named as the model's, or folders of Parquet "
        "files such as a server's impression log (files of other features are skipped). With "
        "--fail-above (PSI) or --fail-out-of-range (share) the exit status is 1 when a feature "
        "drifted more, for a pipeline to stop before scoring. --save-profile instead profiles "
        "DATA as the model's training data and writes it into the artifact, for models made "
        "without one. --every day reports each day of timestamped Parquet data (a server's "
        "impression log) apart, to show a slow drift as a trend.",
        epilog="examples: ltr drift --model runs/demo/model_run/model --data impressions/ "
        "--fail-above 0.25; ltr drift --model runs/demo/model_run/model --data impressions/ "
        "--every day",
    )
    p.add_argument(
        "--model", required=True, help="artifact dir, runs:/<id>/model or models:/<name>@<alias>"
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        nargs="+",
        help="LETOR or Parquet file(s), or folders of Parquet files",
    )
    p.add_argument("--group-file", type=Path, help="LightGBM-style group sizes for LETOR data")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--top", type=int, metavar="N", help="print only the N largest shifts")
    p.add_argument(
        "--fail-above",
        type=float,
        metavar="PSI",
        help="exit with status 1 when a feature's PSI is above this (0.25: a major shift)",
    )
    p.add_argument(
        "--fail-out-of-range",
        type=float,
        metavar="SHARE",
        help="exit with status 1 when more than this share of a feature's values fall outside "
        "its training range (0.01: what a rescaled feature trips first)",
    )
    p.add_argument(
        "--fail-score-above",
        type=float,
        metavar="PSI",
        help="exit with status 1 when the PSI of the model's logged scores (an impression log's "
        "score column) against its scores of its training lists is above this",
    )
    p.add_argument(
        "--rescore",
        action="store_true",
        help="score DATA's lists with the model (grouped by --list-column, each list's rows "
        "together, as in LETOR and ltr Parquet files) and compare those scores with its scores "
        "of its training lists, for data without logged scores: a batch job's input, a new "
        "data set",
    )
    p.add_argument(
        "--every",
        choices=PERIODS,
        help="compare each hour, day or week (from Monday, UTC) of --time-column apart, oldest "
        "first; --fail-above and --fail-out-of-range then apply to every period judged",
    )
    p.add_argument(
        "--time-column",
        default="served_at",
        help="timestamp column that --every splits Parquet data by (default: served_at, the "
        "impression log's)",
    )
    p.add_argument(
        "--list-column",
        help="column naming each row's list, to count a period's lists, or to score them "
        "with --rescore and --save-profile (default: session, the impression log's, else qid)",
    )
    p.add_argument(
        "--min-lists",
        type=int,
        default=100,
        metavar="N",
        help="with --every, periods of fewer lists are listed but not compared: PSI over a few "
        "lists is noise (default: 100, as the server's drift.min_lists)",
    )
    p.add_argument(
        "--save-profile",
        action="store_true",
        help="profile DATA as the model's training data and write it into the artifact folder "
        "(artifacts older than profiles, or made by ltr lightgbm-model, xgboost-model or "
        "linear-model without --profile-data): its features and the model's scores of its "
        "lists (each list's rows together), from a seeded sample of at most a million rows "
        "(ltr.drift.MAX_ROWS) taken as DATA is read a block at a time",
    )
    p.set_defaults(func=run)


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
        if not files:
            from ltr.errors import DataFormatError

            raise DataFormatError(f"{path} holds no .parquet files")
        return files
    return [path]


BLOCK_ROWS = 65_536
"""Rows read from a Parquet file at a time: what ``ltr drift`` holds in memory, whatever the
size of the data (with ``--save-profile``, beside a sample of at most
:data:`ltr.drift.MAX_ROWS` rows)."""


def feature_blocks(
    paths: list[Path],
    names: list[str],
    group_file: Path | None = None,
    columns: Sequence[str] = (),
    skipped: list[str] | None = None,
    block_rows: int | None = None,
) -> Iterator[tuple[object, dict[str, object]]]:
    """The rows of ``paths`` a block at a time: features ``[n, F]`` and the values of
    ``columns`` for each row (Parquet only, but for ``qid``, which LETOR files have too; a
    timestamp column comes as ``datetime64``), at most
    ``block_rows`` (:data:`BLOCK_ROWS`) from Parquet, a whole file from LETOR. Notes on files
    skipped are appended to ``skipped``.

    Parquet files need either a ``features`` column of fixed-size lists whose schema names
    ``names`` (so an impression log qualifies), or one column per feature named as ``names``.
    A file of other features inside a folder is skipped (an impression log holds one schema per
    file, and changes schema when a model of other features is swapped in); given by name, it is
    an error. No rows at all is an error too."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ltr.data.dataset import load_dataset
    from ltr.data.parquet import META_FEATURE_NAMES, default_feature_names
    from ltr.errors import DataFormatError

    columns = list(dict.fromkeys(columns))  # each once
    skipped = [] if skipped is None else skipped
    block_rows = block_rows or BLOCK_ROWS
    rows = 0
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such data file or folder: {path}")
        if not path.is_dir() and path.suffix != ".parquet":  # LETOR/SVMlight
            absent = [c for c in columns if c != "qid"]
            if absent:
                raise DataFormatError(
                    f"{path} is a LETOR file, which has no {', '.join(absent)} column: give "
                    "Parquet files or folders (an impression log)"
                )
            data = load_dataset(path, group_file=group_file, num_features=len(names))
            if data.num_features != len(names):
                raise DataFormatError(
                    f"{path} has {data.num_features} features but the model reads {len(names)}"
                )
            rows += len(data.features)
            qids = np.repeat(data.qids.astype(str), np.diff(data.offsets))
            yield data.features, {c: qids for c in columns}
            continue
        for file in _parquet_files(path):
            schema = pq.read_schema(file)
            absent = [c for c in columns if schema.get_field_index(c) < 0]
            if absent:
                raise DataFormatError(f"{file} has no {', '.join(absent)} column")
            index = schema.get_field_index("features")
            kind = schema.field(index).type if index >= 0 else None
            wide = kind is None and all(schema.get_field_index(n) >= 0 for n in names)
            if not wide:
                if kind is None or not pa.types.is_fixed_size_list(kind):
                    raise DataFormatError(
                        f"{file} has no 'features' column of fixed-size float lists (the ltr "
                        "schema; convert LETOR files with `ltr convert`) nor a column for each "
                        f"of the model's {len(names)} features"
                    )
                meta = schema.metadata or {}
                theirs = (
                    json.loads(meta[META_FEATURE_NAMES])
                    if META_FEATURE_NAMES in meta
                    else default_feature_names(kind.list_size)
                )
                if theirs != names:
                    why = f"{file} holds {len(theirs)} features other than the model's {len(names)}"
                    if not path.is_dir():
                        raise DataFormatError(why)
                    skipped.append(why)
                    continue
            wanted = [*names, *columns] if wide else ["features", *columns]
            for batch in pq.ParquetFile(file).iter_batches(batch_size=block_rows, columns=wanted):
                if wide:  # one column per feature, named as the model's (`--feature-columns`)
                    features = np.column_stack(
                        [batch.column(n).to_numpy(zero_copy_only=False) for n in names]
                    ).astype(np.float32)
                else:
                    values = batch.column("features").flatten().to_numpy(zero_copy_only=False)
                    features = values.astype(np.float32, copy=False).reshape(-1, len(names))
                rows += len(features)
                yield features, {c: batch.column(c).to_numpy(zero_copy_only=False) for c in columns}
    if rows == 0:
        raise DataFormatError(
            "no rows of the model's features in "
            + ", ".join(map(str, paths))
            + (f" ({len(skipped)} file(s) of other features skipped)" if skipped else "")
        )


def profile_data(
    loaded,
    paths: list[Path],
    group_file: Path | None = None,
    *,
    column: str | None = None,
    option: str = "--save-profile",
) -> tuple:
    """The feature profile of ``paths`` as ``loaded``'s training data, with the model's scores
    of its lists (grouped by ``column``: by default ``session``, an impression log's, else
    ``qid``), and notes on files skipped and on why the scores could not be profiled (no list
    column, or a model that needs a per-query context vector).

    Reads the data a block at a time and keeps a sample of at most :data:`ltr.drift.MAX_ROWS`
    rows (:class:`ltr.drift.ProfileSample`), so memory holds the sample, one block and the
    list ids seen, whatever the size of the data. Each list is scored whole: a block's last
    list waits for the next block, and a list whose rows are not together is refused
    (``option`` names the command-line option in that error)."""
    from ltr.errors import DataFormatError
    from ltr.inference import rows_unscorable

    column = column or _list_column(paths)
    why = rows_unscorable(loaded)  # the scores are not profiled
    skipped: list[str] = []
    sample = None
    if why is None:
        try:
            sample = _sample(loaded, paths, group_file, column, option, skipped)
        except DataFormatError as exc:  # no list column: a profile of the features alone
            if not str(exc).endswith(f"has no {column} column"):
                raise
            why, skipped = str(exc), []
    if sample is None:
        sample = _sample(loaded, paths, group_file, None, option, skipped)
    profile = sample.profile(loaded.manifest.feature_names, source=[str(p) for p in paths])
    notes = [f"skipped: {note}" for note in skipped]
    if why is not None:
        notes.append(f"the model's scores are not profiled: {why}")
    return profile, notes


def _sample(loaded, paths, group_file, column, option, skipped):
    """:func:`profile_data`'s sample of the rows of ``paths``, scored by ``loaded`` list by
    list when ``column`` names the lists, else of the features alone."""
    from ltr.drift import ProfileSample
    from ltr.inference import score_rows

    sample = ProfileSample()
    names = list(loaded.manifest.feature_names)
    columns = [] if column is None else [column]
    lists = None if column is None else _WholeLists(column, option)

    def add(rows, ids) -> None:
        if len(rows):
            sample.add(rows, score_rows(loaded, rows, ids))

    for block, extras in feature_blocks(paths, names, group_file, columns, skipped):
        if lists is None:
            sample.add(block)
        else:
            add(*lists.add(block, extras[column]))
    if lists is not None:
        add(*lists.finish())
    return sample


class _WholeLists:
    """Rows that come a block at a time, given back as whole lists: a block's last list waits
    for the next block (its rows may go on there), and a list whose rows come apart (its id
    again after another list's) is refused, since scoring its pieces apart would give other
    scores than scoring it whole. ``option`` names the command-line option in that error."""

    def __init__(self, column: str, option: str) -> None:
        self.column, self.option = column, option
        self._pending: tuple | None = None  # (rows, ids) of the last list of the last block
        self._done: set[str] = set()

    def add(self, block, ids) -> tuple:
        """``block``'s rows and ids up to its last list (with the last block's last list in
        front), every list among them whole."""
        import numpy as np

        ids = np.asarray(ids).astype(str)
        if self._pending is not None:
            block = np.concatenate([self._pending[0], block])
            ids = np.concatenate([self._pending[1], ids])
        changes = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        last = changes[-1] if len(changes) else 0  # where the block's last list starts
        self._pending = (block[last:], ids[last:])
        return self._checked(block[:last], ids[:last])

    def finish(self) -> tuple:
        """The last list's rows and ids."""
        import numpy as np

        pending, self._pending = self._pending, None
        if pending is None:
            return np.empty((0, 0), dtype=np.float32), np.empty(0, dtype=str)
        return self._checked(*pending)

    def _checked(self, rows, ids) -> tuple:
        import numpy as np

        from ltr.errors import DataFormatError

        if len(ids):
            starts = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1])
            for name in ids[starts].tolist():
                if name in self._done:
                    raise DataFormatError(
                        f"{self.option}: the rows of list {name!r} ({self.column}) are not "
                        f"together; each list is scored whole, so sort DATA by {self.column}"
                    )
                self._done.add(name)
        return rows, ids


def _scored(profile) -> str:
    return "" if profile.score is None else " and the model's scores of them"


def _number(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}"


def format_table(report, top: int | None) -> str:
    shown = report if top is None else report[:top]
    head = f"{'feature':<24} {'PSI':>8} {'level':>9} {'out of range':>13} {'mean shift (sd)':>16}"
    lines = [head, "-" * len(head)]
    for d in shown:
        lines.append(
            f"{d.name:<24} {d.psi:>8.4f} {d.level:>9} {d.out_of_range:>13.2%} "
            f"{_number(d.mean_shift):>16}"
        )
    if len(shown) < len(report):
        lines.append(f"... {len(report) - len(shown)} more, each with a smaller PSI")
    return "\n".join(lines)


def _feature_json(d) -> dict:
    return {
        "name": d.name,
        "psi": d.psi,
        "level": d.level,
        "out_of_range": d.out_of_range,
        "missing": d.missing,
        "mean_shift": None if math.isnan(d.mean_shift) else d.mean_shift,
    }


def _list_column(paths: list[Path]) -> str:
    """``session`` (an impression log's list id) when the first Parquet file has it, else
    ``qid``."""
    import pyarrow.parquet as pq

    for path in paths:
        if path.is_dir() or path.suffix == ".parquet":
            names = pq.read_schema(_parquet_files(path)[0]).names
            return "session" if "session" in names else "qid"
    return "qid"


class _LoggedScores:
    """The model's scores an impression log recorded (its ``score`` column), counted against
    the scores of its training lists the profile holds: only rows the model itself scored
    (``model_name`` and ``model_version``, when the data has them, name it as a server
    does), since another version's scores are not comparable. ``why`` says why scores are not
    compared at all (no scores in the profile, data without a ``score`` column)."""

    def __init__(self, paths: list[Path], profile, loaded, every: str | None = None) -> None:
        from ltr.drift import DriftCounts, PeriodCounts

        self.columns: list[str] = []
        self.why: str | None = None
        self.scored = 0  # rows the model scored, counted
        self.other = 0  # rows scored by other models, left out
        self.name, self.version = loaded.served_name, loaded.served_version
        scores = profile.scores()
        present = _parquet_columns(paths)
        if scores is None:
            self.why = (
                "the model's profile holds no scores of its training lists (written before they "
                "were kept, or from data without list ids); write it again with --save-profile"
            )
        elif present is None or "score" not in present:
            self.why = "DATA has no score column (a server's impression log has one)"
        else:
            self.columns = ["score"] + [c for c in ("model_name", "model_version") if c in present]
        self.counts = None
        if not self.why:
            self.counts = DriftCounts(scores) if every is None else PeriodCounts(scores, every)

    def add(self, extras: dict, keep, *more) -> None:
        """Count the scores of the rows ``keep`` picks (all when None) that the model scored;
        ``more`` are a :class:`~ltr.drift.PeriodCounts`' times and lists of those rows."""
        import numpy as np

        if self.counts is None:
            return
        score = extras["score"] if keep is None else extras["score"][keep]
        ours = np.ones(len(score), dtype=bool)
        for column, value in (("model_name", self.name), ("model_version", self.version)):
            if column in extras:
                ours &= (extras[column] if keep is None else extras[column][keep]) == value
        self.other += int((~ours).sum())
        self.scored += int(ours.sum())
        values = np.asarray(score[ours], dtype=np.float32).reshape(-1, 1)
        self.counts.add(values, *(m[ours] for m in more))

    def not_compared(self) -> str | None:
        """Why no score was compared, once every row was added (None = some were)."""
        if self.why is None and not self.scored:
            return f"none of the {self.other:,} scores logged is {self.name} {self.version}'s"
        return self.why

    def describe_other(self) -> str:
        return f" ({self.other:,} rows scored by other models left out)" if self.other else ""

    def add_block(self, block, extras: dict) -> None:
        self.add(extras, None)

    def finish(self) -> None:
        pass


def _check_scores(args: argparse.Namespace, tally: _LoggedScores) -> None:
    """--fail-score-above cannot be met silently by data without the model's scores."""
    from ltr.errors import DataFormatError

    why = tally.not_compared()
    if args.fail_score_above is not None and why:
        raise DataFormatError(f"--fail-score-above needs the model's logged scores, but {why}")


def _score_json(score, tally: _LoggedScores, rows: int | None = None) -> dict:
    return {
        "score": None
        if score is None
        else {**_feature_json(score), "rows": tally.scored if rows is None else rows},
        "score_not_compared": tally.not_compared(),
        "score_rows_of_other_models": tally.other,
    }


class _Rescored:
    """``--rescore``: DATA's lists scored with the model, a block at a time, each list whole
    (:class:`_WholeLists`), counted against the scores of its training lists."""

    def __init__(self, loaded, profile, column: str) -> None:
        from ltr.drift import DriftCounts

        self.loaded, self.column = loaded, column
        self.columns = [column]
        self.name, self.version = loaded.served_name, loaded.served_version
        self.scored, self.other = 0, 0
        scores = profile.scores()
        self.why = (
            None
            if scores is not None
            else "the model's profile holds no scores of its training lists; write it again "
            "with --save-profile"
        )
        self.counts = None if scores is None else DriftCounts(scores)
        self._lists = _WholeLists(column, "--rescore")

    def add_block(self, block, extras: dict) -> None:
        if self.counts is not None:
            self._score(*self._lists.add(block, extras[self.column]))

    def finish(self) -> None:
        if self.counts is not None:
            self._score(*self._lists.finish())

    def _score(self, rows, ids) -> None:
        from ltr.inference import score_rows

        if not len(rows):
            return
        scores = score_rows(self.loaded, rows, ids)  # each id one run of rows (_WholeLists)
        self.counts.add(scores.reshape(-1, 1))
        self.scored += len(scores)

    def not_compared(self) -> str | None:
        return self.why

    def describe_other(self) -> str:
        return " (lists scored here, by --rescore)"


def _parquet_columns(paths: list[Path]) -> list[str] | None:
    """The columns of the first Parquet file of ``paths``; None when one is a LETOR file."""
    import pyarrow.parquet as pq

    if any(not p.is_dir() and p.suffix != ".parquet" for p in paths):
        return None
    return pq.read_schema(_parquet_files(paths[0])[0]).names


def _score_line(d, rows: int, tally: _LoggedScores) -> str:
    return (
        f"the model's scores: PSI {d.psi:.4f} ({d.level}), {d.out_of_range:.2%} outside their "
        f"training range, mean shift {_number(d.mean_shift)} sd, over {rows:,} rows scored by "
        f"{tally.name} {tally.version}{tally.describe_other()}"
    )


def _period_label(start, every: str) -> str:
    text = str(start)  # ISO 8601, seconds
    return text[:13] + ":00" if every == "hour" else text[:10]


def _fails(report, args: argparse.Namespace, where: str = "", score=None) -> list[str]:
    """Why ``report`` (one comparison, largest PSI first) and the model's ``score`` drift
    (None = not compared) pass the --fail-* bounds."""
    why = []
    bound = args.fail_score_above
    if bound is not None and score is not None and score.psi > bound:
        why.append(
            f"drift{where}: the model's scores' PSI {score.psi:.4f} is above --fail-score-above "
            f"{bound}"
        )
    if args.fail_above is not None and report[0].psi > args.fail_above:
        worst = report[0]
        why.append(
            f"drift{where}: {worst.name}'s PSI {worst.psi:.4f} is above --fail-above "
            f"{args.fail_above}"
        )
    if args.fail_out_of_range is not None:
        outside = max(report, key=lambda d: d.out_of_range)
        if outside.out_of_range > args.fail_out_of_range:
            why.append(
                f"drift{where}: {outside.out_of_range:.2%} of {outside.name}'s values are "
                f"outside its training range, more than --fail-out-of-range "
                f"{args.fail_out_of_range}"
            )
    return why


def _run_periods(args: argparse.Namespace, profile, loaded) -> int:
    import numpy as np

    from ltr.drift import MAJOR, MODERATE, PeriodCounts
    from ltr.errors import ConfigError, DataFormatError

    if args.min_lists < 1:
        raise ConfigError(f"--min-lists must be at least 1, got {args.min_lists}")
    data = list(args.data)
    names = list(loaded.manifest.feature_names)
    lists_column = args.list_column or _list_column(data)
    counts = PeriodCounts(profile, args.every)
    tally = _LoggedScores(data, profile, loaded, args.every)
    skipped: list[str] = []
    rows = undated = 0
    blocks = feature_blocks(
        data,
        names,
        args.group_file,
        columns=[args.time_column, lists_column, *tally.columns],
        skipped=skipped,
    )
    for block, extras in blocks:
        times = extras[args.time_column]
        if not np.issubdtype(times.dtype, np.datetime64):
            raise DataFormatError(
                f"--time-column {args.time_column} holds {times.dtype} values, not timestamps"
            )
        dated = ~np.isnat(times)
        rows += int(dated.sum())
        undated += int((~dated).sum())
        counts.add(block[dated], times[dated], extras[lists_column][dated])
        tally.add(extras, dated, times[dated], extras[lists_column][dated])
    for note in skipped:
        print(f"skipped: {note}")
    if undated:
        print(f"left out: {undated:,} row(s) with no {args.time_column}")
        if not rows:
            raise DataFormatError(f"no row has a {args.time_column}")
    _check_scores(args, tally)
    periods = counts.report(min_lists=args.min_lists)
    reports = [sorted(p.features, key=lambda d: -d.psi) for p in periods]
    scored = {} if tally.counts is None else {
        p.start: p for p in tally.counts.report(min_lists=args.min_lists)
    }  # fmt: skip
    scores = [
        scored[p.start].features[0] if p.start in scored and scored[p.start].judged else None
        for p in periods
    ]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "every": args.every,
                    "training_rows": profile.rows,
                    "periods": [
                        {
                            "start": str(p.start) + "Z",
                            "rows": p.rows,
                            "lists": p.lists,
                            "judged": p.judged,
                            "features": [
                                _feature_json(d) for d in (r if args.top is None else r[: args.top])
                            ],
                            "score": None
                            if score is None
                            else {**_feature_json(score), "rows": scored[p.start].rows},
                        }
                        for p, r, score in zip(periods, reports, scores, strict=True)
                    ],
                    "score_not_compared": tally.not_compared(),
                    "score_rows_of_other_models": tally.other,
                },
                indent=1,
            )
        )
    else:
        judged = sum(p.judged for p in periods)
        print(
            f"{rows:,} rows in {len(periods)} {args.every}(s) (UTC) against the "
            f"{profile.rows:,} training rows of {args.model}; {judged} with at least "
            f"{args.min_lists} lists compared"
        )
        head = (
            f"{args.every:<16} {'rows':>10} {'lists':>8} {'major':>6} {'moderate':>9} "
            f"{'score PSI':>10}  {'largest PSI':<24} most out of range"
        )
        lines = [head, "-" * len(head)]
        for p, r, score in zip(periods, reports, scores, strict=True):
            label = _period_label(p.start, args.every)
            if not p.judged:
                lines.append(
                    f"{label:<16} {p.rows:>10,} {p.lists:>8,} {'-':>6} {'-':>9} {'-':>10}  "
                    f"too few lists to compare"
                )
                continue
            major = sum(d.psi > MAJOR for d in r)
            moderate = sum(MODERATE < d.psi <= MAJOR for d in r)
            outside = max(r, key=lambda d: d.out_of_range)
            lines.append(
                f"{label:<16} {p.rows:>10,} {p.lists:>8,} {major:>6} {moderate:>9} "
                f"{'-' if score is None else f'{score.psi:.4f}':>10}  "
                f"{f'{r[0].name} {r[0].psi:.4f}':<24} "
                + (f"{outside.name} {outside.out_of_range:.2%}" if outside.out_of_range else "none")
            )
        print("\n".join(lines))
        why = tally.not_compared()
        print(
            f"the model's scores: not compared: {why}"
            if why
            else f"score PSI: the model's scores of the period's rows against its scores of its "
            f"training lists, over {tally.scored:,} rows scored by {tally.name} "
            f"{tally.version}{tally.describe_other()}"
        )
    failures = [
        why
        for p, r, score in zip(periods, reports, scores, strict=True)
        if p.judged
        for why in _fails(
            r, args, f" in the {args.every} from {_period_label(p.start, args.every)}", score
        )
    ]
    for why in failures:
        print(why, file=sys.stderr)
    return DRIFT_FOUND if failures else 0


def run(args: argparse.Namespace) -> int:
    from ltr.artifact import ArtifactError, is_mlflow_uri, load_model
    from ltr.drift import MAJOR, MODERATE, DriftCounts, FeatureProfile
    from ltr.errors import ConfigError

    if args.save_profile and is_mlflow_uri(args.model):
        raise ConfigError(
            "--save-profile writes into an artifact folder, not an MLflow model; save it into "
            "the local folder, then log or register that"
        )
    if args.save_profile and args.every:
        raise ConfigError("--save-profile profiles all of DATA at once; leave out --every")
    if args.rescore and (args.every or args.save_profile):
        raise ConfigError(
            "--rescore compares DATA as a whole: leave out --every (an impression log has the "
            "model's scores already) and --save-profile (which scores its lists anyway)"
        )
    for path in args.data:  # before pyarrow reads a schema, whose errors say less
        if not path.exists():
            raise FileNotFoundError(f"no such data file or folder: {path}")
    loaded = load_model(args.model)
    names = list(loaded.manifest.feature_names)
    profile = None
    if not args.save_profile:
        profile = FeatureProfile.load(loaded.path, names)
        if profile is None:
            raise ArtifactError(
                f"{args.model} carries no feature profile (made by ltr lightgbm-model, "
                "xgboost-model or linear-model without --profile-data, or trained before "
                "profiles existed); write one from its training data: ltr drift --model DIR "
                "--data TRAIN... --save-profile"
            )
    if args.rescore:
        from ltr.inference import rows_unscorable

        why = rows_unscorable(loaded)
        if why is not None:  # before any data is read
            raise ConfigError(
                f"--rescore cannot score {args.model}: {why}; leave out --rescore (an impression "
                "log's recorded scores are compared without it)"
            )
    if args.every:
        return _run_periods(args, profile, loaded)
    if args.save_profile:
        profile, notes = profile_data(
            loaded, list(args.data), args.group_file, column=args.list_column
        )
        for note in notes:
            print(note)
        where = profile.save(loaded.path)
        print(f"wrote the feature profile of {profile.rows:,} rows{_scored(profile)} to {where}")
        return 0
    counted = DriftCounts(profile)
    tally = (
        _Rescored(loaded, profile, args.list_column or _list_column(list(args.data)))
        if args.rescore
        else _LoggedScores(list(args.data), profile, loaded)
    )
    skipped = []
    blocks = feature_blocks(
        list(args.data), names, args.group_file, columns=tally.columns, skipped=skipped
    )
    for block, extras in blocks:
        counted.add(block)
        tally.add_block(block, extras)
    tally.finish()
    for note in skipped:
        print(f"skipped: {note}")
    report = sorted(counted.report(), key=lambda d: -d.psi)
    _check_scores(args, tally)
    why = tally.not_compared()
    score = None if why else tally.counts.report()[0]
    counts = {name: sum(d.level == name for d in report) for name in ("major", "moderate")}
    if args.format == "json":
        print(
            json.dumps(
                {
                    "rows": counted.rows,
                    "training_rows": profile.rows,
                    "features": [
                        _feature_json(d)
                        for d in (report if args.top is None else report[: args.top])
                    ],
                    **_score_json(score, tally),
                },
                indent=1,
            )
        )
    else:
        print(
            f"{counted.rows:,} rows against the {profile.rows:,} training rows of {args.model}: "
            f"{counts['major']} feature(s) with a major shift (PSI > {MAJOR}), "
            f"{counts['moderate']} moderate (> {MODERATE})"
        )
        print(format_table(report, args.top))
        print(
            _score_line(score, tally.scored, tally)
            if score
            else f"the model's scores: not compared: {why}"
        )
    failures = _fails(report, args, score=score)
    for why in failures:
        print(why, file=sys.stderr)
    return DRIFT_FOUND if failures else 0
