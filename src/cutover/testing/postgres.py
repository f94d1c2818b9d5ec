"""A throwaway local PostgreSQL 16 server with pgvector, for tests and benchmarks.

Where the machine's PostgreSQL lacks the ``vector`` extension (Debian
bookworm ships no ``postgresql-15-pgvector``), this runs the PostgreSQL and
pgvector binaries bundled in the ``pgserver`` wheel (the ``dev`` extra) in a
temporary directory, on 127.0.0.1 and a free port, with trust authentication
and durability switched off::

    with LocalPostgres() as server:
        url = server.url           # postgresql://postgres@127.0.0.1:PORT/postgres
        ...

PostgreSQL refuses to run as root; as root the server runs as ``nobody``
(the data directory is handed to that user). Only the binaries of
``pgserver`` are used, not its Python API (which adds a system user and
changes permissions up the path).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

_RUN_AS = "nobody"


def bundled_bin_dir() -> Path | None:
    """The ``bin`` directory of the PostgreSQL bundled with ``pgserver``, if installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    return bin_dir if (bin_dir / "postgres").is_file() else None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalPostgresError(RuntimeError):
    """The local server could not be started (the message says why)."""


class LocalPostgres:
    """A PostgreSQL server in a temporary directory; ``url`` once started."""

    def __init__(
        self, *, bin_dir: Path | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.bin_dir = bin_dir or bundled_bin_dir()
        self.host = host
        self.port = port
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The superuser's URL (database ``postgres``)."""
        if self._process is None:
            raise RuntimeError("the server is not started")
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _as_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        import pwd

        entry = pwd.getpwnam(_RUN_AS)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self, timeout_s: float = 30.0) -> str:
        """Initialise and start the server; its URL."""
        if self._process is not None:
            return self.url
        if self.bin_dir is None:
            raise LocalPostgresError("no bundled PostgreSQL: pip install pgserver (dev extra)")
        user = self._as_user()
        root = Path(tempfile.mkdtemp(prefix="cutover-pg-"))
        self._dir = root
        if user:
            os.chown(root, user["user"], user["group"])
        data = root / "data"
        log = root / "server.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        try:
            subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"],
                check=True, capture_output=True, timeout=120, env=env, cwd=root, **user,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise LocalPostgresError(
                f"initdb failed: {exc.stderr.decode(errors='replace').strip()[-500:]}"
            ) from None
        except (OSError, subprocess.SubprocessError) as exc:
            self.stop()
            raise LocalPostgresError(f"initdb failed: {exc}") from None
        self.port = self.port or _free_port(self.host)
        with log.open("wb") as sink:
            if user:
                os.chown(log, user["user"], user["group"])
            self._process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-h", self.host, "-k", str(root), "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=root,
                start_new_session=True, **user,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                text = log.read_text(errors="replace")[-800:]
                self.stop()
                raise LocalPostgresError(f"postgres exited at start: {text}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                if "ready to accept connections" in log.read_text(errors="replace"):
                    return self.url
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise LocalPostgresError(f"postgres did not start within {timeout_s:g}s")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        root, self._dir = self._dir, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


__all__ = ["LocalPostgres", "LocalPostgresError", "bundled_bin_dir"]
