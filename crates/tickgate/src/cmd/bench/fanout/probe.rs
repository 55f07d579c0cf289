//! The timed probes of `bench fanout --cluster`, each a few WebSocket clients of their own
//! (parsing every message: they are few and slow): the NATS hop's latency, edge and ingest
//! failover, cross-node revocation.

use crate::cmd::bench::child::Target;
use crate::cmd::bench::histogram::Histogram;
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use model::Timestamp;
use protocol::{ClientOp, RequestId, ResumeFrom};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest a probe waits for anything (a connection, an ack, a frame, a takeover).
const PATIENCE: Duration = Duration::from_secs(30);

/// What a probe reads from a message.
#[derive(Debug)]
enum Read {
    /// A snapshot or update.
    Data {
        channel: String,
        epoch: String,
        seq: u64,
        recv_ts: i64,
    },
    Subscribed {
        recovered: BTreeMap<String, bool>,
    },
    /// An `error` message (its code).
    Error(String),
    Other,
    /// The connection ended (close frame, EOF or a read error).
    Closed,
}

/// A connected WebSocket client.
struct Probe {
    socket: Socket,
}

impl Probe {
    /// Connects to `addr`'s `/v1/ws`, with `Authorization: Bearer <token>` when given.
    async fn open(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<Self> {
        let mut request = format!("ws://{addr}/v1/ws").into_client_request()?;
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
        }
        let (socket, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("cannot open a WebSocket to {addr}"))?;
        Ok(Self { socket })
    }

    async fn subscribe(
        &mut self,
        channels: &[String],
        resume: BTreeMap<String, ResumeFrom>,
    ) -> anyhow::Result<()> {
        let op = ClientOp::Subscribe {
            id: Some(RequestId::Num(1)),
            channels: channels.to_vec(),
            resume,
        };
        self.socket
            .send(Message::Text(serde_json::to_string(&op)?.into()))
            .await?;
        Ok(())
    }

    /// The next message, or `None` after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Read> {
        let message = tokio::time::timeout(limit, self.socket.next()).await.ok()?;
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Some(Read::Closed),
            Some(Ok(_)) => return Some(Read::Other),
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            return Some(Read::Other);
        };
        let string = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        Some(match value["type"].as_str() {
            Some("snapshot" | "update") => Read::Data {
                channel: string("channel"),
                epoch: string("epoch"),
                seq: value["seq"].as_u64().unwrap_or(0),
                recv_ts: value["recv_ts"].as_i64().unwrap_or(0),
            },
            Some("subscribed") => Read::Subscribed {
                recovered: serde_json::from_value(value["recovered"].clone()).unwrap_or_default(),
            },
            Some("error") => Read::Error(string("code")),
            _ => Read::Other,
        })
    }

    /// Reads until the first data message; its (channel, epoch, seq).
    async fn first_data(&mut self) -> anyhow::Result<(String, String, u64)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Some(Read::Data {
                    channel,
                    epoch,
                    seq,
                    ..
                }) => return Ok((channel, epoch, seq)),
                Some(Read::Closed) => bail!("the connection closed before any data"),
                Some(Read::Error(code)) => bail!("the gateway answered with error {code}"),
                Some(_) => {}
                None => bail!("no data within {PATIENCE:?}"),
            }
        }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1e3
}

/// The extra latency of the NATS hop: the same frames read at the ingest's own WebSocket and
/// at an edge's, paired by (channel, seq); edge arrival minus ingest arrival.
#[derive(Debug)]
pub(super) struct Hop {
    pub(super) hop: Histogram,
    pub(super) at_ingest: Histogram,
    pub(super) at_edge: Histogram,
    /// Pairs where the edge's copy came first (counted as 0 in `hop`).
    pub(super) edge_first: u64,
}

impl Hop {
    pub(super) fn line(&self) -> String {
        let q = |h: &Histogram, q: f64| ms(h.quantile(q));
        format!(
            "NATS hop          +{:.2} ms p50, +{:.2} ms p99 ({} frames paired; end-to-end at the ingest p50 {:.2} / p99 {:.2} ms, at the edge p50 {:.2} / p99 {:.2} ms)",
            q(&self.hop, 0.5),
            q(&self.hop, 0.99),
            self.hop.count(),
            q(&self.at_ingest, 0.5),
            q(&self.at_ingest, 0.99),
            q(&self.at_edge, 0.5),
            q(&self.at_edge, 0.99),
        )
    }
}

pub(super) async fn hop(
    ingest: &Target,
    edge: &Target,
    channels: &[String],
    listen: Duration,
) -> anyhow::Result<Hop> {
    let mut at_ingest = Probe::open(ingest.addr, None).await?;
    let mut at_edge = Probe::open(edge.addr, None).await?;
    at_ingest.subscribe(channels, BTreeMap::new()).await?;
    at_edge.subscribe(channels, BTreeMap::new()).await?;
    let mut arrivals: [HashMap<(String, u64), i64>; 2] = Default::default();
    let mut latency: [Histogram; 2] = Default::default();
    let end = Instant::now() + listen;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let (side, read) = tokio::select! {
            read = at_ingest.next(left) => (0, read),
            read = at_edge.next(left) => (1, read),
        };
        match read {
            Some(Read::Data {
                channel,
                seq,
                recv_ts,
                ..
            }) => {
                let now = Timestamp::now().0;
                latency[side].record(now - recv_ts);
                arrivals[side].insert((channel, seq), now);
            }
            Some(Read::Closed) => bail!("a hop probe's connection closed"),
            _ => {}
        }
    }
    let [ingest_arrivals, edge_arrivals] = arrivals;
    let mut hop = Histogram::default();
    let mut edge_first = 0;
    for (key, at_edge) in &edge_arrivals {
        if let Some(at_ingest) = ingest_arrivals.get(key) {
            if at_edge < at_ingest {
                edge_first += 1;
            }
            hop.record((at_edge - at_ingest).max(0));
        }
    }
    if hop.count() == 0 {
        bail!("the hop probes received no common frame in {listen:?}");
    }
    let [at_ingest, at_edge] = latency;
    Ok(Hop {
        hop,
        at_ingest,
        at_edge,
        edge_first,
    })
}

