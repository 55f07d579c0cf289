//! Following the canonical chain through reorgs, sans-I/O.
//!
//! The [`Tracker`] keeps the last `finality_depth + 1` canonical block headers with their
//! logs, fed headers (from `newHeads` or fetched) and logs (from the `logs` subscription or
//! `eth_getLogs`) in any order. It decides what clients see:
//!
//! - a block and its logs are **emitted** once the block is `confirmations` deep (0: at once),
//!   as `pending`, or as `confirmed` directly when that depth is already the finality depth;
//! - an emitted block and its logs are **confirmed** once the block is `finality_depth` deep;
//! - an emitted block (with its logs) is **retracted** when a header arrives whose parent
//!   shows it is no longer canonical, and an emitted log is retracted alone when the node
//!   reports it `removed`.
//!
//! So every emitted item is later confirmed or retracted exactly once. Logs are identified by
//! `(block hash, log index)`: a log seen twice (subscription and backfill overlap) is emitted
//! once. A reorg that replaces a block already confirmed (deeper than the window) cannot be
//! told consistently: the tracker retracts what is still pending, starts over from the new
//! header and reports it ([`Linked::DeepReorg`]).

use super::error::EvmError;
use super::rpc::Header;
use model::onchain::{ChainBlock, ChainLog, ChainStatus, Hash32};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Logs buffered for blocks whose header has not arrived yet.
pub const MAX_ORPHAN_LOGS: usize = 16_384;

/// What the tracker emits, in order (only the `Block` and `Log` variants).
pub use crate::event::ChainItem as Emit;

/// The outcome of feeding a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// Appended to the canonical chain (after retracting any blocks it replaced), or a
    /// header already known.
    Linked,
    /// Its parent is unknown: fetch the header with this hash (number `number`) and feed it
    /// first, then this one again.
    MissingParent { hash: Hash32, number: u64 },
    /// It forks below the window: pending items were retracted, confirmed ones could not be,
    /// and tracking restarted from this header.
    DeepReorg,
}

/// Counters of what the tracker saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub reorgs: u64,
    pub deep_reorgs: u64,
    pub retracted_blocks: u64,
    pub retracted_logs: u64,
    pub duplicate_logs: u64,
    /// Logs dropped: older than the window, for a block that never arrived, or beyond the
    /// orphan buffer.
    pub dropped_logs: u64,
    /// `removed` logs the tracker had never seen.
    pub unknown_removed: u64,
}

#[derive(Debug)]
struct Entry {
    header: Header,
    logs: BTreeMap<u64, ChainLog>,
    emitted: bool,
    confirmed: bool,
}

impl Entry {
    fn block(&self, status: ChainStatus) -> ChainBlock {
        ChainBlock {
            status,
            number: self.header.number,
            hash: self.header.hash,
            parent_hash: self.header.parent,
            ts: self.header.ts,
        }
    }

    fn status(&self) -> ChainStatus {
        if self.confirmed {
            ChainStatus::Confirmed
        } else {
            ChainStatus::Pending
        }
    }
}

/// The reorg-aware chain follower. See the module docs.
#[derive(Debug)]
pub struct Tracker {
    confirmations: u64,
    finality: u64,
    /// Canonical blocks, consecutive numbers, oldest first.
    blocks: VecDeque<Entry>,
    by_hash: HashMap<Hash32, u64>,
    orphans: HashMap<Hash32, Vec<ChainLog>>,
    orphan_count: usize,
    pub stats: TrackerStats,
}

impl Tracker {
    /// `confirmations <= finality`, `finality >= 1` (checked by the config).
    pub fn new(confirmations: u64, finality: u64) -> Self {
        Self {
            confirmations: confirmations.min(finality),
            finality: finality.max(1),
            blocks: VecDeque::new(),
            by_hash: HashMap::new(),
            orphans: HashMap::new(),
            orphan_count: 0,
            stats: TrackerStats::default(),
        }
    }

    /// The newest canonical header.
    pub fn tip(&self) -> Option<&Header> {
        self.blocks.back().map(|e| &e.header)
    }

    /// The oldest header kept.
    pub fn oldest(&self) -> Option<&Header> {
        self.blocks.front().map(|e| &e.header)
    }

