"""`salesbot train`: learn the reader's weights from labelled messages, reproducibly.

Every head is a regularised logistic regression over the reader's features (elastic net:
L2 plus a little L1 so that useless words get weight 0), fitted with L-BFGS-B. Writing each
weight as the difference of two non-negative parts makes the L1 term smooth and turns the
domain's sign constraints (a budget term cannot lower the band) into plain bounds. The band is
one score with two thresholds: both "at least warm" and "at least hot" are fitted with the
same weights and their own offsets.

Cross-validation (folds assigned by a hash of each example's id, so adding an example never
reshuffles the others) picks the L2 strength per head family and gives the out-of-fold
scores on which thresholds are chosen: F1-optimal for signals, objections, reasons and
intents; the highest threshold that keeps the `needs_human` recall target; the band pair
with the best macro-F1. Each head also gets a Platt calibration fitted on the same
out-of-fold scores (Platt's smoothed targets), for display: the probability a rep is shown
next to a sum that decided nothing by itself. Weights, thresholds and calibrations are
rounded to six places. The output
records the data's and the spec's SHA-256, the seed and the library versions; the same
inputs give the same file.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.special import expit

from bot.corpus import TRAINING_DATE, Example, TrainingConfig
from bot.metrics import f1, macro_f1, precision_recall
from domain import GENERATOR
from domain.understanding.features import extract
from domain.understanding.model import (
    BINARY_HEADS,
    INTENTS,
    OBJECTIONS,
    REASONS,
    SIGNALS,
    BandHead,
    Head,
    ReaderModel,
    ReaderSpec,
)
from domain.understanding.reading import aggregate
from domain.understanding.text import is_word, tokens

_SIX = Decimal("0.000001")
_ALWAYS_KEPT = ("lex:", "typo:", "ent:", "meta:", "lang:", "shape:")
BAND_ORDER = {"cold": 0, "warm": 1, "hot": 2}


def round6(value: float) -> float:
    """A float rounded (half-even) to six decimal places; its repr is that decimal exactly."""
    rounded = Decimal(repr(float(value))).quantize(_SIX, rounding=ROUND_HALF_EVEN)
    return float(rounded) if rounded else 0.0


def vocabulary(examples: Sequence[Example], min_count: int) -> tuple[str, ...]:
    counts: Counter[str] = Counter()
    for example in examples:
        for message in example.messages:
            counts.update({t for t in tokens(message) if is_word(t) and t.isalpha()})
    return tuple(sorted(word for word, n in counts.items() if n >= min_count))


def blank_model(spec: ReaderSpec, words: tuple[str, ...]) -> ReaderModel:
    """A model with every weight 0: enough to extract features with the spec."""
    return ReaderModel(
        generator_version=GENERATOR,
        spec=spec,
        vocabulary=words,
        band=BandHead(hot=1, warm=0),
        heads={name: Head() for name in BINARY_HEADS},
    )


def features_of(example: Example, model: ReaderModel) -> dict[str, int]:
    today = example.now.date() if example.now is not None else TRAINING_DATE
    merged: dict[str, int] = {}
    for message in example.messages:
        extraction = extract(message, model, today=today, metadata=example.metadata)
        merged = aggregate(merged, extraction.features, ())
    return merged


@dataclass(frozen=True)
class Design:
    """The training matrix: rows are examples, columns the kept features."""

    names: list[str]
    matrix: scipy.sparse.csr_matrix


def design(rows: Sequence[dict[str, int]], min_count: int) -> Design:
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(row.keys())
    names = sorted(
        name for name, n in counts.items() if n >= min_count or name.startswith(_ALWAYS_KEPT)
    )
    column = {name: i for i, name in enumerate(names)}
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    for row in rows:
        for name in sorted(row):
            if name in column:
                indices.append(column[name])
                data.append(float(row[name]))
        indptr.append(len(indices))
    matrix = scipy.sparse.csr_matrix(
        (np.array(data), np.array(indices, dtype=np.int64), np.array(indptr, dtype=np.int64)),
        shape=(len(rows), len(names)),
    )
    return Design(names, matrix)


def _bounds(names: list[str], signs: dict[str, int]) -> list[tuple[float, float | None]]:
    """Bounds of the positive parts then the negative parts of the weights."""
    positive: list[tuple[float, float | None]] = []
    negative: list[tuple[float, float | None]] = []
    for name in names:
        sign = signs.get(name, 0)
        positive.append((0.0, 0.0) if sign < 0 else (0.0, None))
        negative.append((0.0, 0.0) if sign > 0 else (0.0, None))
    return positive + negative


def fit(
    matrix: scipy.sparse.csr_matrix,
    targets: list[np.ndarray],
    sample_weights: list[np.ndarray],
    *,
    l2: float,
    l1: float,
    bounds: list[tuple[float, float | None]],
) -> tuple[np.ndarray, np.ndarray]:
    """Weights shared by one or more logistic tasks, each with its own offset.

    Minimises Σₖ Σᵢ sᵢₖ·logloss(yᵢₖ, x_i·w + bₖ) + l2/2·‖w‖² + l1·‖w‖₁ with w = w⁺ − w⁻.
    """
    _rows, width = matrix.shape
    tasks = len(targets)
    transposed = matrix.T.tocsr()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[:width] - theta[width : 2 * width]
        offsets = theta[2 * width :]
        base = matrix @ w
        loss = 0.5 * l2 * float(w @ w) + l1 * float(theta[: 2 * width].sum())
        gradient_w = l2 * w
        gradient_offsets = np.zeros(tasks)
        for k in range(tasks):
            z = base + offsets[k]
            y = targets[k]
            s = sample_weights[k]
            loss += float(s @ (np.logaddexp(0.0, z) - y * z))
            residual = s * (expit(z) - y)
            gradient_w = gradient_w + transposed @ residual
            gradient_offsets[k] = residual.sum()
        gradient = np.concatenate((gradient_w + l1, -gradient_w + l1, gradient_offsets))
        return loss, gradient

    start = np.zeros(2 * width + tasks)
    result = scipy.optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[*bounds, *([(None, None)] * tasks)],
        options={"maxiter": 1000, "maxcor": 20, "ftol": 1e-12, "gtol": 1e-7},
    )
    theta = result.x
    return theta[:width] - theta[width : 2 * width], theta[2 * width :]


def _fold_of(identifier: str, folds: int) -> int:
    return int(hashlib.sha256(identifier.encode()).hexdigest()[:8], 16) % folds


def _balanced(y: np.ndarray) -> np.ndarray:
    positives = float(y.sum())
    negatives = float(len(y) - positives)
    if positives == 0 or negatives == 0:
        return np.ones_like(y)
    boost = min(10.0, (negatives / positives) ** 0.5)
    return np.where(y > 0, boost, 1.0)


def best_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The threshold (a midpoint between observed scores) with the best F1; ties: higher."""
    order = np.argsort(-scores, kind="stable")
    ranked_scores = scores[order]
    ranked_truth = truth[order]
    positives = float(truth.sum())
    if positives == 0:
        return float(ranked_scores[0] + 1.0) if len(scores) else 0.0
    tp = np.cumsum(ranked_truth)
    predicted = np.arange(1, len(scores) + 1)
    f1s = 2 * tp / (predicted + positives)
    best = -1.0
    threshold = 0.0
    for i in range(len(scores)):
        if i + 1 < len(scores) and ranked_scores[i + 1] == ranked_scores[i]:
            continue
        if f1s[i] > best + 1e-12:
            best = float(f1s[i])
            below = ranked_scores[i + 1] if i + 1 < len(scores) else ranked_scores[i] - 1.0
            threshold = float((ranked_scores[i] + below) / 2)
    return threshold


