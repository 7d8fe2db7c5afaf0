"""A throw-away PostgreSQL cluster for the test session.

`TEST_POSTGRES_URL` (postgresql+asyncpg://…) names a server to use. Otherwise the tests start their own
cluster with `initdb`/`pg_ctl` from Debian's packages on 127.0.0.1 and a free port, and stop it at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Cluster:
    url: str  # postgresql+asyncpg://… of a maintenance database
    stop: callable  # type: ignore[valid-type]


def _find_bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster() -> tuple[Cluster | None, str]:
    """Start a cluster; on failure return (None, reason)."""
    initdb, pg_ctl = _find_bin("initdb"), _find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        return None, "PostgreSQL is not installed (no initdb/pg_ctl); .ci/run installs it"
    base = Path(tempfile.mkdtemp(prefix="schoolbot-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the cluster as the 'postgres' system user.
        if shutil.which("runuser") is None:
            return None, "running as root and 'runuser' is missing"
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no 'postgres' user"
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    log = base / "server.log"
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"could not start PostgreSQL: {exc} {detail.decode(errors='replace')[:300]}"

    def stop() -> None:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    return Cluster(url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", stop=stop), ""
