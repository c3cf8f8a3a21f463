"""Free loopback ports, so parallel benches and a developer's own services never collide.

The kernel picks the ports; the sockets stay bound until all are chosen so one call never returns
the same port twice. A port can still be taken between this call and the service binding it, which
is the usual envtest trade-off: the window is milliseconds and the service then fails loudly.
"""

import socket
from contextlib import ExitStack

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports that are free on 127.0.0.1 right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    """Return one TCP port that is free on 127.0.0.1 right now."""
    return free_ports(1)[0]
