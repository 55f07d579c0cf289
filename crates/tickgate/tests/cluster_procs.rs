//! A cluster of real `tickgate serve` processes on loopback (issue 12): ingest nodes running
//! the simulator and forwarding to NATS, two edges serving clients from the bus, each node
//! with its own port and data directory; kill -9 to fail nodes.
//!
//! - `market_data_survives_the_loss_of_an_ingest_and_of_an_edge`: a client on edge A rebuilds
//!   the book `GET /v1/book` on edge B serves at the same seq; kill -9 of the active ingest:
//!   the standby takes over (time printed, bound 5 s), clients get a new epoch and a correct
//!   book, a resume from the old epoch gets `recovered: false`; kill -9 of edge A: the SDK
//!   (given both edges) resumes on B with `recovered: true` and no seq hole.
//! - `security_state_is_shared_by_the_edges`: a signed request accepted by edge A is
//!   `nonce_reused` on edge B; a key revoked through A's admin API closes its live session on
//!   B (time printed, bound 1 s); a key's rate limit is one budget across both edges.
//! - `an_edge_that_loses_nats_tells_the_sdk_and_recovers`: the edge's link to NATS is cut: an
//!   SDK client on it gets the `bus_down` resync notice (sent at the current seq, which the
//!   SDK used to drop) and a stale book, then, with the link back, a resync snapshot and a book
//!   equal to the ingest's.
//! - `the_cluster_example_configs_are_valid`: `tickgate config check` on examples/cluster/.
//!
//! Needs TICKGATE_TEST_NATS_URL and TICKGATE_TEST_REDIS_URL (and TICKGATE_TEST_POSTGRES_URL
//! for the security test); each test uses its own NATS prefix, Redis prefix and Postgres
//! schema, and removes its streams and schema afterwards.

#[path = "cluster_procs/support.rs"]
mod support;

