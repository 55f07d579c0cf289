//! `tickgate tail CHANNEL...`: subscribe through the SDK and print every event. Survives
//! gateway restarts and network drops by itself, and says so (reconnect, recover, resync, gap).

use super::credentials::{SignArgs, resolve};
use anyhow::Context;
use auth::SecretString;
use clap::Args;
use client::{Client, ClientError, ClientOptions, Event};
use protocol::{DataMessage, ServerMessage, WireLevel};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Channels, e.g. `book:sim:BTC-USDT trades:sim:BTC-USDT ticker:sim:ETH-USDT`.
    #[arg(required = true)]
    channels: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Print each event as one JSON line (NDJSON) instead of a readable line.
    #[arg(long)]
    json: bool,
    /// Exit after this many data messages.
    #[arg(long)]
    count: Option<u64>,
}

/// How to reach the gateway (shared by `tail` and `book`).
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Base URL of the gateway (`http://host:port`; the WebSocket URL is derived from it).
    /// Several (the edges of a cluster): repeat the flag or separate them with commas; the
    /// first that answers is used and each reconnect tries the next.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "TICKGATE_URL",
        value_delimiter = ','
    )]
    pub url: Vec<String>,
    /// API key sent as a bearer token (prefer the environment variable).
    #[arg(long, env = "TICKGATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Or sign the WebSocket upgrade with an hmac or ed25519 key.
    #[command(flatten)]
    pub sign: SignArgs,
}

impl ConnArgs {
    /// Connects, or explains why not (exit 1 on an unreachable gateway).
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut options = ClientOptions::default();
        if let Some(credentials) = resolve(&self.sign, self.api_key.as_ref())? {
            options.credentials = credentials;
        }
        match Client::connect_any(&self.url, options).await {
            Ok(client) => Ok(client),
            // A bad --url is said as such, not as an unreachable gateway.
            Err(
                error @ (ClientError::InvalidUrl(_)
                | ClientError::NoUrl
                | ClientError::InvalidArgument(_)),
            ) => Err(anyhow::Error::new(error).context("--url")),
            Err(error) => Err(error).with_context(|| {
                format!(
                    "cannot connect to {} (is `tickgate serve` running?)",
                    self.url.join(", ")
                )
            }),
        }
    }
}