    /// The number of the oldest block whose items are not confirmed yet (backfill restarts
    /// there), or the tip's successor when every kept block is confirmed.
    pub fn unconfirmed_from(&self) -> Option<u64> {
        self.blocks
            .iter()
            .find(|e| !e.confirmed)
            .map(|e| e.header.number)
            .or_else(|| self.tip().map(|t| t.number + 1))
    }

    /// Whether `hash` is a kept canonical block.
    pub fn knows(&self, hash: &Hash32) -> bool {
        self.by_hash.contains_key(hash)
    }

    fn index_of(&self, hash: &Hash32) -> Option<usize> {
        let number = *self.by_hash.get(hash)?;
        let front = self.blocks.front()?.header.number;
        usize::try_from(number.checked_sub(front)?).ok()
    }

    /// Feeds a header; emitted items are appended to `out`.
    pub fn on_header(&mut self, h: Header, out: &mut Vec<Emit>) -> Result<Linked, EvmError> {
        if self.by_hash.contains_key(&h.hash) {
            return Ok(Linked::Linked);
        }
        let Some(tip) = self.blocks.back().map(|e| e.header) else {
            self.push(h, out);
            return Ok(Linked::Linked);
        };
        if h.parent == tip.hash {
            follows(&h, &tip)?;
            self.push(h, out);
            return Ok(Linked::Linked);
        }
        if let Some(i) = self.index_of(&h.parent) {
            follows(&h, &self.blocks[i].header)?;
            self.stats.reorgs += 1;
            self.retract_after(i + 1, out);
            self.push(h, out);
            return Ok(Linked::Linked);
        }
        let oldest = self.blocks.front().map_or(0, |e| e.header.number);
        if h.number <= oldest {
            // Forks at or below the oldest kept block: everything kept is off the chain.
            self.stats.deep_reorgs += 1;
            self.restart(out);
            self.push(h, out);
            return Ok(Linked::DeepReorg);
        }
        if h.number == 0 {
            return Err(EvmError::Inconsistent(
                "block 0 with an unknown parent".into(),
            ));
        }
        Ok(Linked::MissingParent {
            hash: h.parent,
            number: h.number - 1,
        })
    }

    /// Forgets the chain (after blocks were skipped): pending items are retracted, since
    /// whether they stay canonical can no longer be told. The next header starts over.
    pub fn restart(&mut self, out: &mut Vec<Emit>) {
        self.retract_after(0, out);
        self.orphans.clear();
        self.orphan_count = 0;
    }

    /// Feeds a log (from a subscription or `eth_getLogs`).
    pub fn on_log(
        &mut self,
        mut log: ChainLog,
        removed: bool,
        out: &mut Vec<Emit>,
    ) -> Result<(), EvmError> {
        if let Some(i) = self.index_of(&log.block_hash) {
            let entry = &mut self.blocks[i];
            if entry.header.number != log.block_number {
                return Err(EvmError::Inconsistent(format!(
                    "log of block {} says block number {}",
                    entry.header.hash, log.block_number
                )));
            }
            if removed {
                match entry.logs.remove(&log.log_index) {
                    Some(mut known) if entry.emitted => {
                        known.status = ChainStatus::Retracted;
                        self.stats.retracted_logs += 1;
                        out.push(Emit::Log(known));
                    }
                    Some(_) => {}
                    None => self.stats.unknown_removed += 1,
                }
                return Ok(());
            }
            if entry.logs.contains_key(&log.log_index) {
                self.stats.duplicate_logs += 1;
                return Ok(());
            }
            log.block_ts = entry.header.ts;
            if entry.emitted {
                log.status = entry.status();
                out.push(Emit::Log(log.clone()));
            }
            entry.logs.insert(log.log_index, log);
            return Ok(());
        }
        if removed {
            // Never emitted (its block is unknown): forget any buffered copy.
            if let Some(list) = self.orphans.get_mut(&log.block_hash) {
                let before = list.len();
                list.retain(|l| l.log_index != log.log_index);
                self.orphan_count -= before - list.len();
                if before == list.len() {
                    self.stats.unknown_removed += 1;
                }
            } else {
                self.stats.unknown_removed += 1;
            }
            return Ok(());
        }
        let too_old = self
            .blocks
            .front()
            .is_some_and(|e| log.block_number < e.header.number);
        if too_old || self.orphan_count >= MAX_ORPHAN_LOGS {
            self.stats.dropped_logs += 1;
            return Ok(());
        }
        let list = self.orphans.entry(log.block_hash).or_default();
        if list.iter().any(|l| l.log_index == log.log_index) {
            self.stats.duplicate_logs += 1;
        } else {
            list.push(log);
            self.orphan_count += 1;
        }
        Ok(())
    }

