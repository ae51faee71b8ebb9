"""Addresses on this machine only: the local cloud, moto and the rendezvous of distributed jobs
listen on loopback and nowhere else."""

from __future__ import annotations

import socket

from ops.model_server import bind

HOST = "127.0.0.1"
LOOPBACK_HOSTS = (HOST, "localhost", "::1")


def require_loopback(host: str) -> None:
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the local cloud binds loopback addresses only, not {host!r}")


def listen(host: str = HOST, port: int = 0) -> tuple[socket.socket, str]:
    """A listening socket on a loopback address (port 0 picks a free one) and its URL."""
    require_loopback(host)
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    return sock, url(bound_host, bound_port)


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def free_port() -> int:
    """A port free right now on 127.0.0.1, for a process that binds it itself (torchrun)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
