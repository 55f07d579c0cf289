"""REST helpers: market data, paged history as async iterators, single-use WebSocket tokens,
and a signed generic ``request`` for the rest of the API (admin, alerts, webhooks).

Every call is authenticated with the client's current credentials (signed afresh for hmac and
ed25519 keys). A refusal raises :class:`~tickgate.TickgateError` with the gateway's ``code``
and HTTP ``status``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from .credentials import Credentials
from .errors import TickgateError, invalid_argument

_VENUE = re.compile(r"[a-z0-9_]{1,32}")
_SYMBOL = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}(-PERP)?")
_INTERVALS = ("1s", "1m", "5m", "15m", "1h", "1d")

TimeArg = datetime | int | str | None


def _time_param(name: str, value: TimeArg) -> str | None:
    """``from``/``to``: a timezone-aware datetime, epoch milliseconds, or RFC 3339 text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise invalid_argument(f"{name} must be timezone-aware (e.g. datetime.now(UTC))")
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid_argument(f"{name} must be a datetime, epoch milliseconds or RFC 3339 text")
    return str(value)


def _check_instrument(venue: str, symbol: str) -> None:
    if not isinstance(venue, str) or not _VENUE.fullmatch(venue):
        raise invalid_argument("venue must be 1-32 lowercase letters, digits or '_'")
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise invalid_argument(
            "symbol must be BASE-QUOTE or BASE-QUOTE-PERP (uppercase letters, digits)"
        )


