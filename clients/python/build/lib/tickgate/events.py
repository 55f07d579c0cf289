"""What :class:`tickgate.Client` yields, in order. Data events of a channel arrive in ``seq``
order, each seq at most once; whenever something could not be delivered the application is
told by a :class:`Resync` or :class:`Gap` event, never silently.

Prices and sizes are exact :class:`~decimal.Decimal` values (book levels are converted on first
access, so a client that only counts messages does not pay for it). ``raw`` on data events is
the message as the gateway sent it, parsed from JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .book import Level


@dataclass(frozen=True, slots=True)
class Meta:
    """Where a data message sits in its channel."""

    channel: str
    epoch: str
    seq: int
    ts: int
    """Exchange time of the newest input, µs since the Unix epoch."""
    recv_ts: int
    """Gateway receive time, µs since the Unix epoch."""


class _HasMeta:
    """``channel``, ``seq`` and ``epoch`` of a data event, from its :class:`Meta`."""

    __slots__ = ()
    meta: Meta

    @property
    def channel(self) -> str:
        return self.meta.channel

    @property
    def seq(self) -> int:
        return self.meta.seq

    @property
    def epoch(self) -> str:
        return self.meta.epoch


def _levels(raw: list[list[str]]) -> list[Level]:
    return [Level(Decimal(p), Decimal(s)) for p, s in raw]


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass(frozen=True, slots=True)
class _BookMessage(_HasMeta):
    meta: Meta
    raw: dict[str, Any] = field(repr=False)

    @property
    def bids(self) -> list[Level]:
        """The message's bid levels (in an update: absolute sizes, 0 removes the price)."""
        return _levels(self.raw.get("bids") or [])

    @property
    def asks(self) -> list[Level]:
        return _levels(self.raw.get("asks") or [])

    @property
    def checksum(self) -> int | None:
        """The gateway's checksum of the book after this message (verified by the client when
        it mirrors the book)."""
        value = self.raw.get("checksum")
        return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class Snapshot(_BookMessage):
    """A full book: the first on a book channel, and after every :class:`Resync`."""

    resync: bool = False
    """True when it replaces a book the client had (after a resync or a lost resume)."""


@dataclass(frozen=True, slots=True)
class Update(_BookMessage):
    """A book change following the previous book message without a gap."""


@dataclass(frozen=True, slots=True)
class TradeItem:
    id: str
    price: Decimal
    size: Decimal
    side: str
    """The aggressor's side: ``buy`` or ``sell``."""
    ts: int


@dataclass(frozen=True, slots=True)
class Trade(_HasMeta):
    """One venue batch of trades (``trades`` channels)."""

    meta: Meta
    raw: dict[str, Any] = field(repr=False)

    @property
    def trades(self) -> list[TradeItem]:
        return [
            TradeItem(
                str(t["id"]), Decimal(t["price"]), Decimal(t["size"]), t["side"], int(t["ts"])
            )
            for t in self.raw.get("trades") or []
        ]


@dataclass(frozen=True, slots=True)
class Ticker(_HasMeta):
    """The whole ticker (``ticker`` channels). ``snapshot`` marks the value sent on (re)join."""

    meta: Meta
    snapshot: bool
    resync: bool
    bid: Decimal | None
    bid_size: Decimal | None
    ask: Decimal | None
    ask_size: Decimal | None
    last: Decimal | None
    volume_24h: Decimal
    high_24h: Decimal | None
    low_24h: Decimal | None
    change_24h: Decimal | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Candle(_HasMeta):
    """One candle (``candles.{interval}`` channels): the open one each time it changes, each
    closed one once with ``closed=True``."""

    meta: Meta
    snapshot: bool
    resync: bool
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    closed: bool
    complete: bool
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Status(_HasMeta):
    """A venue's connection state (``status:{venue}``)."""

    meta: Meta
    snapshot: bool
    resync: bool
    state: str
    detail: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Chain(_HasMeta):
    """Blocks or logs of an EVM chain (``onchain.blocks``/``onchain.logs``), as sent."""

    meta: Meta
    blocks: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Alert(_HasMeta):
    """A firing of one of the caller's alert rules (the private ``alerts`` channel)."""

    meta: Meta
    alert: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Resync:
    """The book of ``channel`` is being replaced: a :class:`Snapshot` follows. ``reason``: the
    gateway's (``gap``, ``checksum_mismatch``, ``crossed``, ``requested``, …), ``not_recovered``
    (a resume failed), ``slow_consumer`` (the gateway conflated this client), or the client's
    own check (``client_checksum_mismatch``, ``client_crossed``, ``client_invalid_level``,
    ``client_out_of_sequence``)."""

    channel: str
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages ``from_seq..to_seq`` (inclusive) of ``channel`` will never be delivered.
    ``reason``: ``slow_consumer``, ``history_expired``, ``epoch_changed`` (the range then
    covers only the new epoch and may be empty), ``position_ahead``."""

    channel: str
    from_seq: int
    to_seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The connection dropped; the client waits ``delay`` seconds, then tries ``url``."""

    attempt: int
    delay: float
    reason: str
    url: str


