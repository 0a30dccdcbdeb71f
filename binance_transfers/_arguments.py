"""What the client makes of its arguments, before anything is sent or any weight spent.

``_params`` checks single values; these combine them into a request's
parameters (a transfer type and its symbols, a time range), and check what
the constructor is given (URLs, the secret, the journal's and claims' files).
Split out of ``_client.py``, which keeps the endpoints and the calls' own path.
"""

from __future__ import annotations

import enum
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ._exceptions import ConfigurationError, InvalidInputError
from ._models import TransferType
from ._params import RawType, asset_param, symbol_param, time_param, type_name_param
from ._signing import Signer, make_signer

if TYPE_CHECKING:
    from ._claims import Claims

#: What a mutating call does when its outcome is unknown: raise
#: :class:`OutcomeUnknownError` (default); wait until Binance's records settle
#: it, then return the result or raise :class:`NotExecutedError`; or, for
#: sub-account transfers (whose clientTranId Binance never executes twice),
#: settle it and send it again with the same clientTranId if it did not run.
OnUnknown = Literal["raise", "reconcile", "retry"]
_ON_UNKNOWN = ("raise", "reconcile", "retry")

Params = list[tuple[str, str]]


def _claims_for(
    claims: str | os.PathLike[str] | Claims | None, storage: object
) -> tuple[Claims | None, bool]:
    """The shared claims store to use, and whether the client made it (and closes it)."""
    if claims is None:
        # A RedisStorage's module is imported by whoever made one: not by us.
        redis = sys.modules.get("binance_transfers._redis")
        if redis is not None and isinstance(storage, redis.RedisStorage):
            from ._claims import RedisClaims

            return RedisClaims(storage), True
        return None, False
    if isinstance(claims, str | os.PathLike):
        # issue 9: imported by a client that shares claims, not by every one.
        from ._claims import SqliteClaims

        return SqliteClaims(_file_param(claims, "claims")), True
    return claims, False


def _file_param(path: str | os.PathLike[str], name: str) -> str | os.PathLike[str]:
    """A file the client will create: its directory must exist (checked before anything is sent)."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise InvalidInputError(f"{name}: no directory for {os.fspath(path)!r}")
    return path


def _echo(params: Sequence[tuple[str, str]]) -> dict[str, str]:
    """What Binance echoes in an answer (the clientTranId), for a settled result."""
    return {key: value for key, value in params if key == "clientTranId"}


def _on_unknown_param(value: object) -> OnUnknown:
    if value not in _ON_UNKNOWN:
        raise InvalidInputError(f"on_unknown must be one of {list(_ON_UNKNOWN)}, got {value!r}")
    return value  # type: ignore[return-value]


class _Hidden:
    """Holds a credential; prints as a placeholder (in tracebacks' locals too)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<hidden>"


def _signer(secret: _Hidden) -> Signer:
    try:
        return make_signer(*secret.value)
    except ConfigurationError as exc:
        message = str(exc)
    # Raised outside the except block: no chained exception whose frames hold the key.
    raise ConfigurationError(message)


def _url_param(value: object, name: str) -> str:
    """A base URL: http or https, with a host (checked here, not at the first call)."""
    problem = None
    if not isinstance(value, str):
        problem = f"{name} must be a str, not {type(value).__name__}"
    else:
        import httpx  # with the client built (issue 9), not with this module

        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError, ValueError):
            problem = f"{name} is not a URL"
        else:
            if url.scheme not in ("http", "https") or not url.host:
                problem = f"{name} must be an http or https URL with a host"
    if problem is not None:
        # Raised outside the except block: no chained exception from httpx.
        raise ConfigurationError(f"{problem}: {value!r:.200}")
    return value  # type: ignore[return-value]


def _mask(key: str) -> str:
    return f"{key[:4]}…{key[-4:]}" if len(key) >= 16 else "****"


def _enum(enum_type: type[enum.Enum], value: object, name: str) -> str:
    try:
        return str(enum_type(value).value)
    except ValueError:
        choices = [member.value for member in enum_type]
        raise InvalidInputError(f"{name} must be one of {choices}, got {value!r}") from None


def _enum_or_name(enum_type: type[enum.Enum], value: object, name: str) -> str:
    """A known member, or a :class:`RawType` the caller vouches for."""
    if isinstance(value, RawType):
        return type_name_param(str(value), name)
    try:
        return str(enum_type(value).value)
    except ValueError:
        pass
    choices = ", ".join(str(member.value) for member in enum_type)
    raise InvalidInputError(
        f"{name} {value!r} is not a type this release knows ({choices}); "
        f"if Binance added it since, pass RawType({value!r})"
    )


def new_client_tran_id() -> str:
    """A fresh ``clientTranId``: ``bt-`` + 29 hex digits of a uuid4 (116 random bits).

    32 characters: Binance documents only "must be unique"; its other
    transfer ids cap the field at 32, the safe length.
    """
    return "bt-" + uuid.uuid4().hex[:29]


def _transfer_params(
    kind: TransferType | str, from_symbol: str | None, to_symbol: str | None
) -> Params:
    if from_symbol is None and to_symbol is None and type(kind) in (TransferType, str):
        # The common case, answered from a table (the checks below would agree).
        plain = _NO_SYMBOLS.get(kind)
        if plain is not None:
            return [("type", plain)]
    value = _enum_or_name(TransferType, kind, "type")
    params: Params = [("type", value)]
    known = value in TransferType.__members__ and TransferType(value)
    for side, symbol, required in (
        ("from_symbol", from_symbol, known and known.needs_from_symbol),
        ("to_symbol", to_symbol, known and known.needs_to_symbol),
    ):
        if symbol is None:
            if required:
                raise InvalidInputError(f"{side} is required for transfer type {value}")
            continue
        if known and not required:
            raise InvalidInputError(f"{side} is meaningless for transfer type {value}")
        params.append(
            ("fromSymbol" if side == "from_symbol" else "toSymbol", symbol_param(symbol, side))
        )
    symbols = [value for key, value in params if key in ("fromSymbol", "toSymbol")]
    if len(symbols) == 2 and symbols[0] == symbols[1]:
        raise InvalidInputError("from_symbol and to_symbol must differ")
    return params


# Transfer types that take no symbol, by member and by name: what _transfer_params
# answers for them (looked up only for those two exact types: any other may not
# be hashable, and a RawType goes the long way).
_NO_SYMBOLS: dict[object, str] = {
    key: member.value
    for member in TransferType
    if not member.needs_from_symbol and not member.needs_to_symbol
    for key in (member, member.value)
}


def _range(start: datetime | int | None, end: datetime | int | None) -> Params:
    params: Params = []
    if start is not None:
        params.append(("startTime", time_param(start, "start_time")))
    if end is not None:
        params.append(("endTime", time_param(end, "end_time")))
    if len(params) == 2 and int(params[0][1]) > int(params[1][1]):
        raise InvalidInputError("start_time is after end_time")
    return params


def _not_bnb(asset: str, method: str) -> str:
    code = asset_param(asset)
    if code == "BNB":
        raise InvalidInputError(f"Binance does not collect BNB with {method}; use a BNB transfer")
    return code
