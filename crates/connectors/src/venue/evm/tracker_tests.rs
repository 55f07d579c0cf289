//! The tracker against hand-made chains, and a randomized check of its promise: every emitted
//! item is later confirmed or retracted exactly once, and what is confirmed is the final
//! canonical chain.

use super::*;
use crate::conn::backoff::Rng;
use model::Timestamp;
use model::onchain::{Address, HexBytes};
use std::collections::HashSet;

fn hash(n: u64, fork: u64) -> Hash32 {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    h[8..16].copy_from_slice(&fork.to_be_bytes());
    h[31] = 1;
    Hash32(h)
}

fn header(n: u64, fork: u64, parent_fork: u64) -> Header {
    Header {
        number: n,
        hash: hash(n, fork),
        parent: hash(n.wrapping_sub(1), parent_fork),
        ts: Timestamp(n as i64 * 1_000_000),
    }
}

fn log(n: u64, fork: u64, index: u64) -> ChainLog {
    ChainLog {
        status: ChainStatus::Pending,
        block_number: n,
        block_hash: hash(n, fork),
        block_ts: Timestamp(0),
        tx_hash: hash(index, 99),
        tx_index: 0,
        log_index: index,
        address: Address::default(),
        topics: vec![],
        data: HexBytes::default(),
        event: None,
    }
}

/// `(kind, number, status)` of each emitted item, with the log index for logs.
fn summary(out: &[Emit]) -> Vec<(char, u64, u64, ChainStatus)> {
    out.iter()
        .map(|e| match e {
            Emit::Block(b) => ('b', b.number, 0, b.status),
            Emit::Log(l) => ('l', l.block_number, l.log_index, l.status),
            Emit::Trade { .. } => unreachable!("the tracker emits no trades"),
        })
        .collect()
}

use ChainStatus::{Confirmed as C, Pending as P, Retracted as R};

#[test]
fn emits_at_once_confirms_at_finality_and_retracts_on_a_reorg() {
    let mut t = Tracker::new(0, 2);
    let mut out = Vec::new();
    t.on_header(header(1, 0, 0), &mut out).unwrap();
    t.on_log(log(1, 0, 0), false, &mut out).unwrap();
    t.on_header(header(2, 0, 0), &mut out).unwrap();
    t.on_log(log(2, 0, 0), false, &mut out).unwrap();
    t.on_log(log(2, 0, 0), false, &mut out).unwrap(); // duplicate: ignored
    assert_eq!(
        summary(&out),
        [
            ('b', 1, 0, P),
            ('l', 1, 0, P),
            ('b', 2, 0, P),
            ('l', 2, 0, P)
        ]
    );
    out.clear();
    // Block 2 is replaced by 2' (parent 1): its log is retracted, then the block.
    assert_eq!(
        t.on_header(header(2, 1, 0), &mut out).unwrap(),
        Linked::Linked
    );
    t.on_log(log(2, 1, 0), false, &mut out).unwrap();
    assert_eq!(
        summary(&out),
        [
            ('l', 2, 0, R),
            ('b', 2, 0, R),
            ('b', 2, 0, P),
            ('l', 2, 0, P)
        ]
    );
    out.clear();
    t.on_header(header(3, 1, 1), &mut out).unwrap();
    assert_eq!(
        summary(&out),
        [('b', 1, 0, C), ('l', 1, 0, C), ('b', 3, 0, P)]
    );
    assert_eq!((t.stats.reorgs, t.stats.duplicate_logs), (1, 1));
    // The confirmed log carries its block's time.
    assert!(matches!(&out[1], Emit::Log(l) if l.block_ts == Timestamp(1_000_000)));
}

#[test]
fn confirmations_delay_emission_and_logs_may_precede_their_header() {
    let mut t = Tracker::new(2, 2);
    let mut out = Vec::new();
    t.on_log(log(1, 0, 3), false, &mut out).unwrap(); // before its header: buffered
    t.on_header(header(1, 0, 0), &mut out).unwrap();
    t.on_header(header(2, 0, 0), &mut out).unwrap();
    assert!(out.is_empty());
    t.on_header(header(3, 0, 0), &mut out).unwrap();
    // Two deep = the finality depth: emitted directly as confirmed.
    assert_eq!(summary(&out), [('b', 1, 0, C), ('l', 1, 3, C)]);
}

#[test]
fn removed_logs_are_retracted_once_and_unknown_ones_counted() {
    let mut t = Tracker::new(0, 3);
    let mut out = Vec::new();
    t.on_header(header(1, 0, 0), &mut out).unwrap();
    t.on_log(log(1, 0, 0), false, &mut out).unwrap();
    t.on_log(log(1, 0, 1), false, &mut out).unwrap();
    out.clear();
    t.on_log(log(1, 0, 1), true, &mut out).unwrap();
    t.on_log(log(1, 0, 1), true, &mut out).unwrap();
    t.on_log(log(7, 0, 1), true, &mut out).unwrap();
    assert_eq!(summary(&out), [('l', 1, 1, R)]);
    assert_eq!(t.stats.unknown_removed, 2);
    // A later reorg of block 1 retracts only the log still standing.
    out.clear();
    t.on_header(header(2, 0, 0), &mut out).unwrap();
    t.on_header(header(1, 1, 0), &mut out).unwrap(); // forks at the oldest block
    assert_eq!(
        summary(&out),
        [
            ('b', 2, 0, P),
            ('b', 2, 0, R),
            ('l', 1, 0, R),
            ('b', 1, 0, R),
            ('b', 1, 0, P)
        ]
    );
    assert_eq!(t.stats.deep_reorgs, 1);
}

