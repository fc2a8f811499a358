"""Team-draft interleaving: two models' rankings of one list merged into one, each shown
candidate credited to the model (team) that picked it.

Radlinski, Kurup and Joachims (2008), *How does clickthrough data reflect retrieval quality?*:
the team that has picked fewer candidates so far picks next (a fair coin decides when both have
picked as many), and it picks its highest-ranked candidate not yet shown. A session's clicks are
then credited to the teams whose candidates were clicked; the team with more clicked candidates
wins the session. Users see one list and click as they would, and the comparison is between two
rankings of the same candidates shown at once, which is why interleaving needs fewer sessions
than an A/B test of the same two models (Chapelle et al. 2012; ``benchmarks/interleaving.py``).

With ``interleaving.challenger`` set, ``ltr serve`` scores every feature list with both its model
(the *primary*, team 0) and the challenger (team 1) and answers with their team-draft
interleaving; the impression log records each candidate's team, and ``ltr clicks interleaving``
reads the log and the clicks back into a verdict.
"""

from __future__ import annotations

import random

import numpy as np

PRIMARY, CHALLENGER = 0, 1
"""Teams: the server's model, and the challenger it is compared with."""


def team_draft(
    a: np.ndarray, b: np.ndarray, k: int | None = None, rng: random.Random | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Interleave rankings ``a`` (team 0) and ``b`` (team 1) of the same ``n`` items.

    Args:
        a, b: ``[n]`` item indices, best first; each a permutation of ``0..n-1``.
        k: how many items to return (None = all ``n``).
        rng: the coin for ties between the teams (default: the ``random`` module's).

    Returns:
        ``(order [k] int64, team [k] int8)``: the interleaved items, best first, and the team
        that picked each.
    """
    n = len(a)
    if len(b) != n:
        raise ValueError(
            f"the rankings hold {n} and {len(b)} items; interleave rankings of one list"
        )
    k = n if k is None else min(k, n)
    coin = (rng or random).random
    a_list, b_list = a.tolist(), b.tolist()
    taken = bytearray(n)
    order: list[int] = []
    team: list[int] = []
    picked = [0, 0]
    next_of = [0, 0]  # each team's pointer into its own ranking
    rankings = (a_list, b_list)
    while len(order) < k:
        if picked[0] < picked[1] or (picked[0] == picked[1] and coin() < 0.5):
            t = PRIMARY
        else:
            t = CHALLENGER
        ranking, i = rankings[t], next_of[t]
        while taken[ranking[i]]:
            i += 1
        item = ranking[i]
        next_of[t] = i + 1
        taken[item] = 1
        order.append(item)
        team.append(t)
        picked[t] += 1
    return np.array(order, dtype=np.int64), np.array(team, dtype=np.int8)
