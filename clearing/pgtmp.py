"""A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp dir.

The server listens only on a unix socket in its own temp dir (no TCP port is
opened; the port number only names the socket).  initdb refuses to run as
root, so as root (CI) every server command runs as the ``postgres`` user
through ``runuser`` and the temp dir is handed to that user.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL server binary (Debian: /usr/lib/postgresql/<ver>/bin)."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"PostgreSQL's {name} not found (apt-get install postgresql)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One PostgreSQL cluster; :meth:`restart` is an immediate (crash) stop + start.

    Parameters
    ----------
    log_dir : Path
        Where the server's log file goes (readable by the test user).
    """

    def __init__(self, log_dir: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bursa-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = log_dir / "postgres.log"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._dbs = itertools.count(1)
        self.restarts = 0
        self.sock.mkdir()
        if self.as_root:
            # initdb refuses root: the cluster belongs to the postgres user.
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
            self.log = self.root / "postgres.log"
        subprocess.run(
            self._as_owner(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"),
            check=True, capture_output=True,
        )  # fmt: skip

    def _as_owner(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else list(cmd)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = f"-k {self.sock} -p {self.port} -c listen_addresses='' -c max_connections=50"
        subprocess.run(
            self._as_owner(pg_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                           "-l", str(self.log), "-o", opts),
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: like a crash, recovery on next start)."""
        subprocess.run(
            self._as_owner(pg_bin("pg_ctl"), "stop", "-w", "-D", str(self.data), "-m", mode),
            check=False, capture_output=True,
        )  # fmt: skip

    def restart(self) -> None:
        """Crash-stop (immediate) and start again."""
        self.stop("immediate")
        self.start()
        self.restarts += 1

    def url(self, dbname: str = "postgres") -> str:
        """Connection URL of a database (unix socket)."""
        return f"postgresql://postgres@/{dbname}?host={self.sock}&port={self.port}"

    def new_database(self) -> str:
        """Create an empty database; returns its URL."""
        name = f"t{next(self._dbs)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def cleanup(self) -> None:
        """Stop the server and delete its files."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
