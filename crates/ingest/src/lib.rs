//! Books and aggregators stage: validates connector events into books, tickers and candles, publishes to the hub
