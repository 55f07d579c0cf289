//! API keys: format, protected storage, scopes, verification, rate limits, usage and lifecycle.
//!
//! # Layout
//!
//! - [`token`]: the key format (`tg_live_`/`tg_test_` + 256-bit body + CRC-32 checksum), its
//!   generator, parser, masking and the leak scanner.
//! - [`secret`]: secret types (zeroized, `REDACTED` in `Debug`, constant-time compare).
//! - [`envelope`]: envelope encryption of HMAC secrets under a rotatable master key.
//! - [`scope`]: [`Scope`] and [`ScopeSet`].
//! - [`index`]: the in-process key index the request path authenticates against (the cache),
//!   its live usage counters and key events for open sessions; bearer-token authentication.
//! - [`rejection`]: [`Rejection`], a failed authentication with its stable code, whatever the
//!   credential.
//! - `material`: what verifies one key's signatures (HMAC secret opened once, Ed25519 key).
//! - [`signed`]: authentication of RFC 9421 signed requests ([`SignedRequest`]).
//! - [`replay`]: the replay guard of signed requests (time window, single-use or increasing
//!   nonces behind an in-process [`replay::NonceStore`] or a shared, async
//!   [`replay::SharedNonceStore`] such as Redis).
//! - [`ws_token`]: single-use tokens that authenticate a WebSocket upgrade.
//! - `rotation`: the lifecycle steps that retire a credential (rotation with grace and its
//!   cancellation, expiry, master-key rewrap), as methods of [`KeyService`].
//! - [`ratelimit`]: per-key GCRA limiter; [`ratelimit_redis`]: the same in Redis, one budget
//!   for every node ([`KeyIndex::share_budget`]), awaited by admission.
//! - [`wscaps_redis`]: per-key WebSocket connection and subscription caps counted across the
//!   nodes of a cluster (per-node counts under a heartbeat lease).
//! - [`service`]: lifecycle operations on the store (create, rotate, cancel, revoke, update,
//!   expire, rewrap), shared by the CLI and the admin API.
//! - [`info`]: [`KeyInfo`], the public description of a key.
//! - [`maintenance`]: the background task keeping the index in step with the store, expiring
//!   keys and flushing usage.
//! - [`input`]: validation of operator input.
//! - [`anomaly`]: detectors over per-key and per-address windows (`[auth.anomaly]`).
//! - [`totp`]: TOTP (RFC 6238) second factor for critical admin operations.
//! - [`ip_allow`]: per-key IP allow-lists (`metadata.allowed_ips`, CIDR blocks), checked on
//!   every path a key is admitted by.
//!
//! # The seam for signed requests
//!
//! Authentication takes a credential and the scope a request needs and returns a
//! [`KeyPrincipal`] or a [`Rejection`] with a stable code. Credentials: bearer tokens
//! ([`KeyIndex::authenticate_bearer`]), RFC 9421 signed requests
//! ([`KeyIndex::authenticate_signed`]: [`httpsig`] verifies, [`replay`] guards against
//! replays) and single-use WebSocket tokens ([`ws_token`]); all go through the same status,
//! scope, rate-limit and usage steps.

pub mod anomaly;
pub mod envelope;
pub use httpsig;
pub mod index;
pub mod info;
pub mod input;
pub mod ip_allow;
pub mod maintenance;
mod material;
pub mod ratelimit;
pub mod ratelimit_redis;
mod redis_deadline;
pub mod rejection;
pub mod replay;
pub mod rotation;
pub mod scope;
pub mod secret;
pub mod service;
pub mod signed;
#[cfg(test)]
mod test_link;
pub mod token;
pub mod totp;
pub mod ws_token;
pub mod wscaps_redis;

pub use envelope::{KeyRing, MasterKey, MasterKeySources};
pub use index::{
    AuthSettings, KeyEntry, KeyEvent, KeyEventKind, KeyIndex, KeyPrincipal, KeyView, token_hash,
};
pub use info::{KeyInfo, issued_json};
pub use rejection::Rejection;
pub use scope::{Scope, ScopeSet};
pub use secret::SecretString;
pub use service::{Issued, KeyService, KeyUpdate, NewKey, ServiceError};
pub use signed::SignedRequest;
