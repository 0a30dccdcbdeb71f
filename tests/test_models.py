"""The models and their converter."""

from __future__ import annotations

from decimal import Decimal

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_transfers import (
    SubAccountAccountType,
    SubAccountTransferPage,
    SubAccountTransferRecord,
    TransferPage,
    TransferRecord,
    TransferResult,
    TransferStatus,
    TransferType,
)
from binance_transfers._models import camel, converter

amounts = st.decimals(min_value=Decimal("1E-8"), max_value=Decimal("1E12"), places=8)
names = st.from_regex(r"[A-Z][A-Z_]{2,20}", fullmatch=True)
records = st.builds(
    TransferRecord,
    asset=st.from_regex(r"[A-Z0-9]{2,8}", fullmatch=True),
    amount=amounts,
    type=st.one_of(st.sampled_from(TransferType), names),
    status=st.one_of(st.sampled_from(TransferStatus), names),
    tran_id=st.integers(min_value=1, max_value=2**63 - 1),
    timestamp=st.integers(min_value=0, max_value=2**45),
)
sub_records = st.builds(
    SubAccountTransferRecord,
    tran_id=st.integers(min_value=1, max_value=2**63 - 1),
    from_email=st.emails(),
    to_email=st.emails(),
    asset=st.from_regex(r"[A-Z0-9]{2,8}", fullmatch=True),
    amount=amounts,
    create_time_stamp=st.integers(min_value=0, max_value=2**45),
    from_account_type=st.one_of(st.sampled_from(SubAccountAccountType), names),
    to_account_type=st.one_of(st.sampled_from(SubAccountAccountType), names),
    status=st.sampled_from(["SUCCESS", "PROCESS", "FAILURE"]),
    client_tran_id=st.one_of(st.none(), st.text(min_size=1, max_size=32)),
)


@given(st.builds(TransferPage, total=st.integers(0, 10**6), rows=st.tuples(records, records)))
def test_transfer_pages_round_trip(page: TransferPage) -> None:
    """A history page survives unstructure -> JSON names -> structure unchanged."""
    raw = converter.unstructure(page)
    assert set(raw) == {"total", "rows"}
    assert converter.structure(raw, TransferPage) == page


@given(
    st.builds(
        SubAccountTransferPage, total_count=st.integers(0, 10**6), result=st.tuples(sub_records)
    )
)
def test_sub_account_pages_round_trip(page: SubAccountTransferPage) -> None:
    """Sub-account history pages round-trip with Binance's camelCase names."""
    raw = converter.unstructure(page)
    assert "totalCount" in raw and "createTimeStamp" in raw["result"][0]
    assert converter.structure(raw, SubAccountTransferPage) == page


def test_binance_history_example_structures() -> None:
    """The docs' example row becomes exact Decimals and enum members."""
    raw = {
        "total": 1,
        "rows": [
            {
                "asset": "USDT",
                "amount": "0.10000000",
                "type": "MAIN_UMFUTURE",
                "status": "CONFIRMED",
                "tranId": 11415955596,
                "timestamp": 1544433328000,
            }
        ],
    }
    page = converter.structure(raw, TransferPage)
    row = page.rows[0]
    assert row.amount == Decimal("0.1") and isinstance(row.amount, Decimal)
    assert row.type is TransferType.MAIN_UMFUTURE
    assert row.status is TransferStatus.CONFIRMED


def test_unknown_enum_values_are_kept_as_strings() -> None:
    """A transfer type Binance adds tomorrow does not break the history."""
    raw = {
        "asset": "X",
        "amount": "1",
        "type": "MAIN_NEWWALLET",
        "status": "REVIEWING",
        "tranId": 1,
        "timestamp": 0,
    }
    row = converter.structure(raw, TransferRecord)
    assert row.type == "MAIN_NEWWALLET" and not isinstance(row.type, TransferType)
    assert row.status == "REVIEWING"


