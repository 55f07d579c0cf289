//! The venue registry: every venue this build knows, as one closed enum.
//!
//! Config validation (`server::config`), checksum choice and connector construction
//! (`server::gateway`) all come from here, so adding a venue is a folder under `venue/`, one
//! variant below (the compiler then points at each `match` to fill) and the checklist in
//! CONTRIBUTING.md.

use super::{binance, bybit, coinbase, hyperliquid, kraken, okx, replay, sim};
use crate::ConnectorError;
use crate::conn::Protocol;
use crate::settings::VenueSpec;
use book::ChecksumAlgo;
use std::sync::Arc;

/// A kind of venue, as named by `venues[i].name` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VenueKind {
    /// The deterministic simulated market (no network).
    Sim,
    /// Binance spot over WebSocket, REST snapshots.
    Binance,
    /// Coinbase Advanced Trade over WebSocket.
    Coinbase,
    /// Kraken WebSocket v2, checksummed books.
    Kraken,
    /// OKX v5 public WebSocket: spot and perpetual swaps, `seqId`-chained books.
    Okx,
    /// Bybit v5 public WebSocket: spot and linear perpetuals, books with consecutive `u`.
    Bybit,
    /// Hyperliquid perpetuals: full `l2Book` snapshots diffed into deltas.
    Hyperliquid,
    /// A capture recorded by `tickgate record`, played through the recorded venues' code.
    Replay,
    /// An EVM chain's blocks and contract logs (its own ingest, no books).
    Evm,
}

/// How a venue is connected, which decides what the gateway builds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Runs in-process (`sim`).
    Simulated,
    /// A [`Protocol`] run by the shared `conn::WsConnector`.
    WebSocket,
    /// Plays a capture file.
    Capture,
    /// A JSON-RPC node followed by `ingest::spawn_chain`.
    Chain,
}

impl VenueKind {
    /// Every venue this build supports, in the order error messages list them.
    pub const ALL: [VenueKind; 9] = [
        Self::Sim,
        Self::Binance,
        Self::Coinbase,
        Self::Kraken,
        Self::Okx,
        Self::Bybit,
        Self::Hyperliquid,
        Self::Replay,
        Self::Evm,
    ];

    /// The configuration name (`venues[i].name`), also the hub's venue name for the book
    /// venues.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sim => sim::VENUE,
            Self::Binance => binance::VENUE,
            Self::Coinbase => coinbase::VENUE,
            Self::Kraken => kraken::VENUE,
            Self::Okx => okx::VENUE,
            Self::Bybit => bybit::VENUE,
            Self::Hyperliquid => hyperliquid::VENUE,
            Self::Replay => replay::VENUE,
            Self::Evm => "evm",
        }
    }

    /// The kind named `name`, if this build supports it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The names of every supported venue, comma separated (for error messages).
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// How the venue is connected.
    pub const fn transport(self) -> Transport {
        match self {
            Self::Sim => Transport::Simulated,
            Self::Binance
            | Self::Coinbase
            | Self::Kraken
            | Self::Okx
            | Self::Bybit
            | Self::Hyperliquid => Transport::WebSocket,
            Self::Replay => Transport::Capture,
            Self::Evm => Transport::Chain,
        }
    }

    /// Whether the venue publishes order books (an EVM chain does not: it does not gate
    /// readiness and has no consolidated book).
    pub const fn has_books(self) -> bool {
        !matches!(self.transport(), Transport::Chain)
    }

    /// The algorithm that verifies the venue's book checksums as it publishes them. `sim`
    /// reports [`ChecksumAlgo::None`] here: whether it sends checksums is its own setting
    /// (`[venues.sim] checksum`, [`ChecksumAlgo::Tickgate`]).
    pub const fn checksum(self) -> ChecksumAlgo {
        match self {
            Self::Kraken => ChecksumAlgo::Kraken,
            Self::Okx => ChecksumAlgo::Okx,
            Self::Sim
            | Self::Binance
            | Self::Coinbase
            | Self::Bybit
            | Self::Hyperliquid
            | Self::Replay
            | Self::Evm => ChecksumAlgo::None,
        }
    }

    /// The protocol of a WebSocket venue; `None` for the others.
    pub fn protocol(self, spec: VenueSpec) -> Option<Result<Arc<dyn Protocol>, ConnectorError>> {
        fn shared<P: Protocol + 'static>(
            made: Result<P, ConnectorError>,
        ) -> Result<Arc<dyn Protocol>, ConnectorError> {
            made.map(|p| Arc::new(p) as Arc<dyn Protocol>)
        }
        Some(match self {
            Self::Binance => shared(binance::BinanceProtocol::new(spec)),
            Self::Coinbase => shared(coinbase::CoinbaseProtocol::new(spec)),
            Self::Kraken => shared(kraken::KrakenProtocol::new(spec)),
            Self::Okx => shared(okx::OkxProtocol::new(spec)),
            Self::Bybit => shared(bybit::BybitProtocol::new(spec)),
            Self::Hyperliquid => shared(hyperliquid::HyperliquidProtocol::new(spec)),
            Self::Sim | Self::Replay | Self::Evm => return None,
        })
    }
}

