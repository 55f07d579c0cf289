//! Shared security state of a cluster (`[cluster] redis_url`): two gateways sharing one Redis
//! refuse a signed request replayed from one to the other, and a gateway that loses Redis
//! refuses signed requests with `unavailable` and is not ready (fail closed).
//!
//! Needs TICKGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379); each test uses its own key
//! prefix.

use crate::auth_signed::{create, now_secs, public_pem, sealing_config, sealing_service};
use crate::auth_support::code;
use crate::support::start;
use auth::httpsig::sign::{SigningKey, Unsigned, random_nonce, sign};
use store::keys::KeyKind;
use tokio::net::{TcpListener, TcpStream};

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";
/// The name clients sign (`@authority`) and send as `Host`, whichever node they reach.
const AUTHORITY: &str = "gw.example";

pub(crate) fn redis_url() -> Option<String> {
    let url = std::env::var("TICKGATE_TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
    }
    url
}

pub(crate) fn prefix() -> String {
    format!("tg_test_{}:", random_nonce().unwrap())
}

/// Sends a signed GET of [`TICKER`] to `addr` with `Host: AUTHORITY`; (status, code).
async fn send(addr: &str, headers: &auth::httpsig::sign::SignatureHeaders) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{TICKER}"))
        .header("host", AUTHORITY)
        .header("signature-input", &headers.signature_input)
        .header("signature", &headers.signature)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    (status, code(&json).to_string())
}

fn ticker() -> Unsigned<'static> {
    let (path, query) = TICKER.split_once('?').unwrap();
    Unsigned {
        method: "GET",
        authority: AUTHORITY,
        path,
        query: Some(query),
        body: b"",
    }
}

#[tokio::test]
async fn a_request_accepted_by_one_node_is_a_replay_on_another() {
    let Some(url) = redis_url() else { return };
    let mut config = sealing_config("cluster-replay");
    config.cluster.redis_url = url;
    config.cluster.redis_prefix = prefix();
    let service = sealing_service(&config.server.data_dir);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[21u8; 32]);
    let (id, _) = create(
        &service,
        "node-hopper",
        KeyKind::Ed25519,
        Some(public_pem(&ed)),
    );
    // Two nodes on one key store (the same data directory) and one Redis.
    let a = start(config.clone()).await;
    let b = start(config).await;
    let (a, b) = (a.local_addr().to_string(), b.local_addr().to_string());
    let key = SigningKey::ed25519(&ed.to_bytes());

    let h = sign(&key, &id, &ticker(), now_secs(), &random_nonce().unwrap());
    assert_eq!(send(&a, &h).await, (200, String::new()));
    assert_eq!(send(&b, &h).await, (401, "nonce_reused".into()));
    assert_eq!(send(&a, &h).await, (401, "nonce_reused".into()));
    // A fresh nonce passes on either node.
    let h = sign(&key, &id, &ticker(), now_secs(), &random_nonce().unwrap());
    assert_eq!(send(&b, &h).await, (200, String::new()));
    assert_eq!(send(&a, &h).await.1, "nonce_reused");
}

/// A TCP forwarder to Redis that the test can cut, as a network partition would.
pub(crate) struct Cuttable {
    pub(crate) addr: String,
    tasks: tokio::task::JoinSet<()>,
}

impl Cuttable {
    pub(crate) async fn to(target: String) -> Self {
        Self::to_at(target, "127.0.0.1:0").await
    }

    /// Like [`Self::to`], listening on `addr` (that of a cut link: the service comes back on
    /// the address its clients know). Waits for the port to be free again.
    pub(crate) async fn to_at(target: String, addr: &str) -> Self {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {addr} again: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap().to_string();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, tasks }
    }

    /// Closes the listener and every forwarded connection.
    pub(crate) fn cut(&mut self) {
        self.tasks.abort_all();
    }
}

#[tokio::test]
async fn a_node_that_loses_redis_refuses_signed_requests_and_is_not_ready() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut link = Cuttable::to(target).await;
    let mut config = sealing_config("cluster-fail-closed");
    config.cluster.redis_url = format!("redis://{}", link.addr);
    config.cluster.redis_prefix = prefix();
    let service = sealing_service(&config.server.data_dir);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[22u8; 32]);
    let (id, _) = create(
        &service,
        "partitioned",
        KeyKind::Ed25519,
        Some(public_pem(&ed)),
    );
    let gateway = start(config).await;
    let addr = gateway.local_addr().to_string();
    let key = SigningKey::ed25519(&ed.to_bytes());
    let (status, ready) = crate::support::get_json(&gateway, "/readyz").await;
    assert_eq!((status, &ready["nonce_store"]), (200, &"ok".into()));

    let h = sign(&key, &id, &ticker(), now_secs(), &random_nonce().unwrap());
    assert_eq!(send(&addr, &h).await, (200, String::new()));
    link.cut();
    // Signed requests are refused, never accepted unchecked; the replay too.
    let fresh = sign(&key, &id, &ticker(), now_secs(), &random_nonce().unwrap());
    assert_eq!(send(&addr, &fresh).await, (503, "unavailable".into()));
    assert_eq!(send(&addr, &h).await, (503, "unavailable".into()));
    let (status, ready) = crate::support::get_json(&gateway, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["nonce_store"], "unavailable");
    assert_eq!(ready["ready"], false);
}

#[tokio::test]
async fn a_request_signed_for_another_authority_is_refused() {
    // No Redis needed: [auth] authorities applies to every node.
    let mut config = sealing_config("authorities");
    config.auth.authorities = vec!["GW.example".into(), "gw.example:8443".into()];
    let service = sealing_service(&config.server.data_dir);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[23u8; 32]);
    let (id, _) = create(&service, "named", KeyKind::Ed25519, Some(public_pem(&ed)));
    let gateway = start(config).await;
    let addr = gateway.local_addr().to_string();
    let key = SigningKey::ed25519(&ed.to_bytes());
    // Listed (case-insensitive): accepted.
    let h = sign(&key, &id, &ticker(), now_secs(), &random_nonce().unwrap());
    assert_eq!(send(&addr, &h).await, (200, String::new()));
    // Signed for (and sent to) another name: refused with its own code, whatever the key.
    let mut other = ticker();
    other.authority = "evil.example";
    let h = sign(&key, &id, &other, now_secs(), &random_nonce().unwrap());
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{TICKER}"))
        .header("host", "evil.example")
        .header("signature-input", &h.signature_input)
        .header("signature", &h.signature)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&json), "wrong_authority");
}
