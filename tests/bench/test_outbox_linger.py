"""`bench.outbox_linger`: both sides do every message's work (each reply claimed and
marked sent) and the report names them. No timing is asserted; the figures are
`python -m bench.outbox_linger`'s."""

from __future__ import annotations

from bench.outbox_linger import measure


async def test_both_sides_send_every_reply_and_the_report_names_them() -> None:
    result = await measure(messages=12, rate=2_000.0, rounds=1)
    for side in ("linger", "at_once"):
        assert result[f"outbox_linger_{side}_unsent"] == 0
        assert 0 < result[f"outbox_linger_{side}_transactions_per_message"] <= 3
        assert (
            result[f"outbox_linger_{side}_reply_p50_ms"]
            >= result[f"outbox_linger_{side}_commit_p50_ms"]
        )
    assert result["outbox_linger_messages"] == 12
