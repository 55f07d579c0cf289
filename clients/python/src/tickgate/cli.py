"""``python -m tickgate tail CHANNEL... [--url URL] [--count N] [--json]``: subscribe and print
one line per event, like ``tickgate tail``. Survives gateway restarts and network drops by
itself, and says so (reconnect, recover, resync, gap).

Credentials come from the environment (command lines are visible to other users):
``TICKGATE_API_KEY`` (bearer), or ``TICKGATE_KEY_ID`` with ``TICKGATE_HMAC_SECRET`` or
``--ed25519-key FILE`` (``TICKGATE_ED25519_KEY``).

Exit codes: 0 after ``--count`` data messages; 1 when the gateway cannot be reached or the
stream ends; 2 on bad arguments or a refused subscription (``error: CODE: message``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .client import Client
from .credentials import Credentials
from .errors import TickgateError
from .events import (
    Candle,
    Chain,
    Closed,
    Event,
    Funding,
    FundingAll,
    Gap,
    KeyExpiring,
    Liquidations,
    Mark,
    OpenInterest,
    Reconnecting,
    Recovered,
    Resync,
    ServerError,
    Snapshot,
    Status,
    Ticker,
    Trade,
    Update,
    is_data,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tickgate", description="tickgate from the command line"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    tail = commands.add_parser("tail", help="print every event of some channels")
    tail.add_argument(
        "channels", nargs="+", metavar="CHANNEL", help="e.g. book:sim:BTC-USDT trades:sim:BTC-USDT"
    )
    tail.add_argument(
        "--url",
        default=os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080"),
        help="gateway base URL (default %(default)s; several: comma-separated)",
    )
    tail.add_argument("--count", type=_positive, help="exit after this many data messages")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument(
        "--ed25519-key",
        default=os.environ.get("TICKGATE_ED25519_KEY"),
        metavar="FILE",
        help="PKCS#8 PEM private key of an ed25519 key",
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def credentials_from_env(ed25519_key: str | None) -> Credentials:
    key_id = os.environ.get("TICKGATE_KEY_ID")
    if ed25519_key:
        if not key_id:
            raise TickgateError("invalid_credentials", "--ed25519-key needs TICKGATE_KEY_ID")
        try:
            pem = Path(ed25519_key).read_bytes()
        except OSError as error:
            raise TickgateError(
                "invalid_credentials", f"cannot read {ed25519_key}: {error.strerror}"
            ) from None
        return Credentials.ed25519_pem(key_id, pem)
    if os.environ.get("TICKGATE_HMAC_SECRET"):
        if not key_id:
            raise TickgateError("invalid_credentials", "TICKGATE_HMAC_SECRET needs TICKGATE_KEY_ID")
        return Credentials.hmac(key_id, os.environ["TICKGATE_HMAC_SECRET"])
    if os.environ.get("TICKGATE_API_KEY"):
        return Credentials.bearer(os.environ["TICKGATE_API_KEY"])
    return Credentials.none()


def _levels(levels: Sequence[Sequence[str]]) -> str:
    return " ".join(f"{p}x{s}" for p, s in list(levels)[:3])


def _describe_perp(event: Funding | FundingAll | Mark | OpenInterest | Liquidations) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    if isinstance(event, Funding):
        return (
            f"rate {event.rate} predicted {show(event.predicted_rate)} "
            f"next {show(event.next_funding_ts)}"
        )
    if isinstance(event, FundingAll):
        return ", ".join(f"{v.venue} {v.rate}" for v in event.venues)
    if isinstance(event, Mark):
        return f"mark {show(event.mark)} index {show(event.index)}"
    if isinstance(event, OpenInterest):
        return f"oi {event.oi} value {show(event.oi_value)}"
    return "; ".join(f"{q.side.upper()} {q.size} @ {q.price}" for q in event.liquidations)


def describe(event: Event) -> str:
    """One readable line per event (the format of ``tickgate tail``)."""
    if isinstance(event, Snapshot | Update):
        kind = ""
        if isinstance(event, Snapshot):
            kind = " snapshot (resync)" if event.resync else " snapshot"
        bids, asks = event.raw.get("bids") or [], event.raw.get("asks") or []
        return (
            f"{event.channel} #{event.seq}{kind} bids[{len(bids)}] {_levels(bids)} | "
            f"asks[{len(asks)}] {_levels(asks)}"
        )
    if isinstance(event, Trade):
        trades = "; ".join(
            f"{t.side.upper()} {t.size} @ {t.price} (id {t.id})" for t in event.trades
        )
        return f"{event.channel} #{event.seq} {trades}"
    if isinstance(event, Ticker):

        def show(value: Any) -> str:
            return "-" if value is None else str(value)

        return (
            f"{event.channel} #{event.seq} bid {show(event.bid)} ({show(event.bid_size)}) "
            f"ask {show(event.ask)} ({show(event.ask_size)}) last {show(event.last)} "
            f"vol24h {event.volume_24h}"
        )
    if isinstance(event, Candle):
        return (
            f"{event.channel} #{event.seq} start {event.start} O {event.open} H {event.high}"
            f" L {event.low} C {event.close} V {event.volume} n {event.trades}"
            f"{' closed' if event.closed else ''}{'' if event.complete else ' partial'}"
        )
    if isinstance(event, Status):
        return f"{event.channel} #{event.seq} {event.state} {event.detail}"
    if isinstance(event, Funding | FundingAll | Mark | OpenInterest | Liquidations):
        try:
            return f"{event.channel} #{event.seq} {_describe_perp(event)}"
        except TickgateError as error:  # malformed: show what was sent, and why
            return f"{event.channel} #{event.seq} ({error.message}) {json.dumps(event.raw)}"
    if isinstance(event, Chain):
        items = [f"block {b.get('number')} {b.get('hash')} {b.get('status')}" for b in event.blocks]
        items += [
            f"{(lg.get('event') or {}).get('name', 'log')} block {lg.get('block_number')} "
            f"#{lg.get('log_index')} tx {lg.get('tx_hash')} {lg.get('status')}"
            for lg in event.logs
        ]
        return f"{event.channel} #{event.seq} {'; '.join(items)}"
    if isinstance(event, Resync):
        return f"{event.channel} #{event.seq} RESYNC ({event.reason}): book is being rebuilt"
    if isinstance(event, Gap):
        return f"{event.channel} GAP #{event.from_seq}..#{event.to_seq} ({event.reason})"
    if isinstance(event, Reconnecting):
        return (
            f"RECONNECTING attempt {event.attempt} in {event.delay:.3f}s to {event.url}: "
            f"{event.reason}"
        )
    if isinstance(event, Recovered):
        lost = f"; started over: {' '.join(event.lost)}" if event.lost else ""
        return f"RECOVERED {len(event.recovered)} channel(s) without loss{lost}"
    if isinstance(event, KeyExpiring):
        return f"KEY EXPIRING {event.key_id or '-'} at {event.at}: {event.message}"
    if isinstance(event, ServerError):
        return f"error {event.code}: {event.message}"
    if isinstance(event, Closed):
        return f"CLOSED: {event.reason}"
    return f"{event.channel} #{event.seq} {json.dumps(event.raw)}"


def to_json(event: Event) -> str:
    """Data events in their wire shape; notices as ``{"type": ...}`` objects."""
    if is_data(event):
        return json.dumps(event.raw, separators=(",", ":"))  # type: ignore[union-attr]
    fields = {k: getattr(event, k) for k in event.__slots__}
    name = type(event).__name__
    kind = {"Resync": "resync", "Gap": "gap", "ServerError": "error"}.get(name, name.lower())
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


async def tail(args: argparse.Namespace) -> int:
    urls = [u.strip() for u in args.url.split(",") if u.strip()]
    client = Client(urls, credentials_from_env(args.ed25519_key))
    try:
        await client.connect()
    except TickgateError as error:
        if error.code == "unreachable":
            print(
                f"error: cannot connect to {args.url} (is `tickgate serve` running?): "
                f"{error.message}",
                file=sys.stderr,
            )
            return 1
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return 2
    try:
        try:
            channels = await client.subscribe(args.channels)
        except TickgateError as error:
            print(f"error: {error.code}: {error.message}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"type": "subscribed", "channels": channels}), flush=True)
        else:
            print("subscribed " + " ".join(channels), flush=True)
        seen = 0
        async for event in client:
            if isinstance(event, Closed):
                print(f"connection closed: {event.reason}", file=sys.stderr)
                return 1
            print(to_json(event) if args.json else describe(event), flush=True)
            if is_data(event):
                seen += 1
                if args.count is not None and seen >= args.count:
                    return 0
        return 1
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(tail(args))
    except TickgateError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
