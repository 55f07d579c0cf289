//! L2 order book engine (being written).
