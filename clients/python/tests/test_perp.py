"""The perpetual channels (funding, mark, oi, liquidations): typed events over the documented
shapes (docs/protocol.md), malformed input as ``protocol_error``, the client's sequencing (a
snapshot on join for funding; a gap notice, no snapshot, for liquidations), and the REST
helpers' argument checks."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from tickgate import (
    Client,
    Funding,
    FundingAll,
    Gap,
    LiquidationItem,
    Liquidations,
    Mark,
    OpenInterest,
    RestClient,
    TickgateError,
)
from tickgate.events import data_event

from .scripted import Scripted, update

F = "funding:bybit:BTC-USDT-PERP"
L = "liquidations:bybit:BTC-USDT-PERP"


def message(kind: str, channel: str, body: Any, *, snapshot: bool = True) -> dict[str, Any]:
    return {
        "type": "snapshot" if snapshot else "update",
        "channel": channel,
        "seq": 4,
        "epoch": "6614b13a6f5df-9",
        "ts": 1795824951084000,
        "recv_ts": 1795824951084100,
        kind: body,
    }


def test_funding_mark_and_oi_read_the_documented_shapes() -> None:
    funding = data_event(
        message(
            "funding",
            F,
            {"rate": "0.0001", "next_funding_ts": 1673280000000000, "ts": 1795824951084000},
        ),
        "funding",
    )
    assert isinstance(funding, Funding) and funding.snapshot
    assert funding.rate == Decimal("0.0001")
    assert funding.predicted_rate is None
    assert funding.next_funding_ts == 1673280000000000
    assert funding.value_ts == 1795824951084000
    assert funding.meta.seq == 4

    mark = data_event(
        message("mark", "mark:bybit:BTC-USDT-PERP", {"mark": "65001.5", "ts": 7}, snapshot=False),
        "mark",
    )
    assert isinstance(mark, Mark) and not mark.snapshot
    assert mark.mark == Decimal("65001.5") and mark.index is None and mark.value_ts == 7

    oi = data_event(
        message(
            "oi", "oi:bybit:BTC-USDT-PERP", {"oi": "1234.5", "oi_value": "80250000.25", "ts": 9}
        ),
        "oi",
    )
    assert isinstance(oi, OpenInterest)
    assert oi.oi == Decimal("1234.5") and oi.oi_value == Decimal("80250000.25")


def test_funding_all_compares_each_venue_and_refuses_malformed_entries() -> None:
    channel = "funding:all:BTC-USDT-PERP"
    entries = [
        {"venue": "bybit", "symbol": "BTC-USDT-PERP", "funding": {"rate": "-0.0001", "ts": 7}},
        {
            "venue": "okx",
            "symbol": "BTC-USDT-PERP",
            "funding": {"rate": "0.0002", "next_funding_ts": 1000, "ts": 5},
        },
    ]
    event = data_event(message("funding_all", channel, entries), "funding")
    assert isinstance(event, FundingAll) and event.snapshot
    assert [(v.venue, v.rate, v.next_funding_ts) for v in event.venues] == [
        ("bybit", Decimal("-0.0001"), None),
        ("okx", Decimal("0.0002"), 1000),
    ]
    for bad in ({"x": 1}, [{"venue": "okx", "symbol": "S"}], [{"venue": 1, "funding": {}}]):
        malformed = data_event(message("funding_all", channel, bad), "funding")
        with pytest.raises(TickgateError) as caught:
            _ = malformed.venues  # type: ignore[union-attr]
        assert caught.value.code == "protocol_error"


def test_liquidations_are_a_batch_of_typed_items() -> None:
    event = data_event(
        message(
            "liquidations",
            L,
            [
                {"side": "sell", "price": "64000.1", "size": "0.25", "ts": 11},
                {"side": "buy", "price": "64010", "size": "1", "ts": 12},
            ],
            snapshot=False,
        ),
        "liquidations",
    )
    assert isinstance(event, Liquidations)
    assert event.liquidations == [
        LiquidationItem("sell", Decimal("64000.1"), Decimal("0.25"), 11),
        LiquidationItem("buy", Decimal("64010"), Decimal("1"), 12),
    ]


@pytest.mark.parametrize(
    ("kind", "body", "read"),
    [
        ("funding", {"ts": 1}, "rate"),
        ("funding", {"rate": 0.0001, "ts": 1}, "rate"),
        ("funding", {"rate": "abc", "ts": 1}, "rate"),
        ("funding", {"rate": "NaN", "ts": 1}, "rate"),
        ("funding", {"rate": "0.1", "next_funding_ts": "soon", "ts": 1}, "next_funding_ts"),
        ("funding", "0.0001", "rate"),
        ("mark", {"mark": "1e", "ts": 1}, "mark"),
        ("mark", {"mark": "1", "ts": True}, "value_ts"),
        ("oi", {"oi_value": "5", "ts": 1}, "oi"),
        ("liquidations", {"side": "sell"}, "liquidations"),
        ("liquidations", [{"side": "long", "price": "1", "size": "1", "ts": 1}], "liquidations"),
        ("liquidations", [{"side": "buy", "price": "1", "ts": 1}], "liquidations"),
        ("liquidations", ["x"], "liquidations"),
    ],
)
def test_malformed_perp_messages_are_protocol_errors(kind: str, body: Any, read: str) -> None:
    channel = f"{kind}:bybit:BTC-USDT-PERP"
    event = data_event(message(kind, channel, body), kind)
    with pytest.raises(TickgateError) as caught:
        getattr(event, read)
    assert caught.value.code == "protocol_error"
    assert caught.value.channel == channel


async def test_funding_gets_a_snapshot_on_join_and_liquidations_a_gap() -> None:
    async with Scripted() as peer:
        client = Client(peer.url, backoff_base=0.01)
        await client.connect()
        conn = await peer.accept()
        sub = asyncio.ensure_future(client.subscribe([F, L]))
        request = await peer.request(conn)
        assert request["op"] == "subscribe" and request["channels"] == [F, L]
        positions = {F: {"epoch": "E", "seq": 3}, L: {"epoch": "E", "seq": 8}}
        await peer.send(
            conn, type="subscribed", id=request["id"], channels=[F, L], positions=positions
        )
        assert await sub == [F, L]
        funding = {"rate": "0.0001", "ts": 3}
        # The join snapshot carries the position's own seq; a repeat of it is a duplicate.
        snap = {**update(F, 3, funding=funding), "type": "snapshot"}
        await peer.send(conn, **snap)
        await peer.send(conn, **snap)
        await peer.send(conn, **update(F, 4, funding={**funding, "rate": "-0.0002"}))
        got = [await asyncio.wait_for(client.next_event(), 5) for _ in range(2)]
        assert [type(e) for e in got] == [Funding, Funding]
        assert [(e.seq, e.snapshot, e.rate) for e in got] == [  # type: ignore[union-attr]
            (3, True, Decimal("0.0001")),
            (4, False, Decimal("-0.0002")),
        ]
        # Liquidations: no snapshot; a lost range is a Gap, then updates continue after it.
        await peer.send(conn, type="gap", channel=L, from_seq=9, to_seq=12, reason="slow_consumer")
        item = {"side": "sell", "price": "64000", "size": "0.5", "ts": 13}
        await peer.send(conn, **update(L, 13, liquidations=[item]))
        gap = await asyncio.wait_for(client.next_event(), 5)
        assert gap == Gap(L, 9, 12, "slow_consumer")
        batch = await asyncio.wait_for(client.next_event(), 5)
        assert isinstance(batch, Liquidations) and batch.seq == 13
        assert batch.liquidations[0].size == Decimal("0.5")
        assert client.position(F) == ("E", 4) and client.position(L) == ("E", 13)
        await client.close()


async def test_rest_perp_helpers_refuse_spot_and_malformed_symbols_before_sending() -> None:
    async with RestClient("http://127.0.0.1:9") as rest:
        for call in (rest.funding, rest.mark, rest.open_interest):
            for symbol in ("BTC-USDT", "btc-usdt-perp", "BTC-USDT-PERPX"):
                with pytest.raises(TickgateError) as caught:
                    await call("bybit", symbol)
                assert caught.value.code == "invalid_argument"


def test_tail_describes_perp_events_and_shows_malformed_ones_raw() -> None:
    from tickgate.cli import describe

    funding = data_event(message("funding", F, {"rate": "0.0001", "ts": 1}), "funding")
    assert describe(funding) == f"{F} #4 rate 0.0001 predicted - next -"
    item = {"side": "sell", "price": "64000", "size": "0.5", "ts": 1}
    batch = data_event(message("liquidations", L, [item], snapshot=False), "liquidations")
    assert describe(batch) == f"{L} #4 SELL 0.5 @ 64000"
    bad = data_event(message("oi", "oi:bybit:BTC-USDT-PERP", {"ts": 1}), "oi")
    assert "oi is missing" in describe(bad) and '"oi": {"ts": 1}' in describe(bad)