def test_missing_rows_mean_an_empty_page() -> None:
    """Binance omits ``rows`` when there are none."""
    assert converter.structure({"total": 0}, TransferPage).rows == ()


def test_models_are_frozen_and_keyword_only() -> None:
    """Results cannot be altered or built positionally."""
    result = TransferResult(tran_id=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.tran_id = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransferResult(1)  # type: ignore[call-arg]


def test_binance_field_names() -> None:
    """Our snake_case names map to Binance's camelCase ones."""
    assert camel("tran_id") == "tranId"
    assert camel("create_time_stamp") == "createTimeStamp"
    assert camel("asset") == "asset"


def test_transfer_types_are_the_documented_ones() -> None:
    """31 current types plus the two isolated-margin ones on the seed page."""
    assert len(TransferType) == 33
    for member in TransferType:
        assert member.value == member.name
        assert f"{member.source}_{member.target}" == member.value


def test_symbol_rules_per_type() -> None:
    """fromSymbol/toSymbol: the documented types, plus the isolated side of the legacy ones."""
    needs_from = {t for t in TransferType if t.needs_from_symbol}
    needs_to = {t for t in TransferType if t.needs_to_symbol}
    assert needs_from == {
        TransferType.ISOLATEDMARGIN_MARGIN,
        TransferType.ISOLATEDMARGIN_ISOLATEDMARGIN,
        TransferType.ISOLATED_MARGIN_MAIN,
    }
    assert needs_to == {
        TransferType.MARGIN_ISOLATEDMARGIN,
        TransferType.ISOLATEDMARGIN_ISOLATEDMARGIN,
        TransferType.MAIN_ISOLATED_MARGIN,
    }


def _every_model() -> list[type]:
    from binance_transfers import _models

    return [
        cls
        for cls in vars(_models).values()
        if isinstance(cls, type)
        and attrs.has(cls)
        and cls.__module__.startswith("binance_transfers")
    ]


@pytest.mark.parametrize("model", _every_model(), ids=lambda cls: cls.__name__)
def test_every_model_reprs_compares_and_hashes_by_its_fields(model: type) -> None:
    """Every model reprs, compares and hashes by its fields, is frozen and slotted."""
    fields = attrs.fields(model)
    values = {a.name: (Decimal("1.50"), "x", (1, "y"))[i % 3] for i, a in enumerate(fields)}
    one, same = model(**values), model(**values)
    assert repr(one) == f"{model.__name__}({', '.join(f'{k}={v!r}' for k, v in values.items())})"
    assert one == same and (one != same) is False and hash(one) == hash(same)
    assert one != object() and (one == 1) is False
    for name in values:  # any one field differing makes them unequal
        other = attrs.evolve(one, **{name: "other"})
        assert other != one and (other == one) is False
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        one.__setattr__(fields[0].name, "changed")
    assert not hasattr(one, "__dict__")  # still slotted


def test_models_of_two_classes_with_equal_fields_differ() -> None:
    from binance_transfers import BnbTransferResult

    other: object = BnbTransferResult(tran_id=1)
    assert TransferResult(tran_id=1) != other
    assert {TransferResult(tran_id=1), TransferResult(tran_id=1)} == {TransferResult(tran_id=1)}


def test_the_parser_of_a_model_structures_as_the_converter_does_and_is_made_once() -> None:
    from binance_transfers._models import parser

    parse = parser(TransferPage)
    data = {
        "total": 1,
        "rows": [
            {
                "asset": "USDT",
                "amount": "1.5",
                "type": "MAIN_MARGIN",
                "status": "CONFIRMED",
                "tranId": 7,
                "timestamp": 1,
            }
        ],
    }
    assert parse(data) == converter.structure(data, TransferPage)
    assert parser(TransferPage) is parse  # made once per model
    with pytest.raises(cattrs.ClassValidationError):  # as converter.structure raises
        parser(TransferResult)({"nothing": 1})
