"""What :class:`tickgate.Client` yields, in order. Data events of a channel arrive in ``seq``
order, each seq at most once; whenever something could not be delivered the application is
told by a :class:`Resync` or :class:`Gap` event, never silently.

Prices and sizes are exact :class:`~decimal.Decimal` values. Data events are thin views over the
message as the gateway sent it, parsed from JSON (``raw``): fields are read and decimals
converted only when accessed, so a consumer that only counts messages does not pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .book import Level
from .errors import TickgateError


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


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


class _Data:
    """A data event: a thin view over the message as parsed from JSON (``raw``); fields are
    read, and decimals converted, only when accessed. Treat it as immutable."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def channel(self) -> str:
        return str(self.raw["channel"])

    @property
    def seq(self) -> int:
        return int(self.raw["seq"])

    @property
    def epoch(self) -> str:
        return str(self.raw["epoch"])

    @property
    def meta(self) -> Meta:
        raw = self.raw
        return Meta(
            raw["channel"], raw["epoch"], raw["seq"], raw.get("ts", 0), raw.get("recv_ts", 0)
        )

    @property
    def snapshot(self) -> bool:
        """True for the value sent on (re)join rather than a live change."""
        return bool(self.raw["type"] == "snapshot")

    @property
    def resync(self) -> bool:
        """True on a snapshot that replaces state the client had (after a resync, a lost
        resume, or conflation)."""
        return bool(self.raw.get("resync", False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Data) and type(other) is type(self) and other.raw == self.raw

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channel={self.channel!r}, seq={self.seq})"


class _BookMessage(_Data):
    __slots__ = ()

    @property
    def bids(self) -> list[Level]:
        """The message's bid levels (in an update: absolute sizes, 0 removes the price)."""
        return [Level(Decimal(p), Decimal(s)) for p, s in self.raw.get("bids") or []]

    @property
    def asks(self) -> list[Level]:
        return [Level(Decimal(p), Decimal(s)) for p, s in self.raw.get("asks") or []]

    @property
    def checksum(self) -> int | None:
        """The gateway's checksum of the book after this message (verified by the client when
        it mirrors the book)."""
        value = self.raw.get("checksum")
        return value if isinstance(value, int) else None


class Snapshot(_BookMessage):
    """A full book: the first on a book channel, and after every :class:`Resync` (then
    ``resync`` is true: it replaces the book the client had)."""

    __slots__ = ()


class Update(_BookMessage):
    """A book change following the previous book message without a gap."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TradeItem:
    id: str
    price: Decimal
    size: Decimal
    side: str
    """The aggressor's side: ``buy`` or ``sell``."""
    ts: int


class Trade(_Data):
    """One venue batch of trades (``trades`` channels)."""

    __slots__ = ()

    @property
    def trades(self) -> list[TradeItem]:
        return [
            TradeItem(
                str(t["id"]), Decimal(t["price"]), Decimal(t["size"]), t["side"], int(t["ts"])
            )
            for t in self.raw.get("trades") or []
        ]


class Ticker(_Data):
    """The whole ticker (``ticker`` channels); each field ``None`` until observed."""

    __slots__ = ()

    def _field(self, name: str) -> Decimal | None:
        return _dec(self.raw["ticker"].get(name))

    @property
    def bid(self) -> Decimal | None:
        return self._field("bid")

    @property
    def bid_size(self) -> Decimal | None:
        return self._field("bid_size")

    @property
    def ask(self) -> Decimal | None:
        return self._field("ask")

    @property
    def ask_size(self) -> Decimal | None:
        return self._field("ask_size")

    @property
    def last(self) -> Decimal | None:
        return self._field("last")

    @property
    def volume_24h(self) -> Decimal:
        return Decimal(self.raw["ticker"].get("volume_24h", "0"))

    @property
    def high_24h(self) -> Decimal | None:
        return self._field("high_24h")

    @property
    def low_24h(self) -> Decimal | None:
        return self._field("low_24h")

    @property
    def change_24h(self) -> Decimal | None:
        return self._field("change_24h")

    @property
    def source(self) -> str:
        """``"venue"`` when last price and 24 h figures are the venue's own ticker's,
        ``"trades"`` when the gateway derived them from trades."""
        return str(self.raw["ticker"].get("source", "trades"))


class Candle(_Data):
    """One candle (``candles.{interval}`` channels): the open one each time it changes, each
    closed one once with ``closed=True``."""

    __slots__ = ()

    @property
    def start(self) -> int:
        return int(self.raw["candle"]["start"])

    @property
    def open(self) -> Decimal:
        return Decimal(self.raw["candle"]["open"])

    @property
    def high(self) -> Decimal:
        return Decimal(self.raw["candle"]["high"])

    @property
    def low(self) -> Decimal:
        return Decimal(self.raw["candle"]["low"])

    @property
    def close(self) -> Decimal:
        return Decimal(self.raw["candle"]["close"])

    @property
    def volume(self) -> Decimal:
        return Decimal(self.raw["candle"]["volume"])

    @property
    def trades(self) -> int:
        return int(self.raw["candle"]["trades"])

    @property
    def closed(self) -> bool:
        return bool(self.raw["candle"].get("closed", False))

    @property
    def complete(self) -> bool:
        return bool(self.raw["candle"].get("complete", True))


