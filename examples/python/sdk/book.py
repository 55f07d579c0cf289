"""Keep a verified local order book and print the spread after every update.

Every update is checked against the gateway's CRC-32; a mismatch, a gap or a restart
re-fetches the book by itself (a Resync event says so).

    python examples/python/sdk/book.py [COUNT]
"""

import asyncio
import os
import sys

from tickgate import Client, Resync, Snapshot, Update

CHANNEL = "book:sim:BTC-USDT"


async def main(count: int | None) -> None:
    async with Client(os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")) as client:
        await client.subscribe([CHANNEL])
        seen = 0
        async for event in client:
            if isinstance(event, Snapshot | Update):
                book = client.book(CHANNEL)
                assert book is not None and book.live  # verified after every message
                bid, ask = book.best_bid(), book.best_ask()
                print(
                    f"#{event.seq} bid {bid.price if bid else '-'} "
                    f"ask {ask.price if ask else '-'} spread {book.spread()}"
                )
                seen += 1
            elif isinstance(event, Resync):
                print(f"book is being rebuilt ({event.reason})")
            if count is not None and seen >= count:
                return


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else None))