impl std::fmt::Display for VenueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keep_their_documented_order() {
        for kind in VenueKind::ALL {
            assert_eq!(VenueKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(VenueKind::from_name("nasdaq"), None);
        assert_eq!(
            VenueKind::names(),
            "sim, binance, coinbase, kraken, okx, bybit, hyperliquid, replay, evm"
        );
    }

    /// One line per venue: what the gateway builds from the registry.
    #[test]
    fn each_venue_has_its_transport_books_and_checksum() {
        use ChecksumAlgo as C;
        use Transport as T;
        for (kind, transport, books, checksum) in [
            (VenueKind::Sim, T::Simulated, true, C::None),
            (VenueKind::Binance, T::WebSocket, true, C::None),
            (VenueKind::Coinbase, T::WebSocket, true, C::None),
            (VenueKind::Kraken, T::WebSocket, true, C::Kraken),
            (VenueKind::Okx, T::WebSocket, true, C::Okx),
            (VenueKind::Bybit, T::WebSocket, true, C::None),
            (VenueKind::Hyperliquid, T::WebSocket, true, C::None),
            (VenueKind::Replay, T::Capture, true, C::None),
            (VenueKind::Evm, T::Chain, false, C::None),
        ] {
            assert_eq!(kind.transport(), transport, "{kind}");
            assert_eq!(kind.has_books(), books, "{kind}");
            assert_eq!(kind.checksum(), checksum, "{kind}");
            let spec = VenueSpec::new(vec![model::Symbol::new("BTC-USD").unwrap()]);
            assert_eq!(
                kind.protocol(spec).is_some(),
                transport == T::WebSocket,
                "{kind}"
            );
        }
    }

    /// Spot-only venues refuse a perpetual symbol with the key named; OKX serves both.
    #[test]
    fn perpetual_symbols_only_where_the_venue_serves_them() {
        let perp = || VenueSpec::new(vec![model::Symbol::new("BTC-USDT-PERP").unwrap()]);
        for (kind, accepted) in [
            (VenueKind::Binance, false),
            (VenueKind::Coinbase, false),
            (VenueKind::Kraken, false),
            (VenueKind::Okx, true),
            (VenueKind::Bybit, true),
        ] {
            match kind.protocol(perp()).unwrap() {
                Ok(_) => assert!(accepted, "{kind}"),
                Err(error) => {
                    assert!(!accepted, "{kind}");
                    let text = error.to_string();
                    assert!(
                        text.contains(&format!("venues.{kind}.symbols"))
                            && text.contains("perpetual"),
                        "{text}"
                    );
                }
            }
        }
    }
}
