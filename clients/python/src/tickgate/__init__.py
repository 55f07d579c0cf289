"""tickgate: the Python SDK of the tickgate market-data gateway (docs/python.md).

``Client`` streams with reconnect, resume and verified local books; ``RestClient`` reads
market data and history; ``Credentials`` signs; ``tickgate.sync`` wraps both for scripts.
"""

from .backoff import Backoff
from .book import BookInvalid, BookMirror, Level
from .checksum import book_checksum
from .client import Client, Options
from .credentials import Credentials
from .errors import TickgateError
from .events import (
    Alert,
    Candle,
    Chain,
    Closed,
    DataEvent,
    Event,
    Funding,
    FundingAll,
    Gap,
    KeyExpiring,
    LiquidationItem,
    Liquidations,
    Mark,
    Meta,
    Notice,
    OpenInterest,
    Reconnecting,
    Recovered,
    Resync,
    ServerError,
    Snapshot,
    Status,
    Ticker,
    Trade,
    TradeItem,
    Update,
    is_data,
)
from .rest import RestClient, ws_token_provider

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "Backoff",
    "BookInvalid",
    "BookMirror",
    "Candle",
    "Chain",
    "Client",
    "Closed",
    "Credentials",
    "DataEvent",
    "Event",
    "Funding",
    "FundingAll",
    "Gap",
    "KeyExpiring",
    "Level",
    "LiquidationItem",
    "Liquidations",
    "Mark",
    "Meta",
    "Notice",
    "OpenInterest",
    "Options",
    "Reconnecting",
    "Recovered",
    "RestClient",
    "Resync",
    "ServerError",
    "Snapshot",
    "Status",
    "Ticker",
    "TickgateError",
    "Trade",
    "TradeItem",
    "Update",
    "__version__",
    "book_checksum",
    "is_data",
    "ws_token_provider",
]
