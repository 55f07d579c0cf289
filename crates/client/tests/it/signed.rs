//! Signed credentials (RFC 9421) against a gateway that requires keys: REST calls and the
//! WebSocket upgrade signed with `hmac` and `ed25519` keys pass; every call, reconnect and
//! key swap is signed afresh (the gateway refuses a reused nonce, so a stale signature would
//! show up as an error here).

use crate::proxy::Proxy;
use crate::support::*;
use client::{Client, ClientOptions, Credentials, Event};
use std::path::Path;
use std::time::Duration;
use store::keys::KeyKind;

const MASTER_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// A config requiring keys, with a master key file (hmac secrets are sealed under it).
fn signing_config(rate: f64) -> server::Config {
    let mut config = config(rate);
    config.auth.required = Some(true);
    let dir = config.server.data_dir.clone();
    std::fs::create_dir_all(&dir).unwrap();
    let master = dir.join("master.key");
    std::fs::write(&master, MASTER_HEX).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    config.auth.master_key_file = Some(master);
    config
}

/// Creates a key offline (sealing hmac secrets under the test master key); returns (id,
/// secret for hmac keys).
fn create(
    dir: &Path,
    name: &str,
    kind: KeyKind,
    public_pem: Option<String>,
) -> (String, Option<String>) {
    let store = store::keys_sqlite::SqliteKeyStore::open_dir(dir).unwrap();
    let master = auth::MasterKey::from_hex(MASTER_HEX, "test").unwrap();
    let service = auth::KeyService::new(
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(store.audit_log()),
        auth::KeyRing::new(Some(master), Vec::new()),
        store::keys::Environment::Test,
    );
    let issued = service
        .create(
            auth::NewKey {
                name: name.into(),
                scopes: vec!["market:read".into(), "history:read".into()],
                kind: Some(kind),
                public_key_pem: public_pem,
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    (
        issued.record.id,
        issued.secret.map(|s| s.expose().to_string()),
    )
}

/// An hmac and an ed25519 credential registered in `dir`.
fn signed_credentials(dir: &Path) -> (Credentials, Credentials) {
    let (hmac_id, secret) = create(dir, "hmac", KeyKind::Hmac, None);
    let seed = [42u8; 32];
    let public = httpsig::pem::ed25519_public_pem(&seed);
    let (ed_id, _) = create(dir, "ed", KeyKind::Ed25519, Some(public));
    let private = httpsig::pem::ed25519_seed_to_pem(&seed);
    (
        Credentials::hmac(hmac_id, secret.unwrap()).unwrap(),
        Credentials::ed25519_pem(ed_id, &private).unwrap(),
    )
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, value) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_and_ed25519_credentials_call_rest_and_stream() {
    let _heavy = HEAVY.lock().await;
    let config = signing_config(50.0);
    let (hmac, ed) = signed_credentials(&config.server.data_dir);
    let gateway = start(config).await;
    let url = format!("http://{}", gateway.local_addr());

    for credentials in [hmac, ed] {
        let name = format!("{credentials:?}");
        let options = ClientOptions {
            credentials,
            ..options()
        };
        let mut client = Client::connect(&url, options).await.unwrap();
        client.subscribe(["trades:sim:BTC-USDT"]).await.unwrap();
        let events = collect(&mut client, Duration::from_secs(5), |e| {
            matches!(e, Event::Trade(_))
        })
        .await;
        assert!(
            count(&events, |e| matches!(e, Event::Trade(_))) >= 1,
            "{name}: {events:?}"
        );
        // Back-to-back calls within one second: each needs its own nonce.
        let rest = client.rest();
        for _ in 0..3 {
            rest.ticker("sim", "BTC-USDT").await.unwrap();
        }
        rest.instruments().await.unwrap();
        rest.book("sim", "BTC-USDT", Some(5)).await.unwrap();
        rest.candles("sim", "BTC-USDT", client::Interval::M1, Some(10))
            .await
            .unwrap();
        client.close().await;
    }
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_key_swaps_are_signed_afresh() {
    let _heavy = HEAVY.lock().await;
    let config = signing_config(50.0);
    let (hmac, ed) = signed_credentials(&config.server.data_dir);
    let (hmac_id, ed_id) = (
        hmac.key_id().unwrap().to_string(),
        ed.key_id().unwrap().to_string(),
    );
    let gateway = start(config).await;
    let proxy = Proxy::start(gateway.local_addr()).await;
    let options = ClientOptions {
        credentials: hmac,
        ..options()
    };
    let mut client = Client::connect(&proxy.url(), options).await.unwrap();
    client.subscribe(["trades:sim:BTC-USDT"]).await.unwrap();
    collect(&mut client, Duration::from_millis(500), |_| false).await;

    // A dropped connection: the reconnect's upgrade is signed again (a replayed signature
    // would be refused with nonce_reused and the client would keep reconnecting).
    proxy.cut();
    let events = collect(&mut client, Duration::from_secs(10), |e| {
        matches!(e, Event::Recovered { .. })
    })
    .await;
    assert!(
        matches!(events.last(), Some(Event::Recovered { lost, .. }) if lost.is_empty()),
        "{events:?}"
    );

    // Hot swap to the ed25519 key: make-before-break, then REST with it.
    client.set_credentials(ed).await.unwrap();
    let events = collect(&mut client, Duration::from_secs(5), |e| {
        matches!(e, Event::Trade(_))
    })
    .await;
    assert_eq!(
        count(&events, |e| matches!(e, Event::Reconnecting { .. })),
        0
    );
    client.rest().ticker("sim", "BTC-USDT").await.unwrap();

    // What went over the wire: upgrade (hmac), reconnect (hmac), upgrade (ed25519), REST
    // (ed25519); every one signed over the proxy's address with its own nonce, none with a
    // bearer token.
    let heads = proxy.heads();
    assert_eq!(heads.len(), 4, "{heads:#?}");
    let inputs: Vec<String> = heads
        .iter()
        .map(|h| header(h, "signature-input").expect("signed"))
        .collect();
    for (input, id) in inputs.iter().zip([&hmac_id, &hmac_id, &ed_id, &ed_id]) {
        assert!(input.contains(&format!("keyid=\"{id}\"")), "{input}");
    }
    let mut unique = inputs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), inputs.len(), "fresh nonces: {inputs:#?}");
    assert!(heads.iter().all(|h| header(h, "authorization").is_none()));
    assert!(heads[0].starts_with("GET /v1/ws "));
    assert!(heads[3].starts_with("GET /v1/ticker?"));
    gateway.stop().await.unwrap();
}
