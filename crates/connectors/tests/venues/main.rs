//! Venue connectors against local mock venues speaking each venue's protocol, with faults.
//! No test reaches the internet: every URL points at a mock on 127.0.0.1.

mod backoff;
mod binance;
mod bybit;
mod coinbase;
mod hyperliquid;
mod kraken;
mod okx;
mod replay;
mod support;