use client::{Client, Credentials, Event};
use futures_util::{SinkExt, StreamExt};
use protocol::ServerMessage;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_data_survives_the_loss_of_an_ingest_and_of_an_edge() {
    let Some(s) = services() else { return };
    let prefix = unique("md");
    let root = temp_root(&prefix);
    let _cleanup = Cleanup {
        root: root.clone(),
        nats: s.nats.clone(),
        prefix: prefix.clone(),
    };
    // ingest-1 first, so it holds the lease; ingest-2 is the hot standby.
    let mut ingest1 = Node::spawn(
        &root,
        "ingest-1",
        &cluster(&s, &prefix, "ingest", "ingest-1", ""),
    );
    ingest1.ready_when(Duration::from_secs(30), owns_sim).await;
    let mut ingest2 = Node::spawn(
        &root,
        "ingest-2",
        &cluster(&s, &prefix, "ingest", "ingest-2", ""),
    );
    let mut edge_a = Node::spawn(&root, "edge-a", &cluster(&s, &prefix, "edge", "edge-a", ""));
    let mut edge_b = Node::spawn(&root, "edge-b", &cluster(&s, &prefix, "edge", "edge-b", ""));
    ingest2.ready().await;
    edge_a.ready().await;
    edge_b.ready().await;
    let (_, standby) = ingest2.readyz().await.unwrap();
    assert!(!owns_sim(&standby), "one owner per venue: {standby}");

    // A client given both edges, on A (the first).
    let mut client = Client::connect_any([edge_a.url(), edge_b.url()], options())
        .await
        .unwrap();
    assert_eq!(client.endpoint().http, edge_a.url());
    client.subscribe([BOOK]).await.unwrap();
    events_until(&mut client, Duration::from_secs(10), "a snapshot", |e| {
        matches!(e, Event::Snapshot(_))
    })
    .await;
    // 1. The book the client rebuilt on A is B's at the same seq.
    let epoch1 = mirror_equals_rest(&client, &edge_b).await;
    let old_position = client.book(BOOK).unwrap().view(1).seq;

    // 2. kill -9 the active ingest: the standby takes the lease, a new epoch reaches the
    // client, and its book is correct again.
    let killed = Instant::now();
    ingest1.kill9();
    let mut took_lease = None;
    let mut resynced = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while took_lease.is_none() || resynced.is_none() {
        assert!(Instant::now() < deadline, "no takeover within 15 s");
        if took_lease.is_none()
            && let Some((200, body)) = ingest2.readyz().await
            && owns_sim(&body)
        {
            took_lease = Some(killed.elapsed());
        }
        if resynced.is_none() {
            let wait = tokio::time::timeout(Duration::from_millis(50), client.next_event());
            if let Ok(Some(Event::Snapshot(b))) = wait.await
                && *b.meta.epoch != *epoch1
            {
                assert!(b.resync, "the new epoch's snapshot replaces the old book");
                resynced = Some(killed.elapsed());
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (took_lease, resynced) = (took_lease.unwrap(), resynced.unwrap());
    eprintln!(
        "ingest takeover after kill -9 of the active ingest: standby owns the venue after \
         {took_lease:?}, the client on edge A has the new epoch's snapshot after {resynced:?}"
    );
    assert!(took_lease < Duration::from_secs(5), "{took_lease:?}");
    assert!(resynced < Duration::from_secs(5), "{resynced:?}");
    let epoch2 = mirror_equals_rest(&client, &edge_b).await;
    assert_ne!(epoch2, epoch1);
    // A client resuming from the old epoch starts over: recovered false and a fresh snapshot.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/v1/ws", edge_b.port))
            .await
            .unwrap();
    let resume = format!(
        r#"{{"op":"subscribe","id":1,"channels":["{BOOK}"],"resume":{{"{BOOK}":{{"epoch":"{epoch1}","seq":{old_position}}}}}}}"#
    );
    ws.send(Message::Text(resume.into())).await.unwrap();
    let ServerMessage::Subscribed {
        recovered,
        positions,
        ..
    } = next_message(&mut ws, |m| matches!(m, ServerMessage::Subscribed { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(recovered.get(BOOK), Some(&false));
    assert_eq!(positions[BOOK].epoch, epoch2);
    let ServerMessage::Snapshot(snapshot) =
        next_message(&mut ws, |m| matches!(m, ServerMessage::Snapshot(_))).await
    else {
        unreachable!()
    };
    assert_eq!(snapshot.epoch, epoch2);
    drop(ws);

    // 3. kill -9 edge A mid-stream: the SDK moves to B and resumes exactly. First an update
    // from A, so the seq run across the failover can be checked (the steps above may have
    // taken less time than one update).
    let mut events = events_until(
        &mut client,
        Duration::from_secs(10),
        "an update from edge A",
        |e| matches!(e, Event::Update(_)),
    )
    .await;
    let killed = Instant::now();
    edge_a.kill9();
    let mut recovered = None;
    let mut resumed_after = Duration::ZERO;
    let after_kill = events_until(
        &mut client,
        Duration::from_secs(10),
        "a recovery on edge B",
        |e| {
            if let Event::Recovered { recovered: r, lost } = e {
                recovered = Some((r.clone(), lost.clone()));
                resumed_after = killed.elapsed();
            }
            // A few updates after the recovery, to see the seq run on.
            recovered.is_some() && matches!(e, Event::Update(_))
        },
    )
    .await;
    events.extend(after_kill);
    eprintln!(
        "edge failover after kill -9 of edge A: the SDK resumed on edge B after {resumed_after:?}"
    );
    let (ok, lost) = recovered.unwrap();
    assert_eq!(
        (ok.iter().map(|c| &**c).collect::<Vec<_>>(), lost.len()),
        (vec![BOOK], 0),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Resync { .. } | Event::Snapshot(_))),
        "an exact resume: no resync: {events:?}"
    );
    let reconnected_to: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { url, .. } => Some(url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reconnected_to.first(), Some(&edge_b.url().as_str()));
    assert_eq!(client.endpoint().http, edge_b.url());
    // No hole: the updates before the kill (read from A) and after the recovery (from B)
    // follow each other, one seq each.
    let updates = events
        .iter()
        .filter(|e| matches!(e, Event::Update(_)))
        .count();
    let after_recovery = events
        .iter()
        .skip_while(|e| !matches!(e, Event::Recovered { .. }))
        .filter(|e| matches!(e, Event::Update(_)))
        .count();
    assert!(updates > after_recovery && after_recovery > 0, "{events:?}");
    assert_no_hole(&events);
    assert_eq!(mirror_equals_rest(&client, &edge_b).await, epoch2);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_loses_nats_tells_the_sdk_and_recovers() {
    let Some(s) = services() else { return };
    let prefix = unique("bus");
    let root = temp_root(&prefix);
    let _cleanup = Cleanup {
        root: root.clone(),
        nats: s.nats.clone(),
        prefix: prefix.clone(),
    };
    let nats_addr = s.nats.trim_start_matches("nats://").to_string();
    let mut link = Link::to(nats_addr).await;
    let mut ingest = Node::spawn(
        &root,
        "ingest-1",
        &cluster(&s, &prefix, "ingest", "ingest-1", ""),
    );
    let through_link = Services {
        nats: format!("nats://127.0.0.1:{}", link.port),
        redis: s.redis.clone(),
    };
    let mut edge = Node::spawn(
        &root,
        "edge-a",
        &cluster(&through_link, &prefix, "edge", "edge-a", ""),
    );
    ingest.ready().await;
    edge.ready().await;
    let mut client = Client::connect(&edge.url(), options()).await.unwrap();
    client.subscribe([BOOK]).await.unwrap();
    events_until(&mut client, Duration::from_secs(10), "a snapshot", |e| {
        matches!(e, Event::Snapshot(_))
    })
    .await;
    let epoch = mirror_equals_rest(&client, &ingest).await;

    link.cut();
    let mut notice = None;
    events_until(
        &mut client,
        Duration::from_secs(10),
        "a bus_down notice",
        |e| {
            if let Event::Resync { reason, seq, .. } = e {
                notice = Some((reason.clone(), *seq));
            }
            notice.is_some()
        },
    )
    .await;
    let (reason, seq) = notice.unwrap();
    assert_eq!(reason, "bus_down");
    let view = client.book(BOOK).unwrap().view(1);
    assert!(!view.live, "a stale book is not served as live");
    assert_eq!(view.seq, seq, "the notice is at the book's current seq");
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.readyz().await.is_some_and(|(status, _)| status == 200) {
        assert!(
            Instant::now() < deadline,
            "the edge stays ready without NATS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    link.restore().await;
    let mut snapshot = None;
    events_until(
        &mut client,
        Duration::from_secs(20),
        "a resync snapshot after NATS is back",
        |e| {
            if let Event::Snapshot(b) = e {
                snapshot = Some(b.clone());
            }
            snapshot.is_some()
        },
    )
    .await;
    let snapshot = snapshot.unwrap();
    assert!(snapshot.resync);
    assert_eq!(
        *snapshot.meta.epoch, *epoch,
        "the same ingest, the same epoch"
    );
    assert!(snapshot.meta.seq >= seq);
    assert_eq!(mirror_equals_rest(&client, &ingest).await, epoch);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_state_is_shared_by_the_edges() {
    let Some(s) = services() else { return };
    let Ok(pg) = std::env::var("TICKGATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: TICKGATE_TEST_POSTGRES_URL not set");
        return;
    };
    let prefix = unique("sec");
    let root = temp_root(&prefix);
    let _cleanup = Cleanup {
        root: root.clone(),
        nats: s.nats.clone(),
        prefix: prefix.clone(),
    };
    let schema = Schema {
        url: pg.clone(),
        name: prefix.to_lowercase(),
    };
    let edge_extra = format!(
        "postgres_url = \"{pg}\"\npostgres_schema = \"{}\"\n\n[auth]\nrequired = true\n\
         environment = \"test\"\npublic_metrics = true\nauthorities = [\"{AUTHORITY}\"]\n",
        schema.name
    );
    let mut ingest = Node::spawn(
        &root,
        "ingest-1",
        &cluster(&s, &prefix, "ingest", "ingest-1", ""),
    );
    let mut edge_a = Node::spawn(
        &root,
        "edge-a",
        &cluster(&s, &prefix, "edge", "edge-a", &edge_extra),
    );
    let mut edge_b = Node::spawn(
        &root,
        "edge-b",
        &cluster(&s, &prefix, "edge", "edge-b", &edge_extra),
    );
    ingest.ready().await;
    edge_a.ready().await;
    edge_b.ready().await;

    // Keys made in the shared store, as an operator does with the cluster's config.
    let config = edge_a.config();
    let admin_pem = root.join("admin.pem");
    let admin = {
        let out = create_key_with_keypair(&config, "ops", "keys:admin", &admin_pem);
        Credentials::ed25519_pem(
            out["id"].as_str().unwrap(),
            &std::fs::read_to_string(&admin_pem).unwrap(),
        )
        .unwrap()
    };
    let signer_pem = root.join("signer.pem");
    let signer = {
        let out = create_key_with_keypair(&config, "signer", "market:read", &signer_pem);
        Credentials::ed25519_pem(
            out["id"].as_str().unwrap(),
            &std::fs::read_to_string(&signer_pem).unwrap(),
        )
        .unwrap()
    };
    let roamer = create_key(&config, &["--name", "roamer", "--scopes", "market:read"]);
    let budget = create_key(
        &config,
        &[
            "--name",
            "budget",
            "--scopes",
            "market:read",
            "--rate-limit",
            "1/6",
        ],
    );
    let token = |key: &serde_json::Value| {
        vec![(
            "authorization",
            format!("Bearer {}", key["token"].as_str().unwrap()),
        )]
    };

    // Both edges know the keys (made before they polled, or learnt by NOTIFY).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = call(&edge_b, "GET", REST, b"", &token(&roamer)).await;
        if answer.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edge B never accepted the key: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 1. A signed request accepted by A is a replay on B.
    let headers = signed(&signer, "GET", REST, b"");
    assert_eq!(
        call(&edge_a, "GET", REST, b"", &headers).await,
        (200, String::new())
    );
    assert_eq!(
        call(&edge_b, "GET", REST, b"", &headers).await,
        (401, "nonce_reused".to_string())
    );
    let fresh = signed(&signer, "GET", REST, b"");
    assert_eq!(call(&edge_b, "GET", REST, b"", &fresh).await.0, 200);

    // 2. A key revoked through A's admin API: its session on B closes within 1 s.
    let mut request = format!("ws://127.0.0.1:{}/v1/ws", edge_b.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", token(&roamer)[0].1.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        format!(r#"{{"op":"subscribe","id":1,"channels":["{BOOK}"]}}"#).into(),
    ))
    .await
    .unwrap();
    next_message(&mut ws, |m| matches!(m, ServerMessage::Subscribed { .. })).await;
    let path = format!("/admin/v1/keys/{}/revoke", roamer["id"].as_str().unwrap());
    let body = br#"{"reason":"cluster process test"}"#;
    let headers = signed(&admin, "POST", &path, body);
    let started = Instant::now();
    assert_eq!(call(&edge_a, "POST", &path, body, &headers).await.0, 200);
    let (mut error, mut close) = (String::new(), None);
    while close.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("B closes the revoked key's session within 3 s");
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Ok(ServerMessage::Error(body)) = serde_json::from_str(text.as_str()) {
                    error = body.code.as_str().to_string();
                }
            }
            Some(Ok(Message::Close(frame))) => {
                close = Some(frame.map(|f| u16::from(f.code)).unwrap_or_default());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => close = Some(0),
        }
    }
    let took = started.elapsed();
    eprintln!(
        "key revoked through edge A's admin API: its session on edge B closed after {took:?}"
    );
    assert_eq!((error.as_str(), close), ("key_revoked", Some(4003)));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(
        call(&edge_b, "GET", REST, b"", &token(&roamer)).await,
        (401, "key_revoked".to_string())
    );

    // 3. One rate budget across the edges: burst 6 at 1/s admits 6 in all, not 12.
    let started = Instant::now();
    for i in 0..6 {
        let node = if i % 2 == 0 { &edge_a } else { &edge_b };
        assert_eq!(
            call(node, "GET", REST, b"", &token(&budget)).await.0,
            200,
            "request {i}"
        );
    }
    let mut admitted = 6;
    let mut refused = [false, false];
    while refused != [true, true] && admitted < 12 {
        for (i, node) in [&edge_a, &edge_b].into_iter().enumerate() {
            match call(node, "GET", REST, b"", &token(&budget)).await {
                (200, _) => admitted += 1,
                (status, code) => {
                    assert_eq!((status, code.as_str()), (429, "rate_limited"));
                    refused[i] = true;
                }
            }
        }
    }
    let refill = started.elapsed().as_secs() + 1;
    assert!(admitted <= 6 + refill, "{admitted} admitted in {refill} s");
    assert_eq!(refused, [true, true]);
    drop(schema);
}

#[test]
fn the_cluster_example_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster");
    let mut checked = 0;
    for name in [
        "ingest-1.toml",
        "ingest-2.toml",
        "edge-1.toml",
        "edge-2.toml",
    ] {
        let file = dir.join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_tickgate"))
            .args(["config", "check"])
            .arg(&file)
            .env_remove("TICKGATE_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let effective = String::from_utf8_lossy(&out.stdout);
        let role = if name.starts_with("ingest") {
            "ingest"
        } else {
            "edge"
        };
        assert!(
            effective.contains(&format!("role = \"{role}\"")),
            "{name}: {effective}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}
