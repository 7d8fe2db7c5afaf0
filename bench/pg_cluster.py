"""A throw-away PostgreSQL cluster for the benches (the one the tests start: tests/postgres.py).

    .venv/bin/python bench/pg_cluster.py [--unix] [-- COMMAND …]

Starts a cluster on 127.0.0.1 (fsync off, a free port) with an empty database `bench`. With a command
(after `--`), runs it with BENCH_DATABASE_URL set to that database (bench/load_bench.py and
bench/flow_profile.py read it) and stops the cluster when it ends, with its exit status:

    .venv/bin/python bench/pg_cluster.py -- .venv/bin/python bench/load_bench.py --staff 200 --think 1.0

Without one, prints the URL and keeps the cluster until interrupted (Ctrl-C, SIGTERM, or stdin closed).
`--unix`: the URL reaches the server through its Unix socket instead of TCP on 127.0.0.1 (what a
server on the same machine allows; each round trip costs the bot less CPU in the kernel).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests package

from tests.postgres import start_cluster

DATABASE = "bench"


async def create_database(admin_url: str, unix: bool) -> str:
    admin = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        sockets = str(await connection.scalar(text("SHOW unix_socket_directories")))
    await admin.dispose()
    url = make_url(admin_url).set(database=DATABASE)
    if unix:
        folder = sockets.split(",")[0].strip()
        url = url.set(host="", port=None, query={"host": folder, "port": str(url.port)})
    return url.render_as_string(hide_password=False)


def main() -> int:
    ours = sys.argv[1 : sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:]
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    cluster, reason = start_cluster()
    if cluster is None:
        print(f"no cluster: {reason}", file=sys.stderr)
        return 2
    try:
        url = asyncio.run(create_database(cluster.url, "--unix" in ours))
        print(f"BENCH_DATABASE_URL={url}", flush=True)
        if command:
            return subprocess.run(command, env={**os.environ, "BENCH_DATABASE_URL": url}).returncode
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
