//! On-chain logs decoded and published, per second, on one thread: node notifications in the
//! shape anvil sends (`connectors/test_data/evm/ws_logs_transfer.json`, half of them turned
//! into Uniswap v3 swaps) through the EVM source's parsing, decoding and reorg tracker, then
//! `ChainIngest` publishing them on the hub (one serialization per channel message). The
//! baseline, measured in the same run on the same frames, is a generic JSON parse
//! (`serde_json::Value`), what any decoder starts with.
//!
//! ```text
//! cargo test -p ingest --release --test onchain_bench -- --ignored --nocapture
//! ```

use connectors::FeedEvent;
use connectors::venue::evm::abi::{self, Scales, Topics};
use connectors::venue::evm::rpc::{self, Header, Incoming};
use connectors::venue::evm::tracker::{Emit, Tracker};
use hub::{Hub, HubConfig};
use ingest::{ChainIngest, Market, VenueStats};
use model::onchain::{Address, Hash32};
use model::{Timestamp, Venue};
use std::sync::Arc;
use std::time::Instant;

const RECORDED: &str = include_str!("../../connectors/test_data/evm/ws_logs_transfer.json");
const LOGS_PER_BLOCK: u64 = 50;
const SWAP_V3_TOPIC: &str = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67";

fn block_hash(n: u64) -> String {
    format!("0x{n:064x}")
}

/// `count` notifications: the recorded transfer, and every other one a v3 swap of the same
/// shape (5 data words), spread over blocks of `LOGS_PER_BLOCK` logs.
fn frames(count: u64) -> Vec<String> {
    // amount0 = 1500.25 USDC in, amount1 = -0.5 WETH (two's complement), sqrtPriceX96 = 2^96,
    // liquidity, tick = -1.
    let words = [
        format!("{:064x}", 1_500_250_000u64),
        "f".repeat(48) + "f9ccd8a1c5080000",
        format!("{:064x}", 1u128 << 96),
        format!("{:064x}", 1_000_000u64),
        "f".repeat(64),
    ];
    let swap_data = format!("0x{}", words.concat());
    (0..count)
        .map(|i| {
            let block = 1 + i / LOGS_PER_BLOCK;
            let mut text = RECORDED
                .replace(
                    "0x52f9a4c676dea794f7d3774b72dbd368aca98f4caf5252f8a956b962d8e09b83",
                    &block_hash(block),
                )
                .replace(
                    "\"blockNumber\":\"0x2\"",
                    &format!("\"blockNumber\":\"0x{block:x}\""),
                )
                .replace(
                    "\"logIndex\":\"0x0\"",
                    &format!("\"logIndex\":\"0x{:x}\"", i % LOGS_PER_BLOCK),
                );
            if i % 2 == 1 {
                text = text
                    .replace(
                        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
                        SWAP_V3_TOPIC,
                    )
                    .replace(
                        "0x000000000000000000000000000000000000000000000000000000000016e360",
                        &swap_data,
                    );
            }
            text
        })
        .collect()
}

fn header(n: u64) -> Header {
    Header {
        number: n,
        hash: Hash32::parse(&block_hash(n)).unwrap(),
        parent: Hash32::parse(&block_hash(n - 1)).unwrap(),
        ts: Timestamp(n as i64 * 12_000_000),
    }
}

fn rate(count: u64, started: Instant) -> f64 {
    count as f64 / started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark: cargo test -p ingest --release --test onchain_bench -- --ignored --nocapture"]
fn onchain_logs_decoded_and_published() {
    let count: u64 = std::env::var("BENCH_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let frames = frames(count);
    let topics = Topics::default();
    let scales = Scales {
        token: Some(6),
        token0: Some(6),
        token1: Some(18),
    };
    let contract = Address::parse("0x5fbdb2315678afecb367f032d93f642f64180aa3").unwrap();
    for round in 1..=3 {
        // Baseline: a generic JSON parse of each frame.
        let started = Instant::now();
        let mut fields = 0usize;
        for f in &frames {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            fields += v["params"]["result"].as_object().map_or(0, |o| o.len());
        }
        let baseline = rate(count, started);
        assert!(fields > 0);

        // Parse and validate every field the source uses, then decode the event.
        let started = Instant::now();
        let mut decoded = 0;
        for f in &frames {
            let Ok(Incoming::Notification { result, .. }) = rpc::parse_incoming(f) else {
                panic!("not a notification");
            };
            let log = rpc::parse_log(result).unwrap().log;
            decoded += usize::from(abi::decode(&log, &topics, scales).unwrap().is_some());
        }
        let parse_decode = rate(count, started);
        assert_eq!(decoded as u64, count);

        // The whole path: parse, decode, the reorg tracker (a header per block, confirmations
        // 0, finality 2), and ChainIngest publishing to the hub's onchain channels.
        let hub = Arc::new(Hub::new(HubConfig::default()));
        let chain = Venue::new("bench").unwrap();
        let (commands, _rx) = tokio::sync::mpsc::channel(16);
        let mut ingest = ChainIngest::new(
            chain.clone(),
            &[contract],
            Vec::new(),
            hub.clone(),
            Arc::new(Market::default()),
            commands,
            Arc::new(VenueStats::new(chain)),
            None,
        );
        let channel = hub
            .get_by_name(&format!("onchain.logs:bench:{contract}"))
            .unwrap();
        let _subscriber = channel.subscribe(false);
        let mut tracker = Tracker::new(0, 2);
        let mut out: Vec<Emit> = Vec::new();
        tracker.on_header(header(1), &mut out).unwrap();
        let mut block = 1;
        let started = Instant::now();
        for f in &frames {
            let Ok(Incoming::Notification { result, .. }) = rpc::parse_incoming(f) else {
                panic!("not a notification");
            };
            let mut node = rpc::parse_log(result).unwrap();
            if node.log.block_number != block {
                block = node.log.block_number;
                tracker.on_header(header(block), &mut out).unwrap();
            }
            node.log.event = abi::decode(&node.log, &topics, scales).unwrap();
            tracker.on_log(node.log, false, &mut out).unwrap();
            ingest.handle_batch(vec![FeedEvent::Chain(std::mem::take(&mut out))]);
        }
        let full = rate(count, started);
        // Every log pending once, confirmed once (but the last two blocks').
        let published = channel.seq();
        assert!(published >= count, "{published} messages for {count} logs");

        println!(
            "round {round}: {count} logs | baseline serde_json::Value parse {:.0}/s | parse+validate+decode {:.0}/s | +tracker+publish {:.0}/s",
            baseline, parse_decode, full
        );
    }
}
