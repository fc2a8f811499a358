"""Position-bias propensities ``theta_k``: from a formula, or estimated from a click log by EM.

Only ratios of propensities matter to IPS labels (a common factor scales every label of a list
alike), so estimates are reported relative to position 1: ``theta_1 = 1``.

EM for the position-based model (Chuklin et al. 2015, *Click Models for Web Search*, ch. 4;
Wang et al. 2018 use the same E-step): the log is summarised as impressions ``n`` and clicks
``c`` per (document, position) cell, and with ``P(click) = theta_k * gamma_d`` an impression
without a click was, given the current parameters,

    examined but not relevant with probability   theta_k (1 - gamma_d) / (1 - theta_k gamma_d)
    relevant but not examined with probability   (1 - theta_k) gamma_d / (1 - theta_k gamma_d)

so each step sets ``theta_k`` to the expected share of examined impressions at ``k`` and
``gamma_d`` to the expected share of relevant impressions of ``d``. The model is identifiable
only when documents appear at more than one position (rankings that vary between sessions);
:func:`estimate_em` refuses a log where none does.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ltr.clicks.log import Counts
from ltr.errors import ConfigError, DataFormatError


@dataclass(frozen=True)
class Propensity:
    """Examination probabilities by position.

    Attributes:
        method: ``"formula"`` (``theta_k = (1/k)^eta``, every position) or ``"em"`` (estimated
            for positions ``1..len(theta)``).
        theta: estimated ``theta_k`` for ``k = 1..K``, relative to ``theta_1 = 1`` (``"em"``).
        eta: the exponent (``"formula"``).
        impressions: impressions at each position the estimate saw (``"em"``).
        tail_eta: the exponent of ``(1/k)^eta`` fitted to the estimate (least squares on
            ``log theta_k`` against ``log k``, weighted by impressions); positions past ``K``
            get ``theta_K * (K / k)^tail_eta`` (``"em"``).
    """

    method: str
    theta: list[float] = field(default_factory=list)
    eta: float | None = None
    impressions: list[int] = field(default_factory=list)
    tail_eta: float | None = None
    iterations: int = 0
    converged: bool = True
    log: str | None = None

    @classmethod
    def formula(cls, eta: float) -> Propensity:
        if not (math.isfinite(eta) and eta >= 0):
            raise ConfigError(f"eta must be a finite number >= 0, got {eta}")
        return cls(method="formula", eta=float(eta))

    def at(self, positions: np.ndarray) -> np.ndarray:
        """``theta_k`` of 1-based ``positions``; raises for a position the estimate lacks."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.method == "formula":
            return positions.astype(np.float64) ** -float(self.eta or 0.0)
        last = len(self.theta)
        beyond = positions > last
        if np.any(beyond) and self.tail_eta is None:
            raise DataFormatError(
                f"the log shows position {int(positions[beyond].max())}, beyond the "
                f"{last} positions the propensities were estimated for"
            )
        theta = np.asarray(self.theta, dtype=np.float64)[np.minimum(positions, last) - 1]
        if np.any(beyond):
            theta = np.where(beyond, theta * (last / positions) ** float(self.tail_eta), theta)
        return theta

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically (a temporary name, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Propensity:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such propensity file: {path}")
        try:
            data = json.loads(path.read_text())
            prop = cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataFormatError(
                f"{path}: not a propensity file written by `ltr clicks propensity` ({exc})"
            ) from None
        if prop.method not in ("formula", "em"):
            raise DataFormatError(f"{path}: unknown propensity method {prop.method!r}")
        if prop.method == "formula":
            return cls.formula(prop.eta if prop.eta is not None else math.nan)
        if prop.method == "em" and not (
            prop.theta and all(math.isfinite(t) and 0 < t <= 1 for t in prop.theta)
        ):
            raise DataFormatError(f"{path}: propensities must be numbers in (0, 1]")
        return prop


def estimate_em(
    counts: Counts,
    *,
    max_iter: int = 2000,
    tol: float = 1e-6,
) -> Propensity:
    """Estimate PBM examination probabilities from a log's counts by EM.

    Args:
        counts: impressions and clicks per (document, position), from
            :func:`ltr.clicks.log.aggregate`.
        max_iter: the most EM steps.
        tol: stop when no ``theta_k / theta_1`` moves by more than this in a step.

    Raises:
        DataFormatError: no click, or no document shown at two positions (nothing separates
            position from relevance).
    """
    if counts.clicks.sum() == 0:
        raise DataFormatError("the log holds no click; propensities cannot be estimated")
    if not np.any(np.bincount(counts.doc) > 1):  # cells are unique (document, position) pairs
        raise DataFormatError(
            "every document in the log was shown at one position only, so position and "
            "relevance cannot be told apart; estimate from a log whose rankings vary between "
            "sessions (e.g. `ltr clicks simulate --temperature 1`, or a randomised slice of "
            "traffic), or give the propensities by formula (--eta)"
        )
    k = counts.position - 1
    n = counts.impressions.astype(np.float64)
    c = counts.clicks.astype(np.float64)
    n_pos = np.bincount(k, weights=n)
    n_doc = np.bincount(counts.doc, weights=n)
    theta = np.full(len(n_pos), 0.5)
    gamma = np.full(len(n_doc), 0.5)
    seen = n_pos > 0
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        t, g = theta[k], gamma[counts.doc]
        unclicked = (n - c) / np.maximum(1.0 - t * g, 1e-12)
        examined = c + unclicked * t * (1.0 - g)
        relevant = c + unclicked * (1.0 - t) * g
        new_theta = np.where(seen, np.bincount(k, weights=examined, minlength=len(n_pos)), 0.0)
        new_theta = np.divide(new_theta, n_pos, out=np.full_like(theta, 0.5), where=seen)
        new_gamma = np.bincount(counts.doc, weights=relevant, minlength=len(n_doc))
        new_gamma = np.divide(new_gamma, n_doc, out=np.zeros_like(gamma), where=n_doc > 0)
        # theta and gamma are identified up to a common factor, along which EM drifts slowly:
        # judge convergence by the propensities relative to position 1, the estimate's output.
        step = np.abs(new_theta / new_theta[0] - theta / theta[0]).max() if theta[0] > 0 else 1
        theta, gamma = new_theta, new_gamma
        if step < tol:
            converged = True
            break
    if not seen[0] or theta[0] <= 0:
        raise DataFormatError("the log has no click at position 1; propensities are relative to it")
    last = int(np.flatnonzero(seen).max()) + 1
    if not seen[:last].all():
        gap = int(np.flatnonzero(~seen[:last])[0]) + 1
        raise DataFormatError(f"the log shows nothing at position {gap} but shows later ones")
    relative = np.clip(theta[:last] / theta[0], 1e-6, 1.0)
    log_k, weight = np.log(np.arange(1, last + 1)), n_pos[:last]
    tail = -float((weight * log_k * np.log(relative)).sum() / max((weight * log_k**2).sum(), 1e-12))
    return Propensity(
        method="em",
        theta=[float(v) for v in relative],
        impressions=[int(v) for v in n_pos[:last]],
        tail_eta=max(tail, 0.0),
        iterations=it,
        converged=converged,
    )


def format_propensity(prop: Propensity, *, truth: Propensity | None = None, rows: int = 20) -> str:
    """A table of ``theta_k`` (with the true values beside, when known)."""
    if prop.method == "formula":
        return f"theta_k = (1/k)^{prop.eta:g}"
    header = "position  theta_k   impressions" + ("  true theta_k" if truth else "")
    lines = [header]
    shown = min(rows, len(prop.theta))
    true = truth.at(np.arange(1, shown + 1)) if truth else None
    for i in range(shown):
        line = f"{i + 1:>8}  {prop.theta[i]:.4f}  {prop.impressions[i]:>12,}"
        if true is not None:
            line += f"  {true[i]:.4f}"
        lines.append(line)
    if len(prop.theta) > shown:
        lines.append(f"     ...  ({len(prop.theta) - shown} more positions)")
    if prop.tail_eta is not None:
        lines.append(
            f"positions past {len(prop.theta)}: theta_{len(prop.theta)} * "
            f"({len(prop.theta)}/k)^{prop.tail_eta:.3f} (the (1/k)^eta fitted to the estimate)"
        )
    return "\n".join(lines)
