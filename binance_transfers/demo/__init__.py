"""The demo: a concurrent rebalancing job through the client, on the simulated exchange.

``make demo`` (or ``python -m binance_transfers.demo``) starts the simulated
Binance on loopback, then hundreds of coroutines move funds between wallets,
sub-accounts and Portfolio Margin through one :class:`~binance_transfers.Client`
for about half a minute, with Binance's minute scaled to a second so every
heavy pool fills many times over. It ends with the weight each window
received against its limit, the 429s and 418s received (zero) and a
reconciliation against the exchange's ledger, and exits non-zero if anything
went wrong.

``python -m binance_transfers.demo --processes 4 [--redis URL]`` runs the same
job as 4 OS processes on one account and one IP, each governor's counts leased
from one Redis (:class:`~binance_transfers.RedisStorage`); without ``--redis``
it starts a throwaway ``redis-server`` on loopback. See :mod:`._processes`.
"""

from ._run import Options, Outcome, run

__all__ = ["Options", "Outcome", "run"]
