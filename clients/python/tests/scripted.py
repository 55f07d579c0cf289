"""A scripted WebSocket peer for the client's unit tests: the test decides every frame the
'gateway' sends and reads every request the client makes. (The real gateway is exercised by
tests/integration; this only isolates the client's sequencing logic.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


class Scripted:
    def __init__(self) -> None:
        self.connections: asyncio.Queue[ServerConnection] = asyncio.Queue()
        self.requests: dict[ServerConnection, asyncio.Queue[dict[str, Any]]] = {}
        self.upgrades: list[Request] = []
        self.refuse: tuple[int, dict[str, str]] | None = None
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> Scripted:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request
        )
        port = self._server.sockets[0].getsockname()[1]  # type: ignore[index]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.upgrades.append(request)
        if self.refuse is not None:
            status, body = self.refuse
            return Response(
                status,
                "refused",
                Headers({"Content-Type": "application/json"}),
                json.dumps(body).encode(),
            )
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.requests[connection] = queue
        await self.connections.put(connection)
        try:
            async for text in connection:
                await queue.put(json.loads(text))
        finally:
            await queue.put({"op": "__closed__"})

    async def accept(self) -> ServerConnection:
        return await asyncio.wait_for(self.connections.get(), 5)

    async def request(self, connection: ServerConnection) -> dict[str, Any]:
        return await asyncio.wait_for(self.requests[connection].get(), 5)

    @staticmethod
    async def send(connection: ServerConnection, **message: Any) -> None:
        await connection.send(json.dumps(message))


def update(channel: str, seq: int, epoch: str = "E", **body: Any) -> dict[str, Any]:
    return {
        "type": "update",
        "channel": channel,
        "seq": seq,
        "epoch": epoch,
        "ts": seq,
        "recv_ts": seq,
        **body,
    }


def trades_body(seq: int) -> dict[str, Any]:
    return {"trades": [{"id": str(seq), "price": "100.5", "size": "0.1", "side": "buy", "ts": seq}]}
