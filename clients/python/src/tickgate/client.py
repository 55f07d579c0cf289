"""The streaming client: one WebSocket connection that stays up by itself, resumes what it
missed, and keeps local order books that are never silently wrong (docs/python.md).

One background task reads the connection, checks every message's position, applies book
messages to the mirrors and puts events into a bounded queue the application iterates. When the
queue is full the task waits, so it stops reading and the gateway applies its slow-consumer
policy (conflation arrives as Resync/Gap events; a disconnect as a reconnect with resume):
nothing is lost without an event saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .backoff import Backoff
from .book import BookInvalid, BookMirror
from .credentials import Credentials
from .errors import TickgateError, invalid_argument
from .events import (
    Closed,
    Event,
    Gap,
    KeyExpiring,
    Reconnecting,
    Recovered,
    Resync,
    ServerError,
    _Data,
    channel_class,
    channel_kind,
)
from .queue import EventQueue
from .rest import RestClient

log = logging.getLogger("tickgate")

# Close codes after which reconnecting with the same credentials cannot help.
_FATAL_CLOSES = {4002: "authentication failed", 4003: "key revoked", 4004: "key expired"}
# A value is sent on join for these and candles.*; trades, liquidations, alerts and onchain.*
# have no snapshot (a lost resume is a gap notice).
_SNAPSHOT_KINDS = ("book", "ticker", "status", "funding", "mark", "oi")


@dataclass(slots=True)
class Options:
    """Client settings (defaults as in the Rust SDK, docs/client.md)."""

    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int | None = None
    """Failed connection attempts in a row before the client gives up (None: never)."""
    stable_after: float = 10.0
    """A connection up this long resets the attempt count."""
    heartbeat_interval: float = 5.0
    """A WebSocket ping this often..."""
    heartbeat_timeout: float = 15.0
    """...and the connection is dead when its pong takes longer than this."""
    connect_timeout: float = 10.0
    """TCP + upgrade, each REST call, and the wait for a subscribe ack."""
    event_buffer: int = 4096
    """Events buffered for the application."""
    mirror_books: bool = True
    """Keep a verified local book for every ``book`` channel (``client.book(channel)``)."""
    max_message_bytes: int = 16 * 1024 * 1024
    resume_batch: int = 50
    """Channels per ``subscribe`` when resubscribing after a reconnect."""

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise invalid_argument("max_attempts must be at least 1 (or None)")
        for name in ("stable_after", "heartbeat_interval", "heartbeat_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise invalid_argument(f"{name} must be positive")
        if self.event_buffer < 1 or self.resume_batch < 1:
            raise invalid_argument("event_buffer and resume_batch must be at least 1")


@dataclass(slots=True)
class _Channel:
    name: str
    kind: str
    epoch: str | None = None
    seq: int = 0
    expect_snapshot: bool = False
    rejoining: bool = False
    mirror: BookMirror | None = None
    update_cls: type[_Data] | None = None
    snapshot_cls: type[_Data] | None = None

    def position(self) -> dict[str, Any] | None:
        return None if self.epoch is None else {"epoch": self.epoch, "seq": self.seq}


@dataclass(slots=True)
class _Pending:
    kind: str  # "subscribe" | "unsubscribe" | "resume" | "rejoin" | "internal"
    channels: list[str]
    future: asyncio.Future[list[str]] | None = None
    recovery: _Recovery | None = None


@dataclass(slots=True)
class _Recovery:
    """The acks still expected after a reconnect or swap, and what they said."""

    left: int
    recovered: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


def _urls(urls: str | Sequence[str]) -> list[tuple[str, str]]:
    """(REST base, WebSocket URL) for each gateway URL (http(s):// or ws(s)://)."""
    items = [urls] if isinstance(urls, str) else list(urls)
    if not items:
        raise invalid_argument("at least one gateway URL is needed")
    out = []
    for url in items:
        if not isinstance(url, str):
            raise invalid_argument("gateway URLs must be strings")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise invalid_argument(
                f"not a gateway URL (http://host:port or ws://host:port): {url!r}"
            )
        secure = scheme in ("https", "wss")
        http = urlunsplit(("https" if secure else "http", parts.netloc, "", "", ""))
        path = parts.path if scheme in ("ws", "wss") and parts.path not in ("", "/") else "/v1/ws"
        ws = urlunsplit(("wss" if secure else "ws", parts.netloc, path, "", ""))
        out.append((http, ws))
    return out


class Client:
    """A gateway connection for one application.

    ::

        async with Client("http://127.0.0.1:8080") as client:
            await client.subscribe(["book:sim:BTC-USDT", "trades:sim:BTC-USDT"])
            async for event in client:
                ...
                book = client.book("book:sim:BTC-USDT")   # best_bid(), top(n), ...

    ``urls`` may list several gateways (cluster edges): reconnects go round them. Options are
    keyword arguments of :class:`Options` (plus ``backoff_base``/``backoff_cap`` in seconds) or
    an ``options=`` instance.
    """

    def __init__(
        self,
        urls: str | Sequence[str] = "http://127.0.0.1:8080",
        credentials: Credentials | None = None,
        *,
        options: Options | None = None,
        **settings: Any,
    ) -> None:
        self._urls = _urls(urls)
        if options is not None and settings:
            raise invalid_argument("pass options= or keyword settings, not both")
        base, cap = settings.pop("backoff_base", None), settings.pop("backoff_cap", None)
        try:
            if base is not None or cap is not None:
                default = Backoff()
                base = default.base if base is None else base
                settings["backoff"] = Backoff(base, max(base, default.cap if cap is None else cap))
            self.options = options or Options(**settings)
        except (TypeError, ValueError) as error:
            raise invalid_argument(str(error)) from None
        self.credentials = credentials or Credentials.none()
        self.rest = RestClient(
            self._urls[0][0], self.credentials, timeout=self.options.connect_timeout
        )
        self.key_id: str | None = None
        self.scopes: list[str] = []
        self._url_index = 0
        self._ws: ClientConnection | None = None
        self._queue: EventQueue[Event] = EventQueue(self.options.event_buffer)
        self._channels: dict[str, _Channel] = {}
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._final: Closed | None = None
        self._finished = False
        self._attempt = 0
        self._connected_at = 0.0
        self._swap_lock = asyncio.Lock()
        self._backlog: deque[Event] = deque()
        self._actions: deque[Callable[[], Awaitable[None]]] = deque()

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection. Raises :class:`TickgateError`: ``unreachable``, or the
        gateway's refusal (``unknown_key``, ``unavailable``, ``nonce_reused``, …)."""
        if self._reader is not None:
            return
        if self._closing:
            raise TickgateError("closed", "the client is closed")
        last: TickgateError | None = None
        for offset in range(len(self._urls)):
            index = (self._url_index + offset) % len(self._urls)
            try:
                self._ws = await self._open(index, self.credentials)
            except TickgateError as error:
                if error.code != "unreachable":
                    raise
                last = error
                continue
            self._set_url(index)
            self._connected_at = time.monotonic()
            self._reader = asyncio.get_running_loop().create_task(
                self._run(), name="tickgate-reader"
            )
            return
        assert last is not None
        raise last

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection; the iterator then yields :class:`Closed` and stops."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 3.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        self._finish(Closed("closed by the application"))
        await self.rest.aclose()

    # -- subscriptions --------------------------------------------------------------------

    async def subscribe(self, channels: Iterable[str]) -> list[str]:
        """Subscribe; returns the canonical names the gateway acknowledged. Raises
        :class:`TickgateError` with the gateway's code (``unknown_channel``,
        ``invalid_channel``, ``insufficient_scope``, ``too_many_channels``, …; ``channel``
        names the offending channel). All or nothing, as on the wire."""
        names = self._names(channels)
        return await self._request("subscribe", names, {"op": "subscribe", "channels": names})

    async def unsubscribe(self, channels: Iterable[str]) -> list[str]:
        names = self._names(channels)
        for name in names:  # nothing more of these reaches the application
            self._channels.pop(name, None)
        return await self._request("unsubscribe", names, {"op": "unsubscribe", "channels": names})

    def book(self, channel: str) -> BookMirror | None:
        """The verified local book of a subscribed ``book`` channel (check ``.live``), or None
        (not subscribed, or ``mirror_books=False``)."""
        entry = self._channels.get(channel)
        return None if entry is None else entry.mirror

    def channels(self) -> list[str]:
        return sorted(self._channels)

    def position(self, channel: str) -> tuple[str, int] | None:
        """``(epoch, seq)`` of the last message of ``channel`` handed to the application (or
        the join position)."""
        entry = self._channels.get(channel)
        return None if entry is None or entry.epoch is None else (entry.epoch, entry.seq)

    # -- credentials ----------------------------------------------------------------------

    async def swap_credentials(self, credentials: Credentials) -> None:
        """Switch keys without a gap: REST uses the new key at once; the stream is replaced
        make-before-break (a new connection authenticated with the new key is opened while the
        old one stays open, then every channel is resumed on it from its exact position and the
        old one is closed). If the new key is refused, the old connection stays and the
        gateway's error is raised."""
        async with self._swap_lock:
            if self._reader is None or self._ws is None:
                self.credentials = self.rest.credentials = credentials
                return
            new_ws = await self._open(self._url_index, credentials)
            self.credentials = self.rest.credentials = credentials
            old, self._ws = self._ws, new_ws
            self._connected_at = time.monotonic()
            # The reader notices the switch after the message it is handling (or when the
            # old connection ends) and resumes every channel on the new one.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.close(), 2.0)

    # -- events ---------------------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Event:
        event = await self.next_event()
        if event is None:
            raise StopAsyncIteration
        return event

    async def next_event(self) -> Event | None:
        """The next event; :class:`Closed` is the last one, then None."""
        if self._finished:
            return None
        event = self._queue.get_nowait()
        if event is None:
            if self._final is not None:
                self._finished = True
                return self._final
            if self._reader is None:
                raise TickgateError("closed", "not connected: call connect() first")
            # The reader puts Closed into the queue when it ends.
            event = await self._queue.get()
        if isinstance(event, Closed):
            self._finished = True
        return event

    # -- internals: connecting ------------------------------------------------------------

    def _set_url(self, index: int) -> None:
        self._url_index = index
        self.rest.base_url = self._urls[index][0]

    async def _open(self, index: int, credentials: Credentials) -> ClientConnection:
        url = self._urls[index][1]
        token = await credentials.fresh_token()
        if token is not None:
            url += "?token=" + quote(token, safe="")
        headers = credentials.headers("GET", url)
        try:
            return await websockets.connect(
                url,
                additional_headers=headers,
                max_size=self.options.max_message_bytes,
                ping_interval=self.options.heartbeat_interval,
                ping_timeout=self.options.heartbeat_timeout,
                open_timeout=self.options.connect_timeout,
                close_timeout=2.0,
                compression=None,
                proxy=None,
                max_queue=256,
                user_agent_header="tickgate-python/0.1",
            )
        except InvalidStatus as error:
            raise _refusal(error) from None
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as error:
            raise TickgateError(
                "unreachable",
                f"cannot connect to {self._urls[index][0]}: {type(error).__name__}: {error}",
            ) from None

    async def _run(self) -> None:
        """The reader: one connection after another until closed or given up."""
        reason = "closed"
        code: str | None = None
        try:
            while not self._closing:
                ws = self._ws
                assert ws is not None
                try:
                    async for text in ws:
                        self._handle(text)
                        if self._actions or self._backlog:
                            await self._after_message()
                        if self._ws is not ws:
                            break
                except ConnectionClosed:
                    pass  # the close code and reason are read from the connection below
                if self._closing:
                    break
                if self._ws is not ws:  # swapped: resume everything on the new connection
                    self._fail_pending("the connection was replaced before the gateway answered")
                    await self._resubscribe_all()
                    continue
                close_code = ws.close_code
                close_reason = ws.close_reason or ""
                if close_code in _FATAL_CLOSES:
                    reason = f"{_FATAL_CLOSES[close_code]} ({close_code} {close_reason})".strip()
                    code = close_reason or None
                    break
                why = _describe_close(close_code, close_reason, ws)
                self._fail_pending(f"connection lost ({why}) before the gateway answered")
                await self._reconnect(why)
        except _GiveUp as give_up:
            reason, code = give_up.reason, give_up.code
        except asyncio.CancelledError:
            reason = "closed by the application"
            raise
        except Exception as error:  # a bug here must end the stream loudly, not hang it
            log.exception("tickgate client stopped on an internal error")
            reason = f"internal error: {type(error).__name__}: {error}"
        finally:
            if self._closing:
                reason, code = "closed by the application", None
            self._fail_pending(reason)
            self._finish(Closed(reason, code))
            if self._ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._ws.close(), 2.0)

    async def _reconnect(self, reason: str) -> None:
        if time.monotonic() - self._connected_at >= self.options.stable_after:
            self._attempt = 0
        while not self._closing:
            self._attempt += 1
            limit = self.options.max_attempts
            if limit is not None and self._attempt > limit:
                raise _GiveUp(f"gave up after {limit} failed attempts: {reason}", "unreachable")
            index = (self._url_index + (1 if len(self._urls) > 1 else 0)) % len(self._urls)
            delay = self.options.backoff.delay(self._attempt)
            self._push(Reconnecting(self._attempt, delay, reason, self._urls[index][0]))
            await self._drain()
            await asyncio.sleep(delay)
            self._set_url(index)
            try:
                ws = await self._open(index, self.credentials)
            except TickgateError as error:
                if error.status in (401, 403):
                    raise _GiveUp(
                        f"the gateway refused the key: {error.message}", error.code
                    ) from None
                reason = f"{error.code}: {error.message}"
                continue
            self._ws = ws
            self._connected_at = time.monotonic()
            await self._resubscribe_all()
            return

    async def _resubscribe_all(self) -> None:
        names = list(self._channels)
        if not names:
            return
        batch = self.options.resume_batch
        chunks = [names[i : i + batch] for i in range(0, len(names), batch)]
        recovery = _Recovery(left=len(chunks))
        for chunk in chunks:
            await self._send_join(chunk, "resume", recovery, resume=True)

    async def _send_join(
        self, names: list[str], kind: str, recovery: _Recovery | None, *, resume: bool
    ) -> None:
        resume_map = {}
        for name in names:
            entry = self._channels[name]
            entry.rejoining = True
            position = entry.position() if resume else None
            if position is not None:
                resume_map[name] = position
        message: dict[str, Any] = {"op": "subscribe", "channels": names}
        if resume_map:
            message["resume"] = resume_map
        self._next_id += 1
        self._pending[self._next_id] = _Pending(kind, names, recovery=recovery)
        message["id"] = self._next_id
        await self._send(message)

    async def _rejoin(self, entry: _Channel, *, resume: bool) -> None:
        """Leave and rejoin one channel on this connection (a seq jump, or a wrong mirror)."""
        if entry.rejoining:
            return
        self._next_id += 1
        self._pending[self._next_id] = _Pending("internal", [entry.name])
        await self._send({"op": "unsubscribe", "id": self._next_id, "channels": [entry.name]})
        await self._send_join([entry.name], "rejoin", _Recovery(left=1), resume=resume)

    async def _send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return
        # A closed connection is noticed by the reader, which resubscribes everything.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(message, separators=(",", ":")))

    async def _request(self, kind: str, names: list[str], message: dict[str, Any]) -> list[str]:
        if self._reader is None:
            await self.connect()
        if self._final is not None:
            raise TickgateError("closed", f"the client is closed: {self._final.reason}")
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._next_id += 1
        self._pending[self._next_id] = _Pending(kind, names, future)
        message["id"] = self._next_id
        await self._send(message)
        try:
            return await asyncio.wait_for(future, self.options.connect_timeout)
        except asyncio.TimeoutError:
            self._pending.pop(message["id"], None)
            raise TickgateError(
                "unreachable", f"no answer to {kind} within {self.options.connect_timeout} s"
            ) from None

    def _fail_pending(self, reason: str) -> None:
        for request_id in [i for i, p in self._pending.items()]:
            pending = self._pending.pop(request_id)
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(TickgateError("unreachable", reason))
        for entry in self._channels.values():
            entry.rejoining = False

    @staticmethod
    def _names(channels: Iterable[str]) -> list[str]:
        if isinstance(channels, str):
            channels = [channels]
        names = list(channels)
        if not names:
            raise invalid_argument("channels must not be empty")
        if not all(isinstance(n, str) and n for n in names):
            raise invalid_argument("channel names must be non-empty strings")
        return list(dict.fromkeys(names))

    # -- internals: messages --------------------------------------------------------------

    def _push(self, event: Event) -> None:
        """Queue an event for the application; what does not fit waits in a backlog that the
        reader drains (waiting for room) before it reads the next message."""
        if self._backlog or not self._queue.put_nowait(event):
            self._backlog.append(event)

    async def _drain(self) -> None:
        while self._backlog:
            await self._queue.put(self._backlog.popleft())

    async def _after_message(self) -> None:
        """What handling a message asked for that needs the network, then room in the queue."""
        while self._actions:
            action = self._actions.popleft()
            await action()
        await self._drain()

    def _finish(self, closed: Closed) -> None:
        if self._final is not None:
            return
        self._final = closed
        while self._backlog:  # the reader has stopped: what it held goes in, then Closed
            self._queue.force(self._backlog.popleft())
        self._queue.force(closed)

    def _handle(self, text: str | bytes) -> None:
        try:
            msg = json.loads(text)
            kind = msg["type"]
        except (ValueError, TypeError, KeyError):
            log.warning("tickgate: ignoring a message that is not a JSON object with a type")
            return
        if kind == "update" or kind == "snapshot":
            self._on_data(msg, kind == "snapshot")
        elif kind == "subscribed":
            self._on_subscribed(msg)
        elif kind == "unsubscribed":
            pending = self._take_pending(msg)
            if pending is not None and pending.future is not None and not pending.future.done():
                pending.future.set_result(list(msg.get("channels", [])))
        elif kind == "resync":
            self._on_resync(msg)
        elif kind == "gap":
            self._on_gap(msg)
        elif kind == "error":
            self._on_error(msg)
        elif kind == "authenticated":
            self.key_id = msg.get("key_id")
            self.scopes = list(msg.get("scopes", []))
        elif kind == "key_expiring":
            self._push(KeyExpiring(msg.get("key_id"), msg.get("at"), str(msg.get("message", ""))))
        # pong and unknown types are ignored, as the protocol asks.

    def _take_pending(self, msg: dict[str, Any]) -> _Pending | None:
        request_id = msg.get("id")
        return self._pending.pop(request_id, None) if isinstance(request_id, int) else None

    def _on_data(self, msg: dict[str, Any], snapshot: bool) -> None:
        entry = self._channels.get(msg.get("channel"))  # type: ignore[arg-type]
        if entry is None or entry.rejoining:
            return
        seq, epoch = msg["seq"], msg["epoch"]
        same_epoch = epoch == entry.epoch
        if snapshot:
            if same_epoch and (seq < entry.seq or (seq == entry.seq and not entry.expect_snapshot)):
                return  # a duplicate
        elif not same_epoch or seq != entry.seq + 1:
            if same_epoch and seq <= entry.seq:
                return  # a duplicate
            # Something between our position and this message was lost on the way: rejoin at
            # the position; the gateway replays it or says it cannot.
            log.info(
                "tickgate: %s jumped from %s/%s to %s/%s; rejoining",
                entry.name,
                entry.epoch,
                entry.seq,
                epoch,
                seq,
            )
            self._actions.append(lambda: self._rejoin(entry, resume=True))
            return
        mirror = entry.mirror
        if mirror is not None:
            levels_b, levels_a = msg.get("bids") or [], msg.get("asks") or []
            checksum = msg.get("checksum")
            try:
                if snapshot:
                    mirror.load(levels_b, levels_a, seq=seq, epoch=epoch, checksum=checksum)
                else:
                    mirror.apply(levels_b, levels_a, seq=seq, epoch=epoch, checksum=checksum)
            except BookInvalid as invalid:
                log.warning("tickgate: %s: %s; fetching a fresh snapshot", entry.name, invalid)
                mirror.invalidate()
                entry.epoch, entry.seq = epoch, seq
                self._push(Resync(entry.name, seq, invalid.reason))
                self._actions.append(lambda: self._rejoin(entry, resume=False))
                return
        entry.epoch, entry.seq, entry.expect_snapshot = epoch, seq, False
        cls = entry.snapshot_cls if snapshot else entry.update_cls
        assert cls is not None
        self._push(cls(msg))  # type: ignore[arg-type]

    def _on_resync(self, msg: dict[str, Any]) -> None:
        entry = self._channels.get(msg.get("channel"))  # type: ignore[arg-type]
        if entry is None or entry.rejoining or msg.get("seq", 0) <= entry.seq:
            return
        entry.seq = msg["seq"]
        entry.expect_snapshot = True
        if entry.mirror is not None:
            entry.mirror.invalidate()
        self._push(Resync(entry.name, entry.seq, str(msg.get("reason", ""))))

    def _on_gap(self, msg: dict[str, Any]) -> None:
        entry = self._channels.get(msg.get("channel"))  # type: ignore[arg-type]
        if entry is None or entry.rejoining:
            return
        from_seq, to_seq = int(msg["from_seq"]), int(msg["to_seq"])
        entry.seq = max(entry.seq, to_seq)
        self._push(Gap(entry.name, from_seq, to_seq, str(msg.get("reason", ""))))

    def _on_subscribed(self, msg: dict[str, Any]) -> None:
        pending = self._take_pending(msg)
        if pending is None:
            return
        names = list(msg.get("channels", pending.channels))
        recovered: dict[str, bool] = msg.get("recovered") or {}
        positions: dict[str, dict[str, Any]] = msg.get("positions") or {}
        notices: list[Event] = []
        for name in names:
            entry = self._channels.get(name)
            if entry is None:
                if pending.kind != "subscribe":
                    continue  # unsubscribed by the application meanwhile
                kind = channel_kind(name)
                entry = _Channel(
                    name,
                    kind,
                    update_cls=channel_class(name, False),
                    snapshot_cls=channel_class(name, True),
                )
                if kind == "book" and self.options.mirror_books:
                    entry.mirror = BookMirror(name)
                self._channels[name] = entry
            entry.rejoining = False
            position = positions.get(name)
            if position is not None:
                entry.epoch, entry.seq = str(position["epoch"]), int(position["seq"])
                entry.expect_snapshot = entry.kind in _SNAPSHOT_KINDS or entry.kind.startswith(
                    "candles."
                )
                if entry.mirror is not None:
                    entry.mirror.invalidate()
            if name in recovered and not recovered[name] and entry.kind == "book":
                notices.append(Resync(name, entry.seq, "not_recovered"))
            if pending.recovery is not None and pending.kind != "subscribe":
                if recovered.get(name):
                    pending.recovery.recovered.append(name)
                else:
                    pending.recovery.lost.append(name)
        for notice in notices:
            self._push(notice)
        recovery = pending.recovery
        if recovery is not None:
            recovery.left -= 1
            if recovery.left == 0:
                self._push(Recovered(recovery.recovered, recovery.lost))
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(names)

    def _on_error(self, msg: dict[str, Any]) -> None:
        code, text = str(msg.get("code", "")), str(msg.get("message", ""))
        channel = msg.get("channel")
        pending = self._take_pending(msg)
        if pending is None:
            self._push(ServerError(code, text, channel))
            return
        if pending.future is not None:
            if not pending.future.done():
                pending.future.set_exception(TickgateError(code, text, channel=channel))
            return
        if pending.kind in ("resume", "rejoin"):
            # Our own rejoin was refused (e.g. the channel is no longer served): tell the
            # application, drop the offending channel and retry the others.
            self._push(ServerError(code, text, channel))
            rest = [n for n in pending.channels if n != channel and n in self._channels]
            if channel in self._channels:
                del self._channels[channel]
            if not rest or channel is None:
                for name in rest:
                    self._channels.pop(name, None)
                if pending.recovery is not None:
                    pending.recovery.left -= 1
                    pending.recovery.lost.extend(pending.channels)
                    if pending.recovery.left == 0:
                        self._push(Recovered(pending.recovery.recovered, pending.recovery.lost))
                return
            kind, recovery = pending.kind, pending.recovery
            self._actions.append(lambda: self._send_join(rest, kind, recovery, resume=True))


class _GiveUp(Exception):
    def __init__(self, reason: str, code: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _refusal(error: InvalidStatus) -> TickgateError:
    """The gateway's JSON refusal of an upgrade as an error with its code."""
    response = error.response
    try:
        body = json.loads(response.body or b"")
        return TickgateError(
            str(body["code"]), str(body.get("message", "")), status=response.status_code
        )
    except (ValueError, KeyError, TypeError):
        return TickgateError(
            "unreachable" if response.status_code >= 500 else "protocol_error",
            f"upgrade refused with HTTP {response.status_code}",
            status=response.status_code,
        )


def _describe_close(code: int | None, reason: str, ws: ClientConnection) -> str:
    sent = ws.protocol.close_sent
    if sent is not None and sent.code == 1011 and "ping" in sent.reason:
        return "heartbeat timeout"  # websockets' keepalive: no pong in heartbeat_timeout
    if code is None:
        return "connection lost"
    if code == 1006:
        return "connection lost (1006: closed without a close frame)"
    return f"closed {code} {reason}".strip()
