"""Listening sockets bound by hand (optionally SO_REUSEPORT), for the ``--workers``
supervisor and ``reuse_port``; an inherited descriptor (``fd``) is taken up by serve.py.

Plain stdlib sockets, no Trio: the supervisor binds before any worker exists.
"""

from __future__ import annotations

import socket

__all__: list[str] = []


def bind_socket(host: str, port: int, backlog: int, *, reuse_port: bool = False) -> socket.socket:
    """One listening TCP socket on the first address ``host`` resolves to.

    ``SO_REUSEADDR`` as every server sets it (a restart need not wait out TIME_WAIT);
    ``reuse_port`` adds ``SO_REUSEPORT``: several sockets on one port, each with its
    own accept queue, the kernel spreading new connections between them (Linux 3.9+).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise OSError("SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
