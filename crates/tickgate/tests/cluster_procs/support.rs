//! Helpers of `cluster_procs.rs`: node processes, their configs, services, cleanup, a
//! cuttable TCP link, SDK options, book comparison, keys and signed calls.

use client::{BackoffConfig, Client, ClientOptions, Credentials, Event, HeartbeatConfig};
use futures_util::StreamExt;
use protocol::ServerMessage;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub(crate) const BOOK: &str = "book:sim:BTC-USDT";
/// A keyed REST call an edge serves from its replica.
pub(crate) const REST: &str = "/v1/book?venue=sim&symbol=BTC-USDT&depth=1";
/// The name signed requests carry as `@authority` and `Host`, whichever edge they reach.
pub(crate) const AUTHORITY: &str = "gw.test";

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Services {
    pub(crate) nats: String,
    pub(crate) redis: String,
}

pub(crate) fn services() -> Option<Services> {
    // reqwest is built without a default TLS provider in this workspace.
    server::install_crypto_provider();
    let nats = std::env::var("TICKGATE_TEST_NATS_URL").ok();
    let redis = std::env::var("TICKGATE_TEST_REDIS_URL").ok();
    if nats.is_none() {
        eprintln!("skipped: TICKGATE_TEST_NATS_URL not set");
    }
    if redis.is_none() {
        eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
    }
    Some(Services {
        nats: nats?,
        redis: redis?,
    })
}

/// A name unique to this test run (process id and clock).
pub(crate) fn unique(tag: &str) -> String {
    format!(
        "tgp{tag}{}x{:x}",
        std::process::id(),
        model::Timestamp::now().0 % 0xffff_ffff
    )
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `tickgate serve` process; killed (SIGKILL) on drop.
pub(crate) struct Node {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
}

impl Node {
    /// Starts a node on a free port with `[server]` filled in and `body` (the rest of the
    /// config) after it. Its log goes to `<dir>/log`, printed if it never becomes ready.
    pub(crate) fn spawn(root: &Path, name: &'static str, body: &str) -> Self {
        let port = free_port();
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("tickgate.toml");
        std::fs::write(&config, node_config(&dir, port, body)).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tickgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("TICKGATE_CONFIG")
            .env_remove("TICKGATE_URL")
            .env("TICKGATE_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            name,
            child,
            port,
            dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("tickgate.toml")
    }

    /// `kill -9`: no shutdown at all, the lease and the sockets are just abandoned.
    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub(crate) async fn readyz(&self) -> Option<(u16, serde_json::Value)> {
        let response = http()
            .get(format!("{}/readyz", self.url()))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// Waits until `/readyz` answers 200 and `check` accepts its body.
    pub(crate) async fn ready_when(
        &mut self,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((200, body)) = self.readyz().await
                && check(&body)
            {
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("{} exited ({exit}):\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn ready(&mut self) {
        self.ready_when(Duration::from_secs(30), |_| true).await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn node_config(dir: &Path, port: u16, body: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nshutdown_grace_secs = 1\n\n{body}",
        dir.join("data").display()
    )
}

/// The `[cluster]` table of a node and the one simulated venue every node lists.
pub(crate) fn cluster(
    s: &Services,
    prefix: &str,
    role: &str,
    node_id: &str,
    extra: &str,
) -> String {
    format!(
        "[cluster]\nrole = \"{role}\"\nnode_id = \"{node_id}\"\nnats_url = \"{}\"\n\
         nats_prefix = \"{prefix}\"\nredis_url = \"{}\"\nredis_prefix = \"{prefix}:\"\n{extra}\n\
         [[venues]]\nname = \"sim\"\nsymbols = [\"BTC-USDT\"]\n\n[venues.sim]\nrate = 40.0\n",
        s.nats, s.redis
    )
}

pub(crate) fn owns_sim(ready: &serde_json::Value) -> bool {
    ready["bus"]["venues_owned"]
        .as_array()
        .is_some_and(|v| v.contains(&serde_json::json!("sim")))
}

/// A temporary directory and the cluster's NATS streams and lease bucket, removed on drop.
pub(crate) struct Cleanup {
    pub(crate) root: PathBuf,
    pub(crate) nats: String,
    pub(crate) prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let (url, prefix) = (self.nats.clone(), self.prefix.clone());
        // Drop may run inside the test's runtime: the cleanup gets a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(client) = cluster::connect(&url).await else {
                    return;
                };
                let js = async_nats::jetstream::new(client);
                let names = cluster::Names::new(&prefix).unwrap();
                for stream in [names.frames_stream(), names.snapshots_stream()] {
                    let _ = js.delete_stream(stream).await;
                }
                let _ = js.delete_key_value(names.lease_bucket()).await;
            });
        })
        .join();
    }
}

