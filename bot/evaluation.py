"""`salesbot eval`: how well a policy reads labelled messages, overall and per language.

Figures (definitions in `bot.metrics`): band macro-F1 and accuracy; per-signal precision and
recall; objection macro-F1 over the six classes and "none", with its confusion matrix;
needs-a-human recall and precision; intents micro-F1. Each headline figure carries a 95%
bootstrap interval (200 resamples, seeded: the same data gives the same interval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.corpus import BANDS, TRAINING_DATE, Example
from bot.metrics import bootstrap, confusion, f1, macro_f1, precision_recall
from domain.policy import Policy
from domain.understand import understand
from domain.understanding.model import INTENTS, OBJECTIONS, SIGNALS
from domain.understanding.reading import Reading

OBJECTION_CLASSES = (*OBJECTIONS, "none")


def predict(policy: Policy, example: Example) -> Reading:
    today = example.now.date() if example.now is not None else TRAINING_DATE
    return understand(policy, example.messages, today=today, metadata=example.metadata)


def _interval(count: int, statistic: Callable[[Sequence[int]], float]) -> dict[str, float]:
    value = statistic(range(count))
    low, high = bootstrap(count, statistic)
    return {"value": round(value, 4), "low": round(low, 4), "high": round(high, 4)}


def figures(examples: Sequence[Example], readings: Sequence[Reading]) -> dict[str, Any]:
    n = len(examples)
    band_truth = [e.band for e in examples]
    band_pred = [r.band for r in readings]
    obj_truth = [e.objection or "none" for e in examples]
    obj_pred = [r.objection or "none" for r in readings]
    human_truth = [e.needs_human for e in examples]
    human_pred = [r.needs_human for r in readings]

    def band_f1(rows: Sequence[int]) -> float:
        return macro_f1([band_truth[i] for i in rows], [band_pred[i] for i in rows], BANDS)

    def objection_f1(rows: Sequence[int]) -> float:
        return macro_f1(
            [obj_truth[i] for i in rows], [obj_pred[i] for i in rows], OBJECTION_CLASSES
        )

    def human(which: int) -> Callable[[Sequence[int]], float]:
        def statistic(rows: Sequence[int]) -> float:
            return precision_recall([human_truth[i] for i in rows], [human_pred[i] for i in rows])[
                which
            ]

        return statistic

    signals = {}
    for name in SIGNALS:
        p, r = precision_recall(
            [e.signals[name] for e in examples], [x.signals[name] for x in readings]
        )
        signals[name] = {"precision": round(p, 4), "recall": round(r, 4)}
    intent_pairs = [
        (intent in e.intents, intent in x.intents)
        for e, x in zip(examples, readings, strict=True)
        for intent in INTENTS
    ]
    ip, ir = precision_recall([t for t, _ in intent_pairs], [p for _, p in intent_pairs])
    return {
        "examples": n,
        "band_macro_f1": _interval(n, band_f1),
        "band_accuracy": round(
            sum(t == p for t, p in zip(band_truth, band_pred, strict=True)) / n, 4
        ),
        "signals": signals,
        "objection_macro_f1": _interval(n, objection_f1),
        "objection_confusion": {
            "classes": list(OBJECTION_CLASSES),
            "matrix": confusion(obj_truth, obj_pred, OBJECTION_CLASSES),
        },
        "needs_human_recall": _interval(n, human(1)),
        "needs_human_precision": _interval(n, human(0)),
        "intents_micro_f1": round(f1(ip, ir), 4),
    }


def evaluate(policy: Policy, examples: Sequence[Example]) -> dict[str, Any]:
    readings = [predict(policy, example) for example in examples]
    by_language: dict[str, Any] = {}
    for language in sorted({e.lang for e in examples}):
        rows = [i for i, e in enumerate(examples) if e.lang == language]
        by_language[language] = figures([examples[i] for i in rows], [readings[i] for i in rows])
    return {
        "policy": policy.name,
        "policy_version": policy.version,
        "overall": figures(examples, readings),
        "by_language": by_language,
    }


def _ci(figure: dict[str, float]) -> str:
    return f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def render_report(reports: Sequence[dict[str, Any]]) -> str:
    """The reports side by side: one column per policy, one block per language."""
    names = [f"{r['policy']} ({r['policy_version'][:12]})" for r in reports]
    width = max(26, *(len(n) for n in names))
    lines: list[str] = []

    def row(label: str, values: Sequence[str]) -> None:
        lines.append(f"{label:<28}" + "".join(f"{v:<{width + 2}}" for v in values))

    scopes = ["overall", *sorted(reports[0]["by_language"])]
    for scope in scopes:
        blocks = [r["overall"] if scope == "overall" else r["by_language"][scope] for r in reports]
        lines.append(f"== {scope} ({blocks[0]['examples']} examples)")
        row("", names)
        row("band macro-F1", [_ci(b["band_macro_f1"]) for b in blocks])
        row("band accuracy", [f"{b['band_accuracy']:.3f}" for b in blocks])
        row("objection macro-F1", [_ci(b["objection_macro_f1"]) for b in blocks])
        row("needs-human recall", [_ci(b["needs_human_recall"]) for b in blocks])
        row("needs-human precision", [_ci(b["needs_human_precision"]) for b in blocks])
        for name in SIGNALS:
            row(
                f"{name} P / R",
                [
                    f"{b['signals'][name]['precision']:.3f} / {b['signals'][name]['recall']:.3f}"
                    for b in blocks
                ],
            )
        row("intents micro-F1", [f"{b['intents_micro_f1']:.3f}" for b in blocks])
        lines.append("")
    first = reports[0]["overall"]["objection_confusion"]
    lines.append(f"objection confusion, {reports[0]['policy']} (rows: label, columns: reading)")
    lines.append(" " * 12 + "".join(f"{c[:10]:>11}" for c in first["classes"]))
    for label, counts in zip(first["classes"], first["matrix"], strict=True):
        lines.append(f"{label[:10]:<12}" + "".join(f"{n:>11}" for n in counts))
    return "\n".join(lines) + "\n"