class Status(_Data):
    """A venue's connection state (``status:{venue}``)."""

    __slots__ = ()

    @property
    def state(self) -> str:
        return str(self.raw["status"]["state"])

    @property
    def detail(self) -> str:
        return str(self.raw["status"].get("detail", ""))


class Chain(_Data):
    """Blocks or logs of an EVM chain (``onchain.blocks``/``onchain.logs``), as sent."""

    __slots__ = ()

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.raw.get("blocks") or [])

    @property
    def logs(self) -> list[dict[str, Any]]:
        return list(self.raw.get("logs") or [])


class Alert(_Data):
    """A firing of one of the caller's alert rules (the private ``alerts`` channel)."""

    __slots__ = ()

    @property
    def alert(self) -> dict[str, Any]:
        return dict(self.raw.get("alert") or {})


def _malformed(channel: Any, what: str) -> TickgateError:
    return TickgateError("protocol_error", f"{channel}: malformed {what}", channel=str(channel))


def _decimal_field(body: dict[str, Any], name: str, channel: Any, *, required: bool) -> Any:
    """A decimal-string field of a perpetual message: ``None`` when absent and optional; a
    field that is missing when required, or is not decimal text, is ``protocol_error``."""
    value = body.get(name)
    if value is None:
        if required:
            raise _malformed(channel, f"message: {name} is missing")
        return None
    if not isinstance(value, str):
        raise _malformed(channel, f"message: {name} is not decimal text")
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise _malformed(channel, f"message: {name} is not decimal text") from None
    if not parsed.is_finite():
        raise _malformed(channel, f"message: {name} is not a finite decimal")
    return parsed


