"""Switch to a new key under a live stream without losing or repeating a message (the way to
answer a key_expiring notice, or a planned rotation).

    export TICKGATE_KEY_ID=key_old... TICKGATE_HMAC_SECRET=tg_test_...          # the old key
    export NEW_KEY_ID=key_new...      NEW_HMAC_SECRET=tg_test_...               # its successor
    python examples/python/sdk/rotate_key.py
"""

import asyncio
import os

from tickgate import Client, Credentials, KeyExpiring, Recovered, Trade


async def main() -> None:
    old = Credentials.hmac(os.environ["TICKGATE_KEY_ID"], os.environ["TICKGATE_HMAC_SECRET"])
    new = Credentials.hmac(os.environ["NEW_KEY_ID"], os.environ["NEW_HMAC_SECRET"])
    url = os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080")
    async with Client(url, old) as client:
        await client.subscribe(["trades:sim:BTC-USDT"])
        trades = 0
        async for event in client:
            if isinstance(event, KeyExpiring) or (isinstance(event, Trade) and trades == 3):
                # Make-before-break: the new connection is authenticated before the old closes,
                # then every channel resumes at its exact position.
                await client.swap_credentials(new)
                print("swapped to", client.credentials)
            elif isinstance(event, Recovered):
                print("resumed without loss:", event.recovered, "started over:", event.lost)
                print("now authenticated as", client.key_id)
                return
            if isinstance(event, Trade):
                trades += 1
                print("trade #", event.seq)


asyncio.run(main())
