"""Click models used to simulate users: the position-based model (PBM), the PBM with trust
bias (:class:`TrustBiasModel`), the dependent click model (:class:`CascadeModel`), where
what a user looks at depends on what they clicked above, and the dynamic Bayesian network
(:class:`DynamicBayesianModel`), where users may also give up, and stop once satisfied, and
the user browsing model (:class:`BrowsingModel`), where what a user looks at depends on the
distance to their last click.

A user examines position ``k`` with probability ``theta_k = (1 / k) ** eta`` (Joachims et al.
2017), and clicks an examined document of grade ``y`` with probability

    epsilon(y) = noise + (1 - noise) * (2**y - 1) / (2**max_grade - 1)

(Chuklin et al. 2015; Ai et al. 2018), so an irrelevant document is still clicked with
probability ``noise`` when examined. Examination and attractiveness are independent, so
``P(click) = theta_k * epsilon(y)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ltr.errors import ConfigError

TOP_TRUE_CLICK = 0.98  # eps_plus_1 of the trust-bias model


@dataclass(frozen=True)
class PositionBasedModel:
    """PBM parameters.

    Attributes:
        eta: severity of position bias (0 = none; 1 and 2 are the usual settings).
        noise: click probability of an examined irrelevant document, in ``[0, 1)``.
        max_grade: the highest relevance grade (``epsilon(max_grade) = 1``).
    """

    eta: float = 1.0
    noise: float = 0.1
    max_grade: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ConfigError(f"eta must be a finite number >= 0, got {self.eta}")
        if not (0 <= self.noise < 1):
            raise ConfigError(f"noise must be in [0, 1), got {self.noise}")
        if not (math.isfinite(self.max_grade) and self.max_grade > 0):
            raise ConfigError(f"max_grade must be a number > 0, got {self.max_grade}")

    def examination(self, positions: np.ndarray) -> np.ndarray:
        """``theta_k`` for 1-based ``positions``."""
        return _positions(positions) ** -self.eta

    def attractiveness(self, grades: np.ndarray) -> np.ndarray:
        """``epsilon(y)`` for relevance ``grades`` (clipped to ``[0, max_grade]``)."""
        return _attractiveness(grades, self.noise, self.max_grade)

    def click_probability(self, positions: np.ndarray, grades: np.ndarray) -> np.ndarray:
        """``theta_k * epsilon(y)`` element-wise."""
        return self.examination(positions) * self.attractiveness(grades)

    def clicks(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[S, m]`` clicks of ``S`` sessions shown documents of ``grades`` (``[S, m]``, in
        shown order), each impression on its own."""
        return _independent_clicks(self, grades, rng)

    def to_dict(self) -> dict[str, float]:
        return {"model": "pbm", **asdict(self)}


