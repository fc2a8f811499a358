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

A log with few sessions per query gives each ``gamma_d`` a handful of impressions, and EM fits
them to the noise: with one session per query no document moves at all. Regression EM (Wang
et al. 2018) shares relevance through features instead: ``gamma_d = sigmoid(w . x_d + b)``, and
each M-step refits ``w, b`` by logistic regression on the E-step's expected relevant and
irrelevant impressions of every document (``estimate_em(..., features=X)``). Positions then
need to vary only relative to what the features predict, not for each document.

Under trust bias (:class:`ltr.clicks.model.TrustBiasModel`) the click rate is affine in
relevance, ``P(click) = beta_k + alpha_k * gamma_d``: irrelevant documents are clicked at rate
``beta_k``, relevant ones at ``alpha_k + beta_k``. ``estimate_em(..., click_model="trust")`` fits
that model with a relevance variable per impression (Vardasbi et al. 2021): with
``a_k = alpha_k + beta_k`` and ``b_k = beta_k``, a clicked impression was relevant with
probability ``gamma_d a_k / (gamma_d a_k + (1 - gamma_d) b_k)`` and an unclicked one with
``gamma_d (1 - a_k) / (gamma_d (1 - a_k) + (1 - gamma_d)(1 - b_k))``; each step sets
``gamma_d`` to the expected share of relevant impressions of ``d``, and ``a_k`` (``b_k``) to the
expected share of clicked impressions among the relevant (irrelevant) ones at ``k``. The fit is
determined only up to an affine map of ``gamma`` (the rates bound it), which changes every
label of the log by the same affine map. Its ``alpha_k`` and ``beta_k`` are absolute click
rates, not relative to position 1, because ``beta_k`` is subtracted from clicks.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ltr.clicks.log import Counts, UnidentifiableError
from ltr.clicks.model import TrustBiasModel
from ltr.errors import ConfigError, DataFormatError

CLICK_MODELS = ("pbm", "trust")
TRUST_POOL_AFTER = 10  # the trust-bias EM's default pool_after


@dataclass(frozen=True)
class Propensity:
    """Examination probabilities by position (PBM), or affine click rates by position (trust).

    Attributes:
        method: ``"formula"`` (every position, from ``eta``) or ``"em"`` (estimated for
            positions ``1..len(theta)``).
        click_model: ``"pbm"`` (``P(click) = theta_k gamma_d``) or ``"trust"``
            (``P(click) = theta_k gamma_d + beta_k``).
        theta: PBM: estimated ``theta_k`` for ``k = 1..K``, relative to ``theta_1 = 1``;
            trust: ``alpha_k``, what relevance adds to the click rate at ``k`` (``"em"``).
        beta: trust: ``beta_k``, the click rate of an irrelevant document at ``k`` (``"em"``).
        eta: the exponent (``"formula"``).
        false_click: the trust-bias model's ``eps_minus_1`` (``"formula"``, trust).
        impressions: impressions at each position the estimate saw (``"em"``).
        relevance_model: ``"logistic"`` when relevance was shared through features (regression
            EM), None when each document had its own (``"em"``).
        tail_eta: the exponent of ``(1/k)^eta`` fitted to the estimate (least squares on
            ``log theta_k`` against ``log k``, weighted by impressions); positions past ``K``
            get ``theta_K * (K / k)^tail_eta``, and under trust ``beta_K * (K / k)^tail_eta``
            too (``"em"``).
    """

    method: str
    click_model: str = "pbm"
    theta: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    eta: float | None = None
    false_click: float | None = None
    impressions: list[int] = field(default_factory=list)
    tail_eta: float | None = None
    relevance_model: str | None = None
    iterations: int = 0
    converged: bool = True
    log: str | None = None

    @classmethod
    def formula(cls, eta: float, *, false_click: float | None = None) -> Propensity:
        """``theta_k = (1/k)^eta``; with ``false_click``, the trust-bias model's ``alpha_k``
        and ``beta_k`` (:class:`~ltr.clicks.model.TrustBiasModel`)."""
        if not (math.isfinite(eta) and eta >= 0):
            raise ConfigError(f"eta must be a finite number >= 0, got {eta}")
        if false_click is None:
            return cls(method="formula", eta=float(eta))
        TrustBiasModel(eta=eta, false_click=false_click)  # checks false_click
        return cls(
            method="formula", click_model="trust", eta=float(eta), false_click=float(false_click)
        )

    def at(self, positions: np.ndarray) -> np.ndarray:
        """``theta_k`` (trust: ``alpha_k``) of 1-based ``positions``; raises for a position the
        estimate lacks."""
        return self._by_position(positions, self.theta, "alpha")

    def offset(self, positions: np.ndarray) -> np.ndarray:
        """``beta_k`` of 1-based ``positions``: 0 under the PBM."""
        if self.click_model == "pbm":
            return np.zeros(np.shape(positions))
        return self._by_position(positions, self.beta, "beta")

    def _by_position(self, positions: np.ndarray, values: list[float], name: str) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if self.method == "formula":
            if self.click_model == "pbm":
                return positions.astype(np.float64) ** -float(self.eta or 0.0)
            model = TrustBiasModel(eta=float(self.eta or 0.0), false_click=self.false_click)
            return getattr(model, name)(positions)
        last = len(values)
        beyond = positions > last
        if np.any(beyond) and self.tail_eta is None:
            raise DataFormatError(
                f"the log shows position {int(positions[beyond].max())}, beyond the "
                f"{last} positions the propensities were estimated for"
            )
        out = np.asarray(values, dtype=np.float64)[np.minimum(positions, last) - 1]
        if np.any(beyond):
            out = np.where(beyond, out * (last / positions) ** float(self.tail_eta), out)
        return out

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
        if prop.click_model not in CLICK_MODELS:
            raise DataFormatError(f"{path}: unknown click model {prop.click_model!r}")
        if prop.method == "formula":
            try:
                return cls.formula(
                    prop.eta if prop.eta is not None else math.nan, false_click=prop.false_click
                )
            except ConfigError as exc:
                raise DataFormatError(f"{path}: {exc}") from None
        if not (prop.theta and all(math.isfinite(t) and 0 < t <= 1 for t in prop.theta)):
            raise DataFormatError(f"{path}: propensities must be numbers in (0, 1]")
        if prop.click_model == "trust" and not (
            len(prop.beta) == len(prop.theta)
            and all(b >= 0 and a + b <= 1 for a, b in zip(prop.theta, prop.beta, strict=True))
        ):
            raise DataFormatError(
                f"{path}: a trust-bias estimate needs one beta per position, each >= 0 with "
                "alpha + beta <= 1"
            )
        return prop


