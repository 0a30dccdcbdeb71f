"""``python -m binance_transfers.demo._redis_host``: a throwaway Redis for the demo.

The multi-process demo needs one Redis its processes share. Without
``--redis URL`` it starts Debian's ``redis-server`` on a free loopback port
(:class:`~binance_transfers._redis_server.RedisServer`: no persistence), from
this small process rather than from the demo itself: this one prints the URL,
then holds the server until its standard input closes (the demo ended, or was
killed) or it is told to stop (SIGINT, SIGTERM), and stops the server by its PID.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from .._exceptions import ConfigurationError
from .._redis_server import RedisServer

__all__ = ["main"]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds to main's finally: the server is stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = RedisServer()
    try:
        server.start()
        pid = server.process.pid if server.process is not None else None
        sys.stdout.write(f"redis at {server.url} pid {pid}\n")
        sys.stdout.flush()
        # Blocks until the demo closes the pipe (or dies): our lifeline.
        sys.stdin.buffer.read()
    except ConfigurationError as missing:
        sys.stdout.write(f"error: {missing}\n")
        return 1
    finally:
        server.stop()  # also when a signal came while it started
    return 0


if __name__ == "__main__":
    sys.exit(main())