@dataclass(frozen=True, slots=True)
class Recovered:
    """After a reconnect, key swap or client-side rejoin: the channels resumed without loss, and
    those that started over (each of which also gets a Resync, Gap or fresh value)."""

    recovered: list[str]
    lost: list[str]


@dataclass(frozen=True, slots=True)
class KeyExpiring:
    """The session's key is being rotated out and stops working at ``at`` (µs): call
    :meth:`Client.swap_credentials` with its successor before."""

    key_id: str | None
    at: int | None
    message: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error the gateway sent that no pending request was waiting for."""

    code: str
    message: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """The client stopped (closed, or gave up reconnecting). Always the last event."""

    reason: str
    code: str | None = None


DataEvent = Snapshot | Update | Trade | Ticker | Candle | Status | Chain | Alert
Notice = Resync | Gap | Reconnecting | Recovered | KeyExpiring | ServerError | Closed
Event = DataEvent | Notice

DATA_EVENTS = (Snapshot, Update, Trade, Ticker, Candle, Status, Chain, Alert)


def is_data(event: Event) -> bool:
    return isinstance(event, DATA_EVENTS)


def meta_of(msg: dict[str, Any]) -> Meta:
    return Meta(msg["channel"], msg["epoch"], msg["seq"], msg.get("ts", 0), msg.get("recv_ts", 0))


def data_event(msg: dict[str, Any], kind: str) -> DataEvent:
    """The event for one ``snapshot``/``update`` message of a channel of ``kind``."""
    meta = meta_of(msg)
    snapshot = msg["type"] == "snapshot"
    resync = bool(msg.get("resync"))
    if kind == "book":
        return Snapshot(meta, msg, resync) if snapshot else Update(meta, msg)
    if kind == "trades":
        return Trade(meta, msg)
    if kind == "ticker":
        t = msg["ticker"]
        return Ticker(
            meta,
            snapshot,
            resync,
            _dec(t.get("bid")),
            _dec(t.get("bid_size")),
            _dec(t.get("ask")),
            _dec(t.get("ask_size")),
            _dec(t.get("last")),
            Decimal(t.get("volume_24h", "0")),
            _dec(t.get("high_24h")),
            _dec(t.get("low_24h")),
            _dec(t.get("change_24h")),
            msg,
        )
    if kind.startswith("candles."):
        c = msg["candle"]
        return Candle(
            meta,
            snapshot,
            resync,
            int(c["start"]),
            Decimal(c["open"]),
            Decimal(c["high"]),
            Decimal(c["low"]),
            Decimal(c["close"]),
            Decimal(c["volume"]),
            int(c["trades"]),
            bool(c.get("closed")),
            bool(c.get("complete", True)),
            msg,
        )
    if kind == "status":
        s = msg["status"]
        return Status(meta, snapshot, resync, s["state"], s.get("detail", ""), msg)
    if kind.startswith("onchain."):
        return Chain(meta, msg.get("blocks") or [], msg.get("logs") or [], msg)
    if kind == "alerts":
        return Alert(meta, msg.get("alert") or {}, msg)
    raise ValueError(f"unknown channel kind {kind!r}")


def channel_kind(channel: str) -> str:
    return channel.split(":", 1)[0]
