//! The gateway with an EVM chain (anvil, path in `TICKGATE_TEST_ANVIL`; skipped with a
//! message when unset): on-chain channels over the WebSocket, DEX swaps as trades with REST
//! history, and the block-to-client latency benchmark.

use crate::support::{self, connect, data, recv_until, send};
use connectors::mock::anvil::{self, Anvil, addr, int, uint};
use connectors::venue::evm::{ContractSpec, Dex, EvmSpec, PoolSpec};
use model::Symbol;
use model::onchain::{Address, ChainStatus};
use protocol::ServerMessage;
use server::config::VenueConfig;
use std::time::{Duration, Instant};

const ETH: u128 = 1_000_000_000_000_000_000;

struct Chain {
    anvil: Anvil,
    usdc: Address,
    v3: Address,
}

async fn chain(bin: &std::path::PathBuf) -> Chain {
    let anvil = Anvil::start(bin).await;
    let weth = anvil
        .deploy("TestToken", &[uint(18), uint(1_000_000 * ETH)])
        .await;
    let usdc = anvil
        .deploy("TestToken", &[uint(6), uint(1_000_000_000_000)])
        .await;
    let v3 = anvil.deploy("TestPool", &[addr(&weth), addr(&usdc)]).await;
    anvil.mine(1).await;
    let _ = weth;
    Chain { anvil, usdc, v3 }
}

fn config(c: &Chain, weth: Address, finality: u64) -> server::Config {
    let mut config = support::config(1.0);
    config.venues.push(VenueConfig {
        name: "evm".into(),
        evm: Some(EvmSpec {
            chain: "anvil".into(),
            chain_id: anvil::CHAIN_ID,
            ws_url: c.anvil.ws_url(),
            http_url: c.anvil.http_url(),
            finality_depth: finality,
            silence_secs: 0,
            backoff_base_ms: 20,
            backoff_cap_ms: 200,
            contracts: vec![ContractSpec {
                address: c.usdc,
                events: vec![],
            }],
            pools: vec![PoolSpec {
                dex: Dex::UniswapV3,
                address: c.v3,
                symbol: Symbol::new("WETH-USDC").unwrap(),
                base: weth,
                quote: c.usdc,
            }],
            ..EvmSpec::default()
        }),
        ..VenueConfig::default()
    });
    config
}

/// The pool's token0 (WETH: deployed first).
async fn weth_of(c: &Chain) -> Address {
    let r = c
        .anvil
        .rpc(
            "eth_call",
            serde_json::json!([{"to": c.v3.to_string(), "data": "0x0dfe1681"}, "latest"]),
        )
        .await;
    let text = r.as_str().unwrap();
    Address::parse(&format!("0x{}", &text[26..])).unwrap()
}

