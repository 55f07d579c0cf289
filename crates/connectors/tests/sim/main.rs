//! Tests of the simulated venue through its public API: the market against a reference book,
//! the faults, and the connector under tokio's paused clock.

mod connector;
mod faults;
mod market;
mod reference;