/// Edge failover: `clients` sessions on `dying`, which is killed (SIGKILL); each reconnects to
/// `other`, resuming from its last position. Per client: kill → first data message from
/// `other`.
#[derive(Debug)]
pub(super) struct EdgeFailover {
    pub(super) served: Histogram,
    pub(super) recovered: usize,
    pub(super) clients: usize,
}

pub(super) async fn edge_failover(
    dying: &mut Target,
    other: &Target,
    channel: &str,
    clients: usize,
) -> anyhow::Result<EdgeFailover> {
    let channels = [channel.to_string()];
    let mut probes = Vec::new();
    for _ in 0..clients {
        let mut probe = Probe::open(dying.addr, None).await?;
        probe.subscribe(&channels, BTreeMap::new()).await?;
        let (_, epoch, seq) = probe.first_data().await?;
        probes.push((probe, (epoch, seq)));
    }
    let other_addr = other.addr;
    let killed = Instant::now();
    dying.kill();
    let tasks: Vec<_> = probes
        .into_iter()
        .map(|(mut probe, first)| {
            let channels = channels.clone();
            tokio::spawn(async move {
                // Read what is left up to the end of the connection: the last position (the
                // first frame's when nothing came after it before the kill).
                let mut last = first;
                loop {
                    match probe.next(PATIENCE).await {
                        Some(Read::Data { epoch, seq, .. }) => last = (epoch, seq),
                        Some(Read::Closed) => break,
                        Some(_) => {}
                        None => bail!("the killed edge's session did not end"),
                    }
                }
                let mut next = Probe::open(other_addr, None).await?;
                let (epoch, seq) = last;
                let resume: BTreeMap<String, ResumeFrom> =
                    BTreeMap::from([(channels[0].clone(), ResumeFrom { epoch, seq })]);
                next.subscribe(&channels, resume).await?;
                let mut recovered = false;
                loop {
                    match next.next(PATIENCE).await {
                        Some(Read::Subscribed { recovered: r }) => {
                            recovered = r.values().all(|v| *v) && !r.is_empty();
                        }
                        Some(Read::Data { .. }) => return Ok((killed.elapsed(), recovered)),
                        Some(Read::Closed) => bail!("the other edge closed the session"),
                        Some(Read::Error(code)) => bail!("the other edge answered {code}"),
                        Some(Read::Other) => {}
                        None => bail!("no data from the other edge within {PATIENCE:?}"),
                    }
                }
            })
        })
        .collect();
    let mut served = Histogram::default();
    let mut recovered = 0;
    for task in tasks {
        let (took, ok) = task.await.context("an edge failover probe panicked")??;
        served.record(took.as_micros() as i64);
        recovered += usize::from(ok);
    }
    Ok(EdgeFailover {
        served,
        recovered,
        clients,
    })
}

impl EdgeFailover {
    pub(super) fn line(&self) -> String {
        format!(
            "edge failover     {:.0} ms p50, {:.0} ms max from SIGKILL of an edge to the first frame from the other ({} clients, {} resumed with recovered: true)",
            ms(self.served.quantile(0.5)),
            ms(self.served.max()),
            self.clients,
            self.recovered
        )
    }
}

/// Ingest failover: kill (SIGKILL) the active ingest while a standby runs; time until a
/// session on `edge` gets a frame of a new epoch.
pub(super) async fn ingest_failover(
    active: &mut Target,
    edge: &Target,
    channel: &str,
) -> anyhow::Result<Duration> {
    let channels = [channel.to_string()];
    let mut probe = Probe::open(edge.addr, None).await?;
    probe.subscribe(&channels, BTreeMap::new()).await?;
    let (_, old_epoch, _) = probe.first_data().await?;
    let killed = Instant::now();
    active.kill();
    let deadline = killed + PATIENCE;
    loop {
        match probe
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Some(Read::Data { epoch, .. }) if epoch != old_epoch => return Ok(killed.elapsed()),
            Some(Read::Closed) => bail!("the edge closed the session during the ingest failover"),
            Some(_) => {}
            None => bail!("no frame of a new epoch within {PATIENCE:?} of killing the ingest"),
        }
    }
}

/// Cross-node revocation: a session on `edge` authenticated with `token`; `revoke` (run on
/// a blocking thread) revokes the key through another node. Returns (time from the start of
/// `revoke` to the session's end, how long `revoke` itself took).
pub(super) async fn revocation<F>(
    edge: &Target,
    token: &str,
    channel: &str,
    revoke: F,
) -> anyhow::Result<(Duration, Duration)>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    let mut probe = Probe::open(edge.addr, Some(token)).await?;
    probe
        .subscribe(&[channel.to_string()], BTreeMap::new())
        .await?;
    probe.first_data().await?;
    let started = Instant::now();
    let revoking = tokio::task::spawn_blocking(move || {
        let result = revoke();
        (result, started.elapsed())
    });
    let closed = loop {
        match probe.next(PATIENCE).await {
            Some(Read::Closed) => break started.elapsed(),
            Some(Read::Error(code)) if code == "key_revoked" => break started.elapsed(),
            Some(_) => {}
            None => bail!("the session on the other edge was not closed within {PATIENCE:?}"),
        }
    };
    let (result, took) = revoking.await.context("the revoke call panicked")?;
    result?;
    Ok((closed, took))
}
