"""Keep the benchmark on loopback: refuse any connection or lookup of a non-local host."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
blocked: list[str] = []


def _is_local(host: Any) -> bool:
    if host is None:
        return True  # a passive (bind) lookup
    if isinstance(host, bytes):
        host = host.decode()
    name = str(host).strip("[]").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def install() -> None:
    """Patch :func:`socket.getaddrinfo` and ``socket.connect`` for this process."""
    if getattr(socket, "_callm_bench_guard", False):
        return
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket._callm_bench_guard = True  # type: ignore[attr-defined]


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])


def _check(host: Any) -> None:
    if not _is_local(host):
        blocked.append(str(host))
        raise OSError(f"callm bench: network access to {host!r} is blocked (loopback only)")
