"""The client's per-channel sequencing against a scripted peer: duplicates dropped, a jump
rejoins with resume, a wrong mirror fetches a fresh snapshot, a drop reconnects and resumes,
fatal closes and refusals end with the gateway's code. Each seq reaches the application at most
once, and every loss is an event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tickgate import (
    Client,
    Closed,
    Credentials,
    Event,
    Gap,
    Reconnecting,
    Recovered,
    Resync,
    Snapshot,
    TickgateError,
    Trade,
    Update,
    book_checksum,
)

from .scripted import Scripted, trades_body, update

T = "trades:sim:BTC-USDT"
B = "book:sim:BTC-USDT"


async def next_of(client: Client, *types: type) -> Any:
    while True:
        event = await asyncio.wait_for(client.next_event(), 5)
        assert event is not None
        if isinstance(event, types):
            return event


async def subscribed(
    peer: Scripted, conn: Any, channels: list[str], **extra: Any
) -> dict[str, Any]:
    request = await peer.request(conn)
    assert request["op"] == "subscribe" and request["channels"] == channels
    await peer.send(conn, type="subscribed", id=request["id"], channels=channels, **extra)
    return request


async def test_duplicates_are_dropped_and_a_jump_rejoins_with_resume() -> None:
    async with Scripted() as peer:
        client = Client(peer.url, backoff_base=0.01)
        await client.connect()
        conn = await peer.accept()
        sub = asyncio.ensure_future(client.subscribe([T]))
        await subscribed(peer, conn, [T], positions={T: {"epoch": "E", "seq": 5}})
        assert await sub == [T]
        for seq in (6, 7, 7, 5, 9):  # a repeat, an old one, then 8 is missing
            await peer.send(conn, **update(T, seq, **trades_body(seq)))
        got = [await next_of(client, Trade) for _ in range(2)]
        assert [e.seq for e in got] == [6, 7]
        unsub = await peer.request(conn)
        assert unsub["op"] == "unsubscribe" and unsub["channels"] == [T]
        rejoin = await peer.request(conn)
        assert rejoin["op"] == "subscribe" and rejoin["resume"] == {T: {"epoch": "E", "seq": 7}}
        await peer.send(conn, type="unsubscribed", id=unsub["id"], channels=[T])
        await peer.send(conn, **update(T, 10, **trades_body(10)))  # before the ack: ignored
        await peer.send(conn, type="subscribed", id=rejoin["id"], channels=[T], recovered={T: True})
        for seq in (8, 9, 10):
            await peer.send(conn, **update(T, seq, **trades_body(seq)))
        recovered = await next_of(client, Recovered)
        assert recovered.recovered == [T] and recovered.lost == []
        assert [(await next_of(client, Trade)).seq for _ in range(3)] == [8, 9, 10]
        assert client.position(T) == ("E", 10)
        await client.close()


def snapshot(
    seq: int,
    bids: list[list[str]],
    asks: list[list[str]],
    *,
    resync: bool = False,
    checksum: int | None = None,
    epoch: str = "E",
) -> dict[str, Any]:
    message = {
        "type": "snapshot",
        "channel": B,
        "seq": seq,
        "epoch": epoch,
        "ts": 1,
        "recv_ts": 1,
        "bids": bids,
        "asks": asks,
        "checksum": book_checksum([tuple(b) for b in bids], [tuple(a) for a in asks])
        if checksum is None
        else checksum,
    }  # type: ignore[misc]
    if resync:
        message["resync"] = True
    return message


async def test_a_checksum_mismatch_resyncs_that_channel_with_a_fresh_snapshot() -> None:
    async with Scripted() as peer:
        client = Client(peer.url)
        await client.connect()
        conn = await peer.accept()
        sub = asyncio.ensure_future(client.subscribe([B]))
        await subscribed(peer, conn, [B], positions={B: {"epoch": "E", "seq": 3}})
        await sub
        await peer.send(conn, **snapshot(3, [["100", "1"]], [["101", "1"]]))
        first = await next_of(client, Snapshot)
        assert first.seq == 3 and client.book(B) is not None and client.book(B).live  # type: ignore[union-attr]
        good = book_checksum([("100", "2")], [("101", "1")])
        await peer.send(conn, **update(B, 4, bids=[["100", "2"]], asks=[], checksum=good))
        assert (await next_of(client, Update)).seq == 4
        await peer.send(conn, **update(B, 5, bids=[["100", "3"]], asks=[], checksum=good))
        resync = await next_of(client, Resync)
        assert resync.reason == "client_checksum_mismatch"
        assert not client.book(B).live  # type: ignore[union-attr]
        unsub = await peer.request(conn)
        assert unsub["op"] == "unsubscribe"
        rejoin = await peer.request(conn)
        assert rejoin["op"] == "subscribe" and "resume" not in rejoin  # a fresh snapshot
        await peer.send(
            conn,
            type="subscribed",
            id=rejoin["id"],
            channels=[B],
            positions={B: {"epoch": "E", "seq": 9}},
        )
        await peer.send(conn, **snapshot(9, [["99", "1"]], [["101", "1"]]))
        fresh = await next_of(client, Snapshot)
        assert fresh.seq == 9
        book = client.book(B)
        assert book is not None and book.live and str(book.best_bid().price) == "99"  # type: ignore[union-attr]
        await client.close()


async def test_a_dropped_connection_reconnects_and_resumes_every_channel() -> None:
    async with Scripted() as peer:
        client = Client(peer.url, backoff_base=0.01, backoff_cap=0.02)  # type: ignore[arg-type]
        await client.connect()
        conn = await peer.accept()
        sub = asyncio.ensure_future(client.subscribe([T, B]))
        await subscribed(
            peer, conn, [T, B], positions={T: {"epoch": "E", "seq": 1}, B: {"epoch": "E", "seq": 4}}
        )
        await sub
        await peer.send(conn, **snapshot(4, [["100", "1"]], [["101", "1"]]))
        await peer.send(conn, **update(T, 2, **trades_body(2)))
        await next_of(client, Trade)
        await conn.close(1001, "server shutting down")
        again = await next_of(client, Reconnecting)
        assert again.attempt == 1 and "1001" in again.reason
        conn2 = await peer.accept()
        request = await peer.request(conn2)
        assert request["op"] == "subscribe"
        assert request["resume"] == {T: {"epoch": "E", "seq": 2}, B: {"epoch": "E", "seq": 4}}
        await peer.send(
            conn2,
            type="subscribed",
            id=request["id"],
            channels=[T, B],
            recovered={T: True, B: False},
            positions={B: {"epoch": "F", "seq": 1}},
        )
        resync = await next_of(client, Resync)
        assert resync.channel == B and resync.reason == "not_recovered"
        done = await next_of(client, Recovered)
        assert done.recovered == [T] and done.lost == [B]
        await peer.send(
            conn2, **snapshot(1, [["100", "1"]], [["102", "1"]], resync=True, epoch="F")
        )
        fresh = await next_of(client, Snapshot)
        assert fresh.resync and fresh.meta.epoch == "F"
        await client.close()


async def test_a_gap_notice_moves_the_position_and_is_delivered() -> None:
    async with Scripted() as peer:
        client = Client(peer.url)
        await client.connect()
        conn = await peer.accept()
        sub = asyncio.ensure_future(client.subscribe([T]))
        await subscribed(peer, conn, [T], positions={T: {"epoch": "E", "seq": 1}})
        await sub
        await peer.send(conn, type="gap", channel=T, from_seq=2, to_seq=40, reason="slow_consumer")
        await peer.send(conn, **update(T, 41, **trades_body(41)))
        gap = await next_of(client, Gap)
        assert (gap.from_seq, gap.to_seq, gap.reason) == (2, 40, "slow_consumer")
        assert (await next_of(client, Trade)).seq == 41
        await client.close()


async def test_a_revoked_key_ends_the_stream_with_its_code() -> None:
    async with Scripted() as peer:
        client = Client(peer.url, backoff_base=0.01)
        await client.connect()
        conn = await peer.accept()
        await conn.close(4003, "key_revoked")
        closed = await next_of(client, Closed)
        assert closed.code == "key_revoked"
        assert await client.next_event() is None
        await client.close()


async def test_refused_upgrade_raises_the_gateways_code() -> None:
    async with Scripted() as peer:
        peer.refuse = (401, {"code": "unknown_key", "message": "no such key"})
        client = Client(peer.url, Credentials.bearer("tg_test_" + "a" * 49))
        with pytest.raises(TickgateError) as error:
            await client.connect()
        assert error.value.code == "unknown_key" and error.value.status == 401
        assert peer.upgrades[0].headers["Authorization"].startswith("Bearer tg_test_")
        await client.close()


async def test_a_refused_subscription_raises_with_the_channel() -> None:
    async with Scripted() as peer:
        client = Client(peer.url)
        await client.connect()
        conn = await peer.accept()
        sub = asyncio.ensure_future(client.subscribe(["book:sim:NOPE-USDT"]))
        request = await peer.request(conn)
        await peer.send(
            conn,
            type="error",
            id=request["id"],
            code="unknown_channel",
            message="not served",
            channel="book:sim:NOPE-USDT",
        )
        with pytest.raises(TickgateError) as error:
            await sub
        assert error.value.code == "unknown_channel"
        assert error.value.channel == "book:sim:NOPE-USDT"
        await client.close()


async def test_signed_upgrade_headers_and_failover_across_urls() -> None:
    async with Scripted() as peer:
        dead = "http://127.0.0.1:9"  # nothing listens on the discard port
        client = Client(
            [dead, peer.url],
            Credentials.hmac("key_Test0001", "tg_test_" + "b" * 49),
            backoff_base=0.01,
        )
        await client.connect()  # the first URL is unreachable: the second is used
        await peer.accept()
        headers = peer.upgrades[0].headers
        assert 'keyid="key_Test0001"' in headers["Signature-Input"]
        assert headers["Signature"].startswith("sig1=:")
        await client.close()


async def test_unreachable_gateway() -> None:
    client = Client("http://127.0.0.1:9", connect_timeout=2)
    with pytest.raises(TickgateError) as error:
        await client.connect()
    assert error.value.code == "unreachable" and error.value.retryable
    await client.close()


def test_bad_arguments() -> None:
    for call in (
        lambda: Client([]),
        lambda: Client("ftp://x"),
        lambda: Client(event_buffer=0),
        lambda: Client(nonsense=1),
    ):
        with pytest.raises(TickgateError) as error:
            call()
        assert error.value.code == "invalid_argument"


async def test_empty_subscribe_is_refused_locally() -> None:
    client = Client("http://127.0.0.1:9")
    with pytest.raises(TickgateError) as error:
        await client.subscribe([])
    assert error.value.code == "invalid_argument"
    await client.close()


def _unused(event: Event) -> None:  # keeps the Event alias exercised by mypy on the tests
    del event
