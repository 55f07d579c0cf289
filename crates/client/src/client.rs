//! [`Client`]: connect, subscribe, take events, read mirrored books, swap credentials.

use crate::Credentials;
use crate::backoff::Backoff;
use crate::driver::{Command, Driver, open};
use crate::endpoint::{Endpoint, Endpoints};
use crate::error::ClientError;
use crate::event::Event;
use crate::mirror::{BookHandle, Books};
use crate::options::ClientOptions;
use crate::rest::RestClient;
use crate::shared::Shared;
use crate::sink::Sink;
use crate::tracker::Tracker;
use model::Channel;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A connection to a tickgate gateway that stays connected by itself.
///
/// [`Client::connect`] opens the first connection (its failure is returned) and starts a
/// background task that keeps it alive: on any loss it reconnects with backoff and resubscribes
/// every channel with `resume`, so the application either gets every message exactly once or
/// is told what it missed (`Resync`, `Gap`). Take events with [`next_event`](Self::next_event);
/// use [`handle`](Self::handle) to subscribe or read books from other tasks. Dropping the
/// client closes the connection.
///
/// [`Client::connect_any`] takes several gateway URLs (the edges of a cluster): it connects to
/// the first that answers, and each reconnect attempt goes to the next URL in turn, so when an
/// edge dies the client resumes on another (where the cluster's shared seq and epoch make the
/// resume exact: `recovered`).
#[derive(Debug)]
pub struct Client {
    handle: ClientHandle,
    events: mpsc::Receiver<Event>,
}

/// A cloneable handle on a [`Client`]: subscriptions, mirrored books, credentials, REST.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    rest: RestClient,
    endpoints: Arc<Endpoints>,
}

impl Client {
    /// Connects to the gateway at `url` (`http://host:port` or `ws://host:port/v1/ws`).
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        Self::connect_any([url], options).await
    }

    /// Connects to the first of `urls` that accepts the connection, trying them in order;
    /// later reconnects go round robin through the list (each attempt to the next URL, with
    /// the usual backoff). Every URL is checked first: an empty list or a bad URL is an
    /// error (`invalid_url`), as is a URL given twice (`invalid_argument`). When none
    /// accepts, the error is the last URL's.
    pub async fn connect_any<I, S>(urls: I, options: ClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        options.validate()?;
        let mut endpoints = Endpoints::parse(urls)?;
        let shared = Arc::new(Shared {
            credentials: RwLock::new(options.credentials.clone()),
            books: Books::default(),
            endpoint: RwLock::new(endpoints.current().clone()),
        });
        let rest = RestClient::new(shared.clone(), options.connect_timeout)?;
        let mut tried = 0;
        let first = loop {
            match open(&endpoints.current().ws, &shared, &options).await {
                Ok(ws) => break ws,
                Err(error) => {
                    tried += 1;
                    if tried == endpoints.len() {
                        return Err(error);
                    }
                    tracing::info!(url = %endpoints.current().http, error = %error, "gateway refused; trying the next");
                    endpoints.advance();
                }
            }
        };
        *shared.endpoint.write() = endpoints.current().clone();
        let (commands, command_rx) = mpsc::channel(64);
        let (event_tx, events) = mpsc::channel(options.event_buffer);
        let driver = Driver {
            endpoints: endpoints.clone(),
            sink: Sink::new(event_tx, options.overflow),
            tracker: Tracker::new(shared.books.clone(), options.mirror_books),
            backoff: Backoff::new(options.backoff.clone()),
            shared: shared.clone(),
            commands: command_rx,
            replies: HashMap::new(),
            options,
        };
        tokio::spawn(driver.run(first));
        Ok(Self {
            handle: ClientHandle {
                commands,
                shared,
                rest,
                endpoints: Arc::new(endpoints),
            },
            events,
        })
    }

    /// The next event, in order; `None` after [`Event::Closed`].
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// A handle for other tasks.
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// Closes the connection; events already buffered can still be taken.
    pub async fn close(&self) {
        let _ = self.handle.commands.send(Command::Close).await;
    }
}

impl std::ops::Deref for Client {
    type Target = ClientHandle;

    fn deref(&self) -> &ClientHandle {
        &self.handle
    }
}

fn parse_channels<I, S>(channels: I) -> Result<Vec<Channel>, ClientError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let parsed = channels
        .into_iter()
        .map(|c| {
            c.as_ref()
                .parse::<Channel>()
                .map_err(|e| ClientError::InvalidArgument(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Err(ClientError::InvalidArgument("no channels given".into()));
    }
    Ok(parsed)
}

impl ClientHandle {
    /// Subscribes; returns the canonical channel names once the gateway has acked. Each
    /// channel's first event follows (a snapshot for books and latest-value channels).
    /// Channel names are checked locally first (`invalid_argument`); the gateway's refusals
    /// come back as [`ClientError::Api`] with its code (`unknown_channel`, …). While the
    /// client is reconnecting this fails with [`ClientError::Disconnected`] (retryable);
    /// channels already subscribed are resubscribed by the client itself.
    pub async fn subscribe<I, S>(&self, channels: I) -> Result<Vec<String>, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let channels = parse_channels(channels)?;
        let mut acked = Vec::with_capacity(channels.len());
        for batch in channels.chunks(crate::tracker::SUBSCRIBE_BATCH) {
            let (reply, rx) = oneshot::channel();
            self.command(Command::Subscribe(batch.to_vec(), reply))
                .await?;
            acked.extend(rx.await.map_err(|_| ClientError::Closed)??);
        }
        Ok(acked)
    }

    /// Unsubscribes; events of these channels stop at once (and their books are dropped).
    pub async fn unsubscribe<I, S>(&self, channels: I) -> Result<Vec<String>, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let channels = parse_channels(channels)?;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Unsubscribe(channels, reply)).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// The local mirror of a subscribed `book:` channel (`None` if not subscribed or mirroring
    /// is off).
    pub fn book(&self, channel: &str) -> Option<BookHandle> {
        self.shared.books.get(channel)
    }

    /// Switches to new credentials without dropping subscriptions: REST calls use them at
    /// once; the stream is replaced make-before-break (a new connection is opened with them,
    /// then the old one closed, and every channel resumes where it was, so no message is lost
    /// or repeated). If the new connection is refused, the old one stays and the error is
    /// returned (the new credentials remain set for later reconnects and REST calls).
    pub async fn set_credentials(&self, credentials: Credentials) -> Result<(), ClientError> {
        *self.shared.credentials.write() = credentials;
        let (reply, rx) = oneshot::channel();
        self.command(Command::Replace(reply)).await?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// REST helpers for the public endpoints, with the same credentials.
    pub fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// The gateway of the current (or last) connection.
    pub fn endpoint(&self) -> Endpoint {
        self.shared.endpoint.read().clone()
    }

    /// Every gateway the client may use, in the order given.
    pub fn endpoints(&self) -> &[Endpoint] {
        self.endpoints.all()
    }

    async fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)
    }
}
