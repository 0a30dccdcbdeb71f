"""Fault injection: what a real network and a real exchange do to requests.

A :class:`Fault` says what goes wrong; :meth:`Faults.add` says when (which
endpoint, how often, how many times)::

    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    exchange.faults.add(Fault.latency(0.05, jitter=0.02))  # every request
    exchange.faults.add(Fault.server_error(), probability=0.1)
    exchange.faults.add(Fault.pending(30.0), endpoint="universal_transfer", probability=0.05)

Faults act in three independent phases, each recorded in the ledger entry of
the request (:attr:`~binance_transfers.sim.LedgerEntry.fault`,
``executed``, ``settlement``):

* *travel*: ``latency`` delays the request's arrival (latencies add up);
* *settlement*: ``pending`` and ``failed`` make an executed transfer that has
  a history (user and sub-account universal transfers) settle later, or fail;
* *answer*: ``server_error``, ``drop``, ``reset``, ``late``, ``unavailable``,
  ``waf`` and ``malformed`` shape what goes back, after executing or instead.

Random draws come from one ``random.Random(seed)``, so a seeded run replays
the same faults for the same sequence of requests.
"""

from __future__ import annotations

import enum
import random

import attrs

__all__ = ["Fault", "FaultDecision", "FaultKind", "FaultRule", "Faults"]


class FaultKind(enum.Enum):
    LATENCY = "latency"
    """The request takes ``delay`` (+ jitter) seconds to reach the exchange."""
    SERVER_ERROR = "server_error"
    """A 5xx whose outcome is unknown (Binance: "execution status unknown")."""
    DROP = "drop"
    """The connection is closed without an answer."""
    LATE = "late"
    """The answer leaves ``delay`` (+ jitter) seconds late: past the client's timeout."""
    UNAVAILABLE = "unavailable"
    """503 "Service Unavailable.": the request was certainly not executed."""
    WAF = "waf"
    """A 403 HTML page from the web application firewall; the API never saw it."""
    MALFORMED = "malformed"
    """A 200 whose body is not JSON (a truncated answer)."""
    RESET = "reset"
    """The status line and headers leave, then the connection dies mid-body."""
    PENDING = "pending"
    """The transfer is accepted, shows PENDING, and is confirmed ``delay`` seconds later."""
    FAILED = "failed"
    """The transfer is accepted (a ``tranId``), then FAILED after ``delay``: nothing moves."""


#: The fault kinds that decide how an executed transfer settles, not what is answered.
SETTLEMENT_KINDS = frozenset({FaultKind.PENDING, FaultKind.FAILED})


@attrs.frozen(kw_only=True)
class Fault:
    """One kind of failure; build with the class methods."""

    kind: FaultKind
    executes: bool = False
    """Whether the exchange executes the request before the fault hits the answer."""
    delay: float = 0.0
    jitter: float = 0.0
    status: int = 500
    code: int | None = None
    """Binance error code of a ``server_error`` body (None: Binance's own for the status)."""
    msg: str | None = None
    """Message of a ``server_error`` body (None: Binance's own for the code)."""

    @classmethod
    def latency(cls, delay: float, *, jitter: float = 0.0) -> Fault:
        """The request arrives ``delay`` + uniform(0, ``jitter``) seconds after it was sent."""
        return cls(kind=FaultKind.LATENCY, delay=delay, jitter=jitter, executes=True)

    @classmethod
    def server_error(
        cls,
        *,
        status: int = 500,
        executes: bool = True,
        code: int | None = None,
        msg: str | None = None,
    ) -> Fault:
        """Answer ``status`` (5xx) with Binance's "execution status unknown".

        ``code`` and ``msg`` put any body in it, e.g. ``Fault.server_error(status=503,
        code=-1003)``: a 5xx whose body looks like a rate limit, which a client must
        still treat as an unknown outcome (the transfer ran, by default).
        """
        if not 500 <= status < 600:
            raise ValueError(f"a server error is a 5xx status, not {status}")
        return cls(
            kind=FaultKind.SERVER_ERROR, status=status, executes=executes, code=code, msg=msg
        )

    @classmethod
    def drop(cls, *, executes: bool = True) -> Fault:
        """Close the connection without answering (after executing, by default)."""
        return cls(kind=FaultKind.DROP, executes=executes)

    @classmethod
    def reset(cls, *, executes: bool = True) -> Fault:
        """Send the status line, headers and half the body, then close the connection.

        Over TCP the client reads a truncated body (``Content-Length`` promised
        more); in-process, reading the body raises ``httpx.RemoteProtocolError``,
        as httpx does on a socket.
        """
        return cls(kind=FaultKind.RESET, executes=executes)

    @classmethod
    def pending(cls, delay: float, *, jitter: float = 0.0) -> Fault:
        """The transfer shows PENDING for ``delay`` (+ jitter) seconds, then CONFIRMED.

        The source is debited at once and the target credited when it settles.
        Only transfers with a history (user and sub-account universal) settle
        late; other endpoints execute as usual.
        """
        if delay < 0:
            raise ValueError(f"a settlement delay cannot be negative, got {delay}")
        return cls(kind=FaultKind.PENDING, delay=delay, jitter=jitter, executes=True)

    @classmethod
    def failed(cls, delay: float = 0.0, *, jitter: float = 0.0) -> Fault:
        """The transfer is accepted (``tranId``), shows PENDING for ``delay``, then FAILED.

        Binance's semantics: a FAILED transfer moves nothing; what was held
        from the source is given back when it fails.
        """
        if delay < 0:
            raise ValueError(f"a settlement delay cannot be negative, got {delay}")
        return cls(kind=FaultKind.FAILED, delay=delay, jitter=jitter, executes=True)

    @classmethod
    def late(cls, delay: float, *, jitter: float = 0.0, executes: bool = True) -> Fault:
        """Execute, then hold the answer back ``delay`` seconds."""
        return cls(kind=FaultKind.LATE, delay=delay, jitter=jitter, executes=executes)

    @classmethod
    def unavailable(cls) -> Fault:
        """503 ``Service Unavailable.``: nothing was done."""
        return cls(kind=FaultKind.UNAVAILABLE, status=503)

    @classmethod
    def waf(cls) -> Fault:
        """403 with an HTML page: blocked before the API (no weight, nothing done)."""
        return cls(kind=FaultKind.WAF, status=403)

    @classmethod
    def malformed(cls, *, executes: bool = True) -> Fault:
        """200 with a truncated, non-JSON body."""
        return cls(kind=FaultKind.MALFORMED, status=200, executes=executes)


