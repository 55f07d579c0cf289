"""Signed REST calls and a signed stream with an hmac or ed25519 key (RFC 9421): no secret
on the wire, every request single-use.

    export TICKGATE_KEY_ID=key_...
    export TICKGATE_HMAC_SECRET=tg_test_...     # or TICKGATE_ED25519_KEY=client.pem
    python examples/python/sdk/signed.py [COUNT]
"""

import asyncio
import os
import sys
from pathlib import Path

from tickgate import Client, Credentials, Ticker


def credentials() -> Credentials:
    key_id = os.environ["TICKGATE_KEY_ID"]
    if "TICKGATE_HMAC_SECRET" in os.environ:
        return Credentials.hmac(key_id, os.environ["TICKGATE_HMAC_SECRET"])
    return Credentials.ed25519_pem(key_id, Path(os.environ["TICKGATE_ED25519_KEY"]).read_bytes())


async def main(count: int) -> None:
    url = os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")
    async with Client(url, credentials()) as client:
        print("REST ticker:", await client.rest.ticker("sim", "BTC-USDT"))
        await client.subscribe(["ticker:sim:BTC-USDT"])
        print("stream authenticated as", client.key_id)
        seen = 0
        async for event in client:
            if isinstance(event, Ticker):
                print(f"#{event.seq} bid {event.bid} ask {event.ask} last {event.last}")
                seen += 1
                if seen >= count:
                    return


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
