//! `tickgate tail CHANNEL...`: subscribe and print every message.

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientOp, DataMessage, RequestId, ServerMessage};
use std::process::ExitCode;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Channels, e.g. `book:sim:BTC-USDT trades:sim:BTC-USDT ticker:sim:ETH-USDT`.
    #[arg(required = true)]
    channels: Vec<String>,
    /// Base URL of the gateway; the WebSocket URL is derived from it (`/v1/ws`).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TICKGATE_URL")]
    url: String,
    /// Print each message as one JSON line (NDJSON) instead of a readable line.
    #[arg(long)]
    json: bool,
    /// Exit after this many data messages.
    #[arg(long)]
    count: Option<u64>,
    /// API key, sent as `Authorization: Bearer` on the upgrade request. Prefer the
    /// environment variable: command lines are visible to other users.
    #[arg(long, env = "TICKGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// `http://host:port/...` → `ws://host:port/v1/ws` (`https` → `wss`).
pub fn ws_url(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        bail!("--url must start with http://, https://, ws:// or wss://, got {base:?}");
    };
    Ok(if rest.ends_with("/v1/ws") {
        rest
    } else {
        format!("{rest}/v1/ws")
    })
}

pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tail(args))
}

async fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let url = ws_url(&args.url)?;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )?;
    if let Some(token) = &args.token {
        let value = format!("Bearer {token}")
            .parse()
            .context("--token is not a valid header value")?;
        request.headers_mut().insert("authorization", value);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("cannot connect to {url} (is `tickgate serve` running?)"))?;
    let subscribe = ClientOp::Subscribe {
        id: Some(RequestId::Num(1)),
        channels: args.channels.clone(),
    };
    socket
        .send(Message::Text(serde_json::to_string(&subscribe)?.into()))
        .await?;
    let mut seen = 0u64;
    while let Some(message) = socket.next().await {
        let text = match message.context("connection lost")? {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let why = frame
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                eprintln!("server closed the connection {why}");
                return Ok(ExitCode::FAILURE);
            }
            _ => continue,
        };
        let parsed: ServerMessage =
            serde_json::from_str(&text).context("server sent an unreadable message")?;
        if let ServerMessage::Error(error) = &parsed
            && error.id == Some(RequestId::Num(1))
        {
            eprintln!("error: {}: {}", error.code, error.message);
            return Ok(ExitCode::from(2));
        }
        if args.json {
            println!("{text}");
        } else {
            println!("{}", describe(&parsed));
        }
        if matches!(
            parsed,
            ServerMessage::Snapshot(_) | ServerMessage::Update(_)
        ) {
            seen += 1;
            if args.count.is_some_and(|limit| seen >= limit) {
                let _ = socket.close(None).await;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    eprintln!("connection closed");
    Ok(ExitCode::FAILURE)
}

/// One readable line per message.
fn describe(message: &ServerMessage) -> String {
    match message {
        ServerMessage::Subscribed { channels, .. } => format!("subscribed {}", channels.join(" ")),
        ServerMessage::Unsubscribed { channels, .. } => {
            format!("unsubscribed {}", channels.join(" "))
        }
        ServerMessage::Snapshot(data) => format!(
            "{} #{} snapshot{} {}",
            data.channel,
            data.seq,
            if data.resync { " (resync)" } else { "" },
            body(data)
        ),
        ServerMessage::Update(data) => format!("{} #{} {}", data.channel, data.seq, body(data)),
        ServerMessage::Resync {
            channel,
            seq,
            reason,
        } => format!("{channel} #{seq} RESYNC ({reason}): book is being rebuilt"),
        ServerMessage::Gap {
            channel,
            from_seq,
            to_seq,
            reason,
        } => format!("{channel} GAP #{from_seq}..#{to_seq} ({reason})"),
        ServerMessage::Error(error) => format!("error {}: {}", error.code, error.message),
        ServerMessage::Pong { ts, .. } => format!("pong {ts}"),
        ServerMessage::Authenticated { key_id, scopes, .. } => {
            format!("authenticated as key {key_id} ({})", scopes.join(","))
        }
        ServerMessage::KeyExpiring { message, .. } => format!("NOTICE key_expiring: {message}"),
    }
}

fn body(data: &DataMessage) -> String {
    let fmt_levels = |levels: &Option<Vec<protocol::WireLevel>>| {
        levels
            .as_deref()
            .unwrap_or_default()
            .iter()
            .take(3)
            .map(|l| format!("{}x{}", l.0, l.1))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(trades) = &data.trades {
        return trades
            .iter()
            .map(|t| {
                format!(
                    "{} {} @ {} (id {})",
                    t.side.as_str().to_uppercase(),
                    t.size,
                    t.price,
                    t.id
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(t) = &data.ticker {
        let show = |d: &Option<model::Decimal>| d.map_or("-".to_string(), |d| d.to_string());
        return format!(
            "bid {} ({}) ask {} ({}) last {} vol24h {} high {} low {} chg {}",
            show(&t.bid),
            show(&t.bid_size),
            show(&t.ask),
            show(&t.ask_size),
            show(&t.last),
            t.volume_24h,
            show(&t.high_24h),
            show(&t.low_24h),
            show(&t.change_24h)
        );
    }
    if let Some(c) = &data.candle {
        return format!(
            "start {} O {} H {} L {} C {} V {} n {}{}{}",
            c.start,
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            c.trades,
            if c.closed { " closed" } else { "" },
            if c.complete { "" } else { " partial" }
        );
    }
    if let Some(s) = &data.status {
        return format!("{} {}", s.state, s.detail);
    }
    let (nb, na) = (
        data.bids.as_ref().map_or(0, Vec::len),
        data.asks.as_ref().map_or(0, Vec::len),
    );
    format!(
        "bids[{nb}] {} | asks[{na}] {}",
        fmt_levels(&data.bids),
        fmt_levels(&data.asks)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_ws_url() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/v1/ws"
        );
        assert_eq!(
            ws_url("https://gw.example/").unwrap(),
            "wss://gw.example/v1/ws"
        );
        assert_eq!(ws_url("ws://h:1/v1/ws").unwrap(), "ws://h:1/v1/ws");
        assert!(ws_url("127.0.0.1:8080").is_err());
    }
}
