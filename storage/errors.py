"""The storage layer's error tree.

    StorageError                 the store cannot do what was asked (closed, I/O, a failed commit)
    ├── ConcurrencyError         a stream is not at the version the writer expected
    ├── SchemaTooNewError        the database was written by a newer salesbot
    └── CorruptDatabaseError     the file is not a salesbot SQLite database, or fails its check

Programming errors in what a caller asks to store (events of another conversation, a gap
in sequence numbers, a payload that is not JSON) raise `ValueError`/`TypeError` instead:
they are bugs to fix, not conditions to handle. Messages are complete sentences that name
what they are about (the conversation, the versions, the path), so the CLI can print
`str(error)` and exit 2. Every one pickles (`__reduce__` gives back its arguments), so a
writer in another process can send it back as it was raised.
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""


class ConcurrencyError(StorageError):
    """Someone else advanced the stream first; reload the state and decide again.

    Nothing of the rejected write was stored.
    """

    def __init__(self, conversation_id: str, expected: int, actual: int) -> None:
        self.conversation_id = conversation_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"Conversation {conversation_id!r} is at version {actual}, not at the expected "
            f"version {expected}; nothing was written."
        )

    def __reduce__(self) -> tuple[type[ConcurrencyError], tuple[str, int, int]]:
        return (type(self), (self.conversation_id, self.expected, self.actual))


class SchemaTooNewError(StorageError):
    """Refuse to touch a database whose schema this build does not know (no downgrades)."""

    def __init__(self, path: str | Path, found: int, supported: int) -> None:
        self.path = str(path)
        self.found = found
        self.supported = supported
        super().__init__(
            f"{self.path} was written by a newer salesbot (schema version {found}); this "
            f"salesbot supports schema versions up to {supported}. Upgrade salesbot to open it."
        )

    def __reduce__(self) -> tuple[type[SchemaTooNewError], tuple[str, int, int]]:
        return (type(self), (self.path, self.found, self.supported))


class CorruptDatabaseError(StorageError):
    """The file is not a SQLite database, not a salesbot one, or fails its integrity check."""

    def __init__(self, path: str | Path, detail: str) -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path} cannot be used as a salesbot database: {detail}.")

    def __reduce__(self) -> tuple[type[CorruptDatabaseError], tuple[str, str]]:
        return (type(self), (self.path, self.detail))
