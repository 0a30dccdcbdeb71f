"""Accounts, wallets and balances: the exchange's books.

A master account has API keys and sub-accounts (by e-mail); every account has
wallets (:class:`Wallet`), isolated margin one per symbol, each holding a
:class:`~decimal.Decimal` balance per asset. Money only moves through
:meth:`Bank.move` and :meth:`Bank.transfer`, which refuse to overdraw (-5013)
and never round.

A transfer with a history has a :class:`Posting`: when its row appears (the
history lag) and when it leaves PENDING, as CONFIRMED or FAILED. Until then
the amount is held: debited from the source, not yet credited to the target
(or, if it fails, given back). Holds settle lazily on the server clock,
whenever a request is served or a balance is read, so no timer runs.
"""

from __future__ import annotations

import decimal
import enum
import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from .._models import SubAccountTransferRecord
from ._auth import KEY_FORMAT, ApiKey, generate_key, load_public_key
from ._errors import insufficient_balance

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Account", "Bank", "Posting", "SubAccountTransfer", "UniversalTransfer", "Wallet"]


class Wallet(enum.StrEnum):
    """The wallets of an account, named as in universal transfer types."""

    MAIN = "MAIN"
    """Spot."""
    FUNDING = "FUNDING"
    UMFUTURE = "UMFUTURE"
    """USDⓈ-M futures."""
    CMFUTURE = "CMFUTURE"
    """COIN-M futures."""
    MARGIN = "MARGIN"
    """Cross margin (Portfolio Margin's margin wallet too)."""
    ISOLATEDMARGIN = "ISOLATEDMARGIN"
    """Isolated margin: one wallet per symbol."""
    OPTION = "OPTION"
    PORTFOLIO_MARGIN = "PORTFOLIO_MARGIN"


#: A wallet and, for isolated margin, its symbol.
WalletKey = tuple[Wallet, str | None]
#: What a balance may be given as: never a float (binary noise is not money).
Money = Decimal | int | str
#: ``"MAIN"``, ``Wallet.MAIN``, ``"ISOLATEDMARGIN:BNBUSDT"``,
#: ``(Wallet.ISOLATEDMARGIN, "BNBUSDT")``.
WalletSpec = Wallet | str | tuple[Wallet | str, str]

# Wide enough that no sum of realistic balances is ever rounded.
_EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation])


def to_decimal(value: Money) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"amounts are Decimal, int or str, not {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return number


def wallet_key(spec: WalletSpec, symbol: str | None = None) -> WalletKey:
    if isinstance(spec, tuple):
        spec, symbol = spec
    elif ":" in spec:
        spec, symbol = spec.split(":", 1)
    wallet = Wallet(spec)
    if (wallet is Wallet.ISOLATEDMARGIN) != (symbol is not None):
        raise ValueError("a symbol goes with ISOLATEDMARGIN, and only with it")
    return wallet, symbol


def wallet_name(key: WalletKey) -> str:
    wallet, symbol = key
    return wallet.value if symbol is None else f"{wallet.value}:{symbol}"


@attrs.frozen(kw_only=True)
class UniversalTransfer:
    """A row of the user universal transfer history."""

    tran_id: int
    type: str
    asset: str
    amount: Decimal
    status: str
    """Final status (CONFIRMED or FAILED); the history says PENDING until it settles."""
    timestamp: int
    """Server epoch milliseconds."""
    from_symbol: str | None = None
    to_symbol: str | None = None


@attrs.frozen(kw_only=True)
class Posting:
    """When a transfer's history row shows, and how and when it settles."""

    tran_id: int
    executed_at: int
    """Server epoch milliseconds of execution (the row's timestamp)."""
    visible_at: int
    """Server epoch milliseconds from which the history shows the row."""
    settles_at: int
    """Server epoch milliseconds at which it leaves its pending status."""
    status: str
    """Final status: CONFIRMED or FAILED (universal), SUCCESS or FAILURE (sub-account)."""
    pending_status: str
    """What the row says before ``settles_at``: PENDING (universal), PROCESS (sub-account)."""

    def status_at(self, now_ms: int) -> str:
        return self.pending_status if now_ms < self.settles_at else self.status

    @property
    def failed(self) -> bool:
        """The transfer failed (or will): it moves nothing."""
        return self.status in FAILED_STATUSES


#: Final statuses of transfers that moved nothing.
FAILED_STATUSES = frozenset({"FAILED", "FAILURE"})


@attrs.define(kw_only=True, order=False)
class _Hold:
    """An amount taken from the source of a pending transfer, not yet credited."""

    settles_at: int
    source: Account
    source_wallet: WalletKey
    target: Account
    target_wallet: WalletKey
    asset: str
    amount: Decimal
    fails: bool


#: A row of the sub-account universal transfer history (kept by the master):
#: the client's own model, so the two can never describe different rows.
SubAccountTransfer = SubAccountTransferRecord


