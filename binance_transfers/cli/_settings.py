"""Where the CLI's client points and with which key, and how its errors end the process.

Credentials come from ``BINANCE_API_KEY`` / ``BINANCE_API_SECRET`` or from a
key file (``--key-file`` or ``BINANCE_KEY_FILE``: TOML with ``api_key`` and
``api_secret``), never from an argument: the process list would show it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import attrs

from .._client import Client
from .._exceptions import (
    BinanceAPIError,
    BinanceTransfersError,
    ConfigurationError,
    ConnectionFailedError,
    InvalidInputError,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
)
from .._governor import Governor
from .._limits import Limits

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_RETRY",
    "EXIT_UNKNOWN",
    "Env",
    "Settings",
    "exit_code",
]

#: Done as asked (also: nothing needed doing).
EXIT_OK = 0
#: Refused before anything moved: bad input, Binance said no, a plan that cannot be met.
EXIT_REFUSED = 1
#: (2 is a usage error, as click reports it.)
#: An outcome is unknown, or could not be settled: money may have moved; look before resending.
EXIT_UNKNOWN = 3
#: Nothing was sent or nothing happened (rate limit, ban, network): try again later.
EXIT_RETRY = 4

#: Where ``binance-transfers sim`` listens by default, and its demo account.
SIM_URL = "http://127.0.0.1:8765"

_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
class Settings:
    """What the global options and the environment say."""

    base_url: str | None = None
    """One URL for every host (``--base-url``): a simulator or a proxy."""
    sim: bool = False
    """``--sim``: the simulated exchange at ``BINANCE_SIM_URL`` (default :data:`SIM_URL`)."""
    key_file: Path | None = None
    recv_window: int = 5000
    settle_margin: float = 60.0
    time_scale: float = 1.0
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ), repr=False)

    @property
    def limits(self) -> Limits:
        return Limits(time_scale=self.time_scale)

    def urls(self) -> dict[str, Any]:
        """Base URLs by the Client's keyword (``api_url``...), or Binance's own when empty."""
        base = self.base_url
        if base is None and self.sim:
            base = self.environ.get("BINANCE_SIM_URL", SIM_URL)
        if base is None:
            return {}
        return {f"{host}_url": base for host in ("api", "papi", "fapi", "dapi")}

    def credentials(self) -> tuple[str, str]:
        """The API key and secret; the error names where they were looked for, never them."""
        key_file = self.key_file or _path(self.environ.get("BINANCE_KEY_FILE"))
        if key_file is not None:
            try:
                data = tomllib.loads(key_file.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigurationError(
                    f"key file {key_file}: unreadable ({type(exc).__name__})"
                ) from None
            key, secret = data.get("api_key"), data.get("api_secret")
            if not isinstance(key, str) or not isinstance(secret, str):
                raise ConfigurationError(f"key file {key_file}: needs api_key and api_secret")
            return key, secret
        key = self.environ.get("BINANCE_API_KEY")
        secret = self.environ.get("BINANCE_API_SECRET")
        if key and secret:
            return key, secret
        if self.sim:
            from ..sim import DEMO_API_KEY, DEMO_API_SECRET

            return DEMO_API_KEY, DEMO_API_SECRET
        raise ConfigurationError(
            "no credentials: set BINANCE_API_KEY and BINANCE_API_SECRET, or give --key-file"
        )


def _path(value: str | None) -> Path | None:
    return None if not value else Path(value)


def default_client(settings: Settings, **kwargs: Any) -> Client:
    """The client the commands use, pointed where the settings say."""
    key, secret = settings.credentials()
    kwargs.setdefault("governor", Governor(settings.limits))
    return Client(
        key,
        secret,
        recv_window=settings.recv_window,
        settle_margin=settings.settle_margin,
        **settings.urls(),
        **kwargs,
    )


def _anyio_run(fn: Callable[[], Awaitable[_T]]) -> _T:
    return anyio.run(fn)


@attrs.define(kw_only=True)
class Env:
    """What a command runs with: tests swap the client factory (an in-process simulator)."""

    client_factory: Callable[..., Client] = default_client
    run: Callable[[Callable[[], Awaitable[Any]]], Any] = _anyio_run


def exit_code(exc: BaseException) -> int:
    """The exit status an exception ends the process with."""
    if isinstance(exc, NotExecutedError):
        return EXIT_REFUSED  # settled: it did not run
    if isinstance(exc, OutcomeUnknownError):
        return EXIT_UNKNOWN
    if isinstance(exc, RateLimitError | ConnectionFailedError | ServiceUnavailableError):
        return EXIT_RETRY
    if isinstance(exc, BinanceAPIError | InvalidInputError | ConfigurationError):
        return EXIT_REFUSED
    if isinstance(exc, BinanceTransfersError):
        return EXIT_UNKNOWN  # a malformed answer: we cannot say what happened
    return EXIT_UNKNOWN
