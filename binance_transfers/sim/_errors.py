"""Binance's error answers: codes, texts and HTTP statuses, in one place.

Texts are Binance's own (spot ``errors.md`` and the SAPI error-code pages).
Where Binance documents no code for a rule the simulator enforces, the
closest documented one is used and marked *unverified* below.
"""

from __future__ import annotations

import json

__all__ = ["BinanceReject"]


class BinanceReject(Exception):
    """A request Binance refuses: answered ``{"code": .., "msg": ..}`` with ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> bytes:
        return json.dumps({"code": self.code, "msg": self.msg}).encode()


# -- authentication (Binance answers 401 for key errors, 400 for the rest) ---


def key_format() -> BinanceReject:
    return BinanceReject(-2014, "API-key format invalid.", 401)


def key_rejected() -> BinanceReject:
    return BinanceReject(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def unauthorized() -> BinanceReject:
    return BinanceReject(-1002, "You are not authorized to execute this request.", 401)


def bad_signature() -> BinanceReject:
    return BinanceReject(-1022, "Signature for this request is not valid.")


def timestamp_ahead() -> BinanceReject:
    return BinanceReject(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def timestamp_outside() -> BinanceReject:
    return BinanceReject(-1021, "Timestamp for this request is outside of the recvWindow.")


def recv_window_too_big() -> BinanceReject:
    return BinanceReject(-1131, "recvWindow must be less than 60000")


# -- parameters --------------------------------------------------------------


def mandatory(name: str) -> BinanceReject:
    return BinanceReject(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def one_of(first: str, second: str) -> BinanceReject:
    return BinanceReject(
        -1102, f"Param '{first}' or '{second}' must be sent, but both were empty/null!"
    )


def illegal(name: str, legal: str) -> BinanceReject:
    return BinanceReject(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def invalid(name: str) -> BinanceReject:
    return BinanceReject(-1130, f"Data sent for parameter '{name}' is not valid.")


def too_precise() -> BinanceReject:
    # The SAPI wording (spot says "Parameter '%s' has too much precision.").
    return BinanceReject(-1111, "Precision is over the maximum defined for this asset.")


def combination(first: str, second: str) -> BinanceReject:
    return BinanceReject(
        -1128,
        f"Combination of optional parameters invalid. Recommendation: '{first}' and "
        f"'{second}' must both be sent.",
    )


def exclusive(first: str, second: str) -> BinanceReject:
    return BinanceReject(
        -1128, f"Combination of optional parameters invalid: '{first}' and '{second}'."
    )


def interval_too_big(hours: int) -> BinanceReject:
    return BinanceReject(-1127, f"More than {hours} hours between startTime and endTime.")


# -- transfers ---------------------------------------------------------------


def insufficient_balance() -> BinanceReject:
    # Undocumented but what Binance answers (ccxt's comment: "undocumented").
    return BinanceReject(-5013, "Asset transfer failed: insufficient balance")


def not_portfolio_margin() -> BinanceReject:
    return BinanceReject(-21001, "Request ID is not a Portfolio Margin Account.")


def no_relation() -> BinanceReject:
    return BinanceReject(-5021, "This parent sub have no relation")


def no_margin_account() -> BinanceReject:
    return BinanceReject(-3003, "Margin account does not exist.")


def duplicated_client_tran_id() -> BinanceReject:
    # Binance documents no code for a repeated clientTranId on
    # /sapi/v1/sub-account/universalTransfer ("must be unique"): this is the
    # USDⓈ-M futures code and text for the same rule (-4115
    # DUPLICATED_CLIENT_TRAN_ID), unverified for this endpoint.
    return BinanceReject(-4115, "clientTranId is duplicated")


def unsupported() -> BinanceReject:
    # Observed from /sapi/v1/sub-account/universalTransfer (binance-connector-java#33).
    return BinanceReject(-9000, "Unsupported operation")


# -- rate limits -------------------------------------------------------------


def too_much_weight(limit: int) -> BinanceReject:
    return BinanceReject(
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        429,
    )


def call_cap() -> BinanceReject:
    # What /sapi answers when a per-endpoint call limit is hit (ccxt#6905).
    return BinanceReject(-1003, "Too many requests; current request has limited.", 429)


def banned(until_ms: int) -> BinanceReject:
    return BinanceReject(
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
        418,
    )


# -- server side -------------------------------------------------------------


def unknown_outcome(status: int) -> BinanceReject:
    if status == 503:
        # PAPI's wording for "sent to the engine, no answer in time".
        return BinanceReject(
            -1000, "Unknown error, please check your request or try again later.", 503
        )
    return BinanceReject(
        -1006,
        "An unexpected response was received from the message bus. Execution status unknown.",
        status,
    )


#: Binance's texts for codes a 5xx body may carry (spot ``errors.md``).
_SERVER_TEXTS = {
    -1000: "An unknown error occurred while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests queued.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
}


def server_error(status: int, code: int | None, msg: str | None) -> BinanceReject:
    """A 5xx carrying ``code`` (default: Binance's for ``status``) and ``msg``."""
    reject = unknown_outcome(status)
    if code is not None:
        reject = BinanceReject(code, _SERVER_TEXTS.get(code, _SERVER_TEXTS[-1000]), status)
    if msg is not None:
        reject.msg = msg
    return reject


def service_unavailable() -> BinanceReject:
    # PAPI/futures docs: "Service Unavailable." means the request failed for sure.
    return BinanceReject(-1008, "Service Unavailable.", 503)


WAF_PAGE = b"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">
<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">
<TITLE>ERROR: The request could not be satisfied</TITLE>
</HEAD><BODY>
<H1>403 ERROR</H1>
<H2>The request could not be satisfied.</H2>
<HR noshade size="1px">
Request blocked.
We can't connect to the server for this app or website at this time.
<BR clear="all">
<HR noshade size="1px">
<PRE>
Generated by cloudfront (CloudFront)
</PRE>
</BODY></HTML>
"""