class Account:
    """A Binance account: a master (with API keys) or one of its sub-accounts.

    ::

        master = exchange.add_account(balances={"MAIN": {"USDT": "1000"}}, portfolio_margin=True)
        desk = master.add_sub_account("desk-1@example.com")
        master.balance("USDT")                       # Decimal('1000')
        desk.deposit("USDT", "50", Wallet.MARGIN)
    """

    def __init__(
        self,
        bank: Bank,
        *,
        uid: int,
        email: str,
        master: Account | None,
        portfolio_margin: bool,
        pm_pro: bool,
        margin: bool,
    ) -> None:
        self._bank = bank
        self.uid = uid
        self.email = email
        self.master = master
        self.portfolio_margin = portfolio_margin
        """A (classic) Portfolio Margin account: the ``/papi`` endpoints work."""
        self.pm_pro = pm_pro
        """A Portfolio Margin Pro account: the ``/sapi/v1/portfolio`` endpoints work."""
        self.margin = margin
        """The margin account is opened (sub-account margin transfers need it)."""
        self.sub_accounts: dict[str, Account] = {}
        self.api_keys: list[ApiKey] = []
        self.transfers: list[UniversalTransfer] = []
        """This account's user universal transfers, oldest first."""
        self.sub_account_transfers: list[SubAccountTransfer] = []
        """Sub-account universal transfers made by this master, oldest first."""
        self.client_tran_ids: set[str] = set()
        self._balances: dict[WalletKey, dict[str, Decimal]] = {}

    @property
    def api_key(self) -> ApiKey:
        """The account's first API key."""
        if not self.api_keys:
            raise LookupError(f"account {self.uid} has no API key")
        return self.api_keys[0]

    def balance(
        self, asset: str, wallet: WalletSpec = Wallet.MAIN, symbol: str | None = None
    ) -> Decimal:
        """Balance of ``asset`` in ``wallet`` (Decimal zero if none)."""
        self._bank.settle()
        return self._balances.get(wallet_key(wallet, symbol), {}).get(asset, Decimal(0))

    def balances(self) -> dict[str, dict[str, Decimal]]:
        """Every non-zero balance, by wallet name (``MAIN``, ``ISOLATEDMARGIN:BNBUSDT``...)."""
        self._bank.settle()
        out: dict[str, dict[str, Decimal]] = {}
        for key, assets in self._balances.items():
            held = {asset: amount for asset, amount in assets.items() if amount}
            if held:
                out[wallet_name(key)] = held
        return out

    def holdings(self, wallet: WalletSpec, symbol: str | None = None) -> dict[str, Decimal]:
        """Non-zero balances of one wallet."""
        self._bank.settle()
        assets = self._balances.get(wallet_key(wallet, symbol), {})
        return {asset: amount for asset, amount in assets.items() if amount}

    def isolated_symbols(self) -> list[str]:
        return [s for (w, s) in self._balances if w is Wallet.ISOLATEDMARGIN and s is not None]

    def deposit(
        self, asset: str, amount: Money, wallet: WalletSpec = Wallet.MAIN, symbol: str | None = None
    ) -> None:
        """Credit ``amount`` of ``asset`` to ``wallet`` (a negative amount debits)."""
        key = wallet_key(wallet, symbol)
        assets = self._balances.setdefault(key, {})
        assets[asset] = _EXACT.add(assets.get(asset, Decimal(0)), to_decimal(amount))

    def add_sub_account(
        self,
        email: str,
        *,
        balances: Mapping[WalletSpec, Mapping[str, Money]] | None = None,
        margin: bool = True,
    ) -> Account:
        """Create a sub-account of this master, reached by its e-mail."""
        if self.master is not None:
            raise ValueError("a sub-account cannot have sub-accounts")
        sub = self._bank.open(
            email=email, master=self, portfolio_margin=False, pm_pro=False, margin=margin
        )
        self.sub_accounts[email] = sub
        sub.fund(balances)
        return sub

    def add_api_key(self, key: str | None = None, secret: object = None) -> ApiKey:
        """Register an API key for this account and return it.

        ``secret`` is an HMAC secret (str), or for RSA / Ed25519 keys the public
        key (PEM or ``cryptography`` object; a private key is accepted and only
        its public half kept). Missing values are generated (HMAC).
        """
        return self._bank.add_key(self, key, secret)

    def fund(self, balances: Mapping[WalletSpec, Mapping[str, Money]] | None) -> None:
        """Deposit every amount of ``{wallet: {asset: amount}}``."""
        for spec, assets in (balances or {}).items():
            for asset, amount in assets.items():
                self.deposit(asset, amount, spec)

    def _debit(self, key: WalletKey, asset: str, amount: Decimal) -> None:
        assets = self._balances.get(key, {})
        held = assets.get(asset, Decimal(0))
        if held < amount:
            raise insufficient_balance()
        assets[asset] = _EXACT.subtract(held, amount)

    def _credit(self, key: WalletKey, asset: str, amount: Decimal) -> None:
        assets = self._balances.setdefault(key, {})
        assets[asset] = _EXACT.add(assets.get(asset, Decimal(0)), amount)

    def __repr__(self) -> str:
        role = "master" if self.master is None else f"sub of {self.master.uid}"
        flags = "".join(
            f" {name}" for name in ("portfolio_margin", "pm_pro") if getattr(self, name)
        )
        return f"<Account {self.uid} {self.email} {role}{flags}>"


