//! An EVM chain as a source: blocks and contract logs over JSON-RPC, followed through reorgs.
//!
//! - [`spec`]: the `[venues.evm]` configuration ([`EvmSpec`]) and its validation.
//! - [`rpc`]: JSON-RPC messages: requests, and parsing of responses, notifications, headers
//!   and logs, rejecting malformed ones with [`EvmError`] codes.
//! - [`abi`]: keccak-256 topics and selectors, ABI words, decoding of ERC-20 `Transfer`,
//!   Uniswap v2 `Swap`/`Sync` and v3 `Swap`.
//! - [`u256`]: the 256-bit integers of ABI words, printed as exact decimals.
//! - [`tracker`]: the sans-I/O reorg-aware chain follower (emit, confirm, retract).
//! - [`dex`]: swaps of configured pools as trades on `uniswap-v2-{chain}` / `uniswap-v3-{chain}`.
//! - `node`: the connections to a node (WebSocket subscriptions, HTTP requests).
//! - [`connector`]: [`EvmConnector`], the `Connector` that runs it all: connect, subscribe,
//!   backfill after a reconnect, reconnect with the shared backoff.
//! - `setup`: what is read once at start (chain id, pool tokens, token decimals).
//! - `source`: the source's state across connections: one session (subscribe, backfill,
//!   follow), the tracker, what is sent to ingest.
//! - [`error`]: the source's error type, with a stable code per variant.

pub mod abi;
pub mod connector;
pub mod dex;
pub mod error;
mod node;
pub mod rpc;
mod setup;
mod source;
pub mod spec;
pub mod tracker;
pub mod u256;

pub use connector::EvmConnector;
pub use error::EvmError;
pub use spec::{ContractSpec, Dex, EvmSpec, PoolSpec};
