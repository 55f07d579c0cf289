//! ABI decoding by hand: event topics (keccak-256 of the signature), 32-byte words, and the
//! events the gateway understands (ERC-20 `Transfer`, Uniswap v2 `Swap`/`Sync`, v3 `Swap`).

use super::u256::{I256, U256, scale_decimal};
use model::onchain::{Address, Amount, ChainEvent, ChainLog, Hash32};
use sha3::{Digest, Keccak256};

/// keccak-256 of `bytes`.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Keccak256::digest(bytes));
    out
}

/// The topic of an event signature such as `Transfer(address,address,uint256)`.
pub fn event_topic(signature: &str) -> Hash32 {
    Hash32(keccak256(signature.as_bytes()))
}

/// The 4-byte selector of a function signature such as `decimals()`.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

pub const TRANSFER: &str = "Transfer(address,address,uint256)";
pub const SWAP_V2: &str = "Swap(address,uint256,uint256,uint256,uint256,address)";
pub const SYNC: &str = "Sync(uint112,uint112)";
pub const SWAP_V3: &str = "Swap(address,address,int256,int256,uint160,uint128,int24)";

/// The topics of the decoded events, computed once.
#[derive(Debug, Clone)]
pub struct Topics {
    pub transfer: Hash32,
    pub swap_v2: Hash32,
    pub sync: Hash32,
    pub swap_v3: Hash32,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            transfer: event_topic(TRANSFER),
            swap_v2: event_topic(SWAP_V2),
            sync: event_topic(SYNC),
            swap_v3: event_topic(SWAP_V3),
        }
    }
}

/// Token decimals for scaling amounts: of the log's own contract (a token's `Transfer`), or
/// of a pool's two tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scales {
    pub token: Option<u8>,
    pub token0: Option<u8>,
    pub token1: Option<u8>,
}

/// Why a log with a known signature could not be decoded (it is then delivered raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// The ABI words of a log's data: whole 32-byte words only.
fn words(data: &[u8], count: usize, event: &str) -> Result<Vec<U256>, DecodeError> {
    if data.len() != 32 * count {
        return Err(DecodeError(format!(
            "{event}: data has {} bytes, expected {}",
            data.len(),
            32 * count
        )));
    }
    Ok(data
        .chunks_exact(32)
        .map(|chunk| {
            let mut word = [0u8; 32];
            word.copy_from_slice(chunk);
            U256::from_be_bytes(&word)
        })
        .collect())
}

