"""The SDK against the real gateway binary (TICKGATE_BIN): book mirror equals REST, resume
through a cutting proxy and across a kill -9, signing and replay refusal, ws-tokens, key swap
under a live stream, error codes, history pagination, the CLI and the sync wrapper."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tickgate import (
    Client,
    Closed,
    Credentials,
    Gap,
    Reconnecting,
    Recovered,
    RestClient,
    Resync,
    Snapshot,
    TickgateError,
    Trade,
    Update,
    is_data,
    ws_token_provider,
)

from .conftest import Gateway, Key

B = "book:sim:BTC-USDT"
T = "trades:sim:BTC-USDT"


async def until(client: Client, predicate: Any, timeout: float = 20.0) -> list[Any]:
    """Events until ``predicate(event)`` is true (inclusive); fails after ``timeout``."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; last events: {seen[-5:]}"
        event = await asyncio.wait_for(client.next_event(), left)
        assert event is not None, "the stream ended"
        seen.append(event)
        if predicate(event):
            return seen


async def assert_mirror_equals_rest(
    client: Client, rest: RestClient, channel: str = B, attempts: int = 20
) -> None:
    """Takes GET /v1/book, then consumes events until the mirror is at that seq, and compares
    every level. Retries when the stream had already passed the REST seq."""
    venue, symbol = channel.split(":")[1:]
    for _ in range(attempts):
        answer = await rest.book(venue, symbol, depth=5000)
        target = int(answer["seq"])
        mirror = client.book(channel)
        assert mirror is not None
        if (
            mirror.live
            and mirror.epoch == answer["epoch"]
            and mirror.seq is not None
            and mirror.seq > answer["seq"]
        ):
            continue  # the stream is ahead of this answer: ask again
        await until(
            client,
            lambda e, target=target: (
                (m := client.book(channel)) is not None
                and m.live
                and m.seq is not None
                and m.seq >= target
            ),
        )
        mirror = client.book(channel)
        assert mirror is not None
        if mirror.seq != answer["seq"]:
            continue
        assert mirror.epoch == answer["epoch"]
        bids, asks = mirror.text_levels()
        assert [list(b) for b in bids] == answer["bids"]
        assert [list(a) for a in asks] == answer["asks"]
        assert mirror.checksum == answer["checksum"] == mirror.computed_checksum()
        return
    pytest.fail("never caught the mirror at the REST book's seq")


def trade_seqs(events: list[Any]) -> list[int]:
    return [e.seq for e in events if isinstance(e, Trade)]


def assert_consecutive(seqs: list[int]) -> None:
    assert seqs, "no trades"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"not gap-free: {seqs}"


async def test_book_mirror_equals_rest_book_at_the_same_seq(gateway: Gateway) -> None:
    async with Client(gateway.url) as client:
        await client.subscribe([B, "book:sim:ETH-USDT"])
        await until(client, lambda e: isinstance(e, Update) and e.channel == B)
        for _ in range(3):
            await assert_mirror_equals_rest(client, client.rest)
        await assert_mirror_equals_rest(client, client.rest, "book:sim:ETH-USDT")
        best = client.book(B).best_bid()  # type: ignore[union-attr]
        assert best is not None and best.price > 0


async def test_a_cutting_proxy_is_survived_with_exact_resume(
    gateway: Gateway, proxy_to: Any
) -> None:
    proxy = await proxy_to(gateway.port)
    async with Client(proxy.url, backoff_base=0.05, backoff_cap=0.2) as client:
        await client.subscribe([T, B])
        events = await until(client, lambda e: isinstance(e, Trade))
        for _ in range(3):
            events += await until(client, lambda e: isinstance(e, Trade))
            proxy.cut()
            events += await until(client, lambda e: isinstance(e, Recovered))
            assert events[-1].recovered and not events[-1].lost, events[-1]
        events += await until(client, lambda e: isinstance(e, Trade) and e.seq > 0)
        assert any(isinstance(e, Reconnecting) for e in events)
        assert not any(isinstance(e, Gap | Resync) for e in events), [
            e for e in events if isinstance(e, Gap | Resync)
        ]
        assert_consecutive(trade_seqs(events))
        book_seqs = [e.seq for e in events if isinstance(e, Update) and e.channel == B]
        assert book_seqs == sorted(set(book_seqs))  # each seq at most once, in order
        rest = RestClient(gateway.url)
        await assert_mirror_equals_rest(client, rest)
        await rest.aclose()
    assert proxy.connections >= 4