class RestClient:
    """REST API of one gateway. Made by :class:`~tickgate.Client` (``client.rest``), or alone:
    ``RestClient("http://127.0.0.1:8080", credentials)``; use it as an async context manager or
    call :meth:`aclose`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        credentials: Credentials | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise invalid_argument("the REST base URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials.none()
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False)

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- generic ---------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """One call; returns the decoded JSON (None for 204). ``body`` is sent as JSON."""
        if not path.startswith("/"):
            raise invalid_argument("path must start with '/'")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.base_url + path
        if query:
            # Encoded once, here, so the signature covers exactly the query that is sent.
            url += "?" + urlencode(query, quote_via=quote, safe="")
        content = None
        headers: dict[str, str] = {"Accept": "application/json"}
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        headers.update(self.credentials.headers(method, url, content))
        try:
            response = await self._http.request(
                method, httpx.URL(url), content=content, headers=headers
            )
        except httpx.HTTPError as error:
            raise TickgateError(
                "unreachable", f"{method} {path}: {type(error).__name__}: {error}"
            ) from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            if data is None:
                raise TickgateError(
                    "protocol_error",
                    f"{method} {path}: response is not JSON",
                    status=response.status_code,
                )
            return data
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            raise TickgateError(
                data["code"], str(data.get("message", "")), status=response.status_code
            )
        raise TickgateError(
            "protocol_error",
            f"{method} {path}: HTTP {response.status_code} without an error body",
            status=response.status_code,
        )

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any) -> Any:
        return await self.request("PATCH", path, body=body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    # -- market data -------------------------------------------------------------------------

    async def instruments(self) -> list[dict[str, Any]]:
        data = await self.get("/v1/instruments")
        return list(data["instruments"])

    async def ticker(self, venue: str, symbol: str) -> dict[str, Any]:
        _check_instrument(venue, symbol)
        data = await self.get("/v1/ticker", venue=venue, symbol=symbol)
        return dict(data["ticker"])

    async def funding(self, venue: str, symbol: str) -> dict[str, Any]:
        """``GET /v1/funding``: the perpetual's latest funding message, ``channel``, ``seq``,
        ``epoch`` and ``funding`` (``rate``, ``predicted_rate``?, ``next_funding_ts``?, ``ts``;
        decimals as text), in the WebSocket channel's seq space."""
        return await self._perp("funding", venue, symbol)

    async def mark(self, venue: str, symbol: str) -> dict[str, Any]:
        """``GET /v1/mark``: the latest ``mark`` (``mark``?, ``index``?, ``ts``) with
        ``channel``, ``seq`` and ``epoch``."""
        return await self._perp("mark", venue, symbol)

    async def open_interest(self, venue: str, symbol: str) -> dict[str, Any]:
        """``GET /v1/oi``: the latest ``oi`` (``oi``, ``oi_value``?, ``ts``) with ``channel``,
        ``seq`` and ``epoch``."""
        return await self._perp("oi", venue, symbol)

    async def _perp(self, kind: str, venue: str, symbol: str) -> dict[str, Any]:
        _check_instrument(venue, symbol)
        if not symbol.endswith("-PERP"):
            raise invalid_argument(f"{kind} exists only for perpetuals (symbol BASE-QUOTE-PERP)")
        data = await self.get(f"/v1/{kind}", venue=venue, symbol=symbol)
        if not isinstance(data, dict) or not isinstance(data.get(kind), dict):
            raise TickgateError("protocol_error", f"GET /v1/{kind}: no {kind} object in the answer")
        return dict(data)

    async def book(self, venue: str, symbol: str, depth: int = 50) -> dict[str, Any]:
        """``GET /v1/book``: ``channel``, ``seq``, ``epoch``, ``checksum``, ``bids``, ``asks``
        (best first, at most ``depth``), in the WebSocket channel's seq space."""
        _check_instrument(venue if venue != "all" else "all", symbol)
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5000:
            raise invalid_argument("depth must be an integer from 1 to 5000")
        return dict(await self.get("/v1/book", venue=venue, symbol=symbol, depth=depth))

    async def ws_token(self) -> str:
        """A single-use WebSocket token (``POST /v1/ws-token``, scope ``market:read``)."""
        data = await self.post("/v1/ws-token")
        return str(data["token"])

    # -- history -----------------------------------------------------------------------------

    async def trades_pages(
        self,
        venue: str,
        symbol: str,
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int = 500,
        order: str = "asc",
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Stored trades in ``[start, end)``, one page at a time, following ``next_cursor``."""
        async for page in self._pages(
            "/v1/trades", "trades", venue, symbol, start, end, limit, order, {}
        ):
            yield page

    async def trades(
        self,
        venue: str,
        symbol: str,
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int = 500,
        order: str = "asc",
    ) -> AsyncIterator[dict[str, Any]]:
        """Stored trades one by one across pages (``limit`` is the page size)."""
        async for page in self.trades_pages(
            venue, symbol, start=start, end=end, limit=limit, order=order
        ):
            for trade in page:
                yield trade

    async def candles_pages(
        self,
        venue: str,
        symbol: str,
        interval: str = "1m",
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int = 500,
        order: str = "asc",
    ) -> AsyncIterator[list[dict[str, Any]]]:
        if interval not in _INTERVALS:
            raise invalid_argument(f"interval must be one of {', '.join(_INTERVALS)}")
        async for page in self._pages(
            "/v1/candles",
            "candles",
            venue,
            symbol,
            start,
            end,
            limit,
            order,
            {"interval": interval},
        ):
            yield page

    async def candles(
        self,
        venue: str,
        symbol: str,
        interval: str = "1m",
        *,
        start: TimeArg = None,
        end: TimeArg = None,
        limit: int = 500,
        order: str = "asc",
    ) -> AsyncIterator[dict[str, Any]]:
        """Stored closed candles one by one across pages."""
        async for page in self.candles_pages(
            venue, symbol, interval, start=start, end=end, limit=limit, order=order
        ):
            for candle in page:
                yield candle

    async def _pages(
        self,
        path: str,
        field: str,
        venue: str,
        symbol: str,
        start: TimeArg,
        end: TimeArg,
        limit: int,
        order: str,
        extra: dict[str, str],
    ) -> AsyncIterator[list[dict[str, Any]]]:
        _check_instrument(venue, symbol)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 5000:
            raise invalid_argument("limit must be an integer from 1 to 5000")
        if order not in ("asc", "desc"):
            raise invalid_argument("order must be 'asc' or 'desc'")
        params: dict[str, Any] = {
            "venue": venue,
            "symbol": symbol,
            **extra,
            "from": _time_param("start", start),
            "to": _time_param("end", end),
            "limit": limit,
            "order": order,
        }
        while True:
            data = await self.request("GET", path, params=params)
            yield list(data[field])
            cursor = data.get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor


def ws_token_provider(rest: RestClient) -> Any:
    """A provider for :meth:`Credentials.ws_token` that asks ``rest`` (a backend holding a real
    key) for a new token each time."""

    async def provide() -> str:
        return await rest.ws_token()

    return provide