/// Prints a refused subscription; `Some(exit code)` when the command must stop.
pub fn refused(result: Result<Vec<String>, ClientError>) -> anyhow::Result<Option<Vec<String>>> {
    match result {
        Ok(channels) => Ok(Some(channels)),
        Err(error @ (ClientError::Api { .. } | ClientError::InvalidArgument(_))) => {
            eprintln!("error: {}: {error}", error.code());
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tail(args))
}

async fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let mut client = args.conn.connect().await?;
    let Some(channels) = refused(client.subscribe(&args.channels).await)? else {
        return Ok(ExitCode::from(2));
    };
    if args.json {
        let ack = ServerMessage::Subscribed {
            id: None,
            channels,
            recovered: Default::default(),
            positions: Default::default(),
        };
        println!("{}", ack.to_json());
    } else {
        println!("subscribed {}", channels.join(" "));
    }
    let mut seen = 0u64;
    while let Some(event) = client.next_event().await {
        if let Event::Closed { reason } = &event {
            eprintln!("connection closed: {reason}");
            return Ok(ExitCode::FAILURE);
        }
        if args.json {
            println!("{}", to_json(&event));
        } else {
            println!("{}", describe(&event));
        }
        if event.is_data() {
            seen += 1;
            if args.count.is_some_and(|limit| seen >= limit) {
                client.close().await;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    Ok(ExitCode::FAILURE)
}

/// One readable line per event.
pub fn describe(event: &Event) -> String {
    let levels = |levels: &[model::Level]| {
        levels
            .iter()
            .take(3)
            .map(|l| format!("{}x{}", l.price, l.size))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match event {
        Event::Snapshot(b) | Event::Update(b) => {
            let kind = match event {
                Event::Snapshot(_) if b.resync => " snapshot (resync)",
                Event::Snapshot(_) => " snapshot",
                _ => "",
            };
            format!(
                "{} #{}{kind} bids[{}] {} | asks[{}] {}",
                b.meta.channel,
                b.meta.seq,
                b.bids.len(),
                levels(&b.bids),
                b.asks.len(),
                levels(&b.asks)
            )
        }
        Event::Trade(t) => {
            let trades = t
                .trades
                .iter()
                .map(|t| {
                    let side = t.side.as_str().to_uppercase();
                    format!("{side} {} @ {} (id {})", t.size, t.price, t.id)
                })
                .collect::<Vec<_>>()
                .join("; ");
            format!("{} #{} {trades}", t.meta.channel, t.meta.seq)
        }
        Event::Chain(c) => {
            let blocks = c
                .blocks
                .iter()
                .map(|b| format!("block {} {} {}", b.number, b.hash, b.status.as_str()));
            let logs = c.logs.iter().map(|l| {
                let name = l.event.as_ref().map_or("log".to_string(), |e| {
                    serde_json::to_value(e)
                        .ok()
                        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(String::from))
                        .unwrap_or_else(|| "log".into())
                });
                format!(
                    "{name} block {} #{} tx {} {}",
                    l.block_number,
                    l.log_index,
                    l.tx_hash,
                    l.status.as_str()
                )
            });
            let items = blocks.chain(logs).collect::<Vec<_>>().join("; ");
            format!("{} #{} {items}", c.meta.channel, c.meta.seq)
        }
        Event::Ticker(l) => {
            let t = &l.value;
            let show = |d: &Option<model::Decimal>| d.map_or("-".to_string(), |d| d.to_string());
            format!(
                "{} #{} bid {} ({}) ask {} ({}) last {} vol24h {}",
                l.meta.channel,
                l.meta.seq,
                show(&t.bid),
                show(&t.bid_size),
                show(&t.ask),
                show(&t.ask_size),
                show(&t.last),
                t.volume_24h
            )
        }
        Event::Candle(l) => {
            let c = &l.value;
            format!(
                "{} #{} start {} O {} H {} L {} C {} V {} n {}{}{}",
                l.meta.channel,
                l.meta.seq,
                c.start,
                c.open,
                c.high,
                c.low,
                c.close,
                c.volume,
                c.trades,
                if c.closed { " closed" } else { "" },
                if c.complete { "" } else { " partial" }
            )
        }
        Event::Status(l) => format!(
            "{} #{} {} {}",
            l.meta.channel, l.meta.seq, l.value.state, l.value.detail
        ),
        Event::Funding(l) => {
            let f = &l.value;
            let next = f
                .next_funding_ts
                .map_or("-".to_string(), |t| t.0.to_string());
            format!(
                "{} #{} rate {} next {next}",
                l.meta.channel, l.meta.seq, f.rate
            )
        }
        Event::FundingAll(l) => {
            let venues = l
                .value
                .iter()
                .map(|v| format!("{} {}", v.venue, v.funding.rate))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{} #{} {venues}", l.meta.channel, l.meta.seq)
        }
        Event::Mark(l) => {
            let show = |d: &Option<model::Decimal>| d.map_or("-".to_string(), |d| d.to_string());
            format!(
                "{} #{} mark {} index {}",
                l.meta.channel,
                l.meta.seq,
                show(&l.value.mark),
                show(&l.value.index)
            )
        }
        Event::OpenInterest(l) => {
            format!("{} #{} oi {}", l.meta.channel, l.meta.seq, l.value.oi)
        }
        Event::Liquidations(m) => {
            let items = m
                .liquidations
                .iter()
                .map(|l| {
                    format!(
                        "{} {} @ {}",
                        l.side.as_str().to_uppercase(),
                        l.size,
                        l.price
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            format!("{} #{} liquidated {items}", m.meta.channel, m.meta.seq)
        }
        Event::Resync {
            channel,
            seq,
            reason,
        } => format!("{channel} #{seq} RESYNC ({reason}): book is being rebuilt"),
        Event::Gap {
            channel,
            from_seq,
            to_seq,
            reason,
        } => format!("{channel} GAP #{from_seq}..#{to_seq} ({reason})"),
        Event::Reconnecting {
            attempt,
            delay,
            reason,
            url,
        } => format!("RECONNECTING attempt {attempt} to {url} in {delay:?}: {reason}"),
        Event::Recovered { recovered, lost } => format!(
            "RECOVERED {} channel(s) without loss{}",
            recovered.len(),
            if lost.is_empty() {
                String::new()
            } else {
                let lost: Vec<&str> = lost.iter().map(|c| &**c).collect();
                format!("; started over: {}", lost.join(" "))
            }
        ),
        Event::KeyExpiring(k) => format!(
            "KEY EXPIRING {} at {:?}: {}",
            k.key_id.as_deref().unwrap_or("-"),
            k.expires_at,
            k.message
        ),
        Event::ServerError(e) => format!("error {}: {}", e.code, e.message),
        Event::Closed { reason } => format!("CLOSED: {reason}"),
    }
}

/// The event as JSON: data events in their wire shape, the rest as `{"type": ...}` notices.
fn to_json(event: &Event) -> String {
    let data = |meta: &client::Meta| DataMessage {
        channel: meta.channel.to_string(),
        seq: meta.seq,
        epoch: meta.epoch.to_string(),
        ts: meta.ts,
        recv_ts: meta.recv_ts,
        ..Default::default()
    };
    let wire = |levels: &[model::Level]| Some(levels.iter().map(|l| WireLevel::from(*l)).collect());
    let message = match event {
        Event::Snapshot(b) | Event::Update(b) => {
            let d = DataMessage {
                resync: b.resync,
                bids: wire(&b.bids),
                asks: wire(&b.asks),
                checksum: b.checksum,
                ..data(&b.meta)
            };
            if matches!(event, Event::Snapshot(_)) {
                ServerMessage::Snapshot(d)
            } else {
                ServerMessage::Update(d)
            }
        }
        Event::Trade(t) => ServerMessage::Update(DataMessage {
            trades: Some(t.trades.clone()),
            ..data(&t.meta)
        }),
        Event::Chain(c) => ServerMessage::Update(DataMessage {
            blocks: (!c.blocks.is_empty()).then(|| c.blocks.clone()),
            logs: (!c.logs.is_empty()).then(|| c.logs.clone()),
            ..data(&c.meta)
        }),
        Event::Ticker(l) => latest(
            l.snapshot,
            DataMessage {
                ticker: Some(l.value.clone()),
                ..data(&l.meta)
            },
        ),
        Event::Candle(l) => latest(
            l.snapshot,
            DataMessage {
                candle: Some(l.value.clone()),
                ..data(&l.meta)
            },
        ),
        Event::Status(l) => latest(
            l.snapshot,
            DataMessage {
                status: Some(l.value.clone()),
                ..data(&l.meta)
            },
        ),
        Event::Resync {
            channel,
            seq,
            reason,
        } => ServerMessage::Resync {
            channel: channel.to_string(),
            seq: *seq,
            reason: reason.clone(),
        },
        Event::Gap {
            channel,
            from_seq,
            to_seq,
            reason,
        } => ServerMessage::Gap {
            channel: channel.to_string(),
            from_seq: *from_seq,
            to_seq: *to_seq,
            reason: reason.clone(),
        },
        Event::ServerError(e) => ServerMessage::Error(e.clone()),
        other => {
            return serde_json::json!({"type": "notice", "text": describe(other)}).to_string();
        }
    };
    message.to_json()
}

fn latest(snapshot: bool, d: DataMessage) -> ServerMessage {
    if snapshot {
        ServerMessage::Snapshot(d)
    } else {
        ServerMessage::Update(d)
    }
}
