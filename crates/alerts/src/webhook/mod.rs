//! Webhook delivery in the Standard Webhooks format.
//!
//! - [`signature`]: `whsec_` secrets, `v1` (HMAC-SHA256) and `v1a` (Ed25519) signatures,
//!   the `webhook-signature` header with one signature per live secret.
//! - [`address`]: the SSRF guard (every resolved address checked, the operator's allow-list,
//!   a resolver that connects only to checked addresses).
//! - [`url`]: webhook URL validation.
//! - [`schedule`]: exponential backoff with full jitter.
//! - [`worker`]: the delivery worker over the durable outbox.
//! - [`rewrap`]: re-wrapping every endpoint's sealed secrets under the current master key.

pub mod address;
pub mod rewrap;
pub mod schedule;
pub mod signature;
pub mod url;
pub mod worker;
