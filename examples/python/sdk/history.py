"""Page through stored trades and candles, and load them into pandas
(pip install './clients/python[pandas]').

    python examples/python/sdk/history.py
"""

import asyncio
import os
from datetime import datetime, timedelta, timezone

from tickgate import RestClient


async def main() -> None:
    url = os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")
    async with RestClient(url) as rest:
        since = datetime.now(timezone.utc) - timedelta(hours=1)
        count = 0
        async for _trade in rest.trades("sim", "BTC-USDT", start=since, limit=1000):
            count += 1  # follows next_cursor page after page
        print(f"{count} trades in the last hour")
        async for candle in rest.candles("sim", "BTC-USDT", "1m", limit=3, order="desc"):
            print("candle", candle["start"], candle["open"], candle["close"], candle["volume"])
            break
        try:
            from tickgate.frames import collect_dataframe
        except ImportError:
            return
        frame = await collect_dataframe(rest.trades("sim", "BTC-USDT", start=since), exact=False)
        if len(frame):
            print(frame.groupby("side")["size"].sum())


asyncio.run(main())
