"""Feature and score drift of the lists the server answers, against the model's training profile.

Every batch hands the feature rows it scored, and the model's scores of them, to
:meth:`DriftMonitor.observe` (a copy into ring buffers of the last ``window_rows`` rows: no
arithmetic on the serving path). Every
``drift.seconds`` the server calls :meth:`DriftMonitor.publish` off the event loop, which, once
``drift.min_lists`` lists came in (a few queries' rows differ from the training data by chance),
compares the window with the profile (:func:`ltr.drift.compare`) and reports it: per-feature
PSI and out-of-range share as Prometheus gauges, and a warning in the log when the set of
features past ``warn_psi`` or ``warn_out_of_range`` changes. When the profile holds the model's
scores on its training lists, the window's scores are compared with them too (the
``ltr_score_psi`` gauge; a warning when their PSI passes ``warn_psi`` or falls back). A model
swap starts a new window against the new model's profile; a model without a profile is not
monitored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from ltr.drift import FeatureDrift, RowWindow, compare
from ltr.serve.domain import ModelRef
from ltr.serve.models import ServedModel

log = logging.getLogger("ltr.serve")

Report = Callable[[ModelRef, list[FeatureDrift], int, FeatureDrift | None], None]
"""``(model, per-feature drift, rows compared, the scores' drift or None)``."""


class DriftMonitor:
    """The last ``window_rows`` feature rows the model in use scored, and their comparison with
    its training profile."""

    def __init__(
        self,
        window_rows: int,
        *,
        min_lists: int = 1,
        warn_psi: float = 0.25,
        warn_out_of_range: float = 0.01,
        on_report: Report | None = None,
        on_waiting: Callable[[int], None] | None = None,
    ) -> None:
        self.window_rows = window_rows
        self.min_lists = min_lists
        self.warn_psi = warn_psi
        self.warn_out_of_range = warn_out_of_range
        self._on_waiting = on_waiting or (lambda rows: None)
        self._on_report = on_report or (lambda ref, report, rows, score: None)
        self._lock = threading.Lock()
        self._model: ServedModel | None = None
        self._window: RowWindow | None = None
        self._scores: RowWindow | None = None  # the model's scores of the window's rows
        self._lists = 0  # lists seen since the window started
        self._warned: frozenset[str] = frozenset()
        self._score_warned = False

    def observe(
        self,
        model: ServedModel,
        blocks: Sequence[np.ndarray],
        scores: Sequence[np.ndarray] = (),
    ) -> None:
        """Keep the rows ``[n, F]`` of ``blocks``, lists ``model`` scored, and its ``scores``
        ``[n]`` of each (when given)."""
        if model.profile is None or not blocks:
            return
        with self._lock:
            if model is not self._model:  # a new model: a new window, held to its own profile
                self._model = model
                self._window = RowWindow(self.window_rows, len(model.profile.features))
                self._scores = None
                if model.profile.score is not None:
                    self._scores = RowWindow(self.window_rows, 1)
                self._lists = 0
                self._warned = frozenset()
                self._score_warned = False
            assert self._window is not None
            for rows in blocks:
                self._window.add(rows)
            if self._scores is not None:
                if len(scores) != len(blocks):  # never: the rows and their scores part ways
                    raise ValueError(f"{len(blocks)} lists of rows but {len(scores)} of scores")
                for values in scores:
                    self._scores.add(np.asarray(values, dtype=np.float32).reshape(-1, 1))
            self._lists += len(blocks)

    def publish(self) -> list[FeatureDrift] | None:
        """Compare the window with the profile and report it; None (and only the rows held, to
        ``on_waiting``) while fewer than ``min_lists`` lists came in."""
        with self._lock:
            model, window = self._model, self._window
            held = 0 if window is None else window.count
            if model is None or window is None or self._lists < self.min_lists:
                self._on_waiting(held)
                return None
            rows = window.rows()
            scores = None if self._scores is None else self._scores.rows()
        assert model.profile is not None
        report = compare(model.profile, rows)
        score = None
        score_profile = model.profile.scores()
        if scores is not None and score_profile is not None:
            score = compare(score_profile, scores)[0]
        self._on_report(model.spec.ref, report, len(rows), score)
        if score is not None:
            self._warn_scores(model, score, len(scores))
        drifted = sorted(
            (d for d in report if d.psi > self.warn_psi or d.out_of_range > self.warn_out_of_range),
            key=lambda d: (-d.psi, -d.out_of_range),
        )
        names = frozenset(d.name for d in drifted)
        if names != self._warned:
            self._warned = names
            if drifted:
                log.warning(
                    "feature drift: %d feature(s) of the last %d rows are past PSI %.2f or have "
                    "more than %.1f%% of their values outside the training range of %s %s: %s",
                    len(drifted),
                    len(rows),
                    self.warn_psi,
                    100 * self.warn_out_of_range,
                    model.spec.ref.name,
                    model.spec.ref.version,
                    ", ".join(
                        f"{d.name} (PSI {d.psi:.2f}, {d.out_of_range:.1%} out of range)"
                        for d in drifted[:10]
                    ),
                )
            else:
                log.info("feature drift: every feature is back within both bounds")
        return report

    def _warn_scores(self, model: ServedModel, score: FeatureDrift, rows: int) -> None:
        """Log when the scores' PSI passes ``warn_psi``, and when it falls back."""
        past = score.psi > self.warn_psi
        if past == self._score_warned:
            return
        self._score_warned = past
        if past:
            log.warning(
                "score drift: %s %s's scores of the last %d rows are past PSI %.2f against its "
                "scores of its training lists (PSI %.2f, mean shift %.2f sd, %.1f%% outside the "
                "training range)",
                model.spec.ref.name,
                model.spec.ref.version,
                rows,
                self.warn_psi,
                score.psi,
                score.mean_shift,
                100 * score.out_of_range,
            )
        else:
            log.info("score drift: the model's scores are back within PSI %.2f", self.warn_psi)
