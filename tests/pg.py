"""A real PostgreSQL server for tests: Debian's `postgresql` binaries, a temp data directory, a free
port, stopped (and checked gone) at the end. One server per test process; a database per test.

PostgreSQL refuses to run as root, so as root the server runs as Debian's `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from launchbay import procs


def _bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        pytest.fail("PostgreSQL is missing: scripts/setup.sh installs Debian's postgresql package")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """`postgresql+psycopg://postgres@127.0.0.1:PORT` of a server running for this test process."""
    import psycopg

    bindir = _bin()
    root = os.geteuid() == 0
    data = Path(tempfile.mkdtemp(prefix="launchbay-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = procs.free_port()
    server = subprocess.Popen(
        [*as_postgres, str(bindir / "postgres"), "-D", str(data / "db"), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}", "-c", "fsync=off",
         "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("PostgreSQL did not start")
                time.sleep(0.1)
        yield url
    finally:
        # A fast shutdown (clients disconnected), not the default smart one that waits for idle
        # connection pools forever; then the whole tree is checked gone.
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "stop", "-D", str(data / "db"), "-m", "fast", "-w"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        survivors = procs.stop(server.pid, timeout=20)
        assert survivors == [], f"PostgreSQL left processes behind: {survivors}"
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new database on the test process's server with the ledger's schema; dropped afterwards."""
    yield from _database(postgres_server, upgraded=True)


@pytest.fixture
def empty_postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the test process's server; dropped afterwards."""
    yield from _database(postgres_server, upgraded=False)


def _database(postgres_server: str, upgraded: bool) -> Iterator[str]:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        url = f"{postgres_server}/{name}"
        if upgraded:  # what the installation's upgrade Job does once, before anything connects
            import sqlalchemy as sa

            from launchbay.rollout.ledger import migrations

            engine = sa.create_engine(url)
            migrations.upgrade(engine)
            engine.dispose()
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
