//! Alerts through the real gateway: the REST routes and their error codes, a firing on the
//! private `alerts` channel (with resume) and as a signed Standard Webhook, secret rotation,
//! and who may subscribe to `alerts`.

use crate::auth_signed::{sealing_config, sealing_service};
use crate::auth_support::*;
use crate::support::*;
use alerts::testing::Receiver;
use alerts::webhook::signature::{WebhookSecret, verify_v1};
use protocol::ServerMessage;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A gateway with a master key (webhook secrets are sealed under it), 127.0.0.1 allowed for
/// webhooks, and keys of principal `acme`: a signer with `alerts:write` (REST), a bearer key
/// with `market:read` and `alerts:write` (WebSocket, ticker); and a signer of another
/// principal.
struct Setup {
    gateway: server::Gateway,
    http: Http,
    acme: Signer,
    other: Signer,
    bearer: String,
}

async fn setup(name: &str, tweak: impl FnOnce(&mut server::Config)) -> Setup {
    let mut config = sealing_config(name);
    config.alerts.delivery.allow_addresses = vec!["127.0.0.1".into()];
    config.alerts.max_rules_per_principal = 4;
    config.hub.history_ttl_secs = 120;
    tweak(&mut config);
    let service = sealing_service(&config.server.data_dir);
    let acme = offline_principal_signer(&service, "acme-admin", &["alerts:write"], Some("acme"));
    let other = offline_principal_signer(&service, "other", &["alerts:write"], Some("other"));
    let issued = service
        .create(
            auth::NewKey {
                name: "acme-ws".into(),
                principal: Some("acme".into()),
                scopes: vec!["market:read".into(), "alerts:write".into()],
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    let gateway = start(config).await;
    Setup {
        http: Http::new(&gateway),
        gateway,
        acme,
        other,
        bearer: issued.secret.unwrap().expose().to_string(),
    }
}

impl Setup {
    async fn call(&self, method: Method, path: &str, who: &Signer, body: Value) -> (u16, Value) {
        let response = if method == Method::GET {
            self.http.get(path, Some(who)).await
        } else {
            self.http.send(method, path, Some(who), body).await
        };
        Http::json(response).await
    }

    /// The last trade price of BTC-USDT on sim.
    async fn last_price(&self) -> String {
        for _ in 0..100 {
            let (status, t) = Http::json(
                self.http
                    .get("/v1/ticker?venue=sim&symbol=BTC-USDT", Some(&self.bearer))
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{t}");
            if let Some(last) = t["ticker"]["last"].as_str() {
                return last.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no trade yet");
    }
}

fn price_rule(name: &str, direction: &str, level: &str) -> Value {
    json!({"name": name, "condition": {"kind": "price", "channel": "trades:sim:BTC-USDT",
           "direction": direction, "level": level}})
}

/// One line per request: what it sends and the status and code it gets.
#[tokio::test]
async fn rules_and_endpoints_over_rest_with_stable_codes() {
    let s = setup("alerts-rest", |_| {}).await;
    let (status, endpoint) = s
        .call(
            Method::POST,
            "/v1/webhooks",
            &s.acme,
            json!({"url": "http://127.0.0.1:9/hook", "description": "ops"}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && WebhookSecret::parse(secret).is_ok());
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    let (_, shown) = s
        .call(
            Method::GET,
            &format!("/v1/webhooks/{endpoint_id}"),
            &s.acme,
            json!(null),
        )
        .await;
    assert!(shown.get("secret").is_none(), "shown once: {shown}");
    assert_eq!(
        (shown["signature"].as_str(), shown["max_in_flight"].as_u64()),
        (Some("v1"), Some(4))
    );

    let mut rule = price_rule("btc up", "above", "1000000.50");
    rule["endpoints"] = json!([endpoint_id]);
    rule["cooldown_secs"] = json!(60);
    let (status, created) = s.call(Method::POST, "/v1/alerts", &s.acme, rule).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["condition"]["level"], "1000000.5");
    assert_eq!(created["condition"]["price"], "last");
    assert_eq!(created["status"], "active");
    let rule_id = created["id"].as_str().unwrap().to_string();

    let bad_kind =
        json!({"name": "x", "condition": {"kind": "moon", "channel": "trades:sim:BTC-USDT"}});
    let too_deep = json!({"name": "x", "condition": {"kind": "imbalance", "channel": "book:sim:BTC-USDT",
                          "depth": 500, "direction": "above", "ratio": "2"}});
    let mut foreign_endpoint = price_rule("x", "above", "1");
    foreign_endpoint["endpoints"] = json!(["whe_doesnotexist"]);
    let rule_path = format!("/v1/alerts/{rule_id}");
    let endpoint_path = format!("/v1/webhooks/{endpoint_id}");
    let cases: Vec<(Method, String, &Signer, Value, u16, &str)> = vec![
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            price_rule("x", "above", "1e6"),
            400,
            "bad_threshold",
        ),
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            price_rule("x", "sideways", "1"),
            400,
            "invalid_rule",
        ),
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            bad_kind,
            400,
            "invalid_rule",
        ),
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            too_deep,
            400,
            "invalid_rule",
        ),
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            json!({"name": "x", "condition": {"kind": "price",
            "channel": "trades:moon:BTC-USDT", "direction": "above", "level": "1"}}),
            404,
            "unknown_channel",
        ),
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            json!({"name": "x", "condition": {"kind": "price",
            "channel": "trades:sim", "direction": "above", "level": "1"}}),
            400,
            "invalid_channel",
        ),
        (
            Method::POST,
            "/v1/alerts".into(),
            &s.acme,
            foreign_endpoint,
            404,
            "unknown_endpoint",
        ),
        (
            Method::GET,
            rule_path.clone(),
            &s.other,
            json!(null),
            404,
            "unknown_rule",
        ),
        (
            Method::GET,
            "/v1/alerts/alr_nope".into(),
            &s.acme,
            json!(null),
            404,
            "unknown_rule",
        ),
        (
            Method::GET,
            "/v1/alerts/../keys".into(),
            &s.acme,
            json!(null),
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            rule_path.clone(),
            &s.acme,
            json!({}),
            400,
            "bad_request",
        ),
        (
            Method::PATCH,
            rule_path.clone(),
            &s.acme,
            json!({"condition": {}}),
            400,
            "invalid_rule",
        ),
        (
            Method::GET,
            endpoint_path.clone(),
            &s.other,
            json!(null),
            404,
            "unknown_endpoint",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "ftp://example.com/"}),
            400,
            "invalid_url",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "https://u:p@example.com/"}),
            400,
            "invalid_url",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "http://169.254.169.254/latest/"}),
            400,
            "address_refused",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "http://[::ffff:10.0.0.1]/"}),
            400,
            "address_refused",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "http://127.0.0.2:80/"}),
            400,
            "address_refused",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "https://no-such-host.invalid/"}),
            400,
            "unresolvable_host",
        ),
        (
            Method::POST,
            "/v1/webhooks".into(),
            &s.acme,
            json!({"url": "https://x.example", "max_in_flight": 0}),
            400,
            "bad_request",
        ),
        (
            Method::DELETE,
            endpoint_path.clone(),
            &s.acme,
            json!(null),
            409,
            "conflict",
        ),
        (
            Method::GET,
            format!("{endpoint_path}/deliveries?state=lost"),
            &s.acme,
            json!(null),
            400,
            "bad_param",
        ),
        (
            Method::GET,
            format!("{endpoint_path}/deliveries/dlv_x"),
            &s.acme,
            json!(null),
            404,
            "unknown_delivery",
        ),
        (
            Method::POST,
            format!("{endpoint_path}/deliveries/dlv_x/redeliver"),
            &s.acme,
            json!(null),
            404,
            "unknown_delivery",
        ),
    ];
    for (method, path, who, body, status, code_expected) in cases {
        let (got, json) = s.call(method.clone(), &path, who, body).await;
        assert_eq!(
            (got, code(&json)),
            (status, code_expected),
            "{method} {path}: {json}"
        );
    }
    // Bearer tokens are refused on alerts:write (signatures required by default).
    let (status, json) = Http::json(s.http.get("/v1/alerts", Some(&s.bearer)).await).await;
    assert_eq!((status, code(&json)), (403, "signature_required"));

    // The limit (4 here) counts every rule of the principal.
    for i in 0..3 {
        let (status, json) = s
            .call(
                Method::POST,
                "/v1/alerts",
                &s.acme,
                price_rule(&format!("r{i}"), "below", "1"),
            )
            .await;
        assert_eq!(status, 201, "{json}");
    }
    let (status, json) = s
        .call(
            Method::POST,
            "/v1/alerts",
            &s.acme,
            price_rule("r4", "below", "1"),
        )
        .await;
    assert_eq!((status, code(&json)), (429, "too_many_rules"));
    let (_, list) = s
        .call(Method::GET, "/v1/alerts", &s.acme, json!(null))
        .await;
    assert_eq!(list["rules"].as_array().unwrap().len(), 4);
    let (_, list) = s
        .call(Method::GET, "/v1/alerts", &s.other, json!(null))
        .await;
    assert_eq!(
        list["rules"].as_array().unwrap().len(),
        0,
        "another principal sees none"
    );

    // Pause, resume, delete; then the endpoint can go.
    let (status, paused) = s
        .call(
            Method::PATCH,
            &rule_path,
            &s.acme,
            json!({"enabled": false, "name": "renamed"}),
        )
        .await;
    assert_eq!(
        (status, paused["status"].as_str(), paused["name"].as_str()),
        (200, Some("paused"), Some("renamed"))
    );
    let (status, _) = s
        .call(Method::DELETE, &rule_path, &s.acme, json!(null))
        .await;
    assert_eq!(status, 204);
    let (status, json) = s.call(Method::GET, &rule_path, &s.acme, json!(null)).await;
    assert_eq!((status, code(&json)), (404, "unknown_rule"));
    let (status, _) = s
        .call(Method::DELETE, &endpoint_path, &s.acme, json!(null))
        .await;
    assert_eq!(status, 204);
}

