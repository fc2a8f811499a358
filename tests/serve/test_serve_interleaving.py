"""Team-draft interleaving (Radlinski et al. 2008): a hand-worked example, the algorithm's
defining properties on random rankings, and its fairness when both rankings agree."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ltr.serve.interleaving import CHALLENGER, PRIMARY, team_draft


class Coin(random.Random):
    """A coin that lands as scripted: True = the model (team 0) picks first."""

    def __init__(self, *model_first: bool) -> None:
        super().__init__()
        self.script = list(model_first)

    def random(self) -> float:
        return 0.0 if self.script.pop(0) else 0.9


def test_a_hand_worked_interleaving():
    # a = d0 d1 d2 d3, b = d3 d2 d1 d0. Round 1: the model wins the coin, picks d0; the
    # challenger picks d3. Round 2: the challenger wins the coin, picks d2; the model's best
    # left is d1.
    order, team = team_draft(np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0]), rng=Coin(True, False))
    assert order.tolist() == [0, 3, 2, 1]
    assert team.tolist() == [PRIMARY, CHALLENGER, CHALLENGER, PRIMARY]
    # the same rankings, top 3 only, the challenger first: d3 (B), d0 (A), then coin -> A: d1
    order, team = team_draft(np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0]), 3, Coin(False, True))
    assert order.tolist() == [3, 0, 1]
    assert team.tolist() == [CHALLENGER, PRIMARY, PRIMARY]


@pytest.mark.parametrize("n", [1, 2, 7, 30])
def test_every_pick_is_its_teams_best_left_and_the_teams_stay_level(n):
    rng = np.random.default_rng(n)
    coin = random.Random(n)
    for _ in range(200):
        a, b = rng.permutation(n), rng.permutation(n)
        k = int(rng.integers(1, n + 1))
        order, team = team_draft(a, b, k, coin)
        assert len(order) == k and len(set(order.tolist())) == k
        for t in range(k):
            ranking = a if team[t] == PRIMARY else b
            shown = set(order[:t].tolist())
            best_left = next(int(d) for d in ranking if int(d) not in shown)
            assert order[t] == best_left
            counts = np.bincount(team[: t + 1], minlength=2)
            assert abs(int(counts[0]) - int(counts[1])) <= 1
            if t % 2 == 1:  # after every round both teams have picked once
                assert counts[0] == counts[1]


def test_agreeing_rankings_give_that_ranking_and_a_fair_first_pick():
    coin = random.Random(7)
    a = np.array([4, 1, 3, 0, 2])
    first = []
    for _ in range(4000):
        order, team = team_draft(a, a.copy(), rng=coin)
        assert order.tolist() == a.tolist()
        first.append(int(team[0]))
    share = np.mean(first)
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(first))  # a fair coin, 4 sigma


def test_rankings_of_different_lists_are_refused():
    with pytest.raises(ValueError, match="interleave rankings of one list"):
        team_draft(np.array([0, 1]), np.array([0, 1, 2]))


def test_sighup_reloads_the_challenger_too_and_share_interleaves_that_share(tmp_path, s1):
    """A server interleaving two folders on half of the lists; the challenger's folder is
    retrained in place (another run id) and SIGHUP makes GetModelInfo and the responses name the
    new challenger. About half of the lists come back interleaved, as the metric counts."""
    import signal
    import time

    from ltr.serve.client import RerankerClient
    from tests.serve._helpers import ServerProcess, make_artifact, metric

    model = make_artifact(tmp_path / "model", s1, seed=1)
    rival = make_artifact(tmp_path / "rival", s1, seed=2)
    server = ServerProcess(
        tmp_path, model, "--backend", "torch", "--challenger", str(rival),
        "--interleaving.share", "0.5",
    )  # fmt: skip
    server.wait_ready()
    try:
        with RerankerClient(server.target) as client:
            assert client.model_info().challenger.version == "run-seed2"
            make_artifact(rival, s1, seed=3)  # retrained in place
            server.signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while client.model_info().challenger.version != "run-seed3":
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            answers = [
                client.rerank([f"d{i}" for i in range(5)], s1.features[:5]) for _ in range(200)
            ]
        interleaved = [r for r in answers if r.challenger is not None]
        assert 60 < len(interleaved) < 140  # 100 +- 7 expected: 5.6 sigma either side
        assert {r.challenger.version for r in interleaved} == {"run-seed3"}
        assert {r.model.version for r in answers} == {"run-seed1"}
        assert all(sorted(r.ids) == [f"d{i}" for i in range(5)] for r in answers)
        plain = [r for r in answers if r.challenger is None]
        assert all(list(r.scores) == sorted(r.scores, reverse=True) for r in plain)
        samples = server.scrape()
        assert metric(samples, "ltr_challenger_info", name="rival", version="run-seed3") == 1
        assert metric(samples, "ltr_challenger_info", name="rival", version="run-seed2") == 0
        assert metric(samples, "ltr_interleaved_lists_total") == len(interleaved)
    finally:
        server.stop()
