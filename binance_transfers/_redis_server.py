"""A throwaway redis-server on 127.0.0.1: for tests, benchmarks and the demo.

Debian's ``redis-server`` must be installed (``make test`` installs it when
missing): a test never skips because Redis is absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from types import TracebackType
from typing import IO

from ._exceptions import ConfigurationError

__all__ = ["RedisServer", "free_port"]


def _drain(stream: IO[bytes]) -> None:
    with stream:
        for _ in stream:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` without persistence on a free loopback port; stopped by its PID."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigurationError("redis-server is not installed: run `make redis` (apt-get)")
        # Our own arguments only: loopback, no persistence, a throwaway directory.
        self.process = subprocess.Popen(  # noqa: S603
            [
                binary,
                *("--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir()),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Its log says when it accepts connections: read it, no polling.
        stdout = self.process.stdout
        if stdout is None:  # pragma: no cover - stdout=PIPE above
            raise RuntimeError("redis-server has no stdout")
        seen = []
        for raw in stdout:
            line = raw.decode(errors="replace")
            seen.append(line)
            if "Ready to accept connections" in line:
                # Keep draining its log, so that a full pipe never blocks it.
                self._drain = threading.Thread(target=_drain, args=(stdout,))
                self._drain.start()
                return self
        raise RuntimeError("redis-server did not start:\n" + "".join(seen[-20:]))

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self._joined()
        self._joined()

    def _joined(self) -> None:
        if self._drain is not None:
            self._drain.join()  # EOF once the server is gone
            self._drain = None

    def kill(self) -> None:
        """SIGKILL: Redis lost, nothing written."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()
            self._joined()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