async def test_a_silent_connection_is_detected_by_the_heartbeat(
    gateway: Gateway, proxy_to: Any
) -> None:
    proxy = await proxy_to(gateway.port)
    async with Client(
        proxy.url, backoff_base=0.05, heartbeat_interval=0.3, heartbeat_timeout=0.6
    ) as client:
        await client.subscribe([T])
        events = await until(client, lambda e: isinstance(e, Trade))
        proxy.stall()  # nothing arrives any more, and the socket stays open
        started = time.monotonic()
        events += await until(client, lambda e: isinstance(e, Reconnecting), timeout=10)
        assert time.monotonic() - started < 5
        assert "heartbeat" in events[-1].reason, events[-1]
        events += await until(client, lambda e: isinstance(e, Recovered))
        assert events[-1].recovered == [T]
        events += await until(client, lambda e: isinstance(e, Trade))
        assert_consecutive(trade_seqs(events))


async def test_a_gateway_killed_with_sigkill_and_restarted(gateway: Gateway) -> None:
    async with Client(gateway.url, backoff_base=0.1, backoff_cap=0.5) as client:
        await client.subscribe([T, B])
        events = await until(client, lambda e: isinstance(e, Trade))
        old_epoch = client.position(B)
        gateway.kill9()
        gateway.start()  # same port, same data directory
        events = await until(client, lambda e: isinstance(e, Recovered), timeout=60)
        assert any(isinstance(e, Reconnecting) for e in events)
        recovered = events[-1]
        assert set(recovered.lost) == {T, B}  # a new epoch: nothing can be replayed
        assert any(isinstance(e, Resync) and e.reason == "not_recovered" for e in events)
        more = await until(client, lambda e: isinstance(e, Snapshot) and e.channel == B)
        assert more[-1].resync and more[-1].meta.epoch != old_epoch[0]  # type: ignore[index]
        more += await until(client, lambda e: isinstance(e, Gap | Trade) and e.channel == T)
        gaps = [e for e in more if isinstance(e, Gap)]
        assert gaps and gaps[0].reason == "epoch_changed", more  # told before any new trade
        rest = RestClient(gateway.url)
        await assert_mirror_equals_rest(client, rest)
        await rest.aclose()


async def make_keys(gateway: Gateway, *specs: tuple[str, str]) -> list[Key]:
    return [gateway.create_key(kind, scopes) for kind, scopes in specs]


def creds(key: Key, kind: str) -> Credentials:
    if kind == "hmac":
        return Credentials.hmac(key.id, key.secret or "")
    if kind == "ed25519":
        return Credentials.ed25519_pem(key.id, key.pem or b"")
    return Credentials.bearer(key.secret or "")


