"""EM accelerated by SQUAREM (Varadhan and Roland 2008), for the session click models' fits.

Plain EM on click models creeps where the likelihood is flat: thousands of steps that each move
the parameters a little in the same direction. SQUAREM takes two EM steps, then a step along
their secant, ``theta - 2 alpha r + alpha^2 v`` with ``r`` the first step, ``v`` the change
between the two and ``alpha = min(-|r| / |v|, -1)``; the extrapolated point is kept only if EM
from it does not lower the objective, else the second EM step is (so the objective never
falls). Parameters are probabilities, clipped to ``[0, 1]`` after each extrapolation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def squarem(
    em_step: Callable[[np.ndarray], tuple[np.ndarray, float]],
    theta: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    steps,
    accelerate: bool = True,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Run EM from ``theta``: ``em_step(theta)`` returns the next parameters and the objective
    (log-likelihood, plus any log prior) at ``theta``. Stops when one plain EM step moves no
    parameter by ``tol`` or more, or after ``max_iter`` EM steps; returns the parameters, the
    EM steps taken and whether it converged. ``steps`` is the progress reporter
    (:class:`ltr.clicks.propensity._Steps`); ``project`` fixes up an extrapolated point beyond
    the clip to ``[0, 1]`` (e.g. a parameter kept above 0).
    """
    converged, it, fallback, floor, change = False, 0, None, -np.inf, np.inf
    while it < max_iter:
        one, objective = em_step(theta)
        it += 1
        if objective < floor - 1e-12 * abs(floor):
            assert fallback is not None
            theta, fallback, floor = fallback, None, -np.inf
            steps.report(change)
            continue
        change = float(np.abs(one - theta).max())
        steps.report(change)
        if change < tol or it >= max_iter:
            theta, converged = one, change < tol
            break
        if not accelerate:
            theta = one
            continue
        two, floor = em_step(one)
        it += 1
        steps.report(float(np.abs(two - one).max()))
        r, v = one - theta, two - 2 * one + theta
        norm_v = float(np.linalg.norm(v))
        alpha = min(-float(np.linalg.norm(r)) / norm_v, -1.0) if norm_v > 0 else -1.0
        fallback = two
        theta = np.clip(theta - 2 * alpha * r + alpha**2 * v, 0.0, 1.0)
        if project is not None:
            theta = project(theta)
    return theta, it, converged
