"""A PostgreSQL primary and its streaming standby, both of the harness's own: the harness of
tests/ops/test_report_standby.py (docs/testing.md, "Reports on a standby").

The machine's PostgreSQL is left as it is: the primary is a fresh cluster (initdb, trust, wal_level=replica) in a
temporary directory on a free port of 127.0.0.1, and the standby a `pg_basebackup -R` of it on another free port,
streaming from it. Both run as the `postgres` system user when the harness runs as root (PostgreSQL refuses
root), with fsync off (nothing here has to survive a power cut), and are stopped and removed at the end.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ops.three_servers import free_port, psql

PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


def bin_dir() -> Path | None:
    """Where PostgreSQL's server programs are: PG_BINDIR, PATH, or Debian's /usr/lib/postgresql/<newest>/bin."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).exists() for name in PROGRAMS):
            return Path(candidate)
    return None


def missing_programs() -> list[str]:
    return [] if bin_dir() is not None else list(PROGRAMS)


@dataclass
class Replication:
    """The running pair: ports, URLs, the data directories (stopped and removed by stop())."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voucher-standby-")))
    database: str = "voucher"
    primary_port: int = 0
    standby_port: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)

    def url(self, which: str) -> str:
        port = self.primary_port if which == "primary" else self.standby_port
        return f"postgresql://postgres@127.0.0.1:{port}/{self.database}"

    def admin_url(self, which: str) -> str:
        return self.url(which).rsplit("/", 1)[0] + "/postgres"

    def _run(self, *args: str) -> None:
        """A PostgreSQL program as the postgres system user (root is refused by initdb and postgres)."""
        command = [str(bin_dir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    def _pg_ctl_start(self, name: str, port: int) -> None:
        options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.directory}'"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB"
                   " -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on -c hot_standby_feedback=on"
                   " -c wal_receiver_status_interval=1s")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.directory / name), "-o", options,
                  "-l", str(self.directory / f"{name}.log"))
        self.running.add(name)

    def start(self) -> None:
        started = time.monotonic()
        self.directory.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        # initdb's pg_hba.conf with --auth=trust already lets 127.0.0.1 connect for replication
        self._run("initdb", "-D", str(self.directory / "primary"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.primary_port = free_port()
        self._pg_ctl_start("primary", self.primary_port)
        psql(self.admin_url("primary"), f'CREATE DATABASE "{self.database}"')
        self.timings["primary"] = time.monotonic() - started
        mark = time.monotonic()
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(self.directory / "standby"), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
        self.standby_port = free_port()
        self._pg_ctl_start("standby", self.standby_port)
        self.timings["standby (pg_basebackup -R)"] = time.monotonic() - mark

    def wait_replayed(self, seconds: float = 30) -> float:
        """Wait until the standby has replayed everything the primary has written so far; the seconds it took."""
        return self._wait_for("pg_last_wal_replay_lsn()", "replay", seconds)

    def wait_received(self, seconds: float = 30) -> float:
        """Wait until the standby has received (not necessarily replayed) everything the primary has written:
        a standby that has not yet received a change cannot know it lags (asynchronous replication)."""
        return self._wait_for("pg_last_wal_receive_lsn()", "receive", seconds)

    def _wait_for(self, position: str, what: str, seconds: float) -> float:
        started = time.monotonic()
        target = psql(self.url("primary"), "SELECT pg_current_wal_lsn()")
        while time.monotonic() - started < seconds:
            if psql(self.url("standby"), f"SELECT {position} >= '{target}'::pg_lsn") == "t":
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"the standby did not {what} up to {target} within {seconds} s:\n{self.log_tail('standby')}")

    def stop_server(self, name: str) -> None:
        if name in self.running:
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.directory / name))
            self.running.discard(name)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        try:
            for name in ("standby", "primary"):
                try:
                    self.stop_server(name)
                except RuntimeError:
                    self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.directory / name))
        finally:
            if os.environ.get("STANDBY_KEEP") != "1":
                shutil.rmtree(self.directory, ignore_errors=True)