@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
async def test_signed_rest_and_stream_accepted_replays_refused(
    gateway_factory: Any, kind: str
) -> None:
    gateway = gateway_factory(start=False)
    (key,) = await make_keys(gateway, (kind, "market:read,history:read"))
    gateway.start()
    credentials = creds(key, kind)
    async with RestClient(gateway.url, credentials) as rest:
        ticker = await rest.ticker("sim", "BTC-USDT")
        assert "volume_24h" in ticker
        page = [t async for t in rest.trades("sim", "BTC-USDT", limit=2, start=0)]
        assert isinstance(page, list)
    # The same signed request twice: the second is a replay.
    url = gateway.url + "/v1/ticker?venue=sim&symbol=BTC-USDT"
    headers = credentials.headers("GET", url)
    async with httpx.AsyncClient() as http:
        first = await http.get(url, headers=headers)
        second = await http.get(url, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 401 and second.json()["code"] == "nonce_reused"
    async with Client(gateway.url, credentials) as client:
        await client.subscribe([T])
        await until(client, lambda e: isinstance(e, Trade))
        assert client.key_id == key.id and "market:read" in client.scopes


async def test_single_use_ws_tokens(gateway_factory: Any) -> None:
    gateway = gateway_factory(start=False)
    (backend_key,) = await make_keys(gateway, ("hmac", "market:read"))
    gateway.start()
    backend = RestClient(gateway.url, creds(backend_key, "hmac"))
    client = Client(
        gateway.url, Credentials.ws_token(ws_token_provider(backend)), backoff_base=0.05
    )
    async with client:
        await client.subscribe([T])
        await until(client, lambda e: isinstance(e, Trade))
        assert client.key_id == backend_key.id
    token = await backend.ws_token()
    used: list[str] = []

    async def same_token() -> str:
        used.append(token)
        return token

    first = Client(gateway.url, Credentials.ws_token(same_token))
    await first.connect()
    second = Client(gateway.url, Credentials.ws_token(same_token))
    with pytest.raises(TickgateError) as error:
        await second.connect()
    assert error.value.code == "token_used" and error.value.status == 401
    await first.close()
    await second.close()
    await backend.aclose()


async def test_key_swap_under_a_live_stream_keeps_every_message(gateway_factory: Any) -> None:
    gateway = gateway_factory(sim_rate=100, start=False)
    old, new, admin = await make_keys(
        gateway, ("hmac", "market:read"), ("ed25519", "market:read"), ("hmac", "keys:admin")
    )
    gateway.start()
    async with Client(gateway.url, creds(old, "hmac")) as client:
        await client.subscribe([T, B])
        events = await until(client, lambda e: isinstance(e, Trade))
        events += await until(client, lambda e: isinstance(e, Trade))
        assert client.key_id == old.id
        await client.swap_credentials(creds(new, "ed25519"))
        events += await until(client, lambda e: isinstance(e, Recovered))
        assert events[-1].recovered and not events[-1].lost
        # The old key is revoked: the stream, now on the new key, must not notice.
        async with RestClient(gateway.url, creds(admin, "hmac")) as rest:
            await rest.post(f"/admin/v1/keys/{old.id}/revoke", {"reason": "swap test"})
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            events += await until(client, lambda e: isinstance(e, Trade | Update | Closed))
        assert client.key_id == new.id
        assert not any(isinstance(e, Gap | Resync | Closed | Reconnecting) for e in events), [
            e for e in events if not is_data(e)
        ]
        assert_consecutive(trade_seqs(events))
        # A refused swap keeps the stream: the revoked key cannot be swapped back in.
        with pytest.raises(TickgateError) as error:
            await client.swap_credentials(creds(old, "hmac"))
        assert error.value.code == "key_revoked"
        events = await until(client, lambda e: isinstance(e, Trade))
        assert client.key_id == new.id


async def test_bad_input_raises_the_right_codes(gateway_factory: Any) -> None:
    gateway = gateway_factory(start=False)
    (history_only,) = await make_keys(gateway, ("bearer", "history:read"))
    gateway.start()
    async with Client(gateway.url) as client:
        cases = [
            ("candles.2m:sim:BTC-USDT", "invalid_channel"),
            ("book:sim:NOPE-USDT", "unknown_channel"),
            ("orders:sim:BTC-USDT", "invalid_channel"),
        ]
        for channel, code in cases:
            with pytest.raises(TickgateError) as error:
                await client.subscribe([channel, T])
            assert error.value.code == code and error.value.channel == channel
        assert client.channels() == []  # all or nothing
        rest = client.rest
        with pytest.raises(TickgateError) as error:
            await rest.ticker("sim", "XRP-USDT")
        assert (error.value.code, error.value.status) == ("unknown_instrument", 404)
        with pytest.raises(TickgateError) as error:
            await rest.get("/v1/book", venue="sim", symbol="BTC-USDT", depth=0)
        assert (error.value.code, error.value.status) == ("bad_param", 400)
        with pytest.raises(TickgateError) as error:
            await rest.book("sim", "BTC-USDT", depth=0)
        assert error.value.code == "invalid_argument"  # refused before sending
        with pytest.raises(TickgateError) as error:
            async for _ in rest.candles("sim", "BTC-USDT", "1m", start="yesterday"):
                pass
        assert error.value.code == "invalid_time"
        with pytest.raises(TickgateError) as error:
            await rest.get("/nope")
        assert (error.value.code, error.value.status) == ("not_found", 404)
        # The connection keeps working after every refusal.
        assert await client.subscribe([T]) == [T]
    unknown = Client(gateway.url, Credentials.bearer("tg_test_" + "A" * 49))
    with pytest.raises(TickgateError) as error:
        await unknown.connect()
    assert error.value.code in ("malformed_key", "unknown_key") and error.value.status == 401
    await unknown.close()
    async with Client(gateway.url, creds(history_only, "bearer")) as client:
        with pytest.raises(TickgateError) as error:
            await client.subscribe([T])
        assert error.value.code == "insufficient_scope"


async def test_history_pages_as_async_iterators(gateway: Gateway) -> None:
    await asyncio.sleep(3)  # let some trades and 1 s candles be stored
    async with RestClient(gateway.url) as rest:
        pages = [p async for p in rest.trades_pages("sim", "BTC-USDT", limit=3)]
        ids = [int(t["id"]) for page in pages for t in page]
        assert len(pages) >= 2 and ids == sorted(ids) and len(ids) == len(set(ids))
        all_rows = [t async for t in rest.trades("sim", "BTC-USDT", limit=5000)]
        assert [int(t["id"]) for t in all_rows][: len(ids)] == ids
        newest = [t async for t in rest.trades("sim", "BTC-USDT", limit=2, order="desc")]
        assert int(newest[0]["id"]) >= int(newest[-1]["id"])
        candles = [c async for c in rest.candles("sim", "BTC-USDT", "1s", limit=2)]
        assert candles and all(c["complete"] in (True, False) for c in candles)
        pandas = pytest.importorskip("pandas")
        from tickgate.frames import collect_dataframe

        frame = await collect_dataframe(rest.trades("sim", "BTC-USDT", limit=50))
        assert len(frame) == len(all_rows) or len(frame) >= len(ids)
        assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
        assert isinstance(frame["price"].iloc[0], type(__import__("decimal").Decimal(1)))
        assert pandas.api.types.is_float_dtype(
            (await collect_dataframe(rest.candles("sim", "BTC-USDT", "1s"), exact=False))["close"]
        )


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


async def test_cli_tail(gateway: Gateway) -> None:
    done = await asyncio.to_thread(
        run_cli, "tail", "--url", gateway.url, "--count", "3", "--json", T, B
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith('{"type": "subscribed"') and len(lines) == 4
    plain = await asyncio.to_thread(run_cli, "tail", "--url", gateway.url, "--count", "1", B)
    assert plain.returncode == 0 and " snapshot bids[" in plain.stdout
    refused = await asyncio.to_thread(run_cli, "tail", "--url", gateway.url, "book:sim:NOPE-X")
    assert refused.returncode == 2 and "error: unknown_channel" in refused.stderr
    unreachable = await asyncio.to_thread(run_cli, "tail", "--url", "http://127.0.0.1:9", T)
    assert unreachable.returncode == 1 and "cannot connect" in unreachable.stderr
    bad = await asyncio.to_thread(run_cli, "tail", "--count", "0", T)
    assert bad.returncode == 2


def test_sync_wrapper(gateway: Gateway) -> None:
    from tickgate.sync import Client as SyncClient
    from tickgate.sync import Rest

    with SyncClient(gateway.url) as client:
        assert client.subscribe([B]) == [B]
        for event in client:
            if isinstance(event, Update):
                break
        book = client.book(B)
        assert book is not None and book.live and book.best_bid() is not None
        assert client.rest.instruments()
    with Rest(gateway.url) as rest:
        assert rest.ticker("sim", "BTC-USDT")["volume_24h"]
        deadline = time.monotonic() + 20
        rows: list[dict[str, Any]] = []
        while not rows and time.monotonic() < deadline:  # until the first trades are stored
            rows = [
                t for _, t in zip(range(3), rest.trades("sim", "BTC-USDT", limit=2), strict=False)
            ]
            time.sleep(0.2)
        assert rows and all("price" in row and "id" in row for row in rows), rows


async def test_perp_channels_and_rest_on_a_venue_without_perpetuals(gateway: Gateway) -> None:
    # The sim venue serves spot symbols only: a well-formed perpetual channel is
    # unknown_channel and the perpetual REST routes are 404 unknown_instrument, through the
    # SDK's typed helpers (the shapes themselves are unit-tested in tests/test_perp.py).
    async with Client(gateway.url) as client:
        for channel in ("funding:sim:BTC-USDT-PERP", "liquidations:sim:BTC-USDT-PERP"):
            with pytest.raises(TickgateError) as error:
                await client.subscribe([channel])
            assert (error.value.code, error.value.channel) == ("unknown_channel", channel)
        for call in (client.rest.funding, client.rest.mark, client.rest.open_interest):
            with pytest.raises(TickgateError) as error:
                await call("sim", "BTC-USDT-PERP")
            assert (error.value.code, error.value.status) == ("unknown_instrument", 404)
        assert await client.subscribe([T]) == [T]
