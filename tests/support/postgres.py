"""A throwaway PostgreSQL cluster for the tests (issue 17, item 3): Debian's `postgresql`
binaries (`make test` installs the package when absent), a data directory in a fresh
temporary directory, run as an unprivileged user (PostgreSQL refuses to run as root:
`postgres` when the package created it, else `nobody`), listening on 127.0.0.1 only, with
trust authentication for its one superuser and `fsync=off` (the cluster dies with the test
run; durability is SQLite's and the store's own tests' business). Starting fails loudly —
a test that needs PostgreSQL never skips for want of one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "salesbot"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")


class ClusterError(RuntimeError):
    """The cluster could not be started (what was tried and PostgreSQL's own words)."""


@dataclass
class Cluster:
    base: Path
    bindir: Path
    port: int
    user: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop at once (nothing here needs a clean shutdown) and remove every file."""
        _run(self, ["pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.base, ignore_errors=True)


def bindir() -> Path:
    """The newest Debian PostgreSQL's binaries (`/usr/lib/postgresql/<major>/bin`)."""
    found = sorted(
        (p for p in DEBIAN_BINARIES.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise ClusterError(
            f"no PostgreSQL binaries under {DEBIAN_BINARIES}: `make test` installs Debian's "
            "postgresql package (apt-get install postgresql)"
        )
    return found[-1]


def start(*, durable: bool = False) -> Cluster:
    """A new cluster, started and accepting connections on a free loopback port.

    `durable` runs it with PostgreSQL's defaults for durability instead (`fsync=on`,
    `synchronous_commit=on`, `full_page_writes=on`): each commit waits for its WAL to
    reach the disk, as on a production server. For benchmarks (`bench.append_pg`), so
    their figures can be shown both ways; the tests never need it."""
    user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="salesbot-pg-"))
    base.chmod(0o755)  # the server's user must reach its data directory
    data = base / "data"
    data.mkdir()
    if user is not None:
        shutil.chown(data, user=user)
        shutil.chown(base, user=user)
    cluster = Cluster(base=base, bindir=bindir(), port=_free_port(), user=user)
    try:
        _run(
            cluster,
            [
                "initdb",
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        switch = "on" if durable else "off"
        options = (
            f"-p {cluster.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={base} -c fsync={switch} "
            f"-c synchronous_commit={switch} -c full_page_writes={switch} -c max_connections=60"
        )
        _run(
            cluster,
            [
                "pg_ctl",
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    except BaseException:
        log = base / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        if tail:
            raise ClusterError(f"PostgreSQL did not start; its log ends:\n{tail}") from None
        raise
    return cluster


def _run(cluster: Cluster, argv: list[str]) -> None:
    command = [str(cluster.bindir / argv[0]), *argv[1:]]
    if cluster.user is not None:
        command = ["runuser", "-u", cluster.user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cluster.base)
    if done.returncode != 0:
        raise ClusterError(
            f"{' '.join(argv[:2])} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-1500:]}"
        )


def _unprivileged_user() -> str | None:
    """Who runs the server: this process's user, unless that is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ClusterError("running as root with neither a postgres nor a nobody user to run as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
