"""Throwaway PostgreSQL and Redis servers on free loopback ports, from the installed binaries.

Each server lives in a fresh temporary directory and dies with the test session; the
machine's own servers (if any) are never touched. PostgreSQL refuses to run as root, so
under root ``initdb`` and ``postgres`` run as the unprivileged user ``nobody`` in a data
directory it owns.

The fixtures at the end are imported by the conftest of each directory that uses them.
When a binary is missing: in CI (``CI`` or ``CALLM_REQUIRE_SERVERS`` set) the tests that
need it fail and say how to install it; elsewhere they skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "apt-get install postgresql redis-server (.ci/run does it)"


def servers_required() -> bool:
    """Whether a missing server is a failure (CI) rather than a reason to skip."""
    return bool(os.environ.get("CI") or os.environ.get("CALLM_REQUIRE_SERVERS"))


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere: never pass without the server."""
    message = f"{reason}; install it: {INSTALL_HINT}"
    if servers_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else in Debian's versioned PostgreSQL directories (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pg_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}


class PostgresServer:
    """``initdb`` + ``postgres`` in a temporary directory; ``url`` reaches database ``callm``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="callm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # postgres will not run as root: give it to nobody
            self._as = {"user": "nobody", "group": "nogroup", "extra_groups": []}
            shutil.chown(self.root, "nobody", "nogroup")

    def dsn(self, database: str = "callm") -> str:
        return f"postgresql://callm@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.dsn()

    def start(self) -> PostgresServer:
        initdb, postgres = find_binary("initdb"), find_binary("postgres")
        if initdb is None or postgres is None:
            raise FileNotFoundError("PostgreSQL's initdb/postgres are not installed")
        command = [initdb, "-D", str(self.data), "-U", "callm", "--auth=trust", "-E", "UTF8"]
        command.append("--no-sync")
        subprocess.run(command, check=True, capture_output=True, env=_pg_env(), **self._as)
        self._run(postgres)
        self._createdb("callm")
        return self

    def _run(self, postgres: str) -> None:
        command = [postgres, "-D", str(self.data), "-p", str(self.port)]
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            # A throwaway server: no machine crash to survive (a crash of postgres itself,
            # as the outage tests make, keeps every commit: commits stay synchronous).
            "fsync": "off",
            "full_page_writes": "off",
        }
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=log, env=_pg_env(), start_new_session=True, **self._as
            )
        _wait_for_port(self.port, self.proc, self.log, "postgres")

    def _createdb(self, name: str) -> None:
        psql = find_binary("psql")
        assert psql is not None
        deadline = time.monotonic() + 30
        while True:  # the port opens a moment before connections are accepted
            done = subprocess.run(
                [
                    psql,
                    self.dsn("postgres"),
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    f"CREATE DATABASE {name}",
                ],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not create database {name}: {done.stderr.decode()}")
            time.sleep(0.1)

    def halt(self) -> None:
        """Die at once (an outage); ``restart()`` brings it back with its data."""
        proc, self.proc = self.proc, None
        _stop(proc, signal.SIGQUIT)

    def restart(self) -> None:
        postgres = find_binary("postgres")
        assert postgres is not None
        self._run(postgres)

    def new_database(self, name: str) -> str:
        """A fresh, empty database on this server; its URL."""
        self._createdb(name)
        return self.dsn(name)

    def pause(self) -> None:
        """Stop answering (SIGSTOP): an outage that keeps the data."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _stop(proc, signal.SIGQUIT)  # immediate: nothing here needs keeping
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """``redis-server`` in a temporary directory, no persistence; optionally in cluster mode."""

    def __init__(self, *, cluster: bool = False) -> None:
        self.port = free_port()
        self.cluster = cluster
        self.root = Path(tempfile.mkdtemp(prefix="callm-redis-"))
        self.log = self.root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = find_binary("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
        command += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        if self.cluster:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            command += ["--cluster-port", str(free_port())]  # else port + 10000, maybe > 65535
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        _wait_for_port(self.port, self.proc, self.log, "redis-server")
        if self.cluster:
            self._own_every_slot()
        return self

    def _own_every_slot(self) -> None:
        """A one-node cluster: it serves every slot, and still refuses cross-slot commands."""
        cli = find_binary("redis-cli")
        assert cli is not None
        base = [cli, "-p", str(self.port)]
        subprocess.run(
            [*base, "CLUSTER", "ADDSLOTSRANGE", "0", "16383"], check=True, capture_output=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = subprocess.run([*base, "CLUSTER", "INFO"], capture_output=True, check=True)
            if b"cluster_state:ok" in info.stdout:
                return
            time.sleep(0.05)
        raise RuntimeError("the one-node Redis cluster did not become ready")

    def pause(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _stop(proc, signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Die at once (SIGKILL), as in a crash; ``start()`` again brings up an empty one."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def start_or_report(server: PostgresServer | RedisServer) -> Any:
    """Start ``server``; a missing binary fails in CI and skips elsewhere."""
    try:
        return server.start()
    except FileNotFoundError as exc:
        server.stop()
        unavailable(str(exc))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        server.stop()
        detail = (
            exc.stderr.decode(errors="replace")
            if isinstance(exc, subprocess.CalledProcessError)
            else ""
        )
        pytest.fail(f"could not start {type(server).__name__}: {exc} {detail}", pytrace=False)


# --- fixtures (imported by the conftest of each directory whose tests use them) ---------

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_or_report(PostgresServer())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_or_report(RedisServer())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisServer]:
    """A one-node Redis Cluster: it serves every slot and refuses cross-slot commands."""
    server = start_or_report(RedisServer(cluster=True))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database for this test."""
    return postgres_server.new_database(f"test_{next(_databases)}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
