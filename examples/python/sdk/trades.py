"""Print trades as they happen; survives gateway restarts and network drops by itself.

pip install ./clients/python
python examples/python/sdk/trades.py [COUNT]      # TICKGATE_URL, default http://127.0.0.1:8080
"""

import asyncio
import os
import sys

from tickgate import Client, Gap, Recovered, Trade


async def main(count: int | None) -> None:
    async with Client(os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")) as client:
        await client.subscribe(["trades:sim:BTC-USDT"])
        seen = 0
        async for event in client:
            if isinstance(event, Trade):
                for t in event.trades:
                    print(f"#{event.seq} {t.side:4} {t.size} @ {t.price}")
                seen += 1
            elif isinstance(event, Gap):  # never silent: missed trades are announced
                print(f"missed trades #{event.from_seq}..#{event.to_seq} ({event.reason})")
            elif isinstance(event, Recovered):
                print(f"reconnected: {len(event.recovered)} channel(s) resumed without loss")
            if count is not None and seen >= count:
                return


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else None))