/// An address in a topic or word: 12 zero bytes, then 20 bytes.
fn address(word: &[u8; 32], field: &str) -> Result<Address, DecodeError> {
    if word[..12].iter().any(|b| *b != 0) {
        return Err(DecodeError(format!("{field}: not an address")));
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(&word[12..]);
    Ok(Address(out))
}

fn amount(value: &U256, decimals: Option<u8>) -> Amount {
    let raw = value.to_decimal_string();
    Amount {
        value: decimals.map(|d| scale_decimal(&raw, d)),
        raw,
    }
}

fn signed_amount(value: &I256, decimals: Option<u8>) -> Amount {
    let raw = value.to_decimal_string();
    Amount {
        value: decimals.map(|d| scale_decimal(&raw, d)),
        raw,
    }
}

/// Checks that an unsigned value fits in `bits`.
fn fits(value: &U256, bits: u32, field: &str) -> Result<(), DecodeError> {
    if value.bits() > bits {
        return Err(DecodeError(format!("{field}: wider than uint{bits}")));
    }
    Ok(())
}

/// Checks that a signed word is a correctly sign-extended `int{bits}`.
fn fits_signed(word: &U256, bits: u32, field: &str) -> Result<I256, DecodeError> {
    let value = I256::from_word(word);
    // int{bits} ranges over [-2^(bits-1), 2^(bits-1) - 1].
    let limit = if value.negative { bits } else { bits - 1 };
    let ok = if value.negative {
        value.magnitude.bits() < limit
            || (value.magnitude.bits() == limit
                && value
                    .magnitude
                    .checked_sub(&U256::from_u128(1))
                    .map(|m| m.bits())
                    < Some(limit))
    } else {
        value.magnitude.bits() <= limit
    };
    if !ok {
        return Err(DecodeError(format!(
            "{field}: not a sign-extended int{bits}"
        )));
    }
    Ok(value)
}

/// Decodes `log` if its signature is one of [`Topics`]; `Ok(None)` for any other log.
pub fn decode(
    log: &ChainLog,
    topics: &Topics,
    scales: Scales,
) -> Result<Option<ChainEvent>, DecodeError> {
    let Some(topic0) = log.topics.first() else {
        return Ok(None);
    };
    let data = &log.data.0;
    let event = if *topic0 == topics.transfer {
        // ERC-721 uses the same signature with the token id indexed (4 topics): not ours.
        if log.topics.len() != 3 || data.len() != 32 {
            return Ok(None);
        }
        let w = words(data, 1, "Transfer")?;
        ChainEvent::Transfer {
            from: address(&log.topics[1].0, "Transfer.from")?,
            to: address(&log.topics[2].0, "Transfer.to")?,
            value: amount(&w[0], scales.token),
        }
    } else if *topic0 == topics.swap_v2 {
        expect_topics(log, 3, "Swap (v2)")?;
        let w = words(data, 4, "Swap (v2)")?;
        ChainEvent::SwapV2 {
            sender: address(&log.topics[1].0, "Swap.sender")?,
            to: address(&log.topics[2].0, "Swap.to")?,
            amount0_in: amount(&w[0], scales.token0),
            amount1_in: amount(&w[1], scales.token1),
            amount0_out: amount(&w[2], scales.token0),
            amount1_out: amount(&w[3], scales.token1),
        }
    } else if *topic0 == topics.sync {
        expect_topics(log, 1, "Sync")?;
        let w = words(data, 2, "Sync")?;
        fits(&w[0], 112, "Sync.reserve0")?;
        fits(&w[1], 112, "Sync.reserve1")?;
        ChainEvent::Sync {
            reserve0: amount(&w[0], scales.token0),
            reserve1: amount(&w[1], scales.token1),
        }
    } else if *topic0 == topics.swap_v3 {
        expect_topics(log, 3, "Swap (v3)")?;
        let w = words(data, 5, "Swap (v3)")?;
        let amount0 = I256::from_word(&w[0]);
        let amount1 = I256::from_word(&w[1]);
        fits(&w[2], 160, "Swap.sqrtPriceX96")?;
        fits(&w[3], 128, "Swap.liquidity")?;
        let tick = fits_signed(&w[4], 24, "Swap.tick")?;
        let tick_abs = tick.magnitude.to_u128().unwrap_or(0) as i64;
        let tick = i32::try_from(if tick.negative { -tick_abs } else { tick_abs })
            .map_err(|_| DecodeError("Swap.tick: out of range".into()))?;
        ChainEvent::SwapV3 {
            sender: address(&log.topics[1].0, "Swap.sender")?,
            recipient: address(&log.topics[2].0, "Swap.recipient")?,
            amount0: signed_amount(&amount0, scales.token0),
            amount1: signed_amount(&amount1, scales.token1),
            sqrt_price_x96: w[2].to_decimal_string(),
            liquidity: w[3].to_decimal_string(),
            tick,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(event))
}

fn expect_topics(log: &ChainLog, count: usize, event: &str) -> Result<(), DecodeError> {
    if log.topics.len() != count {
        return Err(DecodeError(format!(
            "{event}: {} topics, expected {count}",
            log.topics.len()
        )));
    }
    Ok(())
}

/// The raw words of a v2 `Swap` or v3 `Swap`, for turning into a trade: `(amount0, amount1)`
/// as the pool's signed balance changes (positive: the pool received).
pub fn pool_deltas(log: &ChainLog, topics: &Topics) -> Option<(I256, I256)> {
    let topic0 = log.topics.first()?;
    let data = &log.data.0;
    if *topic0 == topics.swap_v2 && log.topics.len() == 3 {
        let w = words(data, 4, "").ok()?;
        let delta = |inn: &U256, out: &U256| match inn.checked_sub(out) {
            Some(m) => I256 {
                negative: false,
                magnitude: m,
            },
            None => I256 {
                negative: true,
                magnitude: out.checked_sub(inn).unwrap_or_default(),
            },
        };
        Some((delta(&w[0], &w[2]), delta(&w[1], &w[3])))
    } else if *topic0 == topics.swap_v3 && log.topics.len() == 3 {
        let w = words(data, 5, "").ok()?;
        Some((I256::from_word(&w[0]), I256::from_word(&w[1])))
    } else {
        None
    }
}

/// An ABI word holding a small unsigned integer (an `eth_call` answer such as `decimals()`).
pub fn small_uint(data: &[u8]) -> Option<u64> {
    let w = words(data, 1, "").ok()?;
    let v = w[0].to_u128()?;
    u64::try_from(v).ok()
}

/// An ABI word holding an address (an `eth_call` answer such as `token0()`).
pub fn address_word(data: &[u8]) -> Option<Address> {
    let word: &[u8; 32] = data.try_into().ok()?;
    address(word, "").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Timestamp;
    use model::onchain::{ChainStatus, HexBytes};

    fn hash(hex: &str) -> Hash32 {
        Hash32::parse(hex).unwrap()
    }

    #[test]
    fn topics_and_selectors_match_the_published_values() {
        let t = Topics::default();
        let cases = [
            (
                t.transfer,
                "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
            ),
            (
                t.swap_v2,
                "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822",
            ),
            (
                t.sync,
                "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1",
            ),
            (
                t.swap_v3,
                "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67",
            ),
        ];
        for (topic, expected) in cases {
            assert_eq!(topic, hash(expected));
        }
        assert_eq!(selector("decimals()"), [0x31, 0x3c, 0xe5, 0x67]);
        assert_eq!(selector("token0()"), [0x0d, 0xfe, 0x16, 0x81]);
        assert_eq!(selector("token1()"), [0xd2, 0x12, 0x20, 0xa7]);
    }

    fn log(topics: Vec<Hash32>, data: Vec<u8>) -> ChainLog {
        ChainLog {
            status: ChainStatus::Pending,
            block_number: 1,
            block_hash: Hash32::default(),
            block_ts: Timestamp(0),
            tx_hash: Hash32::default(),
            tx_index: 0,
            log_index: 0,
            address: Address::default(),
            topics,
            data: HexBytes(data),
            event: None,
        }
    }

    fn addr_topic(last: u8) -> Hash32 {
        let mut t = [0u8; 32];
        t[31] = last;
        Hash32(t)
    }

    fn word_bytes(value: u128, negative: bool) -> Vec<u8> {
        let v = U256::from_u128(value);
        let v = if negative { v.wrapping_neg() } else { v };
        v.to_be_bytes().to_vec()
    }

    #[test]
    fn decodes_each_known_event_and_rejects_malformed_ones() {
        let t = Topics::default();
        let transfer = log(
            vec![t.transfer, addr_topic(1), addr_topic(2)],
            word_bytes(1_500_000, false),
        );
        let scales = Scales {
            token: Some(6),
            token0: Some(18),
            token1: Some(6),
        };
        assert_eq!(
            serde_json::to_string(&decode(&transfer, &t, scales).unwrap().unwrap()).unwrap(),
            format!(
                r#"{{"name":"transfer","from":"{}","to":"{}","value":{{"raw":"1500000","value":"1.5"}}}}"#,
                Address(
                    [0; 19]
                        .iter()
                        .copied()
                        .chain([1])
                        .collect::<Vec<_>>()
                        .try_into()
                        .unwrap()
                ),
                Address(
                    [0; 19]
                        .iter()
                        .copied()
                        .chain([2])
                        .collect::<Vec<_>>()
                        .try_into()
                        .unwrap()
                ),
            )
        );
        let mut v3_data = word_bytes(2 * 10u128.pow(18), true);
        v3_data.extend(word_bytes(6_000_000_000, false));
        v3_data.extend(word_bytes(1u128 << 96, false));
        v3_data.extend(word_bytes(1_000, false));
        v3_data.extend(word_bytes(200, true));
        let v3 = log(
            vec![t.swap_v3, addr_topic(1), addr_topic(2)],
            v3_data.clone(),
        );
        let Some(ChainEvent::SwapV3 {
            amount0,
            amount1,
            tick,
            sqrt_price_x96,
            ..
        }) = decode(&v3, &t, scales).unwrap()
        else {
            panic!("not a v3 swap");
        };
        assert_eq!(amount0.value.as_deref(), Some("-2"));
        assert_eq!(amount1.value.as_deref(), Some("6000"));
        assert_eq!(
            (tick, sqrt_price_x96.as_str()),
            (-200, "79228162514264337593543950336")
        );

        // One line per malformed case: each is an error, never a wrong value.
        let mut bad_tick = v3_data.clone();
        bad_tick[128..160].copy_from_slice(&word_bytes(1 << 30, false));
        let mut bad_addr = addr_topic(1);
        bad_addr.0[0] = 1;
        let cases = [
            log(vec![t.swap_v3, addr_topic(1), addr_topic(2)], bad_tick),
            log(vec![t.swap_v3, addr_topic(1)], v3_data.clone()),
            log(
                vec![t.swap_v3, addr_topic(1), addr_topic(2)],
                v3_data[..64].to_vec(),
            ),
            log(vec![t.sync], word_bytes(1, false)),
            log(vec![t.swap_v2, bad_addr, addr_topic(2)], vec![0; 128]),
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert!(decode(bad, &t, scales).is_err(), "case {i}");
        }
        // Unknown signatures and ERC-721 transfers are raw logs, not errors.
        assert_eq!(
            decode(&log(vec![addr_topic(9)], vec![]), &t, scales),
            Ok(None)
        );
        let nft = log(
            vec![t.transfer, addr_topic(1), addr_topic(2), addr_topic(3)],
            vec![],
        );
        assert_eq!(decode(&nft, &t, scales), Ok(None));
    }
}