async fn next_alert(ws: &mut Ws) -> protocol::DataMessage {
    for _ in 0..400 {
        match next(ws, Duration::from_millis(100)).await {
            Next::Msg(m) => {
                if let ServerMessage::Update(d) = *m
                    && d.alert.is_some()
                {
                    return d;
                }
            }
            Next::Closed(code) => panic!("closed {code}"),
            Next::Nothing => {}
        }
    }
    panic!("no alert within 40 s");
}

async fn subscribe_alerts(ws: &mut Ws, resume: Option<(String, u64)>) -> ServerMessage {
    let resume = resume.map_or(
        json!({}),
        |(epoch, seq)| json!({"alerts": {"epoch": epoch, "seq": seq}}),
    );
    send(
        ws,
        &json!({"op": "subscribe", "id": 1, "channels": ["alerts"], "resume": resume}).to_string(),
    )
    .await;
    recv_until(ws, |m| {
        matches!(
            m,
            ServerMessage::Subscribed { .. } | ServerMessage::Error(_)
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_reaches_the_alerts_channel_and_a_signed_webhook_once_per_crossing() {
    let s = setup("alerts-deliver", |c| {
        c.venues[0].sim.rate = 200.0;
        c.alerts.max_rules_per_principal = 100;
    })
    .await;
    let receiver = Receiver::start(200, Duration::ZERO).await;
    let url = format!("http://127.0.0.1:{}/tickgate?token=abc", receiver.port);
    let (status, endpoint) = s
        .call(Method::POST, "/v1/webhooks", &s.acme, json!({"url": url}))
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = WebhookSecret::parse(endpoint["secret"].as_str().unwrap()).unwrap();
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();

    let mut ws = connect_with(&s.gateway, &s.bearer).await;
    let ServerMessage::Subscribed { positions, .. } = subscribe_alerts(&mut ws, None).await else {
        panic!("not subscribed")
    };
    let epoch = positions["alerts"].epoch.clone();
    // The sim walks around its last price: rules at that level, both ways, fire soon.
    let level = s.last_price().await;
    for direction in ["above", "below"] {
        let mut rule = price_rule(direction, direction, &level);
        rule["endpoints"] = json!([endpoint_id]);
        rule["max_firings"] = json!(3);
        let (status, json) = s.call(Method::POST, "/v1/alerts", &s.acme, rule).await;
        assert_eq!(status, 201, "{json}");
    }
    let first = next_alert(&mut ws).await;
    let alert = first.alert.as_ref().unwrap();
    assert_eq!(
        (first.channel.as_str(), first.epoch.as_str()),
        ("alerts", epoch.as_str())
    );
    assert_eq!(
        alert.threshold.to_string(),
        model::parse_decimal(&level)
            .unwrap()
            .normalize()
            .to_string()
    );
    assert_eq!(alert.firing, 1);

    // The same firing, as a webhook: same id, verifiable signature, the stored body.
    for _ in 0..200 {
        if receiver
            .received
            .lock()
            .iter()
            .any(|r| r.headers["webhook-id"] == alert.id)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = receiver
        .received
        .lock()
        .iter()
        .find(|r| r.headers["webhook-id"] == alert.id)
        .cloned()
        .expect("the webhook for the first alert");
    let ts: i64 = delivered.headers["webhook-timestamp"].parse().unwrap();
    assert!(verify_v1(
        &secret,
        &alert.id,
        ts,
        &delivered.body,
        &delivered.headers["webhook-signature"]
    ));
    let payload: protocol::alerts::WebhookPayload =
        serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(
        (payload.kind.as_str(), &payload.data),
        ("alert.fired", &**alert)
    );

    // Disconnect, let more fire, resume: every missed alert, in order, then live ones.
    drop(ws);
    let (status, rotated) = s
        .call(
            Method::POST,
            &format!("/v1/webhooks/{endpoint_id}/rotate-secret"),
            &s.acme,
            json!({"overlap": "1h"}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = WebhookSecret::parse(rotated["secret"].as_str().unwrap()).unwrap();
    assert!(rotated["previous_secret_until"].as_i64().is_some());
    // Rules at the current price, both ways, until one fires after the rotation.
    let rotated_at = model::Timestamp::now().0;
    let mut after = 0;
    for _ in 0..20 {
        let level = s.last_price().await;
        for direction in ["above", "below"] {
            let mut rule = price_rule(direction, direction, &level);
            rule["endpoints"] = json!([endpoint_id]);
            rule["max_firings"] = json!(1);
            let (status, json) = s.call(Method::POST, "/v1/alerts", &s.acme, rule).await;
            assert_eq!(status, 201, "{json}");
        }
        for _ in 0..30 {
            let (_, f) = s
                .call(Method::GET, "/v1/alerts/firings", &s.acme, json!(null))
                .await;
            after = f["firings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["fired_at"].as_i64().unwrap() > rotated_at)
                .count();
            if after > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if after > 0 {
            break;
        }
    }
    assert!(after > 0, "nothing fired after the rotation");
    let mut ws = connect_with(&s.gateway, &s.bearer).await;
    let ServerMessage::Subscribed { recovered, .. } =
        subscribe_alerts(&mut ws, Some((epoch, first.seq))).await
    else {
        panic!("not subscribed")
    };
    assert_eq!(recovered.get("alerts"), Some(&true));
    let second = next_alert(&mut ws).await;
    assert_eq!(
        second.seq,
        first.seq + 1,
        "resumed right after the last one received"
    );

    // Deliveries after the rotation carry both signatures.
    let second_id = second.alert.as_ref().unwrap().id.clone();
    for _ in 0..200 {
        if receiver
            .received
            .lock()
            .iter()
            .any(|r| r.headers["webhook-id"] == second_id)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later: Vec<_> = receiver.received.lock().clone();
    let rotated_delivery = later
        .iter()
        .rev()
        .find(|r| r.headers["webhook-signature"].contains(' '))
        .expect("a delivery signed with both secrets");
    let (id, ts) = (
        &rotated_delivery.headers["webhook-id"],
        rotated_delivery.headers["webhook-timestamp"]
            .parse()
            .unwrap(),
    );
    let header = &rotated_delivery.headers["webhook-signature"];
    assert!(verify_v1(
        &new_secret,
        id,
        ts,
        &rotated_delivery.body,
        header
    ));
    assert!(verify_v1(&secret, id, ts, &rotated_delivery.body, header));

    // Each firing was delivered once (no retries were needed), and the statistics say so.
    let mut ids: Vec<String> = later
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no firing delivered twice");
    let (_, shown) = s
        .call(
            Method::GET,
            &format!("/v1/webhooks/{endpoint_id}"),
            &s.acme,
            json!(null),
        )
        .await;
    assert!(
        shown["stats"]["delivered"].as_u64().unwrap() >= 2,
        "{shown}"
    );
    assert_eq!(shown["stats"]["last_status"], 200);
    let firings = metric(&s.gateway, "tickgate_alert_firings_total").await;
    assert!(firings >= 2, "{firings}");
}

#[tokio::test]
async fn the_alerts_channel_is_private_and_needs_alerts_write() {
    let s = setup("alerts-ws", |_| {}).await;
    let service = sealing_service(&s.gateway.state().config().server.data_dir);
    let market_only = service
        .create(
            auth::NewKey {
                name: "market".into(),
                principal: Some("acme".into()),
                scopes: vec!["market:read".into()],
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    let alerts_only = service
        .create(
            auth::NewKey {
                name: "alerts-only".into(),
                principal: Some("acme".into()),
                scopes: vec!["alerts:write".into()],
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // the key index polls the store
    let token = |i: &auth::Issued| i.secret.as_ref().unwrap().expose().to_string();
    let cases = [
        (token(&market_only), "alerts", "insufficient_scope"),
        (
            token(&alerts_only),
            "trades:sim:BTC-USDT",
            "insufficient_scope",
        ),
        (token(&alerts_only), "alerts:sim", "invalid_channel"),
        (token(&alerts_only), "alerts", ""),
    ];
    for (key, channel, expected) in cases {
        let mut ws = connect_with(&s.gateway, &key).await;
        send(
            &mut ws,
            &json!({"op": "subscribe", "id": 1, "channels": [channel]}).to_string(),
        )
        .await;
        let reply = recv_until(&mut ws, |m| {
            matches!(
                m,
                ServerMessage::Subscribed { .. } | ServerMessage::Error(_)
            )
        })
        .await;
        let got = match reply {
            ServerMessage::Error(e) => e.code.as_str().to_string(),
            _ => String::new(),
        };
        assert_eq!(got, expected, "{channel}");
    }
}
