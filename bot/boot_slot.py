"""Which slot this process holds among the processes sharing one database file.

Why. Each outbox lease names its owner, one per process boot. After a kill -9 the dead
boot's leases are claimable once its heartbeat runs out (`bot.outbox_worker.OWNER_TTL_MS`);
a restart should not wait even that long, but it may only take over the leases of a
*dead* process, never those of another live one sharing the database. A name that only
one live process can hold proves it: slot N is an exclusive `flock` on
`<database>.boot-N.lock`, beside the database. The kernel drops the lock when its process
dies, however it dies, so a new process that gets slot N knows every earlier owner of
slot N is gone (`Outbox.heartbeat(identity=...)`). Two live processes get two slots.

The lock files stay (removing one could race another process taking it); they are empty.
Where locking is unavailable (no `fcntl`, a directory without write access, a file system
that refuses locks) there is no slot: the process still works, and its previous boot's
leases are taken over when that boot's heartbeat runs out.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Self

try:
    import fcntl
except ImportError:  # pragma: no cover  (not on POSIX)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MAX_SLOTS = 64
"""More processes than this on one database file get no slot (heartbeat only)."""


class BootSlot:
    """An exclusive lock held until `release` (or the process ends)."""

    def __init__(self, identity: str, path: Path, fd: int) -> None:
        self.identity = identity
        """The outbox owner identity this slot proves: "slot-N"."""
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: str | Path, *, slots: int = MAX_SLOTS) -> BootSlot | None:
        """The lowest free slot of `database`, or None when none can be held. A database
        server (a `postgresql://` URL) has no file to lock beside it, and its processes may
        run on several hosts: they resume by heartbeat (and the URL, which may hold a
        password, is never logged)."""
        if fcntl is None or "://" in str(database):
            return None
        database = Path(database)
        for number in range(slots):
            path = database.with_name(f"{database.name}.boot-{number}.lock")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning(
                    "no boot slot beside %s (%s): restarts resume by heartbeat",
                    database,
                    exc.strerror,
                )
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process holds this slot
                continue
            except OSError as exc:
                os.close(fd)
                log.warning(
                    "no boot slot beside %s (%s): restarts resume by heartbeat",
                    database,
                    exc.strerror,
                )
                return None
            return cls(f"slot-{number}", path, fd)
        log.warning(
            "all %d boot slots of %s are held: restarts resume by heartbeat", slots, database
        )
        return None

    @staticmethod
    def held(database: str | Path) -> list[Path]:
        """The slots of `database` a live process holds now (each tried without waiting and
        let go at once): a running `salesbot serve` holds one. Empty without locking, and
        for a database server."""
        if fcntl is None or "://" in str(database):
            return []
        database = Path(database)
        held = []
        for path in sorted(database.parent.glob(f"{database.name}.boot-*.lock")):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                held.append(path)
            finally:
                os.close(fd)  # also drops the lock just taken
        return held

    def release(self) -> None:
        """Give the slot up (idempotent): the next process to start may take it."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
