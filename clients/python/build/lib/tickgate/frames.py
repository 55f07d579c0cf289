"""pandas helpers (``pip install './clients/python[pandas]'``): trades and candles as
DataFrames, with times as UTC datetimes and prices exact (``Decimal`` objects) unless
``exact=False`` asks for float64 columns for numerical work."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .errors import TickgateError
from .events import TradeItem

if TYPE_CHECKING:
    import pandas

_DECIMAL_COLUMNS = ("price", "size", "open", "high", "low", "close", "volume")
_TIME_COLUMNS = ("ts", "start")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise TickgateError(
            "invalid_argument", "pandas is not installed: pip install 'tickgate[pandas]'"
        ) from None
    return pandas


def _row(item: Mapping[str, Any] | TradeItem) -> dict[str, Any]:
    if isinstance(item, TradeItem):
        return {
            "id": item.id,
            "price": item.price,
            "size": item.size,
            "side": item.side,
            "ts": item.ts,
        }
    return dict(item)


def to_dataframe(
    rows: Iterable[Mapping[str, Any] | TradeItem], *, exact: bool = True
) -> pandas.DataFrame:
    """Trades (REST rows or :class:`TradeItem`) or candles (REST rows) as a DataFrame.

    ``ts``/``start`` (µs) become ``datetime64[us, UTC]``; decimal text becomes ``Decimal``
    (``exact=True``) or float64 (``exact=False``)."""
    pd = _pandas()
    frame = pd.DataFrame([_row(r) for r in rows])
    for column in _DECIMAL_COLUMNS:
        if column in frame:
            values = frame[column].map(lambda v: v if isinstance(v, Decimal) else Decimal(v))
            frame[column] = values if exact else values.astype("float64")
    for column in _TIME_COLUMNS:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], unit="us", utc=True)
    result: pandas.DataFrame = frame
    return result


async def collect_dataframe(
    rows: AsyncIterable[Mapping[str, Any]], *, exact: bool = True
) -> pandas.DataFrame:
    """``to_dataframe`` of everything an async iterator yields, e.g.
    ``await collect_dataframe(rest.trades("sim", "BTC-USDT", start=...))``."""
    return to_dataframe([row async for row in rows], exact=exact)
