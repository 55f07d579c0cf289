//! The tickgate Rust SDK: one connection to a tickgate gateway that stays up by itself,
//! recovers what it missed, and keeps local order books that are never silently wrong.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut config = server::Config::default();
//! # config.server.listen = "127.0.0.1:0".parse()?;
//! # config.server.data_dir = std::env::temp_dir().join("tickgate-client-doctest");
//! # config.venues[0].sim.rate = 50.0;
//! # let gateway = server::Gateway::start(config).await?;
//! # let url = format!("http://{}", gateway.local_addr());
//! use client::{Client, ClientOptions, Event};
//!
//! let mut client = Client::connect(&url, ClientOptions::default()).await?;
//! client.subscribe(["book:sim:BTC-USDT", "trades:sim:BTC-USDT"]).await?;
//! while let Some(event) = client.next_event().await {
//!     match event {
//!         Event::Update(update) => {
//!             // The SDK's local book, already checked against the gateway's checksum.
//!             let book = client.book("book:sim:BTC-USDT").expect("subscribed");
//!             let (bid, ask) = book.best();
//!             println!("#{} bid {bid:?} ask {ask:?}", update.meta.seq);
//!             break;
//!         }
//!         Event::Trade(trades) => println!("{} trades", trades.trades.len()),
//!         Event::Resync { channel, reason, .. } => println!("{channel}: resync ({reason})"),
//!         Event::Gap { channel, from_seq, to_seq, .. } => {
//!             println!("{channel}: lost #{from_seq}..#{to_seq}")
//!         }
//!         _ => {}
//!     }
//! }
//! # gateway.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What it guarantees
//!
//! - **Exactly once or told**: per channel, data events arrive in `seq` order and no seq
//!   twice. After a reconnect every channel is resubscribed with `resume`; when the gateway
//!   still has the missed messages they are replayed (`Event::Recovered`), otherwise the
//!   application gets `Event::Resync` (books: a fresh snapshot follows) or `Event::Gap`.
//!   A gap the client detects itself (a dropped message) is repaired the same way.
//! - **Books never silently wrong**: [`Client::book`](ClientHandle::book) mirrors each book
//!   channel, checks seq continuity and the gateway's checksum on every message, and fetches
//!   a fresh snapshot by itself on any mismatch; a book being rebuilt reads as not live.
//! - **Bounded memory**: one bounded event buffer with a documented [`Overflow`] policy.
//! - See `docs/client.md` for the recovery semantics and the protocol they rely on.
//!
//! # Layout
//!
//! - `client`: [`Client`], [`ClientHandle`]; `endpoint`: [`Endpoint`], the base URLs, and
//!   [`Endpoints`], several gateways tried round robin;
//!   `shared`: the state the connection task, the handles and the REST client share.
//! - `driver`: the connection task: heartbeat, reconnect, make-before-break replacement.
//! - `tracker`: per-channel positions, duplicate and gap detection, repair requests.
//! - `mirror`: local order books ([`BookHandle`], [`BookView`]).
//! - `sink`: the bounded event buffer and its overflow policy.
//! - `backoff`: exponential backoff with full jitter ([`Backoff`]).
//! - `event`, `options`, `credentials`, `error`, `rest`: the public types.

mod backoff;
mod client;
mod credentials;
mod driver;
mod endpoint;
mod error;
mod event;
mod mirror;
mod options;
mod rest;
mod shared;
mod sink;
mod tracker;

pub use backoff::Backoff;
pub use client::{Client, ClientHandle};
pub use credentials::{Credentials, Secret, SignKey};
pub use endpoint::{Endpoint, Endpoints, MAX_ENDPOINTS};
pub use error::ClientError;
pub use event::{
    BookMessage, ChainMessage, Event, KeyExpiring, Latest, LiquidationsMessage, Meta, TradesMessage,
};
/// The request a [`Credentials::headers`] call signs.
pub use httpsig::sign::Unsigned;
pub use mirror::{BookHandle, BookView};
pub use options::{BackoffConfig, ClientOptions, HeartbeatConfig, Overflow};
pub use rest::RestClient;

/// Re-exported wire and model types that appear in events and REST responses.
pub use model::{
    Decimal, Funding, Interval, Level, Liquidation, MarkPrice, OpenInterest, Side, Ticker,
    VenueFunding,
};
pub use protocol::rest::{BookResponse, InstrumentsResponse, TickerResponse};
pub use protocol::{CandleBody, ErrorBody, ErrorCode, StatusBody, WireLevel, WireTrade};
pub use protocol::{CandlesPage, HistoryCandle, TradesPage};
