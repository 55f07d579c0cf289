"""Connect without holding a long-lived key, as a browser page would: a backend that holds
the key issues single-use tokens (POST /v1/ws-token), and the client asks for a fresh one on
every connection and reconnect.

    export TICKGATE_KEY_ID=key_... TICKGATE_HMAC_SECRET=tg_test_...   # the backend's key
    python examples/python/sdk/ws_token.py [COUNT]
"""

import asyncio
import os
import sys

from tickgate import Client, Credentials, RestClient, Ticker, ws_token_provider


async def main(count: int) -> None:
    url = os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")
    backend_key = Credentials.hmac(
        os.environ["TICKGATE_KEY_ID"], os.environ["TICKGATE_HMAC_SECRET"]
    )
    async with RestClient(url, backend_key) as backend:
        # In a real deployment the provider calls your own backend over HTTP instead.
        client = Client(url, Credentials.ws_token(ws_token_provider(backend)))
        async with client:
            await client.subscribe(["ticker:sim:SOL-USDT"])
            seen = 0
            async for event in client:
                if isinstance(event, Ticker):
                    print(f"#{event.seq} last {event.last} (session key {client.key_id})")
                    seen += 1
                    if seen >= count:
                        return


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
