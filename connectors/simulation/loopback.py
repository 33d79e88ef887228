"""A free TCP port on 127.0.0.1, for the simulators, daemons and servers that demos, benchmarks
and tests start on loopback (all their traffic stays on this machine)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