def estimate_em(
    counts: Counts,
    *,
    click_model: str = "pbm",
    features: np.ndarray | None = None,
    pool_after: int | None = None,
    max_iter: int = 5000,
    tol: float = 1e-6,
    progress: bool = False,
) -> Propensity:
    """Estimate examination probabilities (PBM) or affine click rates (trust) by position from
    a log's counts by EM (see the module doc).

    Args:
        counts: impressions and clicks per (document, position), from
            :func:`ltr.clicks.log.aggregate`.
        click_model: ``"pbm"`` or ``"trust"``.
        features: ``[D, F]`` the features of every (query, document) pair of the log, by pair
            code: regression EM (PBM only), whose relevance is a logistic regression on them.
        pool_after: positions past this one share their parameters in buckets that widen by a
            quarter each, ``(p * 1.25^(j-1), p * 1.25^j]``: deep positions are seen rarely and
            clicked more rarely, and a rate estimated from a handful of clicks can divide a
            label by almost nothing. None = every position on its own; the default is None for
            the PBM and 10 for trust, which estimates two rates per position, and as their
            difference.
        max_iter: the most EM steps.
        tol: stop when no ``theta_k / theta_1`` (trust: no ``alpha_k`` or ``beta_k``) moves by
            more than this in a step (regression EM stops at ``max(tol, 1e-4)``: the
            regression's own solver tolerance leaves the estimate that much noise).
        progress: show a progress bar of the steps and the last change (stderr).

    Raises:
        DataFormatError: no click, or positions with gaps.
        UnidentifiableError: no document shown at two positions (nothing separates position
            from relevance; a :class:`DataFormatError`).
    """
    if click_model not in CLICK_MODELS:
        raise ConfigError(
            f"click_model must be one of {', '.join(CLICK_MODELS)}, got {click_model!r}"
        )
    if counts.clicks.sum() == 0:
        raise DataFormatError("the log holds no click; propensities cannot be estimated")
    if features is not None:
        if click_model != "pbm":
            raise ConfigError("regression EM (features) estimates the PBM only, not trust bias")
        features = _pair_features(features, counts)
        if len(np.unique(counts.position)) < 2:
            raise DataFormatError("the log shows one position only; nothing to estimate")
    elif not np.any(np.bincount(counts.doc) > 1):  # cells are unique (document, position) pairs
        raise UnidentifiableError(
            "every document in the log was shown at one position only, so position and "
            "relevance cannot be told apart",
            "estimate from a log whose rankings vary between sessions (e.g. `ltr clicks "
            "simulate --temperature 1`, or a randomised slice of traffic), give the features so "
            "that documents share relevance (regression EM, --features), or make labels with "
            "propensities by formula instead (`ltr clicks labels --eta 1`)",
        )
    n_pos = np.bincount(counts.position - 1, weights=counts.impressions)
    seen = n_pos > 0
    last = int(np.flatnonzero(seen).max()) + 1
    if not seen[:last].all():
        gap = int(np.flatnonzero(~seen[:last])[0]) + 1
        raise DataFormatError(f"the log shows nothing at position {gap} but shows later ones")
    if pool_after is None and click_model == "trust":
        pool_after = TRUST_POOL_AFTER
    group = position_buckets(last, pool_after)
    desc = "regression EM" if features is not None else f"EM ({click_model})"
    with _Steps(max_iter, desc, progress) as steps:
        if click_model == "pbm":
            # Regression EM's solver tolerance leaves noise of about 1e-4 in theta.
            tol = tol if features is None else max(tol, 1e-4)
            alpha, beta, it, converged = _em_pbm(counts, group, steps, tol, features)
        else:
            alpha, beta, it, converged = _em_trust(counts, group, steps, tol)
    alpha, beta = alpha[group], beta[group]
    if alpha[0] <= 0:
        raise DataFormatError(
            "the log has no click at position 1; propensities are relative to it"
            if click_model == "pbm"
            else "clicks at position 1 do not rise with relevance; the trust-bias model does "
            "not fit this log"
        )
    if click_model == "pbm":
        alpha = np.clip(alpha / alpha[0], 1e-6, 1.0)
    else:  # rounding can leave a rate a hair outside [0, 1]
        beta = np.clip(beta, 0.0, 1.0)
        alpha = np.clip(alpha, 1e-6, 1.0 - beta)
    relative = np.clip(alpha / alpha[0], 1e-6, 1.0)
    log_k, weight = np.log(np.arange(1, last + 1)), n_pos
    tail = -float((weight * log_k * np.log(relative)).sum() / max((weight * log_k**2).sum(), 1e-12))
    return Propensity(
        method="em",
        click_model=click_model,
        theta=[float(v) for v in alpha],
        beta=[] if click_model == "pbm" else [float(v) for v in beta],
        impressions=[int(v) for v in n_pos],
        tail_eta=max(tail, 0.0),
        relevance_model=None if features is None else "logistic",
        iterations=it,
        converged=converged,
    )


