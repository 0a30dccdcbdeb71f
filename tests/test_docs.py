"""What help() and a signature show a user: public paths, short defaults, full docstrings."""

from __future__ import annotations

import inspect
import pydoc

import looptime
import pytest

import binance_transfers
from binance_transfers import Client

_PUBLIC_METHODS = [
    name
    for name, member in vars(Client).items()
    if not name.startswith("_") and inspect.isfunction(member)
]


def test_help_names_the_public_module() -> None:
    """help(Client.transfer) says binance_transfers, not the private module."""
    text = pydoc.render_doc(Client.transfer, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    assert "binance_transfers._client" not in text
    assert "in module binance_transfers" in text
    for name in binance_transfers.__all__:
        obj = getattr(binance_transfers, name)
        if inspect.isclass(obj):
            for member in vars(obj).values():
                if inspect.isfunction(member):
                    assert not member.__module__.startswith("binance_transfers._"), member


def test_the_constructor_signature_is_short() -> None:
    """Client.__init__'s signature prints no endpoint table, and api_secret's type is precise."""
    signature = inspect.signature(Client.__init__)
    text = str(signature)
    assert "EndpointTable(" not in text
    # The table's repr alone is over 2,000 characters; the signature without it
    # is about 1,000 (the lazily imported classes are named by their module).
    assert len(text) < 1200
    assert "Any" not in str(signature.parameters["api_secret"].annotation)


@pytest.mark.parametrize("name", _PUBLIC_METHODS)
def test_public_methods_document_parameters_return_and_errors(name: str) -> None:
    """Every public method's docstring names each parameter, what it returns and raises."""
    method = getattr(Client, name)
    doc = inspect.getdoc(method) or ""
    params = [p for p in inspect.signature(method).parameters if p != "self"]
    missing = [p for p in params if f"{p}:" not in doc]
    assert missing == [], f"{name}: parameters not documented: {missing}"
    returns = inspect.signature(method).return_annotation not in ("None", None)
    assert not returns or "Returns:" in doc or "Yields:" in doc, name
    assert "Raises:" in doc or name in ("estimate",) or not params, name


@looptime.enabled(strict=True)  # the clock stands still between the two estimates
async def test_estimate_takes_method_names_and_lists_the_valid_ones() -> None:
    """estimate("transfer") works; a wrong name's error lists what would."""
    from binance_transfers import InvalidInputError
    from binance_transfers.sim import SimulatedExchange

    exchange = SimulatedExchange()
    exchange.add_demo_account()
    async with exchange.client() as client:
        by_method = client.estimate("transfer")
        assert by_method == client.estimate("universal_transfer")
        with pytest.raises(InvalidInputError, match=r"one of: .*transfer_to_futures.*universal"):
            client.estimate("transfers")


async def test_throttled_error_rounds_max_wait() -> None:
    """ThrottledError prints max_wait to the millisecond, not a float's tail."""
    from binance_transfers import BnbTransferSide, ThrottledError
    from binance_transfers.sim import SimulatedExchange

    exchange = SimulatedExchange()
    exchange.add_demo_account()
    async with exchange.client() as client:
        for _ in range(2):
            await client.pmpro_bnb_transfer(amount="0.1", side=BnbTransferSide.TO_UM)
        with pytest.raises(ThrottledError) as caught:
            await client.pmpro_bnb_transfer(amount="0.1", side="TO_UM", max_wait=0.2000001234)
    assert "max_wait=0.2 s" in str(caught.value)
