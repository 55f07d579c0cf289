//! Alerts on live market data: rules, their evaluation, and delivery over the `alerts`
//! WebSocket channel and as Standard Webhooks.
//!
//! # Layout
//!
//! - [`error`]: [`AlertError`], every failure with its stable code.
//! - [`rule`]: conditions reduced to a [`rule::Metric`] and a [`rule::Trigger`]; options
//!   (hysteresis, cool-down, expiry, max firings); validation from the wire types.
//! - [`engine`]: the [`Engine`]: rules indexed by metric and by sorted thresholds, fed market
//!   events, producing firings (pure, synchronous, deterministic).
//!
//! - [`evaluator`]: the task per partition (venue, or `cross`) that feeds the engine from the
//!   hub's channels, writes firings to the outbox, then publishes them on the owners'
//!   private `alerts` channels; [`firing`]: the alert body and webhook payload of a firing.
//! - [`service`]: [`AlertService`], the rule, endpoint and delivery operations the REST
//!   routes call, scoped to the caller's principal.
//! - [`webhook`]: Standard Webhooks signatures, the SSRF guard, the retry schedule and the
//!   delivery worker.
//! - `testing` (feature `testing`): a real local webhook receiver for tests.
//! - [`notice`]: operator notices (anomalies) delivered through the same outbox and worker.
//! - [`config`]: `[alerts]` settings; [`metrics`]: counters for `/metrics`; [`clock`]: the
//!   wall clock that advances with tokio's (paused in tests).
//!
//! Rules, endpoints and the outbox live in the store (`store::alerts`, `store::outbox`),
//! behind [`Store`].

pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod evaluator;
pub mod firing;
pub mod metrics;
pub mod notice;
pub mod rule;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

/// The store the alerts use: rules and endpoints, and the outbox (one backend implements
/// both, so a firing and its rule's counter share a transaction).
pub trait Store: store::alerts::AlertStore + store::outbox::Outbox + 'static {}
impl<T: store::alerts::AlertStore + store::outbox::Outbox + 'static> Store for T {}

pub use engine::{Engine, Fired, Output, TradeTick};
pub use error::AlertError;
pub use rule::{Market, Metric, Rule, Trigger};
pub use service::AlertService;
