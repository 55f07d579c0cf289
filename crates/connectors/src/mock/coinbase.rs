//! Mock Coinbase Advanced Trade (written with the Coinbase connector).
