//! DEX swaps as trades: price from the swap amounts, the aggressor's side from which token
//! the pool received.

use super::abi::{Topics, pool_deltas};
use super::spec::PoolSpec;
use super::u256::{I256, to_decimal};
use model::onchain::ChainLog;
use model::{Side, Timestamp, Trade};

/// Decimal places a swap price is rounded to (half to even), trailing zeros removed.
pub const PRICE_DECIMALS: u32 = 18;

/// A configured pool with what the connector learned at start: which side its `token0` is
/// and the decimals of both tokens.
#[derive(Debug, Clone)]
pub struct Pool {
    pub spec: PoolSpec,
    /// True when the base token is the pool's `token0`.
    pub base_is_token0: bool,
    pub base_decimals: u8,
    pub quote_decimals: u8,
}

impl Pool {
    /// The trade of a `Swap` log of this pool; `Ok(None)` for its other logs (`Sync`, …) and
    /// for a swap that moved no base token.
    pub fn trade(
        &self,
        log: &ChainLog,
        topics: &Topics,
        recv_ts: Timestamp,
    ) -> Result<Option<Trade>, String> {
        let Some((amount0, amount1)) = pool_deltas(log, topics) else {
            return Ok(None);
        };
        let (base, quote): (I256, I256) = if self.base_is_token0 {
            (amount0, amount1)
        } else {
            (amount1, amount0)
        };
        if base.magnitude.is_zero() {
            return Ok(None);
        }
        let size = to_decimal(&base.magnitude, self.base_decimals)
            .ok_or_else(|| "swap base amount too large for a trade size".to_string())?;
        let quote_amount = to_decimal(&quote.magnitude, self.quote_decimals)
            .ok_or_else(|| "swap quote amount too large for a trade price".to_string())?;
        let price = quote_amount
            .checked_div(size)
            .ok_or_else(|| "swap price out of range".to_string())?
            .round_dp(PRICE_DECIMALS)
            .normalize();
        // The pool received base: the trader sold it into the pool.
        let side = if base.negative { Side::Buy } else { Side::Sell };
        Ok(Some(Trade {
            id: format!("{}:{}", log.tx_hash, log.log_index),
            price,
            size,
            side,
            exchange_ts: log.block_ts,
            recv_ts,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::Dex;
    use super::super::u256::U256;
    use super::*;
    use model::Symbol;
    use model::onchain::{Address, ChainStatus, Hash32, HexBytes};

    fn word(v: u128, negative: bool) -> Vec<u8> {
        let w = U256::from_u128(v);
        (if negative { w.wrapping_neg() } else { w })
            .to_be_bytes()
            .to_vec()
    }

    fn swap_log(topic: Hash32, data: Vec<u8>) -> ChainLog {
        ChainLog {
            status: ChainStatus::Confirmed,
            block_number: 5,
            block_hash: Hash32([5; 32]),
            block_ts: Timestamp(1_700_000_000_000_000),
            tx_hash: Hash32([7; 32]),
            tx_index: 0,
            log_index: 2,
            address: Address([3; 20]),
            topics: vec![topic, Hash32::default(), Hash32::default()],
            data: HexBytes(data),
            event: None,
        }
    }

    fn pool(dex: Dex, base_is_token0: bool) -> Pool {
        Pool {
            spec: PoolSpec {
                dex,
                address: Address([3; 20]),
                symbol: Symbol::new("WETH-USDC").unwrap(),
                base: Address([1; 20]),
                quote: Address([2; 20]),
            },
            base_is_token0,
            base_decimals: 18,
            quote_decimals: 6,
        }
    }

    #[test]
    fn swaps_become_trades_with_exact_price_size_and_side() {
        let t = Topics::default();
        let eth = 10u128.pow(18);
        // v3, base = token1: the pool paid out 0.5 WETH (amount1 < 0) for 1500.25 USDC.
        let mut v3 = word(1_500_250_000, false);
        v3.extend(word(eth / 2, true));
        v3.extend(word(1, false));
        v3.extend(word(1, false));
        v3.extend(word(0, false));
        let trade = pool(Dex::UniswapV3, false)
            .trade(&swap_log(t.swap_v3, v3), &t, Timestamp(9))
            .unwrap()
            .unwrap();
        assert_eq!(
            (trade.price.to_string(), trade.size.to_string(), trade.side),
            ("3000.5".into(), "0.5".into(), Side::Buy)
        );
        assert_eq!(trade.id, format!("{}:2", Hash32([7; 32])));
        assert_eq!(trade.exchange_ts, Timestamp(1_700_000_000_000_000));
        // v2, base = token0: 3 WETH in, 9000 USDC out: a sell at 3000.
        let mut v2 = word(3 * eth, false);
        v2.extend(word(0, false));
        v2.extend(word(0, false));
        v2.extend(word(9_000_000_000, false));
        let trade = pool(Dex::UniswapV2, true)
            .trade(&swap_log(t.swap_v2, v2), &t, Timestamp(9))
            .unwrap()
            .unwrap();
        assert_eq!(
            (trade.price.to_string(), trade.size.to_string(), trade.side),
            ("3000".into(), "3".into(), Side::Sell)
        );
        // A third of a unit: rounded to 18 places.
        let mut v2 = word(3 * eth, false);
        v2.extend(word(0, false));
        v2.extend(word(0, false));
        v2.extend(word(1_000_000, false));
        let trade = pool(Dex::UniswapV2, true)
            .trade(&swap_log(t.swap_v2, v2), &t, Timestamp(9))
            .unwrap()
            .unwrap();
        assert_eq!(trade.price.to_string(), "0.333333333333333333");
        // A Sync is not a trade; an absurd amount is an error, not a wrong trade.
        let sync = swap_log(t.sync, [word(1, false), word(1, false)].concat());
        assert_eq!(
            pool(Dex::UniswapV2, true).trade(&sync, &t, Timestamp(9)),
            Ok(None)
        );
        let mut huge = word(u128::MAX, false);
        huge.extend([word(0, false), word(0, false), word(1, false)].concat());
        assert!(
            pool(Dex::UniswapV2, true)
                .trade(&swap_log(t.swap_v2, huge), &t, Timestamp(9))
                .is_err()
        );
    }
}