class _Steps:
    """EM steps ``1..max_iter``, with a progress bar showing the last step's change."""

    def __init__(self, max_iter: int, desc: str, progress: bool):
        from tqdm.auto import tqdm

        self.max_iter = max_iter
        self._bar = tqdm(total=max_iter, desc=desc, unit="step", disable=not progress)

    def __iter__(self):
        return iter(range(1, self.max_iter + 1))

    def report(self, change: float) -> None:
        self._bar.update(1)
        if self._bar.n % 10 == 0:
            self._bar.set_postfix_str(f"change {change:.1e}", refresh=False)

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def position_buckets(positions: int, pool_after: int | None) -> np.ndarray:
    """``[positions]`` the bucket of each position ``1..positions`` (0-based, consecutive):
    one per position up to ``pool_after``, then ``(p * 1.25^(j-1), p * 1.25^j]``."""
    k = np.arange(1, positions + 1)
    if pool_after is None:
        return k - 1
    if pool_after < 1:
        raise ConfigError(f"pool_after must be at least 1, got {pool_after}")
    deep = np.ceil(np.log(np.maximum(k, pool_after) / pool_after) / np.log(1.25) - 1e-9)
    bucket = np.where(k <= pool_after, k - 1, pool_after - 1 + deep).astype(np.int64)
    return np.unique(bucket, return_inverse=True)[1]


