//! SDK integration tests: the real gateway on an ephemeral port, the SDK in front of it, and
//! a fault-injecting proxy in between.

mod proxy;
mod support;

mod credentials;
mod failover;
mod recovery;
mod rest;
mod restart;
mod signed;
mod timing;
