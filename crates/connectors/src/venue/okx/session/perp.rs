//! The session's perpetual channels: funding, mark and index prices (merged), open interest
//! and liquidations, sizes converted to base units. None of them is book data: a bad push is
//! counted (`io.invalid(None, …)`), nothing of it is applied, and no book is rebuilt.

use super::OkxSession;
use crate::FeedEvent;
use crate::conn::Io;
use crate::venue::okx::contract::Units;
use crate::venue::okx::perp::{
    parse_funding, parse_index_tickers, parse_liquidations, parse_mark_price, parse_open_interest,
};
use crate::venue::parse::excerpt;
use model::{Decimal, Liquidation, MarkPrice, OpenInterest, Timestamp};

/// The last mark and index price of one swap (two channels feed one `mark:` event).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct MarkState {
    pub mark: Option<Decimal>,
    pub index: Option<Decimal>,
}

/// OKX's index name of a swap: `BTC-USDT-SWAP` → `BTC-USDT`.
pub(super) fn index_name(native: &str) -> &str {
    native.strip_suffix("-SWAP").unwrap_or(native)
}

impl OkxSession {
    fn is_own(&self, index: usize, inst: &str, channel: &str, io: &mut Io) -> bool {
        if inst == self.natives[index] {
            return true;
        }
        io.invalid(
            None,
            format!(
                "{channel}: instId {} on another instrument's push",
                excerpt(inst)
            ),
        );
        false
    }

    pub(super) fn on_funding(&mut self, index: usize, text: &str, io: &mut Io) {
        let list = match parse_funding(text) {
            Ok(list) => list,
            Err(reason) => return io.invalid(None, reason),
        };
        if list
            .iter()
            .any(|(inst, _)| !self.is_own(index, inst, "funding-rate", io))
        {
            return;
        }
        for (_, funding) in list {
            io.events.push(FeedEvent::Funding {
                symbol: self.symbols[index].clone(),
                funding,
                recv_ts: io.recv_ts,
            });
        }
    }

    fn push_mark(&mut self, index: usize, ts: Timestamp, io: &mut Io) {
        let state = self.marks[index];
        io.events.push(FeedEvent::Mark {
            symbol: self.symbols[index].clone(),
            mark: MarkPrice {
                mark: state.mark,
                index: state.index,
                ts,
            },
            recv_ts: io.recv_ts,
        });
    }

    pub(super) fn on_mark(&mut self, index: usize, text: &str, io: &mut Io) {
        let list = match parse_mark_price(text) {
            Ok(list) => list,
            Err(reason) => return io.invalid(None, reason),
        };
        if list
            .iter()
            .any(|(inst, ..)| !self.is_own(index, inst, "mark-price", io))
        {
            return;
        }
        for (_, mark, ts) in list {
            self.marks[index].mark = Some(mark);
            self.push_mark(index, ts, io);
        }
    }

    /// `index-tickers` is keyed by the index name, shared by a spot pair's `instId`: it is
    /// routed by channel to every swap of this connection on that index.
    pub(super) fn on_index(&mut self, name: &str, text: &str, io: &mut Io) {
        let swaps: Vec<usize> = (0..self.symbols.len())
            .filter(|&i| self.symbols[i].is_perpetual() && index_name(&self.natives[i]) == name)
            .collect();
        if swaps.is_empty() {
            tracing::debug!(index = %excerpt(name), "index not subscribed; ignored");
            io.ignored += 1;
            return;
        }
        let list = match parse_index_tickers(text) {
            Ok(list) => list,
            Err(reason) => return io.invalid(None, reason),
        };
        if let Some((other, ..)) = list.iter().find(|(n, ..)| n != name) {
            let reason = format!("index-tickers: {} on another index's push", excerpt(other));
            return io.invalid(None, reason);
        }
        for (_, price, ts) in list {
            for &i in &swaps {
                self.marks[i].index = Some(price);
                self.push_mark(i, ts, io);
            }
        }
    }

    /// Open interest in the base currency: OKX's `oiCcy` (the coin), else `oi` contracts ×
    /// `ctVal`. The value is OKX's `oiUsd` only where the quote is USD (elsewhere USD is not
    /// the quote currency the field promises).
    pub(super) fn on_open_interest(&mut self, index: usize, text: &str, io: &mut Io) {
        let list = match parse_open_interest(text) {
            Ok(list) => list,
            Err(reason) => return io.invalid(None, reason),
        };
        let units = self.units[index];
        let usd_quoted = self.symbols[index].quote() == "USD";
        let mut out = Vec::with_capacity(list.len());
        for raw in list {
            if !self.is_own(index, &raw.inst_id, "open-interest", io) {
                return;
            }
            let oi = match raw.oi_ccy {
                Some(coins) => coins,
                None => match units.to_base("open-interest oi", raw.oi) {
                    Ok(base) => base,
                    Err(reason) => return io.invalid(None, reason),
                },
            };
            out.push(OpenInterest {
                oi,
                oi_value: raw.oi_usd.filter(|_| usd_quoted),
                ts: raw.ts,
            });
        }
        for oi in out {
            io.events.push(FeedEvent::OpenInterest {
                symbol: self.symbols[index].clone(),
                oi,
                recv_ts: io.recv_ts,
            });
        }
    }

    /// `liquidation-orders` carries every swap's liquidations: those of this connection's
    /// swaps are published (sizes × `ctVal`), the rest dropped. A swap of unknown contract
    /// size publishes none.
    pub(super) fn on_liquidations(&mut self, text: &str, io: &mut Io) {
        let list = match parse_liquidations(text) {
            Ok(list) => list,
            Err(reason) => return io.invalid(None, reason),
        };
        let mut out = Vec::new();
        for (inst, raws) in list {
            let Some(&index) = self.by_native.get(&inst) else {
                continue; // another swap's
            };
            let units = self.units[index];
            if !self.symbols[index].is_perpetual() || units == Units::Unknown {
                continue;
            }
            for raw in raws {
                match units.to_base("liquidation-orders sz", raw.size) {
                    Ok(size) => out.push((
                        index,
                        Liquidation {
                            side: raw.side,
                            price: raw.price,
                            size,
                            ts: raw.ts,
                        },
                    )),
                    Err(reason) => return io.invalid(None, reason),
                }
            }
        }
        if out.is_empty() {
            io.ignored += 1;
            return;
        }
        for (index, liquidation) in out {
            io.events.push(FeedEvent::Liquidation {
                symbol: self.symbols[index].clone(),
                liquidation,
                recv_ts: io.recv_ts,
            });
        }
    }
}
