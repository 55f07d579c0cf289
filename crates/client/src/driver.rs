//! The connection task: owns the WebSocket, supervises it (heartbeat), replaces it when it
//! dies (backoff with full jitter) or when credentials change (make-before-break), and feeds
//! the tracker and the event buffer.

use crate::backoff::Backoff;
use crate::endpoint::Endpoints;
use crate::error::ClientError;
use crate::event::Event;
use crate::options::ClientOptions;
use crate::shared::Shared;
use crate::sink::Sink;
use crate::tracker::{Out, Tracker};
use futures_util::{FutureExt, SinkExt, StreamExt};
use httpsig::sign::Unsigned;
use model::Channel;
use protocol::{ClientOp, ErrorBody, ServerMessage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Messages read from the socket before the events they produce are handed over.
const MAX_BATCH: usize = 256;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// Requests from the handles to the task.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe(Vec<Channel>, Reply<Vec<String>>),
    Unsubscribe(Vec<Channel>, Reply<Vec<String>>),
    /// Open a new connection with the current credentials, then drop the old one.
    Replace(Reply<()>),
    Close,
}

/// Why a session ended.
enum End {
    Shutdown,
    Replace(Box<Ws>),
    Lost(String),
}

/// Opens a WebSocket with the current credentials. Signed credentials sign this upgrade
/// request afresh (`created` = now, a new nonce), so every reconnect passes the replay guard.
pub(crate) async fn open(
    url: &str,
    shared: &Shared,
    options: &ClientOptions,
) -> Result<Ws, ClientError> {
    let mut request = url
        .into_client_request()
        .map_err(|_| ClientError::InvalidUrl(url.to_string()))?;
    // The `Host` header tungstenite will send (the URL's authority as written).
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ClientError::InvalidUrl(url.to_string()))?
        .to_string();
    let unsigned = Unsigned {
        method: "GET",
        authority: &authority,
        path: request.uri().path(),
        query: request.uri().query(),
        body: b"",
    };
    let headers = shared.credentials.read().headers(&unsigned)?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| ClientError::InvalidCredentials("not a valid header value".into()))?;
        request.headers_mut().insert(name, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_bytes))
        .max_frame_size(Some(options.max_message_bytes));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(options.connect_timeout, connect).await {
        Err(_) => Err(ClientError::Timeout(options.connect_timeout)),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            // The gateway refused the upgrade with a JSON error body (e.g. a rejected key).
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            match serde_json::from_slice::<ErrorBody>(body) {
                Ok(body) => Err(ClientError::api(body, Some(status))),
                Err(_) => Err(ClientError::Connect {
                    url: url.to_string(),
                    source: Box::new(tungstenite::Error::Http(response)),
                }),
            }
        }
        Ok(Err(source)) => Err(ClientError::Connect {
            url: url.to_string(),
            source: Box::new(source),
        }),
    }
}

pub(crate) struct Driver {
    /// The gateways; `current` is the one of the live connection (or the last attempt).
    pub endpoints: Endpoints,
    pub options: ClientOptions,
    pub shared: Arc<Shared>,
    pub commands: mpsc::Receiver<Command>,
    pub sink: Sink,
    pub tracker: Tracker,
    pub backoff: Backoff,
    pub replies: HashMap<u64, Reply<Vec<String>>>,
}