def platt(scores: np.ndarray, truth: np.ndarray) -> dict[str, float] | None:
    """`a`, `b` of `P(truth | s) = 1 / (1 + e^-(a·s + b))`, by Platt's method: a logistic fit
    of the out-of-fold scores with targets smoothed to `(N₊+1)/(N₊+2)` and `1/(N₋+2)`, so a
    perfectly separated head is not made certain. None when one class is absent."""
    positive = truth > 0
    n_positive = int(positive.sum())
    n_negative = len(truth) - n_positive
    if n_positive == 0 or n_negative == 0:
        return None
    target = np.where(positive, (n_positive + 1) / (n_positive + 2), 1 / (n_negative + 2))

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * scores + ab[1]
        value = float(np.sum(np.logaddexp(0.0, z) - target * z))
        residual = expit(z) - target
        return value, np.array([float(residual @ scores), float(residual.sum())])

    result = scipy.optimize.minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return {"a": round6(float(result.x[0])), "b": round6(float(result.x[1]))}


def brier(scores: np.ndarray, truth: np.ndarray, calibration: dict[str, float]) -> float:
    """The mean squared error of the calibrated probabilities (lower is better)."""
    p = expit(calibration["a"] * scores + calibration["b"])
    return float(np.mean((p - (truth > 0)) ** 2))


