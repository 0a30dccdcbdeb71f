"""Binance's rate-limit pools, and which of them an endpoint draws from.

``/api``, ``/sapi`` and ``/papi`` never share limits:

* ``/api``: one IP pool (6000 per minute);
* ``/papi``: one IP pool shared by every Portfolio Margin endpoint (6000);
* ``/fapi`` and ``/dapi`` (USDⓈ-M and COIN-M futures, hosts of their own):
  one IP pool each, 2400 per minute, header ``X-MBX-USED-WEIGHT-1M``;
* ``/sapi``: an independent bucket per endpoint, 12000 per minute for IP
  weight and 180000 per minute per account for UID weight;
* rolling call caps (500 auto-collections an hour...) per endpoint and account.

The governor and the simulated exchange both call :func:`pools_for`, so they
can never disagree about which bucket a request lands in.
"""

import enum
from collections.abc import Mapping

import attrs

from ._endpoints import Endpoint

__all__ = ["Limits", "PoolKind", "PoolSpec", "pools_for"]


class PoolKind(enum.Enum):
    """What a pool counts, and the header Binance reports its usage in."""

    #: IP weight in fixed, clock-aligned one-minute windows.
    IP = "ip"
    #: Account (UID) weight in fixed, clock-aligned one-minute windows.
    UID = "uid"
    #: Calls in a rolling window (one call counts 1).
    CAP = "cap"


@attrs.frozen(kw_only=True)
class Limits:
    """Pool sizes and window lengths. Weights live in the endpoint table.

    ``time_scale`` divides every duration (windows, rolling caps): 60 makes a
    Binance minute last one second, as the simulated exchange's demo does.
    """

    api_ip: int = 6000
    """``/api`` IP weight per minute."""
    papi_ip: int = 6000
    """``/papi`` IP weight per minute, shared by all Portfolio Margin endpoints."""
    fapi_ip: int = 2400
    """``/fapi`` (USDⓈ-M futures) IP weight per minute."""
    dapi_ip: int = 2400
    """``/dapi`` (COIN-M futures) IP weight per minute."""
    sapi_ip: int = 12000
    """``/sapi`` IP weight per minute, for each endpoint independently."""
    sapi_uid: int = 180000
    """``/sapi`` UID weight per minute, for each endpoint and account independently."""
    minute: float = 60.0
    """Length of a weight window in seconds, before scaling."""
    time_scale: float = 1.0
    caps: Mapping[str, tuple[tuple[int, float], ...]] = attrs.field(factory=dict)
    """Rolling caps by endpoint name, overriding the table's: ``{name: ((calls, seconds),)}``."""

    @property
    def window(self) -> float:
        """Length of a fixed weight window in (scaled) seconds."""
        return self.minute / self.time_scale

    def scaled(self, time_scale: float) -> "Limits":
        """The same limits with every duration divided by ``time_scale``."""
        return attrs.evolve(self, time_scale=time_scale)


@attrs.frozen
class PoolSpec:
    """One pool an endpoint draws from, with the amount one call takes from it."""

    key: str
    """Identity of the pool; requests with equal keys share it."""
    kind: PoolKind
    limit: int
    period: float
    """Window length in (scaled) seconds: fixed for IP/UID, rolling for caps."""
    weight: int
    header: str | None
    """Response header reporting the pool's usage, lower-cased."""
    per_ip: bool
    """Shared by every account behind the IP (else it belongs to one account)."""

    @property
    def rank(self) -> int:
        """Queue order: a call waits on its most exclusive pool first (caps, UID, IP)."""
        if self.kind is PoolKind.CAP:
            return 0
        if self.kind is PoolKind.UID:
            return 1
        return 2 if self.key.startswith("sapi") else 3


def pools_for(endpoint: Endpoint, limits: Limits, account: str) -> tuple[PoolSpec, ...]:
    """The pools a call to ``endpoint`` by ``account`` draws from, by :attr:`PoolSpec.rank`."""
    window = limits.window
    specs: list[PoolSpec] = []
    route = f"{endpoint.method} {endpoint.path}"
    prefix = endpoint.prefix
    if endpoint.ip_weight:
        if prefix == "sapi":
            key, limit, header = f"sapi-ip {route}", limits.sapi_ip, "x-sapi-used-ip-weight-1m"
        elif prefix == "papi":
            key, limit, header = "papi-ip", limits.papi_ip, "x-mbx-used-weight-1m"
        elif prefix == "fapi":
            key, limit, header = "fapi-ip", limits.fapi_ip, "x-mbx-used-weight-1m"
        elif prefix == "dapi":
            key, limit, header = "dapi-ip", limits.dapi_ip, "x-mbx-used-weight-1m"
        else:
            key, limit, header = "api-ip", limits.api_ip, "x-mbx-used-weight-1m"
        specs.append(PoolSpec(key, PoolKind.IP, limit, window, endpoint.ip_weight, header, True))
    if endpoint.uid_weight:
        # Binance only UID-weights /sapi endpoints; any other prefix is a table error.
        if prefix != "sapi":
            raise ValueError(f"{endpoint.name}: UID weight is only modelled for /sapi")
        specs.append(
            PoolSpec(
                f"sapi-uid {account} {route}",
                PoolKind.UID,
                limits.sapi_uid,
                window,
                endpoint.uid_weight,
                "x-sapi-used-uid-weight-1m",
                False,
            )
        )
    caps = limits.caps.get(endpoint.name)
    cap_pairs = caps if caps is not None else tuple((c.calls, c.seconds) for c in endpoint.caps)
    for i, (calls, seconds) in enumerate(cap_pairs):
        specs.append(
            PoolSpec(
                f"cap{i} {account} {endpoint.name}",
                PoolKind.CAP,
                calls,
                seconds / limits.time_scale,
                1,
                None,
                False,
            )
        )
    specs.sort(key=lambda s: s.rank)
    return tuple(specs)