    fn push(&mut self, h: Header, out: &mut Vec<Emit>) {
        let mut entry = Entry {
            header: h,
            logs: BTreeMap::new(),
            emitted: false,
            confirmed: false,
        };
        if let Some(list) = self.orphans.remove(&h.hash) {
            self.orphan_count -= list.len();
            for mut log in list {
                if log.block_number != h.number {
                    self.stats.dropped_logs += 1;
                    continue;
                }
                log.block_ts = h.ts;
                entry.logs.insert(log.log_index, log);
            }
        }
        self.by_hash.insert(h.hash, h.number);
        self.blocks.push_back(entry);
        self.settle(out);
    }

    /// Retracts (tip first) and drops every kept block from index `from` on.
    fn retract_after(&mut self, from: usize, out: &mut Vec<Emit>) {
        while self.blocks.len() > from {
            let Some(entry) = self.blocks.pop_back() else {
                break;
            };
            self.by_hash.remove(&entry.header.hash);
            if !entry.emitted {
                continue;
            }
            if entry.confirmed {
                // Only a deep reorg gets here; counted there.
                continue;
            }
            self.stats.retracted_blocks += 1;
            for mut log in entry.logs.into_values().rev() {
                log.status = ChainStatus::Retracted;
                self.stats.retracted_logs += 1;
                out.push(Emit::Log(log));
            }
            out.push(Emit::Block(ChainBlock {
                status: ChainStatus::Retracted,
                number: entry.header.number,
                hash: entry.header.hash,
                parent_hash: entry.header.parent,
                ts: entry.header.ts,
            }));
        }
    }

    /// Emits and confirms by depth, then forgets what is beyond the window.
    fn settle(&mut self, out: &mut Vec<Emit>) {
        let Some(tip) = self.blocks.back().map(|e| e.header.number) else {
            return;
        };
        for entry in &mut self.blocks {
            let depth = tip.saturating_sub(entry.header.number);
            if !entry.emitted && depth >= self.confirmations {
                entry.emitted = true;
                entry.confirmed = depth >= self.finality;
                let status = entry.status();
                out.push(Emit::Block(entry.block(status)));
                for log in entry.logs.values_mut() {
                    log.status = status;
                    out.push(Emit::Log(log.clone()));
                }
            } else if entry.emitted && !entry.confirmed && depth >= self.finality {
                entry.confirmed = true;
                out.push(Emit::Block(entry.block(ChainStatus::Confirmed)));
                for log in entry.logs.values_mut() {
                    log.status = ChainStatus::Confirmed;
                    out.push(Emit::Log(log.clone()));
                }
            }
        }
        while self.blocks.len() > 1
            && self
                .blocks
                .front()
                .is_some_and(|e| tip - e.header.number > self.finality)
        {
            if let Some(old) = self.blocks.pop_front() {
                self.by_hash.remove(&old.header.hash);
            }
        }
        if let Some(oldest) = self.blocks.front().map(|e| e.header.number) {
            let before = self.orphan_count;
            self.orphans.retain(|_, list| {
                list.retain(|l| l.block_number >= oldest);
                !list.is_empty()
            });
            let after: usize = self.orphans.values().map(Vec::len).sum();
            self.orphan_count = after;
            self.stats.dropped_logs += (before - after) as u64;
        }
    }
}

fn follows(h: &Header, parent: &Header) -> Result<(), EvmError> {
    if h.number != parent.number + 1 {
        return Err(EvmError::Inconsistent(format!(
            "block {} is number {} but its parent {} is number {}",
            h.hash, h.number, parent.hash, parent.number
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