def needs_human_threshold(
    scores: np.ndarray, truth: np.ndarray, already: np.ndarray, min_recall: float
) -> float:
    """The threshold for `already | scores ≥ t` with the best F2 (recall weighs four times
    precision: a missed legal or refund case is the worst error) among those whose recall is
    at least `min_recall`; the lowest threshold reaching that recall when none is better."""
    positives = int(truth.sum())
    if positives == 0:
        return float(scores.max() + 1.0) if len(scores) else 0.0
    candidates = np.unique(scores)
    best: tuple[float, float] | None = None
    fallback = float(candidates[0]) - 1e-6
    for t in candidates[::-1]:
        together = already | (scores >= t)
        tp = int((together & truth).sum())
        recall = tp / positives
        if recall < min_recall:
            continue
        precision = tp / int(together.sum())
        f2 = 5 * precision * recall / (4 * precision + recall) if precision + recall else 0.0
        if best is None or f2 > best[0] + 1e-12:
            best = (f2, float(t) - 1e-6)
    if already.sum() and (already & truth).sum() / positives >= min_recall:
        caught = int((already & truth).sum())
        precision = caught / int(already.sum())
        recall = caught / positives
        f2 = 5 * precision * recall / (4 * precision + recall)
        if best is None or f2 >= best[0]:
            return float(scores.max() + 1.0)
    return best[1] if best is not None else fallback


