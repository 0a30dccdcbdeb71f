"""The demo's helper processes stop when the demo does: a lifeline on stdin.

Every process the demo starts (the exchange, the job's processes, a Redis it
starts itself) gets a pipe as its standard input, which the demo holds open
while it needs the process. When the demo exits, however it exits (SIGKILL
included), the kernel closes the pipe and the process reads end-of-file: it
stops by itself. No polling, no PID files, nothing left running.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["interrupt_self", "lifeline"]


def interrupt_self() -> None:
    """What Ctrl-C does: the process's own graceful path (KeyboardInterrupt, finally blocks)."""
    os.kill(os.getpid(), signal.SIGINT)


def lifeline(
    on_eof: Callable[[], None] = interrupt_self,
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
