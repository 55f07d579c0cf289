"""Blocking wrappers for scripts and notebooks: the asyncio client runs on a private event
loop in a background thread; every call here waits for it.

::

    from tickgate.sync import Client
    with Client("http://127.0.0.1:8080") as client:
        client.subscribe(["trades:sim:BTC-USDT"])
        for event in client:
            print(event)

Works inside Jupyter too (the loop is not the notebook's own).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from . import client as aclient
from . import rest as arest
from .book import BookMirror
from .credentials import Credentials
from .events import Event

T = TypeVar("T")


async def _next(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()


class _Loop:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tickgate-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # cancelling a Queue.get leaves the item in the queue
            raise

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self.run(_next(agen))
            except StopAsyncIteration:
                return

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


class Rest:
    """Blocking :class:`tickgate.RestClient`: same methods; history iterators are plain
    iterators."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        credentials: Credentials | None = None,
        *,
        timeout: float = 10.0,
        _loop: _Loop | None = None,
        _inner: arest.RestClient | None = None,
    ) -> None:
        self._own_loop = _loop is None
        self._loop = _loop or _Loop()
        self._inner = _inner or self._loop.run(self._make(base_url, credentials, timeout))

    @staticmethod
    async def _make(
        base_url: str, credentials: Credentials | None, timeout: float
    ) -> arest.RestClient:
        return arest.RestClient(base_url, credentials, timeout=timeout)

    def __enter__(self) -> Rest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_loop:
            self._loop.run(self._inner.aclose())
            self._loop.stop()

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        return self._loop.run(self._inner.request(method, path, params=params, body=body))

    def instruments(self) -> list[dict[str, Any]]:
        return self._loop.run(self._inner.instruments())

    def ticker(self, venue: str, symbol: str) -> dict[str, Any]:
        return self._loop.run(self._inner.ticker(venue, symbol))

    def book(self, venue: str, symbol: str, depth: int = 50) -> dict[str, Any]:
        return self._loop.run(self._inner.book(venue, symbol, depth))

    def ws_token(self) -> str:
        return self._loop.run(self._inner.ws_token())

    def trades(self, venue: str, symbol: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._loop.iterate(self._inner.trades(venue, symbol, **kwargs))

    def candles(
        self, venue: str, symbol: str, interval: str = "1m", **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        return self._loop.iterate(self._inner.candles(venue, symbol, interval, **kwargs))


class Client:
    """Blocking :class:`tickgate.Client`. Iterating blocks until the next event; ``book()``
    returns a copy of the mirror taken on the client's loop (safe to read in this thread)."""

    def __init__(
        self,
        urls: str | Sequence[str] = "http://127.0.0.1:8080",
        credentials: Credentials | None = None,
        **settings: Any,
    ) -> None:
        self._loop = _Loop()
        try:
            self._client = self._loop.run(self._make(urls, credentials, settings))
            self._loop.run(self._client.connect())
        except BaseException:
            self._loop.stop()
            raise
        self.rest = Rest(_loop=self._loop, _inner=self._client.rest)

    @staticmethod
    async def _make(
        urls: str | Sequence[str], credentials: Credentials | None, settings: dict[str, Any]
    ) -> aclient.Client:
        return aclient.Client(urls, credentials, **settings)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, channels: Iterable[str]) -> list[str]:
        return self._loop.run(self._client.subscribe(list(channels)))

    def unsubscribe(self, channels: Iterable[str]) -> list[str]:
        return self._loop.run(self._client.unsubscribe(list(channels)))

    def swap_credentials(self, credentials: Credentials) -> None:
        self._loop.run(self._client.swap_credentials(credentials))

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event (None after :class:`~tickgate.Closed`); raises TimeoutError when
        ``timeout`` seconds pass without one."""
        return self._loop.run(self._client.next_event(), timeout)

    def __iter__(self) -> Iterator[Event]:
        while (event := self.next_event()) is not None:
            yield event

    def book(self, channel: str) -> BookMirror | None:
        return self._loop.run(self._copy_book(channel))

    async def _copy_book(self, channel: str) -> BookMirror | None:
        mirror = self._client.book(channel)
        return None if mirror is None else mirror.copy()

    def close(self) -> None:
        try:
            self._loop.run(self._client.close(), 10)
        finally:
            self._loop.stop()