def band_thresholds(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(warm, hot, macro-F1): the pair of thresholds with the best macro-F1 on these scores."""
    candidates = np.unique(np.quantile(scores, np.linspace(0.02, 0.98, 49)))
    labels = ["cold", "warm", "hot"]
    truth_labels = [labels[int(t)] for t in truth]
    best = (-1.0, 0.0, 1.0)
    for i, warm in enumerate(candidates):
        for hot in candidates[i + 1 :]:
            predicted = np.where(scores >= hot, 2, np.where(scores >= warm, 1, 0))
            score = macro_f1(truth_labels, [labels[int(p)] for p in predicted], labels)
            if score > best[0] + 1e-12:
                best = (score, float(warm), float(hot))
    return best[1], best[2], best[0]


@dataclass(frozen=True)
class HeadTask:
    """One thing to learn: its targets (one array per shared-weight task) and its family."""

    name: str
    family: str
    targets: list[np.ndarray]


def tasks_for(examples: Sequence[Example]) -> list[HeadTask]:
    def column(values: Iterable[bool]) -> np.ndarray:
        return np.array([1.0 if value else 0.0 for value in values])

    band = np.array([BAND_ORDER[e.band] for e in examples], dtype=float)
    tasks = [HeadTask("band", "band", [(band >= 1).astype(float), (band >= 2).astype(float)])]
    for name in SIGNALS:
        tasks.append(
            HeadTask(f"signal:{name}", "signals", [column(e.signals[name] for e in examples)])
        )
    for name in OBJECTIONS:
        tasks.append(
            HeadTask(
                f"objection:{name}", "objections", [column(e.objection == name for e in examples)]
            )
        )
    tasks.append(HeadTask("needs_human", "reasons", [column(e.needs_human for e in examples)]))
    for name in REASONS:
        tasks.append(
            HeadTask(f"reason:{name}", "reasons", [column(name in e.reasons for e in examples)])
        )
    for name in INTENTS:
        tasks.append(
            HeadTask(f"intent:{name}", "intents", [column(name in e.intents for e in examples)])
        )
    return tasks


def _weights_for(task: HeadTask) -> list[np.ndarray]:
    if task.name == "band":
        return [np.ones_like(t) for t in task.targets]
    return [_balanced(t) for t in task.targets]


def _log_loss(scores: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, scores) - y * scores))


def train(
    examples: Sequence[Example],
    spec: ReaderSpec,
    config: TrainingConfig,
    *,
    provenance: dict[str, Any],
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The model document for `examples` (see the module docstring)."""
    if len(examples) < config.folds * 2:
        raise ValueError(f"need at least {config.folds * 2} examples to train, got {len(examples)}")
    words = vocabulary(examples, config.min_count)
    extractor = blank_model(spec, words)
    rows = [features_of(example, extractor) for example in examples]
    table = design(rows, config.min_count)
    progress(f"{len(examples)} examples, {len(table.names)} features")
    folds = np.array([_fold_of(e.id, config.folds) for e in examples])
    tasks = tasks_for(examples)

    # Out-of-fold scores for every head at every L2 strength.
    out_of_fold: dict[tuple[str, float], np.ndarray] = {}
    for task in tasks:
        bounds = _bounds(table.names, config.constraints.get(task.name, {}))
        weights = _weights_for(task)
        for l2 in config.l2_grid:
            scores = np.zeros(len(examples))
            for fold in range(config.folds):
                train_rows = np.flatnonzero(folds != fold)
                held_rows = np.flatnonzero(folds == fold)
                w, offsets = fit(
                    table.matrix[train_rows],
                    [t[train_rows] for t in task.targets],
                    [s[train_rows] for s in weights],
                    l2=l2,
                    l1=l2 * config.l1_ratio,
                    bounds=bounds,
                )
                # The band's score is w·x alone; a binary head's includes its offset.
                offset = 0.0 if task.name == "band" else float(offsets[0])
                scores[held_rows] = table.matrix[held_rows] @ w + offset
            out_of_fold[(task.name, l2)] = scores
        progress(f"cross-validated {task.name}")

    chosen: dict[str, float] = {}
    for family in sorted({task.family for task in tasks}):
        members = [task for task in tasks if task.family == family]

        def family_loss(l2: float, members: list[HeadTask] = members) -> float:
            total = 0.0
            for task in members:
                scores = out_of_fold[(task.name, l2)]
                if task.name == "band":
                    total += sum(_log_loss(scores - np.median(scores), t) for t in task.targets)
                else:
                    total += _log_loss(scores, task.targets[0])
            return total

        chosen[family] = min(config.l2_grid, key=lambda l2: (family_loss(l2), l2))

    heads: dict[str, dict[str, Any]] = {}
    band_document: dict[str, Any] = {}
    figures: dict[str, Any] = {"l2": chosen}
    fired: dict[str, np.ndarray] = {}
    brier_scores: dict[str, float] = {}
    deferred: tuple[HeadTask, float, dict[str, float], np.ndarray, np.ndarray] | None = None
    for task in tasks:
        l2 = chosen[task.family]
        w, offsets = fit(
            table.matrix,
            task.targets,
            _weights_for(task),
            l2=l2,
            l1=l2 * config.l1_ratio,
            bounds=_bounds(table.names, config.constraints.get(task.name, {})),
        )
        learned = {
            name: round6(value)
            for name, value in zip(table.names, w, strict=True)
            if round6(value) != 0.0
        }
        scores = out_of_fold[(task.name, l2)]
        truth = task.targets[0]
        if task.name == "band":
            band_truth = task.targets[0] + task.targets[1]
            warm, hot, score = band_thresholds(scores, band_truth)
            warm, hot = round6(warm), round6(hot)
            if hot <= warm:
                hot = round6(warm + 0.000001)
            band_document = {
                "bias": 0,
                "threshold": 0,
                "warm": warm,
                "hot": hot,
                "weights": learned,
            }
            figures["band_macro_f1"] = round(score, 4)
            hot_truth = (band_truth == 2).astype(float)
            calibration = platt(scores, hot_truth)
            if calibration is not None:
                band_document["calibration"] = calibration
                brier_scores["band (hot)"] = round(brier(scores, hot_truth, calibration), 4)
            continue
        if task.name == "needs_human":
            deferred = (task, float(offsets[0]), learned, scores, truth)
            continue
        threshold = best_f1_threshold(scores, truth)
        fired[task.name] = scores >= threshold
        precision, recall = precision_recall(list(truth > 0), list(scores >= threshold))
        figures[task.name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1(precision, recall), 4),
        }
        heads[task.name] = {
            "bias": round6(float(offsets[0])),
            "threshold": round6(threshold),
            "weights": learned,
        }
        calibration = platt(scores, truth)
        if calibration is not None:
            heads[task.name]["calibration"] = calibration
            brier_scores[task.name] = round(brier(scores, truth, calibration), 4)

    # needs_human last: it only has to catch what the reasons miss (a person is needed when
    # any reason fires or this head does), so its threshold is chosen on the out-of-fold
    # recall and precision of the two together.
    assert deferred is not None
    task, bias, learned, scores, truth = deferred
    by_reason = np.zeros(len(examples), dtype=bool)
    for name in REASONS:
        by_reason |= fired[f"reason:{name}"]
    threshold = needs_human_threshold(scores, truth > 0, by_reason, config.needs_human_recall)
    together = by_reason | (scores >= threshold)
    precision, recall = precision_recall(list(truth > 0), list(together))
    figures["needs_human (with the reasons)"] = {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1(precision, recall), 4),
    }
    heads[task.name] = {"bias": round6(bias), "threshold": round6(threshold), "weights": learned}
    calibration = platt(scores, truth)
    if calibration is not None:
        heads[task.name]["calibration"] = calibration
        brier_scores[task.name] = round(brier(scores, truth, calibration), 4)
    figures["calibration_brier"] = brier_scores

    return {
        "schema_version": 1,
        "generator_version": GENERATOR,
        "spec": spec.model_dump(mode="json"),
        "vocabulary": list(words),
        "band": band_document,
        "heads": heads,
        **({"rules": list(config.rules)} if config.rules else {}),
        "training": {
            **provenance,
            "seed": config.seed,
            "examples": len(examples),
            "features": len(table.names),
            "folds": config.folds,
            "training_date": TRAINING_DATE.isoformat(),
            "libraries": library_versions(),
            "cross_validation": figures,
        },
    }


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "snowballstemmer"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:  # pragma: no cover - always installed
            versions[name] = "missing"
    return versions


def model_text(document: dict[str, Any]) -> str:
    """The model file's text: sorted keys, one space indent, a final newline."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def check_model(document: dict[str, Any]) -> ReaderModel:
    """The document as the domain reads it (so a written model is known to load)."""
    return ReaderModel.model_validate(document)


if __name__ == "__main__":  # pragma: no cover - `salesbot train` is the entry point
    sys.exit("use: salesbot train")
