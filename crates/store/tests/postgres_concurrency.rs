//! The PostgreSQL stores under several nodes at once (each node here is its own store
//! instance with its own connections): the audit chain stays one chain, the change feed never
//! skips a write that committed late, and key writes wake listeners. Needs
//! TICKGATE_TEST_POSTGRES_URL; each test works in a fresh schema.
#![cfg(feature = "postgres")]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use store::audit::{AuditLog, NewAuditEvent, verify_chain};
use store::keys::{Environment, KeyKind, KeyRecord, KeyStatus, KeyStore, KeyWrite};
use store::keys_postgres::PgKeyStore;
use support::pg::Schema;

fn event(node: usize, i: usize) -> NewAuditEvent {
    NewAuditEvent {
        at: 1_700_000_000_000_000,
        actor: format!("node-{node}"),
        action: "test.append".into(),
        key_id: None,
        detail: serde_json::json!({ "i": i }),
    }
}

fn record(id: &str, hash: [u8; 32]) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        principal: "p".into(),
        kind: KeyKind::Bearer,
        environment: Environment::Test,
        name: id.into(),
        scopes: vec!["market:read".into()],
        status: KeyStatus::Active,
        grace_until: None,
        version: 1,
        replaces: None,
        replaced_by: None,
        metadata: serde_json::json!({}),
        created_at: 1,
        created_by: "test".into(),
        expires_at: None,
        revoked_at: None,
        revoked_reason: None,
        token_hash: Some(hash),
        public_key: None,
        sealed: None,
        rate_limit: None,
        max_age_secs: None,
        rotated_at: None,
        last_used_at: None,
        last_used_addr: None,
        rev: 0,
    }
}

#[test]
fn concurrent_appends_from_several_nodes_form_one_chain() {
    let Some(schema) = Schema::new("audit_race") else {
        return;
    };
    const NODES: usize = 4;
    const APPENDS: usize = 25;
    // Open the nodes one after another first (migration is exercised concurrently below).
    let nodes: Vec<PgKeyStore> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..NODES)
            .map(|_| s.spawn(|| PgKeyStore::open(&schema.url, &schema.name).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::thread::scope(|s| {
        for (n, node) in nodes.iter().enumerate() {
            let log = node.audit_log();
            s.spawn(move || {
                for i in 0..APPENDS {
                    // Mix single and batched appends, and appends inside key writes.
                    if i % 5 == 0 {
                        let mut hash = [0u8; 32];
                        hash[0] = n as u8;
                        hash[1] = i as u8;
                        node.apply(
                            &[KeyWrite::Insert(record(&format!("key_{n}_{i}"), hash))],
                            &[event(n, i)],
                        )
                        .unwrap();
                    } else {
                        log.append(&[event(n, i)]).unwrap();
                    }
                }
            });
        }
    });
    let log = nodes[0].audit_log();
    let total = (NODES * APPENDS) as u64;
    assert_eq!(verify_chain(&log).unwrap(), Ok(total));
    let seqs: Vec<u64> = log.read(0, 10_000).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "ids contiguous");
    assert_eq!(log.head().unwrap().map(|h| h.0), Some(total));
}

#[test]
fn the_change_feed_never_skips_a_write_that_committed_late() {
    let Some(schema) = Schema::new("feed_race") else {
        return;
    };
    const WRITERS: usize = 4;
    const KEYS: usize = 30;
    let open = || PgKeyStore::open(&schema.url, &schema.name).unwrap();
    let poller = open();
    let writers: Vec<PgKeyStore> = (0..WRITERS).map(|_| open()).collect();
    let done = AtomicBool::new(false);
    let (seen, polls) = std::thread::scope(|s| {
        let handles: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, node)| {
                s.spawn(move || {
                    for i in 0..KEYS {
                        let mut hash = [0xaa; 32];
                        hash[0] = w as u8;
                        hash[1] = i as u8;
                        let id = format!("key_{w}_{i}");
                        node.apply(&[KeyWrite::Insert(record(&id, hash))], &[])
                            .unwrap();
                    }
                })
            })
            .collect();
        let poll_loop = s.spawn(|| {
            let (mut cursor, mut seen, mut polls) = (0, BTreeSet::new(), 0);
            loop {
                // Read before polling: the poll after `done` sees every committed write.
                let finish = done.load(Ordering::Acquire);
                let (newest, records) = poller.changes_since(cursor).unwrap();
                assert!(newest >= cursor, "the newest change number went back");
                cursor = newest;
                seen.extend(records.into_iter().map(|r| r.id));
                polls += 1;
                if finish {
                    return (seen, polls);
                }
            }
        });
        for handle in handles {
            handle.join().unwrap();
        }
        done.store(true, Ordering::Release);
        poll_loop.join().unwrap()
    });
    assert!(polls > 2, "the poller raced the writers ({polls} polls)");
    let expected: BTreeSet<String> = (0..WRITERS)
        .flat_map(|w| (0..KEYS).map(move |i| format!("key_{w}_{i}")))
        .collect();
    assert_eq!(
        seen, expected,
        "a poll that moved past a write never sees it"
    );
    // One number per write, handed out in commit order: the newest is the count.
    assert_eq!(poller.changes_since(0).unwrap().0, (WRITERS * KEYS) as u64);
}

#[test]
fn a_key_write_notifies_listeners_of_its_schema_only() {
    let Some(schema) = Schema::new("notify") else {
        return;
    };
    let Some(other) = Schema::new("notify_other") else {
        return;
    };
    let a = PgKeyStore::open(&schema.url, &schema.name).unwrap();
    let b = PgKeyStore::open(&schema.url, &schema.name).unwrap();
    let elsewhere = PgKeyStore::open(&other.url, &other.name).unwrap();
    let mut listener = b.listen().unwrap();
    let mut unrelated = elsewhere.listen().unwrap();
    let started = Instant::now();
    a.apply(&[KeyWrite::Insert(record("key_n", [7; 32]))], &[])
        .unwrap();
    let note = listener.wait(Duration::from_secs(2)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(note, Some(1), "the payload is the new change number");
    // Several writes queued: one wake-up naming the newest.
    a.apply(&[KeyWrite::Insert(record("key_m", [8; 32]))], &[])
        .unwrap();
    a.apply(&[KeyWrite::Insert(record("key_o", [9; 32]))], &[])
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(listener.wait(Duration::from_secs(2)).unwrap(), Some(3));
    // Usage is not a key write; another schema hears nothing.
    a.add_usage(&[store::keys::UsageDelta {
        key_id: "key_n".into(),
        at: 1,
        requests: 1,
        messages: 0,
        bytes: 0,
        auth_failures: 0,
        last_used: None,
    }])
    .unwrap();
    assert_eq!(listener.wait(Duration::from_millis(300)).unwrap(), None);
    assert_eq!(unrelated.wait(Duration::from_millis(100)).unwrap(), None);
}

#[test]
fn a_call_from_inside_a_tokio_runtime_does_not_panic() {
    let Some(schema) = Schema::new("in_runtime") else {
        return;
    };
    let store = PgKeyStore::open(&schema.url, &schema.name).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A misuse (no spawn_blocking) must block, not panic inside the sync client.
    let found = runtime.block_on(async { store.get("key_none") }).unwrap();
    assert_eq!(found, None);
    let head = runtime
        .block_on(async { store.audit_log().head() })
        .unwrap();
    assert_eq!(head, None);
    // Nor may dropping the last handle (its pooled connections close) inside the runtime.
    runtime.block_on(async move { drop(store) });
}