def _time_field(body: dict[str, Any], name: str, channel: Any, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(channel, f"message: {name} is not an integer timestamp (µs)")
    return value


class _Latest(_Data):
    """A perpetual's latest value (``funding``/``mark``/``oi``), sent whole as a ``snapshot``
    on join and as an ``update`` on each change. Fields are checked when read: a message that
    lacks one or carries something other than decimal text raises ``TickgateError`` with code
    ``protocol_error``."""

    __slots__ = ()
    _KEY = ""

    def _body(self) -> dict[str, Any]:
        body = self.raw.get(self._KEY)
        if not isinstance(body, dict):
            raise _malformed(self.raw.get("channel"), f"message: no {self._KEY} object")
        return body

    def _dec(self, name: str, *, required: bool = False) -> Any:
        return _decimal_field(self._body(), name, self.raw.get("channel"), required=required)

    @property
    def value_ts(self) -> int:
        """Exchange time of the figures, µs since the Unix epoch."""
        ts = _time_field(self._body(), "ts", self.raw.get("channel"), required=True)
        assert ts is not None
        return ts


class Funding(_Latest):
    """A perpetual's funding (``funding:{venue}:{SYM}``)."""

    __slots__ = ()
    _KEY = "funding"

    @property
    def rate(self) -> Decimal:
        """The rate paid at ``next_funding_ts``, a fraction (``0.0001`` = 0.01 %); longs pay
        shorts when positive."""
        value: Decimal = self._dec("rate", required=True)
        return value

    @property
    def predicted_rate(self) -> Decimal | None:
        """The venue's forecast of the following interval's rate, where it sends one."""
        value: Decimal | None = self._dec("predicted_rate")
        return value

    @property
    def next_funding_ts(self) -> int | None:
        """When the current rate is paid, µs; ``None`` where the venue does not say."""
        return _time_field(self._body(), "next_funding_ts", self.raw.get("channel"), required=False)


@dataclass(frozen=True, slots=True)
class VenueFunding:
    """One venue's funding in a :class:`FundingAll` comparison. ``rate`` is for the venue's
    own interval (Hyperliquid hourly, Bybit and OKX usually 8-hourly), never rescaled."""

    venue: str
    symbol: str
    rate: Decimal
    predicted_rate: Decimal | None
    next_funding_ts: int | None
    ts: int


class FundingAll(_Data):
    """Every member venue's latest funding side by side (``funding:all:{SYM}``), by venue
    name; a ``snapshot`` on join, an ``update`` when any venue's funding changes. A malformed
    entry raises ``TickgateError`` with code ``protocol_error`` when read."""

    __slots__ = ()

    @property
    def venues(self) -> list[VenueFunding]:
        channel = self.raw.get("channel")
        items = self.raw.get("funding_all")
        if not isinstance(items, list):
            raise _malformed(channel, "message: no funding_all array")
        out = []
        for item in items:
            body = item.get("funding") if isinstance(item, dict) else None
            if not isinstance(body, dict):
                raise _malformed(channel, "funding_all entry: no funding object")
            venue, symbol = item.get("venue"), item.get("symbol")
            if not isinstance(venue, str) or not isinstance(symbol, str):
                raise _malformed(channel, "funding_all entry: venue and symbol must be strings")
            ts = _time_field(body, "ts", channel, required=True)
            assert ts is not None
            out.append(
                VenueFunding(
                    venue=venue,
                    symbol=symbol,
                    rate=_decimal_field(body, "rate", channel, required=True),
                    predicted_rate=_decimal_field(body, "predicted_rate", channel, required=False),
                    next_funding_ts=_time_field(body, "next_funding_ts", channel, required=False),
                    ts=ts,
                )
            )
        return out


class Mark(_Latest):
    """A perpetual's mark and index price (``mark:{venue}:{SYM}``); either ``None`` until the
    venue sent it."""

    __slots__ = ()
    _KEY = "mark"

    @property
    def mark(self) -> Decimal | None:
        value: Decimal | None = self._dec("mark")
        return value

    @property
    def index(self) -> Decimal | None:
        value: Decimal | None = self._dec("index")
        return value


class OpenInterest(_Latest):
    """A perpetual's open interest (``oi:{venue}:{SYM}``)."""

    __slots__ = ()
    _KEY = "oi"

    @property
    def oi(self) -> Decimal:
        """In the base asset."""
        value: Decimal = self._dec("oi", required=True)
        return value

    @property
    def oi_value(self) -> Decimal | None:
        """In the quote currency, where the venue publishes it."""
        value: Decimal | None = self._dec("oi_value")
        return value


@dataclass(frozen=True, slots=True)
class LiquidationItem:
    side: str
    """The liquidation order's side: ``sell`` when a long was liquidated, ``buy`` for a short."""
    price: Decimal
    size: Decimal
    """In the base asset."""
    ts: int


class Liquidations(_Data):
    """One venue batch of a perpetual's liquidations (``liquidations:{venue}:{SYM}``); like
    trades there is no snapshot, and missed batches resume cannot recover are a :class:`Gap`.
    A malformed item raises ``TickgateError`` with code ``protocol_error`` when read."""

    __slots__ = ()

    @property
    def liquidations(self) -> list[LiquidationItem]:
        channel = self.raw.get("channel")
        items = self.raw.get("liquidations")
        if not isinstance(items, list):
            raise _malformed(channel, "message: no liquidations array")
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise _malformed(channel, "liquidation: not an object")
            side = item.get("side")
            if side not in ("buy", "sell"):
                raise _malformed(channel, "liquidation: side is not buy or sell")
            price = _decimal_field(item, "price", channel, required=True)
            size = _decimal_field(item, "size", channel, required=True)
            ts = _time_field(item, "ts", channel, required=True)
            assert ts is not None
            out.append(LiquidationItem(side, price, size, ts))
        return out


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


DataEvent = (
    Snapshot
    | Update
    | Trade
    | Ticker
    | Candle
    | Status
    | Chain
    | Alert
    | Funding
    | FundingAll
    | Mark
    | OpenInterest
    | Liquidations
)
Notice = Resync | Gap | Reconnecting | Recovered | KeyExpiring | ServerError | Closed
Event = DataEvent | Notice

DATA_EVENTS = (
    Snapshot,
    Update,
    Trade,
    Ticker,
    Candle,
    Status,
    Chain,
    Alert,
    Funding,
    FundingAll,
    Mark,
    OpenInterest,
    Liquidations,
)


def is_data(event: Event) -> bool:
    return isinstance(event, DATA_EVENTS)


_BY_KIND: dict[str, type[_Data]] = {
    "trades": Trade,
    "ticker": Ticker,
    "status": Status,
    "alerts": Alert,
    "funding": Funding,
    "mark": Mark,
    "oi": OpenInterest,
    "liquidations": Liquidations,
}


def data_class(kind: str, snapshot: bool) -> type[_Data]:
    """The event class of a ``snapshot``/``update`` message on a channel of ``kind``."""
    if kind == "book":
        return Snapshot if snapshot else Update
    found = _BY_KIND.get(kind)
    if found is not None:
        return found
    if kind.startswith("candles."):
        return Candle
    if kind.startswith("onchain."):
        return Chain
    raise ValueError(f"unknown channel kind {kind!r}")


def channel_class(channel: str, snapshot: bool) -> type[_Data]:
    """The event class of a ``snapshot``/``update`` message on ``channel``: as its kind's,
    except the consolidated ``funding:all:{SYM}`` (a comparison, :class:`FundingAll`)."""
    kind = channel_kind(channel)
    if kind == "funding" and channel.split(":")[1:2] == ["all"]:
        return FundingAll
    return data_class(kind, snapshot)


def data_event(msg: dict[str, Any], kind: str) -> DataEvent:
    """The event for one ``snapshot``/``update`` message of a channel of ``kind``."""
    channel = msg.get("channel")
    if kind == "funding" and isinstance(channel, str):
        return channel_class(channel, msg["type"] == "snapshot")(msg)  # type: ignore[return-value]
    return data_class(kind, msg["type"] == "snapshot")(msg)  # type: ignore[return-value]


def channel_kind(channel: str) -> str:
    return channel.split(":", 1)[0]
