"""The backup's database dumps (installer/backup/pgtools.py) against real PostgreSQL: every
database's pg_dump runs at once and is read ahead, the archive takes each in chunks of exactly
the chunk size, joined they are pg_dump's own output (pg_restore reads them), a failed dump
says so at its end, and a dump the archive stops taking is not left running."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from installer.backup.pgtools import READ_BLOCK, Blocks, Dump, dumps_started
from installer.errors import CommandFailedError
from tests.helpers.pg import PgCluster

pytestmark = pytest.mark.root


@pytest.mark.parametrize(
    ("blocks", "reads", "given"),
    [
        ([b"abcd", b"efgh"], [4, 4], [b"abcd", b"efgh"]),  # whole blocks
        ([b"abcd", b"efgh"], [3, 3, 2], [b"abc", b"def", b"gh"]),  # across blocks
        ([b"ab", b"cdefgh"], [8], [b"abcdefgh"]),
        ([b"abcd"], [3, 3], [b"abc", b"d"]),  # past the end: what is left
        ([], [4], [b""]),
    ],
)
def test_a_chunk_reads_back_as_it_was_read(
    blocks: list[bytes], reads: list[int], given: list[bytes]
) -> None:
    chunk = Blocks()
    for block in blocks:
        chunk.add(block)
    assert chunk.size == sum(map(len, blocks))
    assert [chunk.read(n) for n in reads] == given


def test_a_whole_block_is_given_back_itself_not_a_copy() -> None:
    block = os.urandom(READ_BLOCK)
    chunk = Blocks()
    chunk.add(block)
    assert chunk.read(READ_BLOCK) is block


def fill(pg: PgCluster, database: str, rows: int) -> None:
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    with psycopg.connect(pg.admin_conninfo(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        conn.execute(
            "INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) "
            "FROM generate_series(1, %s) g",
            (rows,),
        )


def test_dumps_run_at_once_and_come_back_in_exact_chunks(pg: PgCluster) -> None:
    fill(pg, "big", 60_000)
    fill(pg, "small", 10)
    size = 100_000  # not a multiple of the block: chunks end inside blocks
    with dumps_started(pg.admin_conninfo(), ["big", "small"]) as dumps:
        assert [d.proc.poll() for d in dumps.values()] == [None, None]  # both started
        got = {
            name: [bytes(c.read(c.size)) for c in dump.chunks(size)] for name, dump in dumps.items()
        }
    assert {len(c) for c in got["big"][:-1]} == {size}
    assert 0 < len(got["big"][-1]) <= size
    for name, chunks in got.items():
        listed = subprocess.run(
            ["pg_restore", "--list"], input=b"".join(chunks), capture_output=True, check=True
        ).stdout.decode()
        assert "TABLE DATA public t" in listed, name


def test_a_failed_dump_says_so_at_its_end(pg: PgCluster) -> None:
    with (
        dumps_started(pg.admin_conninfo(), ["missing"]) as dumps,
        pytest.raises(CommandFailedError) as caught,
    ):
        list(dumps["missing"].chunks(READ_BLOCK))
    assert "missing" in caught.value.message


def test_a_dump_the_archive_stops_taking_is_not_left_running(pg: PgCluster) -> None:
    fill(pg, "big", 60_000)
    with dumps_started(pg.admin_conninfo(), ["big"]) as dumps:
        dump: Dump = dumps["big"]
        next(dump.chunks(1000))  # the archive took one piece, then stopped (a failure)
    assert dump.proc.poll() is not None
    assert not dump.reader.is_alive()
