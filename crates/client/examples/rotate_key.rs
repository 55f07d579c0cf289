//! Switch API keys without dropping the stream: the SDK opens a connection with the new key,
//! then closes the old one, and every channel resumes where it was (nothing lost or repeated).
//!
//! ```sh
//! TICKGATE_OLD_KEY=tg_test_… TICKGATE_NEW_KEY=tg_test_… cargo run -p client --example rotate_key
//! ```

use client::{Client, ClientOptions, Credentials, Event};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let old = std::env::var("TICKGATE_OLD_KEY").unwrap_or_else(|_| "tg_test_old".into());
    let new = std::env::var("TICKGATE_NEW_KEY").unwrap_or_else(|_| "tg_test_new".into());
    let options = ClientOptions {
        credentials: Credentials::bearer(old)?,
        ..ClientOptions::default()
    };
    let mut client = Client::connect(&url, options).await?;
    client.subscribe(["trades:sim:BTC-USDT"]).await?;
    let handle = client.handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        match handle.set_credentials(Credentials::bearer(new)?).await {
            Ok(()) => println!("now streaming with the new key"),
            Err(error) => println!("new key refused ({}); still on the old one", error.code()),
        }
        anyhow::Ok(())
    });
    while let Some(event) = client.next_event().await {
        match event {
            Event::Trade(t) => println!("#{} {} trade(s)", t.meta.seq, t.trades.len()),
            Event::KeyExpiring(k) => println!("key expiring: {}", k.message),
            Event::Recovered { recovered, .. } => {
                println!("resumed {} channel(s)", recovered.len())
            }
            Event::Closed { reason } => anyhow::bail!("closed: {reason}"),
            _ => {}
        }
    }
    Ok(())
}
