"""The exceptions ``binance_transfers`` raises.

They are sorted by what the caller must do next, not by where they come from::

    BinanceTransfersError
     ├── InvalidInputError ........... bad argument: nothing sent, no weight spent
     ├── ConfigurationError .......... unusable key, missing extra, wrong event loop
     │    └── ClientClosedError ...... the client was closed: nothing sent
     ├── ConnectionFailedError ....... never reached Binance: nothing happened
     ├── BinanceAPIError ............. Binance refused the request: nothing happened
     │    ├── AuthenticationError .... bad key, signature or permission
     │    ├── InvalidParameterError .. Binance disliked a parameter
     │    ├── TimestampError ......... -1021 even after resyncing the clock
     │    ├── InsufficientBalanceError
     │    ├── TransferNotAllowedError
     │    ├── PendingTransactionError
     │    └── NotPortfolioMarginError
     ├── RateLimitError .............. wait until ``retry_at``, then try again
     │    ├── TooManyRequestsError ... HTTP 429 from Binance
     │    ├── IPBannedError .......... HTTP 418: the IP is banned; try again at ``retry_at``
     │    └── ThrottledError ......... the governor could not grant a permit in time
     ├── ServiceUnavailableError ..... a query kept failing with 5xx (queries only)
     ├── OutcomeUnknownError ......... THE TRANSFER MAY HAVE HAPPENED: reconcile, never resend
     ├── NotExecutedError ............ an unknown outcome, settled: Binance did not execute it
     └── MalformedResponseError ...... the answer was not Binance's JSON (WAF page, proxy)

Only :class:`OutcomeUnknownError` leaves money in an unknown state. Everything
else either happened before a byte was sent or was refused by Binance.

Every one of them survives ``pickle`` and ``copy.deepcopy`` with all its
fields (a worker process, a task queue, an error tracker), but not its
``__cause__``/``__context__`` chain or traceback: those stay in the process
that raised them (they are httpx's and h11's, which handled the API key).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "AuthenticationError",
    "BinanceAPIError",
    "BinanceTransfersError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectionFailedError",
    "IPBannedError",
    "InsufficientBalanceError",
    "InvalidInputError",
    "InvalidParameterError",
    "MalformedResponseError",
    "NotPortfolioMarginError",
    "OutcomeUnknownError",
    "PendingTransactionError",
    "RateLimitError",
    "ServiceUnavailableError",
    "ThrottledError",
    "TimestampError",
    "TooManyRequestsError",
    "TransferNotAllowedError",
]


class BinanceTransfersError(Exception):
    """Base class of every exception this package raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own __reduce__ calls ``cls(*args)``: our keyword-only
        # fields are not in ``args``, so unpickling (and deepcopy) would fail.
        # Rebuild without __init__, then restore every field (notes included).
        return (_rebuild, (type(self), self.args), dict(vars(self)))


