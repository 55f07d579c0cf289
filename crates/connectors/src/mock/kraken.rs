//! Mock Kraken WebSocket v2 (written with the Kraken connector).
