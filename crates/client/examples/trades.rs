//! Subscribe to a trades channel and print every trade.
//!
//! ```sh
//! tickgate serve &                      # a gateway on the simulated market
//! cargo run -p client --example trades -- http://127.0.0.1:8080 trades:sim:BTC-USDT
//! ```

use client::{Client, ClientOptions, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let channel = args.next().unwrap_or_else(|| "trades:sim:BTC-USDT".into());

    let mut client = Client::connect(&url, ClientOptions::default()).await?;
    client.subscribe([&channel]).await?;
    while let Some(event) = client.next_event().await {
        match event {
            Event::Trade(batch) => {
                for t in &batch.trades {
                    println!(
                        "#{} {} {} @ {}",
                        batch.meta.seq,
                        t.side.as_str(),
                        t.size,
                        t.price
                    );
                }
            }
            // Trades the client will never see (e.g. the gateway restarted meanwhile).
            Event::Gap {
                from_seq,
                to_seq,
                reason,
                ..
            } => {
                println!("missed trades #{from_seq}..#{to_seq} ({reason})")
            }
            Event::Closed { reason } => anyhow::bail!("closed: {reason}"),
            _ => {}
        }
    }
    Ok(())
}
