"""Messages per second one Python client processes: a bare ``websockets`` loop (``json.loads``
and a count: what people write by hand), ``tickgate.Client`` with the book mirror off, and with
it on (every book message applied and its CRC-32 verified), in the same run against the same
gateway stream (docs/benchmarks.md, "Python SDK").

    python clients/python/bench/throughput.py --bin target/release/tickgate

Two measurements, each mode in turn, ``--rounds`` times:

* **saturated**: the simulated market runs faster than Python can read (``--fast-rate``), so
  the client is the bottleneck; messages/s is what it got through in ``--secs``. The gateway
  conflates a client that falls a ring behind (resync snapshots, gap notices), which the count
  includes, and its lag limit is raised so it does not close the client.
* **cpu**: the market runs at a rate every mode keeps up with (``--steady-rate``); the figure
  is messages per CPU-second of the client process (``time.process_time``), i.e. the rate one
  core could sustain, measured without any conflation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import websockets

import tickgate

CHANNELS = [
    f"{kind}:sim:{sym}"
    for sym in ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    for kind in ("book", "trades", "ticker")
]


def start_gateway(binary: str, rate: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(
        os.environ,
        TICKGATE_MASTER_KEY=secrets.token_hex(32),
        TICKGATE_WS__MAX_LAGS_PER_MINUTE="1000000",
    )
    log = tmp / f"gateway-{rate}.log"
    proc = subprocess.Popen(
        [
            binary,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp / f"data-{rate}"),
            "--sim-rate",
            str(rate),
        ],
        stdout=open(log, "wb"),  # noqa: SIM115 - the gateway writes it until the end
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"listening.*?(127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if found:
            return proc, f"http://{found.group(1)}"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the gateway did not start:\n" + log.read_text(errors="replace"))


async def bare(url: str, secs: float, warmup: float) -> tuple[int, float, int]:
    ws_url = url.replace("http://", "ws://") + "/v1/ws"
    async with websockets.connect(ws_url, max_size=None, compression=None, proxy=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": 1, "channels": CHANNELS}))
        return await _count(ws.recv, lambda m: json.loads(m), secs, warmup)


async def sdk(url: str, secs: float, warmup: float, mirror: bool) -> tuple[int, float, int]:
    async with tickgate.Client(url, mirror_books=mirror, event_buffer=4096) as client:
        await client.subscribe(CHANNELS)
        count, cpu, notices = await _count(client.next_event, _notice, secs, warmup)
        if mirror:
            for channel in CHANNELS:
                book = client.book(channel)
                if book is not None and book.live:
                    assert book.checksum == book.computed_checksum()
        return count, cpu, notices


def _conflated(item: object) -> bool:
    """A gap notice or a resync snapshot, as a wire message (bare loop) or an SDK event."""
    if isinstance(item, dict):
        return bool(item.get("resync")) or item.get("type") in ("gap", "resync")
    if isinstance(item, tickgate.Snapshot | tickgate.Ticker):
        return item.resync
    return isinstance(item, tickgate.Resync | tickgate.Gap)


def _notice(event: object) -> object:
    return event


async def _count(
    next_item: Callable[[], Awaitable[object]],
    handle: Callable[[object], object],
    secs: float,
    warmup: float,
) -> tuple[int, float, int]:
    """(items processed, CPU seconds, conflation notices) over ``secs`` after ``warmup``."""
    start = time.monotonic()
    while time.monotonic() - start < warmup:
        handle(await next_item())
    count = notices = 0
    cpu0, t0 = time.process_time(), time.monotonic()
    end = t0 + secs
    while True:
        item = handle(await next_item())
        count += 1
        if _conflated(item):
            notices += 1
        if count % 64 == 0 and time.monotonic() >= end:
            break
    return count, time.process_time() - cpu0, notices


MODES: dict[str, Callable[[str, float, float], Awaitable[tuple[int, float, int]]]] = {
    "bare websockets loop": bare,
    "tickgate.Client, mirror off": lambda u, s, w: sdk(u, s, w, False),
    "tickgate.Client, mirror on": lambda u, s, w: sdk(u, s, w, True),
}


def report(title: str, results: dict[str, list[float]], unit: str) -> None:
    base = statistics.median(results["bare websockets loop"])
    print(f"\n{title}")
    print(f"| mode | {unit} (median of {len(next(iter(results.values())))}) | runs | vs bare |")
    print("| --- | ---: | --- | ---: |")
    for mode, values in results.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {mode} | {med:,.0f} | {runs} | {med / base:.0%} |")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="tickgate binary (release build)")
    parser.add_argument("--secs", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fast-rate",
        type=int,
        default=20000,
        help="sim events/s per symbol for the saturated runs",
    )
    parser.add_argument(
        "--steady-rate", type=int, default=1000, help="sim events/s per symbol for the CPU runs"
    )
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, websockets {websockets.__version__}, "
        f"{len(CHANNELS)} channels (book, trades, ticker x 3 symbols)"
    )
    with tempfile.TemporaryDirectory(prefix="tickgate-pybench-") as tmp:
        for label, rate, metric in (
            ("saturated", args.fast_rate, "messages/s"),
            ("cpu", args.steady_rate, "messages per CPU-second"),
        ):
            proc, url = start_gateway(args.bin, rate, Path(tmp))
            try:
                await asyncio.sleep(2)
                results: dict[str, list[float]] = {m: [] for m in MODES}
                notices: dict[str, list[int]] = {m: [] for m in MODES}
                for _ in range(args.rounds):
                    for mode, run in MODES.items():
                        count, cpu, conflated = await run(url, args.secs, args.warmup)
                        value = count / args.secs if label == "saturated" else count / cpu
                        results[mode].append(value)
                        notices[mode].append(conflated)
                report(
                    f"{label}: sim rate {rate}/s per symbol, {args.secs:g} s per run",
                    results,
                    metric,
                )
                print("conflation notices per run:", {m: n for m, n in notices.items()})
            finally:
                proc.terminate()
                proc.wait(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
