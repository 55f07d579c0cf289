//! Stay subscribed across gateway restarts and network drops, and show how the SDK recovers.
//!
//! ```sh
//! tickgate serve &
//! cargo run -p client --example survive_restart
//! # kill the gateway, wait a few seconds, start it again: the example reconnects with
//! # backoff, sees the new epoch and resyncs. A short network drop is recovered exactly.
//! ```

use client::{BackoffConfig, Client, ClientOptions, Event};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let options = ClientOptions {
        backoff: BackoffConfig {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(5),
            max_attempts: None, // keep trying
            ..BackoffConfig::default()
        },
        ..ClientOptions::default()
    };
    let mut client = Client::connect(&url, options).await?;
    client
        .subscribe(["book:sim:BTC-USDT", "trades:sim:BTC-USDT"])
        .await?;
    let mut data = 0u64;
    while let Some(event) = client.next_event().await {
        match event {
            Event::Reconnecting {
                attempt,
                delay,
                reason,
                ..
            } => {
                println!("connection lost ({reason}); attempt {attempt} in {delay:?}")
            }
            Event::Recovered { recovered, lost } => println!(
                "back: {} channel(s) resumed without loss, {} started over",
                recovered.len(),
                lost.len()
            ),
            Event::Resync {
                channel, reason, ..
            } => println!("{channel}: resync ({reason})"),
            Event::Snapshot(s) => println!(
                "{}: snapshot #{} epoch {}",
                s.meta.channel, s.meta.seq, s.meta.epoch
            ),
            Event::Gap {
                channel,
                from_seq,
                to_seq,
                reason,
            } => {
                println!("{channel}: messages #{from_seq}..#{to_seq} lost ({reason})")
            }
            Event::Closed { reason } => anyhow::bail!("gave up: {reason}"),
            event if event.is_data() => {
                data += 1;
                if data.is_multiple_of(500) {
                    println!("{data} messages so far");
                }
            }
            _ => {}
        }
    }
    Ok(())
}
