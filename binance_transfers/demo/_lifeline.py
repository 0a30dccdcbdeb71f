"""The demo's helper processes stop when the demo does: a lifeline on stdin.

Every process the demo starts (the exchange, the job's processes, a Redis it
starts itself) gets a pipe as its standard input, which the demo holds open
while it needs the process. When the demo exits, however it exits (SIGKILL
included), the kernel closes the pipe and the process reads end-of-file: it
stops by itself. No polling, no PID files, nothing left running.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

__all__ = ["leave", "lifeline"]


def leave() -> None:
    """Exit at once. The demo closes the pipe only once the process has exited (or
    when the demo died): nobody is left to read what a graceful exit would say,
    and a graceful one may wait on what is gone too (Redis, the exchange)."""
    os._exit(1)


def lifeline(
    on_eof: Callable[[], None] = leave,
    on_line: Callable[[bytes], None] | None = None,
) -> threading.Thread:
    """Read stdin in a daemon thread: each line to ``on_line``, then ``on_eof()``.

    The thread is a daemon: a process that ends on its own never waits for it.
    """

    def watch() -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked in a
        # buffered read holds the buffer's lock, and the interpreter's exit aborts on it.
        fd, pending = sys.stdin.fileno(), b""
        while chunk := os.read(fd, 4096):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if on_line is not None:
                for line in lines:
                    on_line(line + b"\n")
        on_eof()

    thread = threading.Thread(target=watch, name="demo lifeline", daemon=True)
    thread.start()
    return thread