def _rebuild(cls: type[BinanceTransfersError], args: tuple[Any, ...]) -> BinanceTransfersError:
    """Unpickle a :class:`BinanceTransfersError`: its ``args`` now, its fields next."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class InvalidInputError(BinanceTransfersError, ValueError):
    """An argument is invalid. Raised before any byte is sent or weight spent."""


class ConfigurationError(BinanceTransfersError):
    """The client cannot work as configured (unusable key, missing extra)."""


class ClientClosedError(ConfigurationError):
    """The client was closed (``aclose()``): the call was refused before any weight was spent."""


class ConnectionFailedError(BinanceTransfersError):
    """The request never reached Binance (DNS, refused connection, proxy).

    Nothing happened on the exchange; sending again is safe.
    """


class BinanceAPIError(BinanceTransfersError):
    """Binance answered with an error code: the request was refused.

    Nothing happened on the exchange. ``code`` and ``msg`` are Binance's own.
    """

    def __init__(self, code: int, msg: str, *, status: int, endpoint: str) -> None:
        super().__init__(f"{endpoint}: Binance error {code} (HTTP {status}): {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.endpoint = endpoint


class AuthenticationError(BinanceAPIError):
    """The API key, its permissions, its IP whitelist or the signature was refused."""


class InvalidParameterError(BinanceAPIError):
    """Binance rejected a parameter (missing, malformed, too precise)."""


class TimestampError(BinanceAPIError):
    """-1021 again after resyncing with Binance's clock (check the host's clock)."""


class InsufficientBalanceError(BinanceAPIError):
    """The source wallet does not hold enough of the asset."""


class TransferNotAllowedError(BinanceAPIError):
    """Binance does not allow this transfer now (risk, margin level, account state)."""


class PendingTransactionError(BinanceAPIError):
    """Another transfer is still pending; try again once it has settled."""


class NotPortfolioMarginError(BinanceAPIError):
    """The account is not a Portfolio Margin account (-21001)."""


class RateLimitError(BinanceTransfersError):
    """Nothing was done; the caller may try again at ``retry_at``.

    ``retry_at`` is Binance's clock in epoch seconds; ``retry_after`` is the
    number of seconds from the moment the error was raised.
    """

    def __init__(self, message: str, *, retry_at: float, retry_after: float) -> None:
        super().__init__(f"{message}; not before {_iso(retry_at)} (in {retry_after:.3f} s)")
        self.retry_at = retry_at
        self.retry_after = retry_after


class TooManyRequestsError(RateLimitError):
    """Binance answered HTTP 429: a limit was broken (by this process or another)."""


class IPBannedError(RateLimitError):
    """Binance answered HTTP 418: this IP is banned.

    ``retry_at`` is when the governor lets requests go again: the ban's end on
    Binance's clock, waited out a twentieth of the ban longer (a minute at most),
    as that end is read on our estimate of Binance's clock.
    """


class ThrottledError(RateLimitError):
    """The governor could not grant a permit within the caller's ``max_wait``.

    Raised at once when the wait is known to be too long, without spending weight.
    """


class ServiceUnavailableError(BinanceTransfersError):
    """A query (never a transfer) kept getting 5xx answers after its retries.

    A transfer answered with a 5xx raises :class:`OutcomeUnknownError` instead:
    whatever the body says, a 5xx never proves that nothing happened.
    """

    def __init__(self, message: str, *, status: int, endpoint: str) -> None:
        super().__init__(f"{endpoint}: {message} (HTTP {status})")
        self.status = status
        self.endpoint = endpoint


class OutcomeUnknownError(BinanceTransfersError):
    """The request was (or may have been) received, but its result is unknown.

    A timeout after sending, a 5xx answer, Binance's -1006/-1007 codes, or any
    failure (cancellation included) once the first byte may have left: the
    transfer **may have happened**. The client never resends it on its own;
    settle it with :meth:`Client.reconcile` or look the transfer up in the
    history before trying again. ``params`` holds what was sent (without
    signature), ``timestamp`` the ``timestamp`` parameter in epoch
    milliseconds and ``recv_window`` the ``recvWindow`` sent with it: Binance
    refuses the request once its clock passes ``timestamp + recv_window``.

    ``request_id`` names the request (the client sets it on every error it
    raises; None on one built by hand): copies of the error (pickled,
    deep-copied) share it, so settling two copies gives one answer. With a
    journal, ``journal_id`` is the request's row in the journal file
    ``journal_path``, written by the run ``journal_session`` (together, the
    request's name in the claims shared with other processes, wherever the
    error is settled).
    """

    def __init__(
        self,
        reason: str,
        *,
        endpoint: str,
        params: Mapping[str, str],
        timestamp: int | None,
        status: int | None = None,
        recv_window: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            f"{endpoint}: outcome unknown, the request may have been executed: {reason}"
        )
        self.reason = reason
        self.endpoint = endpoint
        self.params = dict(params)
        self.timestamp = timestamp
        self.status = status
        self.recv_window = recv_window
        self.request_id = request_id
        self.journal_id: int | None = None
        self.journal_path: str | None = None
        self.journal_session: str | None = None


class MalformedResponseError(BinanceTransfersError):
    """Binance (or something in front of it) answered with an unreadable body."""

    def __init__(self, reason: str, *, status: int, endpoint: str, body: str) -> None:
        super().__init__(f"{endpoint}: malformed response (HTTP {status}): {reason}")
        self.reason = reason
        self.status = status
        self.endpoint = endpoint
        self.body = body


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds")


class NotExecutedError(BinanceTransfersError):
    """A request whose outcome was unknown has been settled: Binance did not execute it.

    Raised by calls made with ``on_unknown="reconcile"``. Nothing happened on
    the exchange, so sending again is safe. ``settlement`` holds the evidence
    (a :class:`~binance_transfers.Settlement`), ``unknown`` the original
    :class:`OutcomeUnknownError`.
    """

    def __init__(self, message: str, *, settlement: object, unknown: OutcomeUnknownError) -> None:
        super().__init__(message)
        self.settlement = settlement
        self.unknown = unknown


__all__ += ["NotExecutedError"]
