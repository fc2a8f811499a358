"""Plain-Python reference implementations for the loss tests, written independently of ltr.

Each works on ONE list given as Python lists of the real items only (no padding, no tensors),
with loops and the ``math`` module, so that they share no code path with the vectorised losses.
"""

from __future__ import annotations

import math


def gain(y: float) -> float:
    return 2.0**y - 1.0


def idcg(labels: list[float], k: int | None = None) -> float:
    best = sorted((gain(y) for y in labels), reverse=True)
    if k is not None:
        best = best[:k]
    return sum(g / math.log2(i + 2) for i, g in enumerate(best))


def ranks_pessimistic(scores: list[float], labels: list[float]) -> list[int]:
    """1-based ranks: score descending, ties by label ascending, then by position."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], labels[i], i))
    ranks = [0] * len(scores)
    for position, item in enumerate(order, start=1):
        ranks[item] = position
    return ranks


def log_sigmoid(x: float) -> float:
    # log(1 / (1 + e^-x)), written both ways round so neither branch overflows
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def lambdarank(scores: list[float], labels: list[float], sigma: float = 1.0) -> float:
    ranks = ranks_pessimistic(scores, labels)
    ideal = idcg(labels)
    total = 0.0
    for i in range(len(scores)):
        for j in range(len(scores)):
            if labels[i] > labels[j]:
                swap = abs(gain(labels[i]) - gain(labels[j])) * abs(
                    1 / math.log2(1 + ranks[i]) - 1 / math.log2(1 + ranks[j])
                )
                total += (swap / ideal) * -log_sigmoid(sigma * (scores[i] - scores[j]))
    return total


def lambdaloss(
    scores: list[float], labels: list[float], sigma: float = 1.0, mu: float = 10.0
) -> float:
    """NDCG-Loss2++: weight = (LambdaRank term + mu * NDCG-Loss2 term) * |G_i - G_j|."""
    ranks = ranks_pessimistic(scores, labels)
    ideal = idcg(labels)

    def inv_d(r: float) -> float:
        return 1 / math.log2(1 + r)

    total = 0.0
    for i in range(len(scores)):
        for j in range(len(scores)):
            if labels[i] > labels[j]:
                lambdarank_term = abs(inv_d(ranks[i]) - inv_d(ranks[j]))
                gap = abs(ranks[i] - ranks[j])
                loss2_term = abs(inv_d(gap) - inv_d(gap + 1))
                g_diff = abs(gain(labels[i]) - gain(labels[j])) / ideal
                weight = (lambdarank_term + mu * loss2_term) * g_diff
                total += -weight * log_sigmoid(sigma * (scores[i] - scores[j])) / math.log(2)
    return total


def listmle_breslow(scores: list[float], labels: list[float]) -> float:
    total = 0.0
    for i in range(len(scores)):
        rivals = [scores[j] for j in range(len(scores)) if labels[j] <= labels[i]]
        top = max(rivals)
        total += top + math.log(sum(math.exp(s - top) for s in rivals)) - scores[i]
    return total


def neural_ndcg(
    scores: list[float],
    labels: list[float],
    temperature: float = 1.0,
    iterations: int = 50,
    k: int | None = None,
) -> float:
    """NeuralSort matrix, Sinkhorn in probability space, then -DCG / IDCG, all with loops."""
    n = len(scores)
    matrix = []
    for i in range(1, n + 1):
        logits = [
            ((n + 1 - 2 * i) * scores[j] - sum(abs(scores[j] - s) for s in scores)) / temperature
            for j in range(n)
        ]
        top = max(logits)
        row = [math.exp(z - top) for z in logits]
        matrix.append([v / sum(row) for v in row])
    for _ in range(iterations):
        for j in range(n):
            column = sum(matrix[i][j] for i in range(n))
            for i in range(n):
                matrix[i][j] /= column
        for i in range(n):
            row_sum = sum(matrix[i])
            matrix[i] = [v / row_sum for v in matrix[i]]
    cut = n if k is None else min(k, n)
    dcg = 0.0
    for i in range(cut):
        expected_gain = sum(matrix[i][j] * gain(labels[j]) for j in range(n))
        dcg += expected_gain / math.log2(i + 2)
    ideal = idcg(labels, k)
    return 0.0 if ideal == 0 else -dcg / ideal