#[test]
fn unknown_parents_are_asked_for_and_inconsistent_numbers_rejected() {
    let mut t = Tracker::new(0, 4);
    let mut out = Vec::new();
    t.on_header(header(1, 0, 0), &mut out).unwrap();
    assert_eq!(
        t.on_header(header(3, 0, 0), &mut out).unwrap(),
        Linked::MissingParent {
            hash: hash(2, 0),
            number: 2
        }
    );
    let mut bad = header(5, 0, 0);
    bad.parent = hash(1, 0);
    assert_eq!(
        t.on_header(bad, &mut out).unwrap_err().code(),
        "chain_inconsistent"
    );
    let mut wrong_block = log(1, 0, 0);
    wrong_block.block_number = 9;
    assert_eq!(
        t.on_log(wrong_block, false, &mut out).unwrap_err().code(),
        "chain_inconsistent"
    );
}

/// A chain that grows and reorgs at random; the tracker is fed its headers and logs (some
/// twice, some logs before their header). At the end, after `finality` more blocks, every
/// emitted item has been confirmed or retracted exactly once, and the confirmed blocks are
/// exactly the final chain's.
#[test]
fn randomized_reorgs_keep_the_story_consistent() {
    for seed in 0..200u64 {
        let mut rng = Rng::new(seed);
        let confirmations = rng.below(3);
        let finality = confirmations.max(1) + rng.below(3);
        let mut t = Tracker::new(confirmations, finality);
        let mut out = Vec::new();
        // chain[i] = fork id of block i+1.
        let mut chain: Vec<u64> = Vec::new();
        let mut next_fork = 1;
        let feed = |t: &mut Tracker, out: &mut Vec<Emit>, chain: &[u64], rng: &mut Rng| {
            let n = chain.len() as u64;
            let fork = chain[chain.len() - 1];
            let parent = if n >= 2 { chain[chain.len() - 2] } else { 0 };
            let logs = rng.below(3);
            let early = rng.below(2) == 0;
            if early {
                for i in 0..logs {
                    t.on_log(log(n, fork, i), false, out).unwrap();
                }
            }
            let mut pending = vec![header(n, fork, parent)];
            while let Some(h) = pending.last().copied() {
                match t.on_header(h, out).unwrap() {
                    Linked::MissingParent { number, .. } => {
                        let i = number as usize - 1;
                        let pf = if i >= 1 { chain[i - 1] } else { 0 };
                        pending.push(header(number, chain[i], pf));
                    }
                    _ => {
                        pending.pop();
                    }
                }
            }
            for i in 0..logs {
                t.on_log(log(n, fork, i), false, out).unwrap();
                if rng.below(4) == 0 {
                    t.on_log(log(n, fork, i), false, out).unwrap();
                }
            }
        };
        for _ in 0..40 {
            let reorg = chain.len() > 2 && rng.below(4) == 0;
            if reorg {
                // Replace the last 1..=depth blocks (never deeper than the window).
                let depth = 1 + rng.below(finality.min(chain.len() as u64 - 1)) as usize;
                let keep = chain.len() - depth;
                chain.truncate(keep);
                for _ in 0..depth {
                    chain.push(next_fork);
                    next_fork += 1;
                }
                // The node announces only the new tip; the tracker asks for the rest.
                feed(&mut t, &mut out, &chain, &mut rng);
            } else {
                chain.push(0);
                feed(&mut t, &mut out, &chain, &mut rng);
            }
        }
        for _ in 0..=finality {
            chain.push(0);
            feed(&mut t, &mut out, &chain, &mut rng);
        }
        assert_eq!(t.stats.deep_reorgs, 0, "seed {seed}");
        // Replay the story.
        let mut open: HashSet<(char, Hash32, u64)> = HashSet::new();
        let mut closed: HashSet<(char, Hash32, u64)> = HashSet::new();
        let mut confirmed_blocks: Vec<Hash32> = Vec::new();
        for e in &out {
            let (key, status) = match e {
                Emit::Block(b) => (('b', b.hash, 0), b.status),
                Emit::Log(l) => (('l', l.block_hash, l.log_index), l.status),
                Emit::Trade { .. } => unreachable!("the tracker emits no trades"),
            };
            match status {
                ChainStatus::Pending => {
                    assert!(
                        !closed.contains(&key) && open.insert(key),
                        "seed {seed}: {key:?} twice"
                    );
                }
                ChainStatus::Confirmed | ChainStatus::Retracted => {
                    let was_open = open.remove(&key);
                    assert!(closed.insert(key), "seed {seed}: {key:?} closed twice");
                    assert!(
                        was_open || status == ChainStatus::Confirmed,
                        "seed {seed}: {key:?} retracted but never emitted"
                    );
                    if let (Emit::Block(b), ChainStatus::Confirmed) = (e, status) {
                        confirmed_blocks.push(b.hash);
                    }
                }
            }
        }
        // Only the last `finality` blocks may still be open.
        let tip = chain.len() as u64;
        assert!(
            open.iter().all(|(_, h, _)| {
                let n = u64::from_be_bytes(h.0[..8].try_into().unwrap());
                tip - n < finality
            }),
            "seed {seed}: items left open"
        );
        let expected: Vec<Hash32> = chain
            .iter()
            .enumerate()
            .map(|(i, fork)| hash(i as u64 + 1, *fork))
            .take(chain.len() - finality as usize)
            .collect();
        assert_eq!(confirmed_blocks, expected, "seed {seed}");
    }
}
