"""Classification figures for `salesbot eval` and for training's cross-validation.

Plain, dependency-free definitions (a reader can check them against any textbook):
per-class precision = TP/(TP+FP) and recall = TP/(TP+FN), 0 when undefined; F1 their
harmonic mean; macro-F1 the unweighted mean over the classes that occur in the labels or the
predictions. Bootstrap intervals resample examples with a seeded generator, so the same data
always gives the same interval.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def precision_recall(truth: Sequence[bool], predicted: Sequence[bool]) -> tuple[float, float]:
    tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t and p)
    fp = sum(1 for t, p in zip(truth, predicted, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def macro_f1(
    truth: Sequence[T], predicted: Sequence[T], classes: Sequence[T] | None = None
) -> float:
    """Mean F1 over `classes` (default: every class seen in truth or predictions)."""
    if not truth:
        return 0.0
    labels = list(classes) if classes is not None else sorted(set(truth) | set(predicted), key=repr)
    scores = []
    for label in labels:
        p, r = precision_recall([t == label for t in truth], [q == label for q in predicted])
        scores.append(f1(p, r))
    return sum(scores) / len(scores) if scores else 0.0


def confusion(truth: Sequence[T], predicted: Sequence[T], classes: Sequence[T]) -> list[list[int]]:
    """rows: true class, columns: predicted class, in `classes` order."""
    index = {label: i for i, label in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for t, p in zip(truth, predicted, strict=True):
        if t in index and p in index:
            matrix[index[t]][index[p]] += 1
    return matrix


def bootstrap(
    count: int,
    statistic: Callable[[Sequence[int]], float],
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """A percentile interval of `statistic` over resampled example indexes."""
    if count == 0:
        return (0.0, 0.0)
    rng = random.Random(seed)
    values = sorted(statistic([rng.randrange(count) for _ in range(count)]) for _ in range(rounds))
    tail = (1 - level) / 2
    low = values[int(tail * (rounds - 1))]
    high = values[round((1 - tail) * (rounds - 1))]
    return (low, high)