class Bank:
    """Every account, API key and id of one exchange.

    ``now_ms`` reads the server clock (epoch milliseconds); pending transfers
    settle against it. Without it they settle only when :meth:`settle` is
    given a time.
    """

    def __init__(self, now_ms: Callable[[], int] | None = None) -> None:
        self.accounts: dict[int, Account] = {}
        self.by_email: dict[str, Account] = {}
        self.keys: dict[str, ApiKey] = {}
        self.postings: dict[int, Posting] = {}
        """Every transfer with a history row, by ``tranId``."""
        self._now_ms = now_ms
        self._holds: list[tuple[int, int, _Hold]] = []
        self._hold_seq = itertools.count()
        self._uids = itertools.count(10_000_001)
        self._ids = itertools.count(100_000_001)

    def next_id(self) -> int:
        """A fresh transfer id (shared by every kind of transfer, like Binance's)."""
        return next(self._ids)

    def open(
        self,
        *,
        email: str,
        master: Account | None,
        portfolio_margin: bool,
        pm_pro: bool,
        margin: bool,
    ) -> Account:
        if email in self.by_email:
            raise ValueError(f"an account with e-mail {email!r} already exists")
        account = Account(
            self,
            uid=next(self._uids),
            email=email,
            master=master,
            portfolio_margin=portfolio_margin,
            pm_pro=pm_pro,
            margin=margin,
        )
        self.accounts[account.uid] = account
        self.by_email[email] = account
        return account

    def add_key(self, account: Account, key: str | None, secret: object) -> ApiKey:
        key = generate_key() if key is None else key
        if not KEY_FORMAT.fullmatch(key):
            raise ValueError("Binance API keys are 64 letters and digits")
        if key in self.keys:
            raise ValueError("this API key is already registered")
        if secret is None:
            api_key = ApiKey(key=key, account=account.uid, secret=generate_key())
        elif isinstance(secret, str) and not secret.lstrip().startswith("-----BEGIN"):
            if not secret:
                raise ValueError("an HMAC secret cannot be empty")
            api_key = ApiKey(key=key, account=account.uid, secret=secret)
        else:
            api_key = ApiKey(key=key, account=account.uid, public_key=load_public_key(secret))
        self.keys[key] = api_key
        account.api_keys.append(api_key)
        return api_key

    def move(
        self,
        source: Account,
        source_wallet: WalletKey,
        target: Account,
        target_wallet: WalletKey,
        asset: str,
        amount: Decimal,
    ) -> None:
        """Move ``amount`` or nothing: -5013 when the source holds less."""
        source._debit(source_wallet, asset, amount)
        target._credit(target_wallet, asset, amount)

    def transfer(
        self,
        source: Account,
        source_wallet: WalletKey,
        target: Account,
        target_wallet: WalletKey,
        asset: str,
        amount: Decimal,
        *,
        now_ms: int,
        settles_at: int,
        fails: bool = False,
    ) -> None:
        """Move ``amount`` when the transfer settles: at once, or hold it until ``settles_at``.

        The source must hold the amount now (-5013 otherwise), even for a
        transfer that will fail: Binance checks the balance before accepting it.
        """
        self.settle(now_ms)
        source._debit(source_wallet, asset, amount)
        hold = _Hold(
            settles_at=settles_at,
            source=source,
            source_wallet=source_wallet,
            target=target,
            target_wallet=target_wallet,
            asset=asset,
            amount=amount,
            fails=fails,
        )
        if settles_at <= now_ms:
            self._release(hold)
        else:
            heapq.heappush(self._holds, (settles_at, next(self._hold_seq), hold))

    def post(self, posting: Posting) -> None:
        """Record when a transfer's history row shows and how it settles."""
        self.postings[posting.tran_id] = posting

    def settle(self, now_ms: int | None = None) -> None:
        """Credit (or give back) every held amount whose transfer settled by ``now_ms``."""
        if not self._holds:
            return  # nothing to settle: the clock is not even read
        if now_ms is None:
            if self._now_ms is None:
                return
            now_ms = self._now_ms()
        while self._holds and self._holds[0][0] <= now_ms:
            self._release(heapq.heappop(self._holds)[2])

    def in_flight(self) -> dict[str, Decimal]:
        """Amounts held by pending transfers, by asset (in no wallet until they settle)."""
        self.settle()
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for _, _, hold in self._holds:
            sums[hold.asset] += hold.amount
        return dict(sums)

    @staticmethod
    def _release(hold: _Hold) -> None:
        if hold.fails:
            hold.source._credit(hold.source_wallet, hold.asset, hold.amount)
        else:
            hold.target._credit(hold.target_wallet, hold.asset, hold.amount)

    def __iter__(self) -> Iterator[Account]:
        return iter(self.accounts.values())
