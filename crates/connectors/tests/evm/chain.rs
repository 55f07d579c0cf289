//! The EVM source against a real local chain: decoding, exactly-once delivery, backfill after
//! a cut connection, confirmations, and reorgs forced with anvil's controls.

use crate::support::{Proxy, Running, Seen};
use connectors::mock::anvil::{self, Anvil, addr, int, uint};
use connectors::venue::evm::{ContractSpec, Dex, EvmSpec, PoolSpec};
use model::onchain::{Address, ChainEvent, ChainStatus};
use model::{Side, Symbol};
use serde_json::json;

const ETH: u128 = 1_000_000_000_000_000_000;

struct Deployed {
    weth: Address,
    usdc: Address,
    v2: Address,
    v3: Address,
}

/// Two tokens (WETH 18 decimals, USDC 6), a v2-style pool with token0 = WETH and a v3-style
/// pool with token0 = USDC (both orders of base and quote are exercised).
async fn deploy(chain: &Anvil) -> Deployed {
    let weth = chain
        .deploy("TestToken", &[uint(18), uint(1_000_000 * ETH)])
        .await;
    let usdc = chain
        .deploy("TestToken", &[uint(6), uint(1_000_000_000_000)])
        .await;
    let v2 = chain.deploy("TestPool", &[addr(&weth), addr(&usdc)]).await;
    let v3 = chain.deploy("TestPool", &[addr(&usdc), addr(&weth)]).await;
    // Reserves for the v2 swaps to draw from: 100 WETH, 300000 USDC.
    chain
        .transact(
            &v2,
            "setReserves(uint112,uint112)",
            &[uint(100 * ETH), uint(300_000_000_000)],
        )
        .await;
    // An empty head: a connector starting now sees none of the setup's logs.
    chain.mine(1).await;
    Deployed { weth, usdc, v2, v3 }
}

fn spec(chain: &Anvil, d: &Deployed, confirmations: u64, finality: u64) -> EvmSpec {
    let symbol = Symbol::new("WETH-USDC").unwrap();
    EvmSpec {
        chain: "anvil".into(),
        chain_id: anvil::CHAIN_ID,
        ws_url: chain.ws_url(),
        http_url: chain.http_url(),
        confirmations,
        finality_depth: finality,
        backoff_base_ms: 20,
        backoff_cap_ms: 200,
        silence_secs: 0,
        contracts: vec![ContractSpec {
            address: d.usdc,
            events: vec!["Transfer(address,address,uint256)".into()],
        }],
        pools: vec![
            PoolSpec {
                dex: Dex::UniswapV2,
                address: d.v2,
                symbol: symbol.clone(),
                base: d.weth,
                quote: d.usdc,
            },
            PoolSpec {
                dex: Dex::UniswapV3,
                address: d.v3,
                symbol,
                base: d.weth,
                quote: d.usdc,
            },
        ],
        ..EvmSpec::default()
    }
}

fn connected(s: &Seen) -> bool {
    s.statuses
        .iter()
        .any(|(state, _)| *state == connectors::ConnectionState::Connected)
        && !s.blocks.is_empty()
}

async fn transfer(chain: &Anvil, token: &Address, value: u128) -> u64 {
    let to = Address([0x42; 20]);
    chain
        .transact(
            token,
            "transfer(address,uint256)",
            &[addr(&to), uint(value)],
        )
        .await
        .1
}

