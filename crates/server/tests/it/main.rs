//! Integration tests: the real gateway on an ephemeral port, real WebSocket and HTTP clients.
//!
//! One test binary (faster to link); each module covers one area.

mod support;

mod book_stream;
mod errors;
mod lifecycle;
mod rest;
mod slow_consumer;
mod venue_config;
mod venues;
