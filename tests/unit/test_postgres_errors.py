"""A PostgreSQL or network error reaches the operator as one sentence naming the database:
one full stop at its end, whatever the underlying message ends with."""

from __future__ import annotations

import asyncpg
import pytest

from storage.postgres_pool import wrap

WHERE = "postgresql://salesbot@db.internal:99999/salesbot"


@pytest.mark.parametrize(
    ("error", "starts"),
    [
        (OverflowError("port must be 0-65535."), "The database"),
        (ValueError("invalid port."), WHERE),
        (ConnectionRefusedError(111, "Connection refused"), "Cannot reach"),
        (asyncpg.InvalidCatalogNameError('database "salesbot" does not exist'), "PostgreSQL"),
    ],
)
def test_the_error_is_one_sentence_with_one_full_stop(error: BaseException, starts: str) -> None:
    message = str(wrap(error, WHERE))
    assert message.startswith(starts)
    assert message.endswith(".")
    assert not message.endswith("..")
    assert "\n" not in message
