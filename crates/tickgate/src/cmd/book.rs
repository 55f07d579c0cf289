//! `tickgate book CHANNEL`: a live top-of-book view kept by the SDK's local mirror.

use super::tail::{ConnArgs, describe, refused};
use clap::Args;
use client::{BookView, Event};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BookArgs {
    /// A book channel, e.g. `book:sim:BTC-USDT`.
    channel: String,
    #[command(flatten)]
    conn: ConnArgs,
    /// Levels per side to show.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
    depth: u16,
    /// Milliseconds between two views.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    interval_ms: u64,
    /// Exit after this many views.
    #[arg(long)]
    count: Option<u64>,
}

pub fn run(args: BookArgs) -> anyhow::Result<ExitCode> {
    if !args.channel.starts_with("book:") {
        eprintln!(
            "error: invalid_argument: {} is not a book channel",
            args.channel
        );
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(book(args))
}

async fn book(args: BookArgs) -> anyhow::Result<ExitCode> {
    let mut client = args.conn.connect().await?;
    if refused(client.subscribe([&args.channel]).await)?.is_none() {
        return Ok(ExitCode::from(2));
    }
    let Some(mirror) = client.book(&args.channel) else {
        anyhow::bail!("no local book for {}", args.channel);
    };
    let mut tick = tokio::time::interval(Duration::from_millis(args.interval_ms));
    let mut shown = 0u64;
    loop {
        tokio::select! {
            event = client.next_event() => match event {
                // Data is already in the mirror; only say what changes the view's meaning.
                Some(Event::Closed { reason }) => {
                    eprintln!("connection closed: {reason}");
                    return Ok(ExitCode::FAILURE);
                }
                Some(event) if !event.is_data() => println!("{}", describe(&event)),
                Some(_) => {}
                None => return Ok(ExitCode::FAILURE),
            },
            _ = tick.tick() => {
                println!("{}", render(&mirror.view(usize::from(args.depth))));
                shown += 1;
                if args.count.is_some_and(|limit| shown >= limit) {
                    client.close().await;
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

/// `book:sim:BTC-USDT #812 bid 100.5x2 | ask 100.6x3 spread 0.1`, or a ladder for depth > 1.
fn render(view: &BookView) -> String {
    if !view.live {
        return format!("{} #{} (rebuilding)", view.channel, view.seq);
    }
    let level =
        |l: Option<&model::Level>| l.map_or("-".to_string(), |l| format!("{}x{}", l.price, l.size));
    let spread = match (view.bids.first(), view.asks.first()) {
        (Some(b), Some(a)) => (a.price - b.price).to_string(),
        _ => "-".to_string(),
    };
    let mut out = format!(
        "{} #{} bid {} | ask {} spread {spread}",
        view.channel,
        view.seq,
        level(view.bids.first()),
        level(view.asks.first())
    );
    for i in 1..view.bids.len().max(view.asks.len()) {
        out.push_str(&format!(
            "\n    {:>24} | {}",
            level(view.bids.get(i)),
            level(view.asks.get(i))
        ));
    }
    out
}
