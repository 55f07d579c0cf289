"""The blocking API, for scripts and notebooks: no asyncio in sight.

python examples/python/sdk/sync_script.py [COUNT]
"""

import os
import sys

from tickgate import Update
from tickgate.sync import Client

url = os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")
count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
with Client(url) as client:
    print("instruments:", [i["symbol"] for i in client.rest.instruments()])
    client.subscribe(["book:sim:ETH-USDT"])
    seen = 0
    for event in client:
        if isinstance(event, Update):
            book = client.book("book:sim:ETH-USDT")  # a copy, safe to read here
            bids, asks = book.top(3) if book else ([], [])
            print(
                f"#{event.seq} top bids {[str(b.price) for b in bids]} "
                f"asks {[str(a.price) for a in asks]}"
            )
            seen += 1
            if seen >= count:
                break
