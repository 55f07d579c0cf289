//! One open venue connection: its socket halves, its session, its paced send queue and the
//! REST answers addressed to it.

use super::rest::RestClient;
use super::stats::{LinkEvent, LinkStats};
use super::venue_protocol::{RestRequest, Session};
use super::ws::VenueSocket;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use model::Symbol;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// REST answers in flight per connection.
const REST_QUEUE: usize = 64;
/// A send that takes longer than this fails the connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// When each symbol last had a message on a connection (the driver's staleness watchdog).
pub(crate) type SeenMap = HashMap<Symbol, Instant>;

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum LinkEnd {
    Shutdown,
    Reconnect(String),
}

/// A REST answer: the request key and the body or the error.
pub(crate) type RestAnswer = (String, Result<String, String>);

#[derive(Debug)]
pub(crate) struct Link {
    sink: SplitSink<VenueSocket, Message>,
    pub stream: SplitStream<VenueSocket>,
    pub session: Box<dyn Session>,
    pub conn: u64,
    pub opened: Instant,
    pub last_frame: Instant,
    pub outq: VecDeque<String>,
    pub next_send: Instant,
    send_interval: Duration,
    rest_tx: mpsc::Sender<RestAnswer>,
    pub rest_rx: mpsc::Receiver<RestAnswer>,
    pub last_seen: SeenMap,
    pub resubscribed: HashMap<Symbol, Instant>,
    pub rotate_requested: Option<String>,
    pub standby: bool,
}

impl Link {
    pub(crate) fn new(
        socket: VenueSocket,
        session: Box<dyn Session>,
        conn: u64,
        send_interval: Duration,
    ) -> Self {
        let (sink, stream) = socket.split();
        let (rest_tx, rest_rx) = mpsc::channel(REST_QUEUE);
        let now = Instant::now();
        Self {
            sink,
            stream,
            session,
            conn,
            opened: now,
            last_frame: now,
            outq: VecDeque::new(),
            next_send: now,
            send_interval,
            rest_tx,
            rest_rx,
            last_seen: HashMap::new(),
            resubscribed: HashMap::new(),
            rotate_requested: None,
            standby: false,
        }
    }

    /// What a read from `stream` means: a text frame, `Ok(None)` for control frames (which
    /// tungstenite answers itself), or why the connection is over. A binary frame becomes an
    /// empty text, which every session rejects as malformed.
    pub(crate) fn classify(
        &mut self,
        item: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<Option<String>, String> {
        match item {
            Some(Ok(Message::Text(text))) => {
                self.last_frame = Instant::now();
                Ok(Some(text.as_str().to_owned()))
            }
            Some(Ok(Message::Binary(_))) => {
                self.last_frame = Instant::now();
                Ok(Some(String::new()))
            }
            Some(Ok(Message::Close(frame))) => Err(match frame {
                Some(frame) => format!("closed by the venue: {} {}", frame.code, frame.reason),
                None => "closed by the venue".into(),
            }),
            Some(Ok(_)) => {
                self.last_frame = Instant::now();
                Ok(None)
            }
            Some(Err(error)) => Err(format!("read failed: {error}")),
            None => Err("connection ended".into()),
        }
    }

    /// Sends the next queued frame.
    pub(crate) async fn send_next(&mut self) -> Result<(), String> {
        let Some(text) = self.outq.pop_front() else {
            return Ok(());
        };
        self.next_send = Instant::now() + self.send_interval;
        match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("send failed: {error}")),
            Err(_) => Err("send timed out".into()),
        }
    }

    /// Starts a REST request whose answer arrives on `rest_rx`.
    pub(crate) fn spawn_rest(
        &self,
        client: &RestClient,
        request: RestRequest,
        stats: &Arc<LinkStats>,
    ) {
        let client = client.clone();
        let tx = self.rest_tx.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let RestRequest { key, url } = request;
            let answer = client.get(&url).await;
            if let Err(error) = &answer {
                stats.record(LinkEvent::RestFailed {
                    what: &format!("REST request {key}"),
                    error,
                });
            }
            // The connection may be gone; its answers are then irrelevant.
            let _ = tx.send((key, answer)).await;
        });
    }

    /// Closes politely (bounded wait).
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.sink.close()).await;
    }

    /// Closes without making the caller wait.
    pub(crate) fn close_in_background(self) {
        tokio::spawn(self.close());
    }
}

/// Something happened on the standby connection of a make-before-break rotation.
pub(crate) enum StandbyEvent {
    Frame(Result<Option<String>, String>),
    Sent(Result<(), String>),
}

pub(crate) async fn standby_event(standby: &mut Option<Link>) -> StandbyEvent {
    let Some(link) = standby else {
        return std::future::pending().await;
    };
    let can_send = !link.outq.is_empty();
    tokio::select! {
        item = link.stream.next() => StandbyEvent::Frame(link.classify(item)),
        () = tokio::time::sleep_until(link.next_send), if can_send => StandbyEvent::Sent(link.send_next().await),
    }
}
