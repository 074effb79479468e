"""The PostgreSQL the tests run against (issue 17, item 3) is real and throwaway: Debian's
server in a temporary directory, run as an unprivileged user, reachable on loopback only,
and gone with every file when stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.support.postgres import Cluster, start


def test_the_session_cluster_accepts_connections_and_keeps_what_it_is_given(
    postgres_cluster: Cluster,
) -> None:
    async def round_trip() -> tuple[str, list[tuple[int, str]]]:
        conn = await asyncpg.connect(postgres_cluster.dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            await conn.execute("CREATE TEMP TABLE t (n integer, s text)")
            await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "Grüße"), (2, "€")])
            rows = await conn.fetch("SELECT n, s FROM t ORDER BY n")
            return str(version), [(row["n"], row["s"]) for row in rows]
        finally:
            await conn.close()

    version, rows = asyncio.run(round_trip())
    assert int(version.split(".")[0]) >= 13
    assert rows == [(1, "Grüße"), (2, "€")]


def test_a_stopped_cluster_leaves_no_file_and_refuses_connections() -> None:
    cluster = start()
    base: Path = cluster.base
    assert (base / "data" / "PG_VERSION").is_file()
    cluster.stop()
    assert not base.exists()

    async def connect() -> None:
        await asyncpg.connect(cluster.dsn, timeout=5)

    try:
        asyncio.run(connect())
    except (OSError, asyncpg.PostgresError):
        pass
    else:
        raise AssertionError("a stopped cluster still accepted a connection")
