//! On-chain data from EVM chains: blocks, logs, decoded events and their lifecycle.
//!
//! Everything here is plain data, serialized exactly as clients receive it on the
//! `onchain.blocks:{chain}` and `onchain.logs:{chain}:{contract}` channels: hashes, addresses
//! and byte strings as `0x`-prefixed lowercase hex, token amounts as exact integer strings
//! (`raw`) plus, when the token's decimals are known, the same amount as an exact decimal
//! string (`value`).

use crate::{ModelError, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Fixed-size byte strings written as `0x` + lowercase hex.
macro_rules! hex_array {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            /// Parses `0x` followed by exactly `2 × LEN` hex digits (either case).
            pub fn parse(text: &str) -> Result<Self, ModelError> {
                let invalid = || ModelError::InvalidHex {
                    what: $what,
                    value: text.chars().take(80).collect(),
                };
                let digits = text.strip_prefix("0x").ok_or_else(invalid)?;
                if digits.len() != 2 * $len {
                    return Err(invalid());
                }
                let mut out = [0u8; $len];
                decode_hex_into(digits, &mut out).ok_or_else(invalid)?;
                Ok(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_array!(
    /// A 20-byte account or contract address. Displayed lowercase (no EIP-55 checksum case).
    Address,
    20,
    "address"
);
hex_array!(
    /// A 32-byte value: a block or transaction hash, or a log topic.
    Hash32,
    32,
    "32-byte hash"
);

/// Arbitrary bytes (a log's `data`), written as `0x` + lowercase hex.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct HexBytes(pub Vec<u8>);

impl HexBytes {
    /// Parses `0x` followed by an even number of hex digits (`0x` alone is empty).
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let invalid = || ModelError::InvalidHex {
            what: "byte string",
            value: text.chars().take(80).collect(),
        };
        let digits = text.strip_prefix("0x").ok_or_else(invalid)?;
        if digits.len() % 2 != 0 {
            return Err(invalid());
        }
        let mut out = vec![0u8; digits.len() / 2];
        decode_hex_into(digits, &mut out).ok_or_else(invalid)?;
        Ok(Self(out))
    }
}

impl fmt::Display for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 + 2 * bytes.len());
    text.push_str("0x");
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 15)] as char);
    }
    f.write_str(&text)
}

/// Decodes hex digits into `out` (`digits.len() == 2 * out.len()`); `None` on a non-hex digit.
pub fn decode_hex_into(digits: &str, out: &mut [u8]) -> Option<()> {
    let digits = digits.as_bytes();
    if digits.len() != 2 * out.len() {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

/// Where an on-chain event stands. Every event a client sees as `pending` is later sent
/// again exactly once as `confirmed` (its block reached the finality depth) or `retracted`
/// (its block left the canonical chain, or the node reported the log `removed`). An event
/// may also be sent directly as `confirmed` (when `confirmations` equals the finality depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    Pending,
    Confirmed,
    Retracted,
}

impl ChainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Retracted => "retracted",
        }
    }
}

/// A block header as the gateway tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBlock {
    pub status: ChainStatus,
    pub number: u64,
    pub hash: Hash32,
    pub parent_hash: Hash32,
    /// The block's timestamp, µs since the epoch (the chain gives seconds).
    pub ts: Timestamp,
}

/// One contract log. `(block_hash, log_index)` identifies it; the same transaction included
/// again in another block after a reorg is another log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLog {
    pub status: ChainStatus,
    pub block_number: u64,
    pub block_hash: Hash32,
    /// The block's timestamp, µs since the epoch.
    pub block_ts: Timestamp,
    pub tx_hash: Hash32,
    pub tx_index: u64,
    pub log_index: u64,
    pub address: Address,
    pub topics: Vec<Hash32>,
    pub data: HexBytes,
    /// The decoded event, for the events the gateway knows; absent for any other log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<ChainEvent>,
}

/// A token amount: the exact on-chain integer, and the same scaled by the token's decimals
/// when they are known (`"1500000"` raw with 6 decimals is `"1.5"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Exact integer, in the token's smallest unit (negative for signed v3 amounts).
    pub raw: String,
    /// `raw` scaled by the token's decimals, exact; absent when the decimals are unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The events the gateway decodes. Anything else is delivered as a raw log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum ChainEvent {
    /// ERC-20 `Transfer(address indexed from, address indexed to, uint256 value)`.
    Transfer {
        from: Address,
        to: Address,
        value: Amount,
    },
    /// Uniswap v2 `Swap(address indexed sender, uint amount0In, uint amount1In,
    /// uint amount0Out, uint amount1Out, address indexed to)`.
    SwapV2 {
        sender: Address,
        to: Address,
        amount0_in: Amount,
        amount1_in: Amount,
        amount0_out: Amount,
        amount1_out: Amount,
    },
    /// Uniswap v2 `Sync(uint112 reserve0, uint112 reserve1)`.
    Sync { reserve0: Amount, reserve1: Amount },
    /// Uniswap v3 `Swap(address indexed sender, address indexed recipient, int256 amount0,
    /// int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)`; amounts are
    /// the pool's balance changes (positive: the pool received).
    SwapV3 {
        sender: Address,
        recipient: Address,
        amount0: Amount,
        amount1: Amount,
        sqrt_price_x96: String,
        liquidity: String,
        tick: i32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_types_round_trip_and_reject_bad_text() {
        let a = Address::parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2").unwrap();
        assert_eq!(a.to_string(), "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2");
        assert_eq!(
            serde_json::to_string(&HexBytes(vec![0, 255])).unwrap(),
            r#""0x00ff""#
        );
        assert_eq!(HexBytes::parse("0x").unwrap(), HexBytes(vec![]));
        let cases = [
            "c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
            "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc",
            "0xg02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
            "0x",
        ];
        for bad in cases {
            assert_eq!(
                Address::parse(bad).unwrap_err().code(),
                "invalid_hex",
                "{bad}"
            );
        }
        assert_eq!(HexBytes::parse("0x0").unwrap_err().code(), "invalid_hex");
        assert!(Hash32::parse(&format!("0x{}", "ab".repeat(32))).is_ok());
    }

    #[test]
    fn decoded_event_has_documented_shape() {
        let event = ChainEvent::Sync {
            reserve0: Amount {
                raw: "1500000".into(),
                value: Some("1.5".into()),
            },
            reserve1: Amount {
                raw: "7".into(),
                value: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"name":"sync","reserve0":{"raw":"1500000","value":"1.5"},"reserve1":{"raw":"7"}}"#
        );
    }
}
