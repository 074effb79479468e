"""How fast the reader reads: `understand` runs inside `decide`, before every acknowledgement.

Messages are the frozen test split's (four languages, 3 words to a paragraph), cycled; the
first pass warms the per-word stem cache as a running bot's would be warm. Reported: messages
per second for the reader alone (`domain.understanding.reading.read`), for the whole
`salesbot understand` line (JSON in, reading, JSON out), and for the seed policy's lexicons
in the same run, as a ratio.
"""

from __future__ import annotations

import io
import json
import time
from datetime import date
from pathlib import Path

from bot.cli import main as cli_main
from bot.corpus import TEST_DIR, load_examples
from bot.policy_loader import load_policy
from domain.understand import understand
from domain.understanding.reading import read

TODAY = date(2026, 12, 5)


def _rate(texts: list[str], read_one: object, seconds: float = 1.0) -> float:
    assert callable(read_one)
    for text in texts:  # warm-up: stems and compiled indexes, as in a running bot
        read_one(text)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < seconds:
            for text in texts:
                read_one(text)
            count += len(texts)
        best = max(best, count / (time.perf_counter() - start))
    return best


def measure() -> dict[str, float]:
    texts = [e.text for e in load_examples([Path(TEST_DIR)])]
    default, seed = load_policy("default"), load_policy("seed")
    assert default.understanding is not None
    model = default.understanding.reader
    results = {
        "understand_reader_msgs_per_s": _rate(texts, lambda t: read(t, model, today=TODAY)),
        "understand_seed_lexicons_msgs_per_s": _rate(
            texts, lambda t: understand(seed, [t], today=TODAY)
        ),
    }
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(texts)]
    start = time.perf_counter()
    rounds = 3
    for _ in range(rounds):
        out = io.StringIO()
        cli_main(
            ["understand", "--now", "2026-12-05T00:00:00Z"],
            out=out,
            err=io.StringIO(),
            stdin=iter(lines),
        )
    results["understand_cli_lines_per_s"] = rounds * len(lines) / (time.perf_counter() - start)
    return results
