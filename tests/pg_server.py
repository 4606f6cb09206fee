"""A throwaway PostgreSQL server for tests: initdb on a temp data directory, `pg_ctl start` on a free
loopback port, trust authentication, stopped and deleted at the end.

PostgreSQL refuses to run as root, and these tests do run as root on CI: then the server runs as the
`postgres` system user (created by Debian's package) through `runuser`, with the data directory given to
that user. pytest-postgresql calls pg_ctl directly, with no way to name another user; see
docs/decisions/postgres-backends.md.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"  # the system user Debian's postgresql package creates
START_TIMEOUT_S = 60
# a test server: losing it in a crash costs nothing, and fsync on a shared disk costs seconds per run
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class NoServer(RuntimeError):
    """No PostgreSQL server can be started here (the message says why)."""


def server_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: from PATH, pg_config, or Debian's
    /usr/lib/postgresql/<version>/bin (the newest)."""
    candidates = []
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        answer = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(answer.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    versions = sorted(debian.glob("*/bin"), key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    candidates.extend(reversed(versions))
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise NoServer(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH, from pg_config or under "
        f"{debian}/*/bin: `make install` installs Debian's postgresql package"
    )


def as_server_user() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as an unprivileged user (none unless root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError as err:
        raise NoServer(f"running as root, and there is no {SERVER_USER!r} user to run the server as") from err
    runuser = shutil.which("runuser")
    if runuser is None:
        raise NoServer("running as root, and there is no runuser to run the server as another user")
    return [runuser, "-u", SERVER_USER, "--"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def dsn(self, database: str = "postgres") -> str:
        """The libpq connection URI (psycopg2.connect, psql)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL, naming the driver (ETA_DAGSTER_PG_URL, MLFLOW_TRACKING_URI)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database on the server; returns its SQLAlchemy URL."""
        import psycopg2
        from psycopg2 import sql

        connection = psycopg2.connect(self.dsn())
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        return self.url(name)


def _run(command: list[str], log: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        server_log = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}{server_log}"
        )


@contextmanager
def postgres_server(attempts: int = 3) -> Iterator[PostgresServer]:
    """A running server on 127.0.0.1 (user `postgres`, trust auth); stopped and deleted on exit.

    The folder comes from `tempfile`, not pytest's tmp_path: pytest's base folder is private to root, and
    the server user must reach its data directory."""
    bindir = server_bindir()
    prefix = as_server_user()
    root = Path(tempfile.mkdtemp(prefix="eta-postgres-"))
    data, log = root / "data", root / "server.log"
    try:
        if prefix:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        _run([*prefix, *initdb, "-E", "UTF8", "--locale=C", "--no-sync"], log)
        pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log)]
        for attempt in range(attempts):
            port = free_port()  # another process may take it before the server binds: try a new one
            options = [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {root}"]
            options += [f"-c {setting}" for setting in FAST_SETTINGS]
            try:
                _run([*pg_ctl, "-w", "-t", str(START_TIMEOUT_S), "-o", " ".join(options), "start"], log)
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        try:
            yield PostgresServer("127.0.0.1", port, "postgres")
        finally:
            _run([*pg_ctl, "-m", "fast", "-w", "stop"], log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