@dataclass(frozen=True)
class TrustBiasModel:
    """Position bias with trust bias: users trust the top of a ranking, and click irrelevant
    documents there more often (Agarwal et al. 2019; Vardasbi et al. 2020, 2021).

    With examination ``theta_k = (1/k)^eta`` and relevance probability
    ``r(y) = (2**y - 1) / (2**max_grade - 1)``,

        P(click | k, y) = theta_k * (eps_plus_k * r(y) + eps_minus_k * (1 - r(y)))

    where an examined relevant document is clicked with ``eps_plus_k = 1 - (min(k, 20) + 1) / 100``
    and an examined irrelevant one with ``eps_minus_k = false_click / min(k, 10)`` (the curves of
    Vardasbi et al. 2021, eqs. 10-11, with ``false_click = 0.65``). The click probability is then
    affine in relevance, ``alpha_k * r(y) + beta_k`` with ``alpha_k = theta_k (eps_plus_k -
    eps_minus_k)`` and ``beta_k = theta_k eps_minus_k``, which no single multiplicative
    propensity can undo: IPS is biased under this model; the affine correction is not.

    Attributes:
        eta: severity of position bias.
        false_click: ``eps_minus_1``, the click rate of an examined irrelevant document at the
            top, below ``eps_plus_1 = 0.98``.
        max_grade: the highest relevance grade (``r(max_grade) = 1``).
    """

    eta: float = 1.0
    false_click: float = 0.65
    max_grade: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ConfigError(f"eta must be a finite number >= 0, got {self.eta}")
        if not (0 <= self.false_click < TOP_TRUE_CLICK):
            raise ConfigError(
                f"false_click must be in [0, {TOP_TRUE_CLICK}) (below the click rate of an "
                f"examined relevant document at the top), got {self.false_click}"
            )
        if not (math.isfinite(self.max_grade) and self.max_grade > 0):
            raise ConfigError(f"max_grade must be a number > 0, got {self.max_grade}")

    def examination(self, positions: np.ndarray) -> np.ndarray:
        """``theta_k`` for 1-based ``positions``."""
        return _positions(positions) ** -self.eta

    def relevance(self, grades: np.ndarray) -> np.ndarray:
        """``r(y)``, the probability that a document of grade ``y`` is relevant."""
        return _gain_share(grades, self.max_grade)

    def eps_plus(self, positions: np.ndarray) -> np.ndarray:
        """Click probability of an examined relevant document at ``positions``."""
        return 1.0 - (np.minimum(_positions(positions), 20) + 1) / 100

    def eps_minus(self, positions: np.ndarray) -> np.ndarray:
        """Click probability of an examined irrelevant document at ``positions``."""
        return self.false_click / np.minimum(_positions(positions), 10)

    def alpha(self, positions: np.ndarray) -> np.ndarray:
        """``theta_k (eps_plus_k - eps_minus_k)``: what relevance adds to the click rate."""
        return self.examination(positions) * (self.eps_plus(positions) - self.eps_minus(positions))

    def beta(self, positions: np.ndarray) -> np.ndarray:
        """``theta_k eps_minus_k``: the click rate of an irrelevant document at ``positions``."""
        return self.examination(positions) * self.eps_minus(positions)

    def click_probability(self, positions: np.ndarray, grades: np.ndarray) -> np.ndarray:
        """``alpha_k r(y) + beta_k`` element-wise."""
        return self.alpha(positions) * self.relevance(grades) + self.beta(positions)

    def clicks(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[S, m]`` clicks of ``S`` sessions shown documents of ``grades`` (``[S, m]``, in
        shown order), each impression on its own."""
        return _independent_clicks(self, grades, rng)

    def to_dict(self) -> dict[str, float]:
        return {"model": "trust", **asdict(self)}


@dataclass(frozen=True)
class CascadeModel:
    """The dependent click model (DCM; Guo et al. 2009), a cascade that allows several clicks.

    A user reads the ranking from the top, one document after another, and clicks an examined
    document of grade ``y`` with probability ``epsilon(y)`` (as in the PBM). After a click they
    go on reading with probability ``continue_after_click`` (``lambda``) and are done
    otherwise; after a document they did not click they always go on. So position bias is not a
    fixed curve: a document is looked at if no click above it ended the session, which depends
    on how attractive the documents above it were. ``lambda = 0`` is the cascade model of
    Craswell et al. (2008), one click at most; ``lambda = 1`` has no position bias at all.

    Attributes:
        continue_after_click: ``lambda``, the probability of reading on after a click.
        noise: click probability of an examined irrelevant document, in ``[0, 1)``.
        max_grade: the highest relevance grade (``epsilon(max_grade) = 1``).
    """

    continue_after_click: float = 0.5
    noise: float = 0.1
    max_grade: float = 2.0

    def __post_init__(self) -> None:
        if not (0 <= self.continue_after_click <= 1):
            raise ConfigError(
                f"continue_after_click must be in [0, 1], got {self.continue_after_click}"
            )
        PositionBasedModel(eta=0.0, noise=self.noise, max_grade=self.max_grade)  # same checks

    def attractiveness(self, grades: np.ndarray) -> np.ndarray:
        """``epsilon(y)`` for relevance ``grades`` (clipped to ``[0, max_grade]``)."""
        return _attractiveness(grades, self.noise, self.max_grade)

    def clicks(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[S, m]`` clicks of ``S`` sessions reading documents of ``grades`` (``[S, m]``, in
        shown order) from the top."""
        grades = np.atleast_2d(grades)
        attracted = rng.random(grades.shape) < self.attractiveness(grades)
        read_on = rng.random(grades.shape) < self.continue_after_click
        clicks = np.zeros(grades.shape, dtype=bool)
        reading = np.ones(grades.shape[0], dtype=bool)
        for k in range(grades.shape[1]):
            clicks[:, k] = reading & attracted[:, k]
            reading &= ~clicks[:, k] | read_on[:, k]
        return clicks

    def to_dict(self) -> dict[str, float]:
        return {"model": "cascade", **asdict(self)}


@dataclass(frozen=True)
class DynamicBayesianModel:
    """The dynamic Bayesian network click model (DBN; Chapelle and Zhang 2009): a cascade in
    which users give up, and stop once a click has satisfied them.

    A user reads the ranking from the top. An examined document of grade ``y`` attracts a click
    with probability ``epsilon(y)`` (as in the PBM); a clicked document satisfies them with
    probability ``sigma(y) = (2**y - 1) / (2**max_grade - 1)``, and a satisfied user is done.
    Otherwise (no click, or a click that did not satisfy) they read the next document with
    probability ``perseverance`` (``gamma``) and give up otherwise. What a document is worth to
    a user who looks at it is then ``epsilon(y) sigma(y)``, the chance that it ends their search
    well. ``gamma = 1`` with the same satisfaction for every document is the DCM
    (:class:`CascadeModel`, ``lambda = 1 - sigma``).

    Attributes:
        perseverance: ``gamma``, the probability of reading on when not satisfied, in ``(0, 1]``.
        noise: click probability of an examined irrelevant document, in ``[0, 1)``.
        max_grade: the highest relevance grade (``epsilon(max_grade) = sigma(max_grade) = 1``).
    """

    perseverance: float = 0.9
    noise: float = 0.1
    max_grade: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.perseverance <= 1):
            raise ConfigError(f"perseverance must be in (0, 1], got {self.perseverance}")
        PositionBasedModel(eta=0.0, noise=self.noise, max_grade=self.max_grade)  # same checks

    def attractiveness(self, grades: np.ndarray) -> np.ndarray:
        """``epsilon(y)`` for relevance ``grades`` (clipped to ``[0, max_grade]``)."""
        return _attractiveness(grades, self.noise, self.max_grade)

    def satisfaction(self, grades: np.ndarray) -> np.ndarray:
        """``sigma(y)``: the probability that a click on a document of grade ``y`` satisfies."""
        return _gain_share(grades, self.max_grade)

    def clicks(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[S, m]`` clicks of ``S`` sessions reading documents of ``grades`` (``[S, m]``, in
        shown order) from the top."""
        grades = np.atleast_2d(grades)
        attracted = rng.random(grades.shape) < self.attractiveness(grades)
        satisfied = rng.random(grades.shape) < self.satisfaction(grades)
        read_on = rng.random(grades.shape) < self.perseverance
        clicks = np.zeros(grades.shape, dtype=bool)
        reading = np.ones(grades.shape[0], dtype=bool)
        for k in range(grades.shape[1]):
            clicks[:, k] = reading & attracted[:, k]
            reading &= ~(clicks[:, k] & satisfied[:, k]) & read_on[:, k]
        return clicks

    def to_dict(self) -> dict[str, float]:
        return {"model": "dbn", **asdict(self)}


@dataclass(frozen=True)
class BrowsingModel:
    """The user browsing model (UBM; Dupret and Piwowarski 2008): what a user looks at depends
    on the position and on the distance to their last click above it.

    A user examines the document at position ``k`` with probability ``(1 / (k - l)) ** eta``,
    ``l`` the position of the last click above ``k`` (0 when there is none): the PBM's curve
    (:class:`PositionBasedModel`), started afresh below every click, as if each click set the
    reader's eyes back to the top. An examined document of grade ``y`` is clicked with
    probability ``epsilon(y)``. Unlike a cascade, a user who skips a document may still look at
    the next one, and nobody stops; unlike the PBM, a document right below a click is looked at
    more than its position says.

    Attributes:
        eta: how fast attention falls with the distance from the last click (0 = none).
        noise: click probability of an examined irrelevant document, in ``[0, 1)``.
        max_grade: the highest relevance grade (``epsilon(max_grade) = 1``).
    """

    eta: float = 1.0
    noise: float = 0.1
    max_grade: float = 2.0

    def __post_init__(self) -> None:
        PositionBasedModel(eta=self.eta, noise=self.noise, max_grade=self.max_grade)  # same checks

    def examination(self, positions: np.ndarray, last_click: np.ndarray) -> np.ndarray:
        """``(1 / (k - l))^eta`` for 1-based ``positions`` ``k`` and the positions ``l`` of the
        last click above them (0 = none)."""
        distance = _positions(positions) - np.asarray(last_click, dtype=np.float64)
        if np.any(distance < 1):
            raise ValueError("the last click above a position is above it (or 0 for none)")
        return distance**-self.eta

    def attractiveness(self, grades: np.ndarray) -> np.ndarray:
        """``epsilon(y)`` for relevance ``grades`` (clipped to ``[0, max_grade]``)."""
        return _attractiveness(grades, self.noise, self.max_grade)

    def clicks(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[S, m]`` clicks of ``S`` sessions shown documents of ``grades`` (``[S, m]``, in
        shown order)."""
        grades = np.atleast_2d(grades)
        attracted = rng.random(grades.shape) < self.attractiveness(grades)
        looks = rng.random(grades.shape)
        clicks = np.zeros(grades.shape, dtype=bool)
        last = np.zeros(grades.shape[0])
        for k in range(grades.shape[1]):
            clicks[:, k] = (looks[:, k] < self.examination(k + 1, last)) & attracted[:, k]
            last = np.where(clicks[:, k], k + 1, last)
        return clicks

    def to_dict(self) -> dict[str, float]:
        return {"model": "ubm", **asdict(self)}


def _independent_clicks(
    model: PositionBasedModel | TrustBiasModel, grades: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    grades = np.atleast_2d(grades)
    positions = np.broadcast_to(np.arange(1, grades.shape[1] + 1), grades.shape)
    return rng.random(grades.shape) < model.click_probability(positions, grades)


def _attractiveness(grades: np.ndarray, noise: float, max_grade: float) -> np.ndarray:
    return noise + (1.0 - noise) * _gain_share(grades, max_grade)


def _positions(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)
    if np.any(positions < 1):
        raise ValueError("positions are 1-based")
    return positions


def _gain_share(grades: np.ndarray, max_grade: float) -> np.ndarray:
    """``(2**y - 1) / (2**max_grade - 1)`` for ``y`` clipped to ``[0, max_grade]``."""
    y = np.clip(np.asarray(grades, dtype=np.float64), 0.0, max_grade)
    return np.expm1(y * math.log(2)) / math.expm1(max_grade * math.log(2))


ClickModel = (
    PositionBasedModel | TrustBiasModel | CascadeModel | DynamicBayesianModel | BrowsingModel
)
