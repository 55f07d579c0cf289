//! Keep a local order book and print the spread twice a second. The SDK verifies every update
//! against the gateway's checksum and rebuilds the book by itself if anything is off.
//!
//! ```sh
//! cargo run -p client --example spread -- http://127.0.0.1:8080 book:sim:BTC-USDT
//! ```

use client::{Client, ClientOptions, Event};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let channel = args.next().unwrap_or_else(|| "book:sim:BTC-USDT".into());

    let mut client = Client::connect(&url, ClientOptions::default()).await?;
    client.subscribe([&channel]).await?;
    let book = client.book(&channel).expect("book channels are mirrored");
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            // Events must be taken (or the connection backs up); the mirror is already updated.
            event = client.next_event() => match event {
                Some(Event::Resync { reason, .. }) => println!("book rebuilding ({reason})"),
                Some(Event::Closed { reason }) => anyhow::bail!("closed: {reason}"),
                None => return Ok(()),
                Some(_) => {}
            },
            _ = every.tick() => match book.best() {
                (Some(bid), Some(ask)) => println!(
                    "#{} bid {} ask {} spread {}",
                    book.seq(), bid.price, ask.price, ask.price - bid.price
                ),
                _ => println!("no book yet"),
            },
        }
    }
}