impl Driver {
    pub(crate) async fn run(mut self, first: Ws) {
        let mut next = Some(first);
        let mut attempt = 0u32;
        let mut reason = String::new();
        loop {
            if let Some(ws) = next.take() {
                let started = Instant::now();
                let end = self.session(ws).await;
                for id in self.tracker.disconnected() {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(Err(ClientError::Disconnected));
                    }
                }
                match end {
                    End::Shutdown => {
                        let reason = "closed by the application".to_string();
                        let _ = self.sink.send(Event::Closed { reason }).await;
                        return;
                    }
                    End::Replace(ws) => {
                        next = Some(*ws);
                        continue;
                    }
                    End::Lost(why) => {
                        tracing::info!(reason = %why, "connection lost");
                        if started.elapsed() >= self.backoff.config().stable_after {
                            attempt = 0;
                        }
                        reason = why;
                    }
                }
            }
            attempt += 1;
            if !self.backoff.allows(attempt) {
                let reason = format!("gave up after {} attempts: {reason}", attempt - 1);
                let _ = self.sink.send(Event::Closed { reason }).await;
                return;
            }
            let delay = self.backoff.delay(attempt);
            // Round robin: every attempt goes to the next gateway (the same one when there is
            // only one), so a dead edge is left at the first attempt.
            let endpoint = self.endpoints.advance().clone();
            let event = Event::Reconnecting {
                attempt,
                delay,
                reason: reason.clone(),
                url: endpoint.http.clone(),
            };
            if !self.sink.send(event).await || !self.wait(delay).await {
                return;
            }
            match open(&endpoint.ws, &self.shared, &self.options).await {
                Ok(ws) => {
                    *self.shared.endpoint.write() = endpoint;
                    next = Some(ws);
                }
                Err(error) => reason = error.to_string(),
            }
        }
    }

    /// Sleeps `delay` while answering commands. False when the client is closed.
    async fn wait(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return true,
                command = self.commands.recv() => match command {
                    None | Some(Command::Close) => return false,
                    Some(Command::Subscribe(_, reply) | Command::Unsubscribe(_, reply)) => {
                        let _ = reply.send(Err(ClientError::Disconnected));
                    }
                    // The next attempt uses the new credentials anyway.
                    Some(Command::Replace(reply)) => {
                        let _ = reply.send(Ok(()));
                    }
                },
            }
        }
    }

    async fn session(&mut self, mut ws: Ws) -> End {
        for op in self.tracker.resubscribe() {
            if let Err(error) = send(&mut ws, &op).await {
                return End::Lost(error.to_string());
            }
        }
        let heartbeat = self.options.heartbeat.clone();
        let mut last_rx = Instant::now();
        let mut ping = tokio::time::interval_at(last_rx + heartbeat.interval, heartbeat.interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = Out::default();
        loop {
            let dead_at = last_rx + heartbeat.timeout;
            tokio::select! {
                biased;
                frame = ws.next() => {
                    last_rx = Instant::now();
                    let mut ended = self.on_frame(frame, &mut out).err();
                    // Take what is already buffered too, then hand the events over in one go:
                    // the application is woken once per batch, not once per message.
                    for _ in 1..MAX_BATCH {
                        if ended.is_some() {
                            break;
                        }
                        match ws.next().now_or_never() {
                            Some(frame) => ended = self.on_frame(frame, &mut out).err(),
                            None => break,
                        }
                    }
                    // Events of messages already read are delivered even if the socket died.
                    if let Err(end) = self.flush(&mut ws, &mut out).await {
                        return end;
                    }
                    if let Some(end) = ended {
                        return end;
                    }
                }
                command = self.commands.recv() => {
                    if let Some(end) = self.on_command(&mut ws, command).await {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(dead_at) => {
                    return End::Lost(format!("heartbeat timeout: nothing received for {:?}", heartbeat.timeout));
                }
                _ = ping.tick() => {
                    if let Err(error) = send(&mut ws, &ClientOp::Ping { id: None }).await {
                        return End::Lost(error.to_string());
                    }
                }
            }
        }
    }

    fn on_frame(
        &mut self,
        frame: Option<Result<Message, tungstenite::Error>>,
        out: &mut Out,
    ) -> Result<(), End> {
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.on_text(text.as_str(), out);
                Ok(())
            }
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| format!(" ({} {})", u16::from(f.code), f.reason));
                Err(End::Lost(format!(
                    "server closed the connection{}",
                    why.unwrap_or_default()
                )))
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(End::Lost(error.to_string())),
            None => Err(End::Lost("connection closed".into())),
        }
    }

    async fn on_command(&mut self, ws: &mut Ws, command: Option<Command>) -> Option<End> {
        let (id, op, reply) = match command {
            None | Some(Command::Close) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return Some(End::Shutdown);
            }
            Some(Command::Subscribe(channels, reply)) => {
                let (id, op) = self.tracker.subscribe(&channels);
                (id, op, reply)
            }
            Some(Command::Unsubscribe(channels, reply)) => {
                let (id, op) = self.tracker.unsubscribe(&channels);
                (id, op, reply)
            }
            Some(Command::Replace(reply)) => {
                // Make before break: the old connection stays until the new one is up, and is
                // not read meanwhile, so every position is exact when the new one resumes.
                let url = self.endpoints.current().ws.clone();
                return match open(&url, &self.shared, &self.options).await {
                    Ok(new) => {
                        let _ = reply.send(Ok(()));
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                        Some(End::Replace(Box::new(new)))
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        None
                    }
                };
            }
        };
        self.replies.insert(id, reply);
        match send(ws, &op).await {
            Ok(()) => None,
            Err(error) => Some(End::Lost(error.to_string())),
        }
    }

    fn on_text(&mut self, text: &str, out: &mut Out) {
        match serde_json::from_str::<ServerMessage>(text) {
            Ok(message) => self.tracker.on_message(message, out),
            // Unknown message types are skipped (forward compatible); a damaged data message
            // shows up as a seq gap at the next one and is repaired then.
            Err(error) => tracing::debug!(error = %error, "skipping an unreadable server message"),
        }
    }

    /// Hands over the events (first: their positions are already taken), answers the
    /// application, then sends the repair requests.
    async fn flush(&mut self, ws: &mut Ws, out: &mut Out) -> Result<(), End> {
        for event in out.events.drain(..) {
            if !self.sink.send(event).await {
                return Err(End::Shutdown);
            }
        }
        for (id, result) in out.acks.drain(..) {
            if let Some(reply) = self.replies.remove(&id) {
                let _ = reply.send(result.map_err(|body| ClientError::api(body, None)));
            }
        }
        for op in out.ops.drain(..) {
            send(ws, &op)
                .await
                .map_err(|error| End::Lost(error.to_string()))?;
        }
        if std::mem::take(&mut out.reconnect) {
            return Err(End::Lost("the gateway refused to rejoin channels".into()));
        }
        Ok(())
    }
}

async fn send(ws: &mut Ws, op: &ClientOp) -> Result<(), tungstenite::Error> {
    // Serializing a `ClientOp` cannot fail: plain strings, numbers and maps with string keys.
    let text = serde_json::to_string(op).unwrap_or_default();
    ws.send(Message::Text(text.into())).await
}
