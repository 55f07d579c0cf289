//! A signed REST call and a signed stream with an `ed25519` key: the private key never leaves
//! this process, every request carries a fresh RFC 9421 signature (docs/security.md).
//!
//! ```sh
//! tickgate keys create --name bot --scopes market:read --type ed25519 --generate-keypair bot.pem
//! TICKGATE_KEY_ID=key_… TICKGATE_ED25519_KEY=bot.pem cargo run -p client --example signed_rest
//! ```

use client::{Client, ClientOptions, Credentials, Event};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let key_id = std::env::var("TICKGATE_KEY_ID")?;
    let pem = std::fs::read_to_string(std::env::var("TICKGATE_ED25519_KEY")?)?;
    // Or Credentials::hmac(key_id, secret) for an hmac key.
    let options = ClientOptions {
        credentials: Credentials::ed25519_pem(key_id, &pem)?,
        ..ClientOptions::default()
    };
    let mut client = Client::connect(&url, options).await?;
    let ticker = client.rest().ticker("sim", "BTC-USDT").await?;
    println!("{} {:?}", ticker.symbol, ticker.ticker);
    client.subscribe(["trades:sim:BTC-USDT"]).await?;
    while let Some(event) = client.next_event().await {
        match event {
            Event::Trade(t) => println!("#{} {} trade(s)", t.meta.seq, t.trades.len()),
            Event::Closed { reason } => anyhow::bail!("closed: {reason}"),
            _ => {}
        }
    }
    Ok(())
}
