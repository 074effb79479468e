"""Where `salesbot chat` saves the pictures it cannot show (the `/metrics` chart).

A directory of its own per session, made on the first picture with `tempfile.mkdtemp`
(mode 0700, a fresh unpredictable name: no other user of a shared /tmp can pre-create or
read it), and left in place when the session ends, so the path printed on the line still
opens afterwards. Not next to the store: `--memory` has none, and a chart is a view of the
store at one moment, not part of it. Files are named by content
(`salesbot-metrics-<sha-256 prefix>.png`): the same chart twice is one file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from domain.cards import ReplyImage

PREFIX = "salesbot-charts-"


class ChartFolder:
    """Saves a reply's image under a per-session temporary directory; returns its path."""

    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._directory: Path | None = None

    @property
    def directory(self) -> Path | None:
        """The session's directory, once a picture was saved."""
        return self._directory

    def save(self, image: ReplyImage) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self._parent))
        path = self._directory / image.filename  # the filename is validated: no separators
        path.write_bytes(image.png)
        return path