def _em_pbm(
    counts: Counts,
    group: np.ndarray,
    steps: _Steps,
    tol: float,
    features: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """PBM EM: ``theta`` per bucket (in the fit's own scale), no ``beta``, steps, converged.
    ``gamma`` is one parameter per pair, or with ``features`` a logistic regression on them."""
    k = group[counts.position - 1]
    n = counts.impressions.astype(np.float64)
    n_pos = np.bincount(k, weights=n)
    c = counts.clicks.astype(np.float64)
    n_doc = np.bincount(counts.doc, weights=n)
    refit = None if features is None else _relevance_regression(features[: len(n_doc)], n_doc)
    theta = np.full(len(n_pos), 0.5)
    gamma = np.full(len(n_doc), 0.5)
    converged = False
    it = 0
    for it in steps:  # noqa: B007
        examined, relevant = _pbm_posterior(theta[k], gamma[counts.doc], n, c)
        new_theta = np.bincount(k, weights=examined, minlength=len(n_pos)) / n_pos
        relevant_doc = np.bincount(counts.doc, weights=relevant, minlength=len(n_doc))
        if refit is None:
            new_gamma = np.divide(relevant_doc, n_doc, out=np.zeros_like(gamma), where=n_doc > 0)
        else:
            new_gamma = refit(relevant_doc)
        # theta and gamma are identified up to a common factor, along which EM drifts slowly:
        # judge convergence by the propensities relative to position 1, the estimate's output.
        step = np.abs(new_theta / new_theta[0] - theta / theta[0]).max() if theta[0] > 0 else 1
        theta, gamma = new_theta, new_gamma
        steps.report(step)
        if step < tol:
            converged = True
            break
    return theta, np.zeros_like(theta), it, converged


def _pbm_posterior(
    t: np.ndarray, g: np.ndarray, n: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The PBM E-step per cell (examination ``t``, relevance ``g``, ``n`` impressions, ``c``
    clicks): expected examined and expected relevant impressions."""
    unclicked = (n - c) / np.maximum(1.0 - t * g, 1e-12)
    return c + unclicked * t * (1.0 - g), c + unclicked * (1.0 - t) * g


def relevance_prior(
    counts: Counts,
    propensity: Propensity,
    features: np.ndarray,
    *,
    max_iter: int = 200,
    tol: float = 1e-4,
    progress: bool = False,
) -> np.ndarray:
    """``[D]`` a relevance estimate of every pair from its features: the logistic regression of
    regression EM, fitted with ``theta_k`` held at ``propensity`` (PBM).

    It is on the scale of IPS labels (``theta_1 = 1``), so it can stand in for the labels of
    documents with few impressions (:func:`ltr.clicks.labels.click_labels`, ``prior``). Pairs
    (rows of ``features``) that ``counts`` never shows get the regression's prediction too.
    """
    if propensity.click_model != "pbm":
        raise ConfigError("a relevance prior is fitted under the PBM, not trust bias")
    features = _pair_features(features, counts)
    n = counts.impressions.astype(np.float64)
    c = counts.clicks.astype(np.float64)
    n_doc = np.bincount(counts.doc, weights=n, minlength=len(features))
    theta = np.minimum(propensity.at(counts.position), 1.0)
    refit = _relevance_regression(features, n_doc)
    gamma = np.full(len(n_doc), 0.5)
    with _Steps(max_iter, "relevance prior", progress) as steps:
        for _ in steps:
            _, relevant = _pbm_posterior(theta, gamma[counts.doc], n, c)
            new_gamma = refit(np.bincount(counts.doc, weights=relevant, minlength=len(n_doc)))
            step = np.abs(new_gamma - gamma).max()
            gamma = new_gamma
            steps.report(step)
            if step < tol:
                break
    return gamma


def _pair_features(features: np.ndarray, counts: Counts) -> np.ndarray:
    """``features`` (``[D, F]``, a row per pair code of ``counts``) as float64, checked."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) <= counts.doc.max():
        raise ValueError(f"features of shape {features.shape} for {counts.doc.max() + 1} pairs")
    if not np.isfinite(features).all():
        raise DataFormatError("the features hold a NaN or infinite value")
    return features


def _relevance_regression(features: np.ndarray, n_doc: np.ndarray):
    """Regression EM's M-step for ``gamma``: a function from the expected relevant impressions
    of every pair to ``sigmoid(w . x + b)``, refitted (warm-started) on them each call. It is
    fitted on the pairs with impressions (``n_doc > 0``) and predicts every row of ``features``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    logged = np.flatnonzero(n_doc > 0)
    scaler = StandardScaler().fit(features[logged])
    x, x_all = scaler.transform(features[logged]), scaler.transform(features)
    x_twice = np.vstack([x, x])
    y_twice = np.r_[np.ones(len(x)), np.zeros(len(x))]
    regression = LogisticRegression(C=1.0, max_iter=500, warm_start=True)

    def refit(relevant_doc: np.ndarray) -> np.ndarray:
        # Expected relevant impressions as positive examples, the rest as negative ones.
        relevant = relevant_doc[logged]
        weight = np.maximum(np.r_[relevant, n_doc[logged] - relevant], 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            regression.fit(x_twice, y_twice, sample_weight=weight)
        return regression.predict_proba(x_all)[:, 1]

    return refit


def _trust_posterior(
    a: np.ndarray, b: np.ndarray, g: np.ndarray, n: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The trust-bias E-step per cell (click rate ``a`` of a relevant and ``b`` of an irrelevant
    impression, relevance ``g``, ``n`` impressions, ``c`` clicks): expected relevant clicks and
    expected relevant skips."""
    clicks = c * g * a / np.maximum(g * a + (1 - g) * b, 1e-12)
    skips = (n - c) * g * (1 - a) / np.maximum(g * (1 - a) + (1 - g) * (1 - b), 1e-12)
    return clicks, skips


def _em_trust(
    counts: Counts, group: np.ndarray, steps: _Steps, tol: float
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Trust-bias EM: ``alpha`` and ``beta`` per bucket, steps, converged."""
    k = group[counts.position - 1]
    n = counts.impressions.astype(np.float64)
    n_pos = np.bincount(k, weights=n)
    c = counts.clicks.astype(np.float64)
    n_doc = np.bincount(counts.doc, weights=n)
    # Start with relevant documents clicked more than irrelevant ones, which picks the labelling
    # of the two mixture components (swapping them fits as well and inverts every label).
    a = np.full(len(n_pos), 0.6)
    b = np.full(len(n_pos), 0.2)
    gamma = np.full(len(n_doc), 0.5)
    converged = False
    it = 0
    for it in steps:  # noqa: B007
        relevant_clicks, relevant_skips = _trust_posterior(a[k], b[k], gamma[counts.doc], n, c)
        relevant = relevant_clicks + relevant_skips
        rel_pos = np.bincount(k, weights=relevant, minlength=len(n_pos))
        new_a = np.bincount(k, weights=relevant_clicks, minlength=len(n_pos))
        new_a = np.divide(new_a, rel_pos, out=np.zeros_like(a), where=rel_pos > 0)
        irr_pos = n_pos - rel_pos
        new_b = np.bincount(k, weights=c - relevant_clicks, minlength=len(n_pos))
        new_b = np.divide(new_b, irr_pos, out=np.zeros_like(b), where=irr_pos > 0)
        new_gamma = np.bincount(counts.doc, weights=relevant, minlength=len(n_doc))
        new_gamma = np.divide(new_gamma, n_doc, out=np.zeros_like(gamma), where=n_doc > 0)
        step = max(np.abs(new_a - a).max(), np.abs(new_b - b).max())
        a, b, gamma = new_a, new_b, new_gamma
        steps.report(step)
        if step < tol:
            converged = True
            break
    return a - b, b, it, converged


def format_propensity(prop: Propensity, *, truth: Propensity | None = None, rows: int = 20) -> str:
    """A table of ``theta_k`` (trust: ``alpha_k`` and ``beta_k``), with the true values beside
    when known."""
    trust = prop.click_model == "trust"
    if prop.method == "formula":
        if trust:
            return f"trust-bias model: eta {prop.eta:g}, false_click {prop.false_click:g}"
        return f"theta_k = (1/k)^{prop.eta:g}"
    names = ["alpha_k", "beta_k"] if trust else ["theta_k"]
    header = "position  " + "  ".join(f"{n:<8}" for n in names) + "  impressions"
    if truth:
        header += "".join(f"  true {n}" for n in names)
    lines = [header]
    shown = min(rows, len(prop.theta))
    positions = np.arange(1, shown + 1)
    columns = [prop.at(positions)] + ([prop.offset(positions)] if trust else [])
    true = [truth.at(positions)] + ([truth.offset(positions)] if trust else []) if truth else []
    for i in range(shown):
        line = f"{i + 1:>8}  " + "  ".join(f"{col[i]:<8.4f}" for col in columns)
        line += f"  {prop.impressions[i]:>11,}"
        line += "".join(f"  {col[i]:>{len(n) + 5}.4f}" for col, n in zip(true, names, strict=False))
        lines.append(line)
    if len(prop.theta) > shown:
        lines.append(f"     ...  ({len(prop.theta) - shown} more positions)")
    if prop.tail_eta is not None:
        what = "alpha and beta" if trust else f"theta_{len(prop.theta)}"
        lines.append(
            f"positions past {len(prop.theta)}: {what} * ({len(prop.theta)}/k)^"
            f"{prop.tail_eta:.3f} (the (1/k)^eta fitted to the estimate)"
        )
    return "\n".join(lines)