#[tokio::test]
async fn events_arrive_decoded_exactly_once_and_swaps_become_trades() {
    let Some(bin) = anvil::binary("events_arrive_decoded_exactly_once") else {
        return;
    };
    let chain = Anvil::start(&bin).await;
    let d = deploy(&chain).await;
    let run = Running::start(spec(&chain, &d, 0, 2));
    run.wait_for("the first block", connected).await;

    transfer(&chain, &d.usdc, 1_500_000).await;
    let to = addr(&Address([0x42; 20]));
    // v2: 2 WETH in, 6000 USDC out (token0 = WETH): a sell at 3000.
    chain
        .transact(
            &d.v2,
            "swapV2(uint256,uint256,uint256,uint256,address)",
            &[uint(2 * ETH), uint(0), uint(0), uint(6_000_000_000), to],
        )
        .await;
    // v3 (token0 = USDC): the pool received 1500.25 USDC and paid 0.5 WETH: a buy at 3000.5.
    chain
        .transact(
            &d.v3,
            "swapV3(int256,int256,uint160,uint128,int24,address)",
            &[
                int(1_500_250_000),
                int(-(ETH as i128) / 2),
                uint(1 << 96),
                uint(7),
                int(-12),
                to,
            ],
        )
        .await;
    chain.mine(2).await;
    run.wait_for("4 confirmed logs and 2 trades", |s| {
        s.logs_with(ChainStatus::Confirmed).len() == 4 && s.trades.len() == 2
    })
    .await;
    // Give duplicates a chance to show up before checking there are none.
    chain.mine(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seen = run.stop().await;
    seen.check_story();
    assert_eq!(
        seen.logs_with(ChainStatus::Pending).len(),
        4,
        "{:#?}",
        seen.logs
    );
    assert_eq!(seen.logs_with(ChainStatus::Confirmed).len(), 4);
    let events: Vec<&ChainEvent> = seen
        .logs_with(ChainStatus::Confirmed)
        .iter()
        .filter_map(|l| l.event.as_ref())
        .collect();
    let ChainEvent::Transfer { value, .. } = events[0] else {
        panic!("first is the transfer: {events:?}");
    };
    assert_eq!(
        (value.raw.as_str(), value.value.as_deref()),
        ("1500000", Some("1.5"))
    );
    let ChainEvent::SwapV2 {
        amount0_in,
        amount1_out,
        ..
    } = events[1]
    else {
        panic!("then the v2 swap: {events:?}");
    };
    assert_eq!(amount0_in.value.as_deref(), Some("2"));
    assert_eq!(amount1_out.value.as_deref(), Some("6000"));
    let ChainEvent::Sync { reserve0, reserve1 } = events[2] else {
        panic!("then the sync: {events:?}");
    };
    assert_eq!(reserve0.value.as_deref(), Some("102"));
    assert_eq!(reserve1.value.as_deref(), Some("294000"));
    let ChainEvent::SwapV3 {
        amount0,
        amount1,
        tick,
        liquidity,
        ..
    } = events[3]
    else {
        panic!("then the v3 swap: {events:?}");
    };
    assert_eq!(amount0.value.as_deref(), Some("1500.25"));
    assert_eq!(amount1.value.as_deref(), Some("-0.5"));
    assert_eq!((*tick, liquidity.as_str()), (-12, "7"));
    let trades: Vec<(&str, &str, String, String, Side)> = seen
        .trades
        .iter()
        .map(|(v, s, t)| {
            (
                v.as_str(),
                s.as_str(),
                t.price.to_string(),
                t.size.to_string(),
                t.side,
            )
        })
        .collect();
    assert_eq!(
        trades,
        [
            (
                "uniswap-v2-anvil",
                "WETH-USDC",
                "3000".into(),
                "2".into(),
                Side::Sell
            ),
            (
                "uniswap-v3-anvil",
                "WETH-USDC",
                "3000.5".into(),
                "0.5".into(),
                Side::Buy
            ),
        ]
    );
    // Every log carries its block's time.
    assert!(seen.logs.iter().all(|l| l.block_ts.0 > 0));
}

#[tokio::test]
async fn a_cut_connection_is_backfilled_without_loss_or_duplicates() {
    let Some(bin) = anvil::binary("a_cut_connection_is_backfilled") else {
        return;
    };
    let chain = Anvil::start(&bin).await;
    let d = deploy(&chain).await;
    let proxy = Proxy::start(chain.port).await;
    let mut s = spec(&chain, &d, 0, 2);
    s.ws_url = format!("ws://127.0.0.1:{}", proxy.port);
    let run = Running::start(s);
    run.wait_for("the first block", connected).await;
    transfer(&chain, &d.usdc, 1).await;
    run.wait_for("the first transfer", |s| s.logs.len() == 1)
        .await;

    proxy.cut();
    run.wait_for("the disconnection", |s| {
        s.statuses
            .iter()
            .any(|(state, _)| *state == connectors::ConnectionState::Disconnected)
    })
    .await;
    // Made while the connector is away: only the backfill can find these.
    for value in [2, 3, 4] {
        transfer(&chain, &d.usdc, value).await;
    }
    proxy.restore();
    chain.mine(3).await;
    run.wait_for("4 confirmed transfers", |s| {
        s.logs_with(ChainStatus::Confirmed).len() == 4
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seen = run.stop().await;
    seen.check_story();
    let values: Vec<String> = seen
        .logs_with(ChainStatus::Confirmed)
        .iter()
        .map(|l| match &l.event {
            Some(ChainEvent::Transfer { value, .. }) => value.raw.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(values, ["1", "2", "3", "4"]);
    assert_eq!(
        seen.logs.len(),
        8,
        "each transfer pending once and confirmed once"
    );
    // Blocks too: every block number once pending, once confirmed, in order, no gaps.
    let confirmed: Vec<u64> = seen
        .blocks
        .iter()
        .filter(|b| b.status == ChainStatus::Confirmed)
        .map(|b| b.number)
        .collect();
    assert!(
        confirmed.windows(2).all(|w| w[1] == w[0] + 1),
        "{confirmed:?}"
    );
}

#[tokio::test]
async fn confirmations_delay_events_until_deep_enough() {
    let Some(bin) = anvil::binary("confirmations_delay_events") else {
        return;
    };
    let chain = Anvil::start(&bin).await;
    let d = deploy(&chain).await;
    let run = Running::start(spec(&chain, &d, 1, 3));
    run.wait_for("the subscriptions", |s| {
        s.statuses
            .iter()
            .any(|(state, _)| *state == connectors::ConnectionState::Connected)
    })
    .await;
    // With confirmations = 1 the first block shows once another is on top of it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    chain.mine(1).await;
    run.wait_for("the first block", connected).await;
    let block = transfer(&chain, &d.usdc, 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        run.seen.lock().logs.is_empty(),
        "emitted before 1 confirmation"
    );
    chain.mine(1).await;
    run.wait_for("the pending transfer", |s| s.logs.len() == 1)
        .await;
    assert_eq!(run.seen.lock().logs[0].block_number, block);
    chain.mine(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        run.seen.lock().logs.len(),
        1,
        "confirmed before 3 blocks on top"
    );
    chain.mine(1).await;
    run.wait_for("the confirmation", |s| {
        s.logs_with(ChainStatus::Confirmed).len() == 1
    })
    .await;
    run.seen.lock().check_story();
    run.stop().await;
}

#[tokio::test]
async fn a_reverted_chain_retracts_what_it_dropped() {
    let Some(bin) = anvil::binary("a_reverted_chain_retracts") else {
        return;
    };
    let chain = Anvil::start(&bin).await;
    let d = deploy(&chain).await;
    let run = Running::start(spec(&chain, &d, 0, 5));
    run.wait_for("the first block", connected).await;

    let snapshot = chain.rpc("evm_snapshot", json!([])).await;
    let dropped_block = transfer(&chain, &d.usdc, 111).await;
    let dropped_hash = chain.block_hash(dropped_block).await;
    run.wait_for("the transfer that will be dropped", |s| s.logs.len() == 1)
        .await;
    assert_eq!(
        chain.rpc("evm_revert", json!([snapshot])).await,
        json!(true)
    );
    // The replacement block at the same height carries another transfer.
    let kept_block = transfer(&chain, &d.usdc, 222).await;
    assert_eq!(kept_block, dropped_block);
    run.wait_for("the retraction and the replacement", |s| {
        s.logs_with(ChainStatus::Retracted).len() == 1 && s.logs.len() == 3
    })
    .await;
    chain.mine(5).await;
    run.wait_for("the replacement confirmed", |s| {
        s.logs_with(ChainStatus::Confirmed).len() == 1
    })
    .await;
    let seen = run.stop().await;
    seen.check_story();
    let retracted = seen.logs_with(ChainStatus::Retracted)[0];
    assert_eq!(retracted.block_hash, dropped_hash);
    assert!(
        matches!(&retracted.event, Some(ChainEvent::Transfer { value, .. }) if value.raw == "111")
    );
    let confirmed = seen.logs_with(ChainStatus::Confirmed)[0];
    assert!(
        matches!(&confirmed.event, Some(ChainEvent::Transfer { value, .. }) if value.raw == "222")
    );
    // The dropped block itself was retracted too.
    assert!(
        seen.blocks
            .iter()
            .any(|b| b.hash == dropped_hash && b.status == ChainStatus::Retracted)
    );
}

#[tokio::test]
async fn anvil_reorg_retracts_the_replaced_blocks() {
    let Some(bin) = anvil::binary("anvil_reorg_retracts") else {
        return;
    };
    let chain = Anvil::start(&bin).await;
    let d = deploy(&chain).await;
    let run = Running::start(spec(&chain, &d, 0, 6));
    run.wait_for("the first block", connected).await;
    let first = transfer(&chain, &d.usdc, 10).await;
    let second = transfer(&chain, &d.usdc, 20).await;
    run.wait_for("two transfers", |s| s.logs.len() == 2).await;
    // Replace the last two blocks with empty ones.
    chain.rpc("anvil_reorg", json!([2, []])).await;
    chain.mine(1).await;
    run.wait_for("two retractions", |s| {
        s.logs_with(ChainStatus::Retracted).len() == 2
    })
    .await;
    chain.mine(6).await;
    run.wait_for("the new blocks confirmed", |s| {
        s.blocks
            .iter()
            .any(|b| b.number == second && b.status == ChainStatus::Confirmed)
    })
    .await;
    let seen = run.stop().await;
    seen.check_story();
    assert!(seen.logs_with(ChainStatus::Confirmed).is_empty());
    let retracted: Vec<u64> = seen
        .blocks
        .iter()
        .filter(|b| b.status == ChainStatus::Retracted)
        .map(|b| b.number)
        .collect();
    assert!(
        retracted.contains(&first) && retracted.contains(&second),
        "{retracted:?}"
    );
}