pub(crate) fn temp_root(prefix: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("tickgate-{prefix}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// Fast reconnects and a quick heartbeat, so failover is bounded by the cluster, not the SDK.
pub(crate) fn options() -> ClientOptions {
    ClientOptions {
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
            seed: Some(7),
            ..BackoffConfig::default()
        },
        heartbeat: HeartbeatConfig {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(3),
        },
        ..ClientOptions::default()
    }
}

/// One HTTP client for every request: `reqwest::get` builds a client (and its TLS roots) per
/// call, about 20 ms in a debug build, long enough for a frame to arrive during every call to
/// `GET /v1/book` so that the mirror and the REST book never meet at one seq. One per thread:
/// a pooled connection belongs to the runtime that opened it, and each test has its own.
pub(crate) fn http() -> reqwest::Client {
    thread_local! {
        static CLIENT: reqwest::Client = reqwest::Client::new();
    }
    CLIENT.with(Clone::clone)
}

pub(crate) async fn rest_book(node: &Node) -> protocol::rest::BookResponse {
    let url = format!(
        "{}/v1/book?venue=sim&symbol=BTC-USDT&depth=5000",
        node.url()
    );
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET /v1/book on {}", node.name);
    response.json().await.unwrap()
}

/// The client's mirrored book equals `GET /v1/book` on `node` at the same seq and epoch,
/// twice. Returns that epoch.
pub(crate) async fn mirror_equals_rest(client: &Client, node: &Node) -> String {
    let book = client.book(BOOK).expect("mirrored");
    let levels =
        |l: &[protocol::WireLevel]| l.iter().map(|w| model::Level::from(*w)).collect::<Vec<_>>();
    let mut matched = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = book.view(5000);
        let rest = rest_book(node).await;
        let after = book.view(5000);
        let last_seen = (after.seq, rest.seq, after.live);
        if before.seq == rest.seq && after.seq == rest.seq && after.live {
            assert_eq!(after.epoch.as_deref(), Some(rest.epoch.as_str()));
            assert_eq!(after.bids, levels(&rest.bids), "bids at seq {}", rest.seq);
            assert_eq!(after.asks, levels(&rest.asks), "asks at seq {}", rest.seq);
            assert_eq!(after.checksum, rest.checksum);
            matched += 1;
            if matched == 2 {
                return rest.epoch;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the client's book and {}'s never met at one seq ({matched} matches; last: \
             client seq {}, REST seq {}, client live {})",
            node.name,
            last_seen.0,
            last_seen.1,
            last_seen.2
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Takes the client's events until `done` says so (or `limit` passes: then panics).
pub(crate) async fn events_until(
    client: &mut Client,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(event)) => {
                let stop = done(&event);
                events.push(event);
                if stop {
                    return events;
                }
            }
            Ok(None) => panic!("client closed while waiting for {what}: {events:?}"),
            Err(_) => panic!("no {what} within {limit:?}: {events:?}"),
        }
    }
}

/// The book updates among `events` (all of one epoch) follow each other without a hole.
pub(crate) fn assert_no_hole(events: &[Event]) {
    let mut last = None;
    for event in events {
        if let Event::Update(b) = event {
            if let Some(last) = last {
                assert_eq!(b.meta.seq, last + 1, "a seq hole after #{last}");
            }
            last = Some(b.meta.seq);
        }
    }
}

pub(crate) async fn next_message(
    ws: &mut Ws,
    want: impl Fn(&ServerMessage) -> bool,
) -> ServerMessage {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(text) = frame {
            let message: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
            if want(&message) {
                return message;
            }
        }
    }
}

/// A TCP forwarder on a fixed loopback port to `target` that the test can cut (closing the
/// listener and every forwarded connection, as a network partition would) and restore.
pub(crate) struct Link {
    pub(crate) port: u16,
    pub(crate) target: String,
    pub(crate) tasks: tokio::task::JoinSet<()>,
}

impl Link {
    pub(crate) async fn to(target: String) -> Self {
        let mut link = Self {
            port: free_port(),
            target,
            tasks: tokio::task::JoinSet::new(),
        };
        link.restore().await;
        link
    }

    pub(crate) fn cut(&mut self) {
        self.tasks.abort_all();
    }

    pub(crate) async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let target = self.target.clone();
        self.tasks.spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }
}

/// A schema of its own in the test database, dropped on drop.
pub(crate) struct Schema {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, sql) = (
            self.url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// `tickgate keys create --config <edge config> ARGS --json`: the created key's JSON.
pub(crate) fn create_key(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tickgate"))
        .args(["keys", "create", "--config"])
        .arg(config)
        .args(args)
        .arg("--json")
        .env_remove("TICKGATE_MASTER_KEY")
        .env_remove("TICKGATE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sends `method path` to `node` with `Host: AUTHORITY` and `headers`; (status, error code).
pub(crate) async fn call(
    node: &Node,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&'static str, String)],
) -> (u16, String) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", node.url());
    let mut request = match method {
        "GET" => client.get(url),
        _ => client.post(url).header("content-type", "application/json"),
    };
    request = request.header("host", AUTHORITY).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    let code = json["code"].as_str().unwrap_or_default();
    (status, code.to_string())
}

pub(crate) fn signed(
    credentials: &Credentials,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let unsigned = client::Unsigned {
        method,
        authority: AUTHORITY,
        path,
        query,
        body,
    };
    credentials.headers(&unsigned).unwrap()
}

/// `keys create --type ed25519 --generate-keypair OUT`: the private key lands in `out`.
pub(crate) fn create_key_with_keypair(
    config: &Path,
    name: &str,
    scopes: &str,
    out: &Path,
) -> serde_json::Value {
    let out = out.to_str().unwrap();
    create_key(
        config,
        &[
            "--name",
            name,
            "--scopes",
            scopes,
            "--type",
            "ed25519",
            "--generate-keypair",
            out,
        ],
    )
}