async fn subscribe(ws: &mut support::Ws, channels: &[String]) {
    let list = serde_json::to_string(channels).unwrap();
    send(
        ws,
        &format!(r#"{{"op":"subscribe","id":1,"channels":{list}}}"#),
    )
    .await;
    recv_until(ws, |m| matches!(m, ServerMessage::Subscribed { .. })).await;
}

/// Waits for the source to follow the chain: a new block reaches the client. The head it reads
/// when it connects may be published before the client's subscription (a race CI lost: no
/// block was mined after it, so nothing arrived in 30 s), so this mines until one arrives.
async fn following(c: &Chain, ws: &mut support::Ws) {
    for _ in 0..30 {
        c.anvil.mine(1).await;
        let block = recv_until(ws, |m| data(m).is_some_and(|d| d.blocks.is_some()));
        if tokio::time::timeout(Duration::from_secs(1), block)
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("no onchain.blocks message after 30 blocks were mined");
}

#[tokio::test]
async fn onchain_channels_carry_logs_blocks_and_dex_trades_with_history() {
    let Some(bin) = anvil::binary("onchain_channels_carry_logs_blocks_and_dex_trades") else {
        return;
    };
    let c = chain(&bin).await;
    let weth = weth_of(&c).await;
    let gateway = support::start(config(&c, weth, 2)).await;
    let logs_channel = format!("onchain.logs:anvil:{}", c.usdc);
    let mut ws = connect(&gateway).await;
    subscribe(
        &mut ws,
        &[
            logs_channel.clone(),
            "onchain.blocks:anvil".into(),
            "trades:uniswap-v3-anvil:WETH-USDC".into(),
        ],
    )
    .await;
    following(&c, &mut ws).await;

    let to = addr(&Address([9; 20]));
    c.anvil
        .transact(&c.usdc, "transfer(address,uint256)", &[to, uint(2_500_000)])
        .await;
    // token0 = WETH: the pool received 1 WETH and paid 2999.99 USDC: a sell at 2999.99.
    c.anvil
        .transact(
            &c.v3,
            "swapV3(int256,int256,uint160,uint128,int24,address)",
            &[
                int(ETH as i128),
                int(-2_999_990_000),
                uint(1 << 96),
                uint(1),
                int(0),
                to,
            ],
        )
        .await;
    c.anvil.mine(2).await;

    let (mut pending, mut confirmed, mut trades) = (0, 0, Vec::new());
    let mut last_seq = std::collections::HashMap::new();
    while confirmed < 1 || trades.is_empty() || pending < 1 {
        let msg = support::recv(&mut ws).await;
        let Some(d) = data(&msg) else { continue };
        // Gap-free per channel, like every channel.
        let prev = last_seq.insert(d.channel.clone(), d.seq);
        if let Some(prev) = prev {
            assert_eq!(d.seq, prev + 1, "{}", d.channel);
        }
        if d.channel == logs_channel {
            for log in d.logs.as_ref().unwrap() {
                match log.status {
                    ChainStatus::Pending => pending += 1,
                    ChainStatus::Confirmed => confirmed += 1,
                    ChainStatus::Retracted => panic!("nothing was reorged"),
                }
                let json = serde_json::to_value(log).unwrap();
                assert_eq!(json["event"]["name"], "transfer");
                assert_eq!(json["event"]["value"]["value"], "2.5");
            }
        }
        if let Some(t) = &d.trades {
            trades.extend(t.iter().cloned());
        }
    }
    assert_eq!((pending, confirmed), (1, 1));
    assert_eq!(trades.len(), 1);
    assert_eq!(
        (
            trades[0].price.to_string(),
            trades[0].size.to_string(),
            trades[0].side
        ),
        ("2999.99".into(), "1".into(), model::Side::Sell)
    );
    // Stored like any venue's trades: REST history finds it.
    let path = "/v1/trades?venue=uniswap-v3-anvil&symbol=WETH-USDC";
    let mut found = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = support::get_json(&gateway, path).await;
        assert_eq!(status, 200, "{body}");
        if body["trades"].as_array().is_some_and(|t| t.len() == 1) {
            found = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found["trades"][0]["price"], "2999.99", "{found}");
    assert_eq!(found["trades"][0]["id"], trades[0].id);
    gateway.stop().await.unwrap();
}

/// Block-to-client latency on the local chain: from sending `anvil_mine` (the node mines the
/// block and announces it) to the block's `onchain.blocks` message arriving at a WebSocket
/// client through the gateway. Baseline in the same run: the node's own answer to that
/// `anvil_mine` request (mine + HTTP round trip), which the gateway path races.
#[tokio::test]
#[ignore = "benchmark: cargo test -p server --release --test it onchain_block_latency -- --ignored --nocapture"]
async fn onchain_block_latency() {
    let Some(bin) = anvil::binary("onchain_block_latency") else {
        return;
    };
    let _heavy = support::HEAVY.lock().await;
    let c = chain(&bin).await;
    let weth = weth_of(&c).await;
    let gateway = support::start(config(&c, weth, 2)).await;
    let mut ws = connect(&gateway).await;
    subscribe(&mut ws, &["onchain.blocks:anvil".into()]).await;
    following(&c, &mut ws).await;
    let (mut to_client, mut rpc) = (Vec::new(), Vec::new());
    let head = c.anvil.rpc("eth_blockNumber", serde_json::json!([])).await;
    let head = u64::from_str_radix(head.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    for number in head + 1..=head + 200 {
        let start = Instant::now();
        c.anvil.mine(1).await;
        rpc.push(start.elapsed());
        recv_until(&mut ws, |m| {
            data(m).and_then(|d| d.blocks.as_ref()).is_some_and(|b| {
                b.iter()
                    .any(|b| b.number == number && b.status == ChainStatus::Pending)
            })
        })
        .await;
        to_client.push(start.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p) as usize]
    };
    println!(
        "block-to-client latency over {} blocks: p50 {:?} p90 {:?} p99 {:?} | baseline: the node's answer to anvil_mine p50 {:?} p99 {:?}",
        to_client.len(),
        pct(&mut to_client, 0.5),
        pct(&mut to_client, 0.9),
        pct(&mut to_client, 0.99),
        pct(&mut rpc, 0.5),
        pct(&mut rpc, 0.99),
    );
    gateway.stop().await.unwrap();
}
