"""Log records for people and log pipelines: one per transfer, no secrets.

* ``binance_transfers.transfers`` (INFO): one record per mutating call, when
  it ends, whatever the end. The message reads well; the same facts are on
  the record as attributes for structured handlers (``record.endpoint``,
  ``record.params``, ``record.tran_id``, ``record.permit_wait``,
  ``record.ip_weight``, ``record.uid_weight``, ``record.outcome``,
  ``record.duration``, ``record.error``). Nothing is built when INFO is off
  for that logger.
* httpx logs every request at INFO on ``httpx``, URL included: for a signed
  GET that is the whole signed query. :func:`redact_httpx` adds a filter that
  replaces the ``signature`` in those records (the rest of the line stays).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ._endpoints import Endpoint
from ._exceptions import (
    BinanceAPIError,
    ClientClosedError,
    InvalidInputError,
    IPBannedError,
    NotExecutedError,
    OutcomeUnknownError,
    ThrottledError,
    TooManyRequestsError,
)
from ._governor._core import PERMIT_WAIT

__all__ = ["TRANSFERS", "logged_transfer", "outcome_of", "redact_httpx", "unlogged"]

TRANSFERS = logging.getLogger("binance_transfers.transfers")

_T = TypeVar("_T")

# Most specific first: NotExecutedError is a BinanceTransfersError, the rate
# limit errors are not BinanceAPIError.
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (OutcomeUnknownError, "unknown"),
    (NotExecutedError, "not_executed"),
    (ThrottledError, "throttled"),
    (IPBannedError, "banned"),
    (TooManyRequestsError, "rate_limited"),
    (BinanceAPIError, "refused"),
    (InvalidInputError, "invalid"),
    (ClientClosedError, "closed"),
)


def outcome_of(error: BaseException | None) -> str:
    """One word for how a call ended: ``done``, ``refused``, ``unknown``, ``throttled``...

    ``done``: executed, answer received. ``refused``: Binance said no (nothing
    moved). ``unknown``: it may have executed. ``not_executed``: unknown, then
    settled as never executed. ``throttled``/``banned``/``rate_limited``/
    ``invalid``/``closed``: nothing sent. ``cancelled``: the caller was
    cancelled (the request, if written, ran on: see ``on_detached``).
    ``error``: anything else.
    """
    if error is None:
        return "done"
    for kind, name in _OUTCOMES:
        if isinstance(error, kind):
            return name
    if not isinstance(error, Exception):
        return "cancelled"
    return "error"


def unlogged() -> bool:
    """Whether no call of this context is being logged already (a call nests in itself)."""
    return PERMIT_WAIT.get() is None


async def logged_transfer(
    call: Awaitable[_T],
    endpoint: Endpoint,
    params: Sequence[tuple[str, str]],
    clock: Any,
    hook: Callable[[str, str, float], None] | None = None,
) -> _T:
    """Await ``call`` (a mutating call); log one INFO record on how it ended, tell ``hook``.

    Called when INFO is enabled on ``binance_transfers.transfers`` or the
    governor's hooks override ``transferred`` (``hook``). ``params`` are those
    the caller gave (no key, no signature: the transport adds them).
    ``clock`` is the governor's monotonic clock.
    """
    waits = [0.0]
    token = PERMIT_WAIT.set(waits)
    start = clock.monotonic()
    error: BaseException | None = None
    answer: object = None
    try:
        result = await call
        answer = result
        return result
    except BaseException as exc:
        error = exc
        raise
    finally:
        PERMIT_WAIT.reset(token)
        duration = clock.monotonic() - start
        outcome = outcome_of(error)
        if hook is not None:
            try:
                hook(endpoint.name, outcome, duration)
            except Exception:
                TRANSFERS.exception("%s: the transferred hook failed", endpoint.name)
        if TRANSFERS.isEnabledFor(logging.INFO):
            _log(endpoint, params, answer, error, outcome, waits[0], duration)


def _log(
    endpoint: Endpoint,
    params: Sequence[tuple[str, str]],
    answer: object,
    error: BaseException | None,
    outcome: str,
    waited: float,
    duration: float,
) -> None:
    """The record: text for people, attributes for structured handlers."""
    tran_id = getattr(answer, "tran_id", None) or getattr(answer, "txn_id", None)
    code = getattr(error, "code", None)
    details = {
        "endpoint": endpoint.name,
        "params": dict(params),
        "tran_id": tran_id,
        "permit_wait": waited,
        "ip_weight": endpoint.ip_weight,
        "uid_weight": endpoint.uid_weight,
        "outcome": outcome,
        "duration": duration,
        "error": None if error is None else f"{type(error).__name__}: {error!s:.200}",
    }
    TRANSFERS.info(
        "%s %s%s%s%s: permit wait %.3f s, weight %s, %.3f s",
        endpoint.name,
        outcome,
        "" if tran_id is None else f" tran_id={tran_id}",
        "" if code is None else f" code={code}",
        " (" + " ".join(f"{key}={value}" for key, value in params) + ")" if params else "",
        waited,
        _weight(endpoint),
        duration,
        extra=details,
    )


def _weight(endpoint: Endpoint) -> str:
    parts = []
    if endpoint.ip_weight:
        parts.append(f"IP {endpoint.ip_weight}")
    if endpoint.uid_weight:
        parts.append(f"UID {endpoint.uid_weight}")
    return " + ".join(parts) or "0"


_SIGNATURE = re.compile(r"(signature=)[^&\s\"]+")


class _RedactSignature(logging.Filter):
    """Replaces ``signature=...`` in httpx's request lines (it logs the signed URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any("signature=" in str(arg) for arg in args):
            record.args = tuple(
                _SIGNATURE.sub(r"\1<redacted>", str(arg)) if "signature=" in str(arg) else arg
                for arg in args
            )
        return True


_REDACT = _RedactSignature()


def redact_httpx() -> None:
    """Keep request signatures out of the ``httpx`` logger's records (idempotent)."""
    logger = logging.getLogger("httpx")
    if _REDACT not in logger.filters:
        logger.addFilter(_REDACT)