@attrs.define(kw_only=True)
class FaultRule:
    """When a fault applies. ``times`` counts down; at 0 the rule is spent."""

    fault: Fault
    endpoint: str | None = None
    """Endpoint name from the table; None for every endpoint."""
    probability: float = 1.0
    times: int | None = None
    """How many more requests it may hit (None: unlimited)."""

    def matches(self, endpoint: str | None) -> bool:
        return (self.times is None or self.times > 0) and (
            self.endpoint is None or self.endpoint == endpoint
        )


@attrs.frozen
class FaultDecision:
    """What the faults do to one request."""

    latency: float
    fault: Fault | None
    """The fault shaping the answer (never LATENCY, PENDING or FAILED), if any."""
    late_by: float = 0.0
    settlement: Fault | None = None
    """PENDING or FAILED: how an executed transfer settles, if not at once."""
    settle_after: float = 0.0
    """Seconds after execution the settlement fault settles the transfer."""


class Faults:
    """The fault rules of one exchange, checked in the order they were added."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self.rules: list[FaultRule] = []

    def add(
        self,
        fault: Fault,
        *,
        endpoint: str | None = None,
        probability: float = 1.0,
        times: int | None = None,
    ) -> FaultRule:
        """Apply ``fault`` to requests for ``endpoint`` (all if None).

        Each matching request is hit with ``probability``, at most ``times``
        times. Latencies add up; of the settlement faults (pending, failed) the
        first rule that hits wins, and so of the answer faults: one request can
        settle late *and* be answered 503.
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {probability}")
        rule = FaultRule(fault=fault, endpoint=endpoint, probability=probability, times=times)
        self.rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        self.rules.remove(rule)

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, endpoint: str | None) -> FaultDecision:
        """Roll the dice for one request."""
        latency, chosen, late_by = 0.0, None, 0.0
        settlement, settle_after = None, 0.0
        for rule in self.rules:
            if not rule.matches(endpoint):
                continue
            kind = rule.fault.kind
            if (kind in SETTLEMENT_KINDS and settlement is not None) or (
                kind is not FaultKind.LATENCY
                and kind not in SETTLEMENT_KINDS
                and chosen is not None
            ):
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            if rule.times is not None:
                rule.times -= 1
            fault = rule.fault
            delay = fault.delay + (self._rng.uniform(0, fault.jitter) if fault.jitter else 0.0)
            if kind is FaultKind.LATENCY:
                latency += delay
            elif kind in SETTLEMENT_KINDS:
                settlement, settle_after = fault, delay
            else:
                chosen = fault
                late_by = delay if kind is FaultKind.LATE else 0.0
        return FaultDecision(latency, chosen, late_by, settlement, settle_after)

    def __repr__(self) -> str:
        return f"<Faults {len(self.rules)} rules>"
