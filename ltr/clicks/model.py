"""The position-based click model (PBM) used to simulate users.

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
        positions = np.asarray(positions, dtype=np.float64)
        if np.any(positions < 1):
            raise ValueError("positions are 1-based")
        return positions**-self.eta

    def attractiveness(self, grades: np.ndarray) -> np.ndarray:
        """``epsilon(y)`` for relevance ``grades`` (clipped to ``[0, max_grade]``)."""
        y = np.clip(np.asarray(grades, dtype=np.float64), 0.0, self.max_grade)
        return self.noise + (1.0 - self.noise) * np.expm1(y * math.log(2)) / math.expm1(
            self.max_grade * math.log(2)
        )

    def click_probability(self, positions: np.ndarray, grades: np.ndarray) -> np.ndarray:
        """``theta_k * epsilon(y)`` element-wise."""
        return self.examination(positions) * self.attractiveness(grades)

    def to_dict(self) -> dict[str, float]:
        return {"model": "pbm", **asdict(self)}
