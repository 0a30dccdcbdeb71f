"""The endpoint table: the one place that knows every endpoint.

Method, host, path, security, weights, rolling caps and response model of every
endpoint live here and nowhere else. The client methods, the governor and the
simulated exchange all read this table. Binance changes weights (sources
disagree on universal transfer: 900 or 300), so a table can be derived with
other values: ``ENDPOINTS.evolve("universal_transfer", uid_weight=300)``.
"""

import enum
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs

from ._models import (
    Acknowledgement,
    AssetBalance,
    BnbTransferResult,
    FuturesBalance,
    MarginAccount,
    MarginAccountSummary,
    MarginTransferResult,
    PortfolioMarginAccount,
    PortfolioMarginBalance,
    ServerTime,
    SubAccountAssets,
    SubAccountFuturesSummaryPage,
    SubAccountList,
    SubAccountMarginAccount,
    SubAccountTransferPage,
    SubAccountTransferResult,
    TransferPage,
    TransferResult,
    WalletBalance,
)

__all__ = ["ENDPOINTS", "Endpoint", "EndpointTable", "Host", "RollingCap", "Security"]


class Host(enum.Enum):
    """Which base URL serves an endpoint."""

    #: ``https://api.binance.com``: ``/api`` and ``/sapi`` (wallet, sub-account, PM Pro).
    API = "api"
    #: ``https://papi.binance.com``: classic Portfolio Margin.
    PAPI = "papi"
    #: ``https://fapi.binance.com``: USDⓈ-M futures (its own IP pool).
    FAPI = "fapi"
    #: ``https://dapi.binance.com``: COIN-M futures (its own IP pool).
    DAPI = "dapi"


class Security(enum.Enum):
    """Binance's security type: whether the key and a signature are required."""

    NONE = "NONE"
    USER_DATA = "USER_DATA"
    TRADE = "TRADE"

    @property
    def signed(self) -> bool:
        return self is not Security.NONE


@attrs.frozen
class RollingCap:
    """At most ``calls`` calls in any rolling ``seconds``, per account."""

    calls: int
    seconds: float


@attrs.frozen(kw_only=True, eq=False)
class Endpoint:
    """One REST endpoint. Compared and hashed by identity: tables hold one of each."""

    name: str
    method: Literal["GET", "POST"]
    host: Host
    path: str
    security: Security
    response: type[Any]
    ip_weight: int = 0
    """Weight counted against the IP (0: not IP-weighted)."""
    uid_weight: int = 0
    """Weight counted against the account (0: not UID-weighted)."""
    caps: tuple[RollingCap, ...] = ()
    reads: bool = False
    """A POST that only reads (Binance serves some balances by POST): never journaled."""
    mutating: bool = attrs.field(
        init=False,
        default=attrs.Factory(lambda e: e.method == "POST" and not e.reads, takes_self=True),
    )
    """It moves money: never sent again when its outcome is unknown. (Derived from
    ``method`` and ``reads`` when the endpoint is made: a call reads it several times.)"""

    @property
    def prefix(self) -> str:
        """``api``, ``sapi`` or ``papi``: which family of limits applies."""
        return self.path.split("/", 2)[1]

    def __repr__(self) -> str:
        return f"<Endpoint {self.name}: {self.method} {self.path}>"


@attrs.frozen
class EndpointTable(Mapping[str, Endpoint]):
    """Endpoints by name. Immutable; :meth:`evolve` derives a changed table."""

    _by_name: Mapping[str, Endpoint]

    def __getitem__(self, name: str) -> Endpoint:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def route(self, method: str, path: str) -> Endpoint | None:
        """The endpoint serving ``method path``, if any."""
        for endpoint in self._by_name.values():
            if endpoint.method == method and endpoint.path == path:
                return endpoint
        return None

    def evolve(self, name: str, **changes: Any) -> "EndpointTable":
        """A copy of the table with one endpoint changed (weights, caps...)."""
        by_name = dict(self._by_name)
        by_name[name] = attrs.evolve(self._by_name[name], **changes)
        return EndpointTable(by_name)


def _table(*endpoints: Endpoint) -> EndpointTable:
    return EndpointTable({e.name: e for e in endpoints})


_API, _PAPI, _FAPI, _DAPI = Host.API, Host.PAPI, Host.FAPI, Host.DAPI
_USER, _TRADE, _NONE = Security.USER_DATA, Security.TRADE, Security.NONE

#: Every endpoint the client wraps, with Binance's documented defaults.
ENDPOINTS = _table(
    Endpoint(
        name="universal_transfer",
        method="POST",
        host=_API,
        path="/sapi/v1/asset/transfer",
        security=_USER,
        uid_weight=900,  # the docs page; a 2026 connector release says 300
        response=TransferResult,
    ),
    Endpoint(
        name="transfer_history",
        method="GET",
        host=_API,
        path="/sapi/v1/asset/transfer",
        security=_USER,
        ip_weight=1,
        response=TransferPage,
    ),
    Endpoint(
        name="pm_collect_asset",
        method="POST",
        host=_PAPI,
        path="/papi/v1/asset-collection",
        security=_TRADE,
        ip_weight=30,
        response=Acknowledgement,
    ),
    Endpoint(
        name="pm_auto_collect",
        method="POST",
        host=_PAPI,
        path="/papi/v1/auto-collection",
        security=_TRADE,
        ip_weight=750,
        caps=(RollingCap(500, 3600),),
        response=Acknowledgement,
    ),
    Endpoint(
        name="pm_bnb_transfer",
        method="POST",
        host=_PAPI,
        path="/papi/v1/bnb-transfer",
        security=_TRADE,
        ip_weight=750,
        caps=(RollingCap(10, 600),),
        response=BnbTransferResult,
    ),
    Endpoint(
        name="pmpro_auto_collect",
        method="POST",
        host=_API,
        path="/sapi/v1/portfolio/auto-collection",
        security=_USER,
        ip_weight=1500,
        caps=(RollingCap(500, 3600),),
        response=Acknowledgement,
    ),
    Endpoint(
        name="pmpro_collect_asset",
        method="POST",
        host=_API,
        path="/sapi/v1/portfolio/asset-collection",
        security=_USER,
        ip_weight=60,
        response=Acknowledgement,
    ),
    Endpoint(
        name="pmpro_bnb_transfer",
        method="POST",
        host=_API,
        path="/sapi/v1/portfolio/bnb-transfer",
        security=_USER,
        ip_weight=1500,
        caps=(RollingCap(2, 600),),
        response=BnbTransferResult,
    ),
    Endpoint(
        name="sub_account_margin_transfer",
        method="POST",
        host=_API,
        path="/sapi/v1/sub-account/margin/transfer",
        security=_USER,
        ip_weight=1,
        response=MarginTransferResult,
    ),
    Endpoint(
        name="sub_account_transfer",
        method="POST",
        host=_API,
        path="/sapi/v1/sub-account/universalTransfer",
        security=_USER,
        ip_weight=1,
        uid_weight=360,
        response=SubAccountTransferResult,
    ),
    Endpoint(
        name="sub_account_transfer_history",
        method="GET",
        host=_API,
        path="/sapi/v1/sub-account/universalTransfer",
        security=_USER,
        ip_weight=1,
        response=SubAccountTransferPage,
    ),
    Endpoint(
        name="server_time",
        method="GET",
        host=_API,
        path="/api/v3/time",
        security=_NONE,
        ip_weight=1,
        response=ServerTime,
    ),
    # -- balances (issue 11) ---------------------------------------------------
    # Weights as Binance's endpoint pages give them (checked 2026-12). Where
    # two sources disagree the higher weight is used, noted on the entry.
    Endpoint(
        name="wallet_balance",
        method="GET",
        host=_API,
        path="/sapi/v1/asset/wallet/balance",
        security=_USER,
        ip_weight=60,
        response=tuple[WalletBalance, ...],
    ),
    Endpoint(
        name="user_assets",
        method="POST",
        host=_API,
        path="/sapi/v3/asset/getUserAsset",
        security=_USER,
        ip_weight=5,
        reads=True,
        response=tuple[AssetBalance, ...],
    ),
    Endpoint(
        name="funding_assets",
        method="POST",
        host=_API,
        path="/sapi/v1/asset/get-funding-asset",
        security=_USER,
        ip_weight=1,
        reads=True,
        response=tuple[AssetBalance, ...],
    ),
    Endpoint(
        name="margin_account",
        method="GET",
        host=_API,
        path="/sapi/v1/margin/account",
        security=_USER,
        ip_weight=10,
        response=MarginAccount,
    ),
    Endpoint(
        name="um_balance",
        method="GET",
        host=_FAPI,
        path="/fapi/v3/balance",
        security=_USER,
        ip_weight=5,  # v3's page gives none we could read; v2's page and the WebSocket say 5
        response=tuple[FuturesBalance, ...],
    ),
    Endpoint(
        name="cm_balance",
        method="GET",
        host=_DAPI,
        path="/dapi/v1/balance",
        security=_USER,
        ip_weight=5,  # the REST page says 1, its WebSocket twin 5: the safer 5
        response=tuple[FuturesBalance, ...],
    ),
    Endpoint(
        name="pm_balance",
        method="GET",
        host=_PAPI,
        path="/papi/v1/balance",
        security=_USER,
        ip_weight=20,
        response=tuple[PortfolioMarginBalance, ...],
    ),
    Endpoint(
        name="pm_account",
        method="GET",
        host=_PAPI,
        path="/papi/v1/account",
        security=_USER,
        ip_weight=20,  # no page we could read gives it: papi/v1/balance's 20, the safe side
        response=PortfolioMarginAccount,
    ),
    Endpoint(
        name="pmpro_balance",
        method="GET",
        host=_API,
        path="/sapi/v1/portfolio/balance",
        security=_USER,
        ip_weight=20,  # "Request Weight 20", pool unnamed: /sapi's default, IP
        response=tuple[PortfolioMarginBalance, ...],
    ),
    Endpoint(
        name="sub_account_list",
        method="GET",
        host=_API,
        path="/sapi/v1/sub-account/list",
        security=_USER,
        ip_weight=1,
        response=SubAccountList,
    ),
    Endpoint(
        name="sub_account_assets",
        method="GET",
        host=_API,
        path="/sapi/v4/sub-account/assets",
        security=_USER,
        uid_weight=60,
        response=SubAccountAssets,
    ),
    Endpoint(
        name="sub_account_futures_summary",
        method="GET",
        host=_API,
        path="/sapi/v2/sub-account/futures/accountSummary",
        security=_USER,
        ip_weight=10,
        response=SubAccountFuturesSummaryPage,
    ),
    Endpoint(
        name="sub_account_margin_summary",
        method="GET",
        host=_API,
        path="/sapi/v1/sub-account/margin/accountSummary",
        security=_USER,
        ip_weight=10,
        response=MarginAccountSummary,
    ),
    Endpoint(
        name="sub_account_margin_account",
        method="GET",
        host=_API,
        path="/sapi/v1/sub-account/margin/account",
        security=_USER,
        ip_weight=10,
        response=SubAccountMarginAccount,
    ),
)
