//! Contract tests for the `AlertStore` and `Outbox` seams. Every backend runs the same suite,
//! [`run_all`]: SQLite (in memory and on disk) always, PostgreSQL when
//! TICKGATE_TEST_POSTGRES_URL is set (each case in a fresh schema, dropped afterwards). The
//! PostgreSQL backend also runs what only a shared store can get wrong: two nodes claiming the
//! same outbox at once, and a change feed read while several nodes write rules.

#[cfg(feature = "postgres")]
mod support;

use store::StoreError;
use store::alerts::{AlertStore, EndpointRecord, RuleFilter, RuleRecord, RuleStatus};
use store::alerts_sqlite::SqliteAlertStore;
use store::keys::SealedSecret;
use store::outbox::{AttemptRecord, DeliveryFilter, DeliveryState, NewFiring, Outbox};
use store::outbox_sqlite::delivery_id;

const T0: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;

/// What a backend must implement for the suite.
trait Backend: AlertStore + Outbox {}
impl<T: AlertStore + Outbox> Backend for T {}

fn rule(id: &str, owner: &str, partition: &str) -> RuleRecord {
    RuleRecord {
        id: id.into(),
        owner: owner.into(),
        name: format!("{id} name"),
        partition: partition.into(),
        spec: serde_json::json!({"kind": "price", "level": "70000.50"}),
        endpoints: vec![],
        status: RuleStatus::Active,
        expires_at: Some(T0 + 3600 * SEC),
        max_firings: None,
        firings: 0,
        last_fired_at: None,
        created_at: T0,
        updated_at: T0,
        rev: 0,
    }
}

fn sealed(tag: u8) -> SealedSecret {
    SealedSecret {
        master_key_id: format!("mk_{tag}"),
        wrapped_dek: vec![tag; 8],
        ciphertext: vec![tag; 16],
    }
}

fn endpoint(id: &str, owner: &str) -> EndpointRecord {
    EndpointRecord {
        id: id.into(),
        owner: owner.into(),
        url: format!("https://hooks.example.com/{id}"),
        description: "ops".into(),
        enabled: true,
        scheme: "v1".into(),
        public_key: None,
        secret: sealed(1),
        previous_secret: None,
        previous_until: None,
        max_in_flight: Some(2),
        timeout_ms: None,
        created_at: T0,
        updated_at: T0,
        rev: 0,
        stats: Default::default(),
    }
}

fn firing(id: &str, rule: &str, at: i64, endpoints: &[&str]) -> NewFiring {
    NewFiring {
        id: id.into(),
        rule_id: rule.into(),
        owner: "acme".into(),
        fired_at: at,
        payload: format!("{{\"id\":\"{id}\"}}"),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
    }
}

fn attempt(
    delivery: &str,
    n: u32,
    at: i64,
    error: Option<&str>,
    next: Option<i64>,
) -> AttemptRecord {
    AttemptRecord {
        delivery_id: delivery.into(),
        attempt: n,
        started_at: at,
        finished_at: at + 1000,
        status: if error.is_some() {
            Some(503)
        } else {
            Some(200)
        },
        error: error.map(str::to_string),
        latency_us: 1000,
        next_attempt_at: next,
    }
}

fn rules_round_trip_with_revisions_and_a_change_feed(s: &dyn Backend) {
    let (base, _) = s.rule_changes_since("sim", 0).unwrap();
    let mut r = rule("alr_1", "acme", "sim");
    r.endpoints = vec!["whe_a".into(), "whe_b".into()];
    r.max_firings = Some(3);
    let stored = s.insert_rule(&r).unwrap();
    assert_eq!(stored.rev, 1);
    assert_eq!(
        (stored.spec.clone(), stored.endpoints.clone()),
        (r.spec.clone(), r.endpoints.clone())
    );
    assert_eq!(s.get_rule("alr_1").unwrap().unwrap(), stored);
    assert!(matches!(s.insert_rule(&r), Err(StoreError::Conflict(_))));
    s.insert_rule(&rule("alr_2", "acme", "cross")).unwrap();
    s.insert_rule(&rule("alr_3", "other", "sim")).unwrap();
    assert_eq!(s.count_rules("acme").unwrap(), 2);

    // Feed per partition.
    let (n1, changed) = s.rule_changes_since("sim", base).unwrap();
    let ids: Vec<_> = changed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["alr_1", "alr_3"]);
    assert!(s.rule_changes_since("sim", n1).unwrap().1.is_empty());

    // Optimistic update: the second writer with the old rev loses.
    let mut edit = stored.clone();
    edit.name = "renamed".into();
    edit.updated_at = T0 + SEC;
    let updated = s.update_rule(&edit, 1).unwrap();
    assert_eq!(
        (updated.rev, updated.name.as_str(), updated.updated_at),
        (2, "renamed", T0 + SEC)
    );
    assert!(matches!(
        s.update_rule(&edit, 1),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.update_rule(&rule("alr_missing", "acme", "sim"), 1),
        Err(StoreError::NotFound(_))
    ));
    let (n2, changed) = s.rule_changes_since("sim", n1).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].name, "renamed");

    // Listing filters; deleted rules leave a tombstone in the feed only.
    let listed = s
        .list_rules(&RuleFilter {
            owner: Some("acme".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 2);
    let sim = s
        .list_rules(&RuleFilter {
            partition: Some("sim".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(sim.len(), 2);
    assert!(
        s.set_rule_status("alr_1", RuleStatus::Deleted, T0 + 2 * SEC)
            .unwrap()
    );
    assert!(
        !s.set_rule_status("alr_1", RuleStatus::Deleted, T0 + 2 * SEC)
            .unwrap()
    );
    assert!(
        !s.set_rule_status("alr_1", RuleStatus::Active, T0).unwrap(),
        "final stays final"
    );
    let (_, changed) = s.rule_changes_since("sim", n2).unwrap();
    assert_eq!(
        (changed[0].id.as_str(), changed[0].status),
        ("alr_1", RuleStatus::Deleted)
    );
    assert_eq!(s.count_rules("acme").unwrap(), 1);
    assert!(matches!(
        s.update_rule(&edit, 3),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        s.list_rules(&RuleFilter {
            owner: Some("acme".into()),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .all(|r| r.id != "alr_1")
    );
    // Expiry is a status change like any other.
    assert!(s.set_rule_status("alr_3", RuleStatus::Expired, T0).unwrap());
    assert_eq!(
        s.get_rule("alr_3").unwrap().unwrap().status,
        RuleStatus::Expired
    );
}

fn endpoints_round_trip_and_deletion_rules(s: &dyn Backend) {
    let e = endpoint("whe_1", "acme");
    let stored = s.insert_endpoint(&e).unwrap();
    assert_eq!(stored.rev, 1);
    assert_eq!(
        (
            stored.secret.clone(),
            stored.max_in_flight,
            stored.scheme.as_str()
        ),
        (sealed(1), Some(2), "v1")
    );
    assert!(matches!(
        s.insert_endpoint(&e),
        Err(StoreError::Conflict(_))
    ));
    s.insert_endpoint(&endpoint("whe_2", "acme")).unwrap();
    s.insert_endpoint(&endpoint("whe_3", "other")).unwrap();
    let ids: Vec<_> = s
        .list_endpoints("acme")
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["whe_1", "whe_2"]);
    let all: Vec<_> = s
        .list_all_endpoints()
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.owner))
        .collect();
    assert_eq!(
        all,
        [
            ("whe_1".to_string(), "acme".to_string()),
            ("whe_2".to_string(), "acme".to_string()),
            ("whe_3".to_string(), "other".to_string())
        ]
    );

    // Rotation writes both secrets.
    let mut rotated = stored.clone();
    rotated.previous_secret = Some(stored.secret.clone());
    rotated.previous_until = Some(T0 + 86_400 * SEC);
    rotated.secret = sealed(2);
    let r2 = s.update_endpoint(&rotated, 1).unwrap();
    assert_eq!(
        (r2.rev, r2.secret.clone(), r2.previous_secret.clone()),
        (2, sealed(2), Some(sealed(1)))
    );
    assert!(matches!(
        s.update_endpoint(&rotated, 1),
        Err(StoreError::Conflict(_))
    ));

    // An endpoint a live rule uses cannot go; once the rule is gone it can, and its pending
    // deliveries become dead.
    let mut r = rule("alr_e", "acme", "sim");
    r.endpoints = vec!["whe_10".into(), "whe_1".into()];
    s.insert_rule(&r).unwrap();
    s.insert_rule(&rule("alr_e2", "acme", "sim")).unwrap();
    assert!(matches!(
        s.delete_endpoint("whe_1", T0),
        Err(StoreError::Conflict(_))
    ));
    s.record_firings(&[firing("msg_e", "alr_e", T0, &["whe_1"])])
        .unwrap();
    s.set_rule_status("alr_e", RuleStatus::Deleted, T0).unwrap();
    s.delete_endpoint("whe_1", T0 + SEC).unwrap();
    assert!(s.get_endpoint("whe_1").unwrap().is_none());
    let d = s
        .get_delivery(&delivery_id("msg_e", "whe_1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.state, d.last_error.as_deref()),
        (DeliveryState::Dead, Some("endpoint deleted"))
    );
    assert!(matches!(
        s.delete_endpoint("whe_1", T0),
        Err(StoreError::NotFound(_))
    ));
}

fn firings_are_stored_with_their_deliveries_and_counters(s: &dyn Backend) {
    s.insert_endpoint(&endpoint("whe_f1", "acme")).unwrap();
    s.insert_endpoint(&endpoint("whe_f2", "acme")).unwrap();
    let mut r = rule("alr_f", "acme", "sim");
    r.max_firings = Some(2);
    s.insert_rule(&r).unwrap();
    let (before, _) = s.rule_changes_since("sim", 0).unwrap();
    s.record_firings(&[firing("msg_f1", "alr_f", T0 + SEC, &["whe_f1", "whe_f2"])])
        .unwrap();
    let r1 = s.get_rule("alr_f").unwrap().unwrap();
    assert_eq!(
        (r1.firings, r1.last_fired_at, r1.status, r1.rev),
        (1, Some(T0 + SEC), RuleStatus::Active, 1)
    );
    s.record_firings(&[firing("msg_f2", "alr_f", T0 + 2 * SEC, &[])])
        .unwrap();
    let r2 = s.get_rule("alr_f").unwrap().unwrap();
    assert_eq!((r2.firings, r2.status), (2, RuleStatus::Completed));
    let (_, changed) = s.rule_changes_since("sim", before).unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c.id == "alr_f" && c.status == RuleStatus::Completed)
    );
    assert!(
        s.record_firings(&[firing("msg_f1", "alr_f", T0, &[])])
            .is_err(),
        "ids are unique"
    );
    assert_eq!(
        s.get_firing("msg_f1").unwrap().unwrap().payload,
        "{\"id\":\"msg_f1\"}"
    );
    let newest: Vec<_> = s
        .list_firings("acme", Some("alr_f"), None, 10)
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(newest, ["msg_f2", "msg_f1"]);
    let older = s
        .list_firings("acme", None, Some(T0 + 2 * SEC), 10)
        .unwrap();
    assert!(older.iter().all(|f| f.fired_at < T0 + 2 * SEC));
    assert!(s.list_firings("other", None, None, 10).unwrap().is_empty());
    // An operator notice (a pseudo-rule's firing) gets its deliveries, touches no rule, and is
    // not one of the principal's alert firings.
    s.record_firings(&[firing("msg_n1", "anomaly", T0 + 3 * SEC, &["whe_f1"])])
        .unwrap();
    let notice = s
        .list_deliveries(&DeliveryFilter {
            firing_id: Some("msg_n1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0].state, DeliveryState::Pending);
    let listed: Vec<_> = s
        .list_firings("acme", None, None, 10)
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(listed, ["msg_f2", "msg_f1"]);
    assert_eq!(s.get_rule("alr_f").unwrap().unwrap().firings, 2);
    let pending = s
        .list_deliveries(&DeliveryFilter {
            firing_id: Some("msg_f1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert!(
        pending
            .iter()
            .all(|d| d.state == DeliveryState::Pending && d.attempts == 0)
    );
}

fn claims_attempts_dead_letters_and_redelivery(s: &dyn Backend) {
    s.insert_endpoint(&endpoint("whe_c", "acme")).unwrap();
    let mut off = endpoint("whe_off", "acme");
    off.enabled = false;
    s.insert_endpoint(&off).unwrap();
    s.insert_rule(&rule("alr_c", "acme", "sim")).unwrap();
    s.record_firings(&[
        firing("msg_c1", "alr_c", T0, &["whe_c", "whe_off"]),
        firing("msg_c2", "alr_c", T0 + SEC, &["whe_c"]),
    ])
    .unwrap();
    let (d1, d2) = (
        delivery_id("msg_c1", "whe_c"),
        delivery_id("msg_c2", "whe_c"),
    );
    // Due: only enabled endpoints, only what is due.
    assert_eq!(s.due_endpoints(T0).unwrap(), [("whe_c".to_string(), 1)]);
    assert_eq!(
        s.due_endpoints(T0 + SEC).unwrap(),
        [("whe_c".to_string(), 2)]
    );
    assert_eq!(s.next_due().unwrap(), Some(T0));

    // A claim leases: a second claim gets nothing until the lease ends.
    let lease = T0 + 30 * SEC;
    let claimed = s.claim("whe_c", T0 + SEC, 1, lease).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].delivery.id.as_str(), claimed[0].payload.as_str()),
        (d1.as_str(), "{\"id\":\"msg_c1\"}")
    );
    let second = s.claim("whe_c", T0 + SEC, 10, lease).unwrap();
    assert_eq!(
        second
            .iter()
            .map(|c| c.delivery.id.as_str())
            .collect::<Vec<_>>(),
        [d2.as_str()]
    );
    assert!(
        s.claim("whe_c", T0 + 2 * SEC, 10, lease)
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_due().unwrap(), Some(lease));

    // A failure schedules a retry; an outcome for the wrong attempt number is stale.
    let retry_at = T0 + 10 * SEC;
    assert!(
        s.record_attempt(&attempt(&d1, 1, T0 + SEC, Some("HTTP 503"), Some(retry_at)))
            .unwrap()
    );
    assert!(
        !s.record_attempt(&attempt(&d1, 1, T0 + SEC, None, None))
            .unwrap(),
        "stale"
    );
    let d = s.get_delivery(&d1).unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.next_attempt_at, d.last_status),
        (DeliveryState::Pending, 1, retry_at, Some(503))
    );
    // The last allowed failure makes it dead.
    assert!(
        s.record_attempt(&attempt(&d1, 2, retry_at, Some("HTTP 503"), None))
            .unwrap()
    );
    assert_eq!(
        s.get_delivery(&d1).unwrap().unwrap().state,
        DeliveryState::Dead
    );
    assert!(
        !s.record_attempt(&attempt(&d1, 3, retry_at, None, None))
            .unwrap(),
        "dead is final"
    );
    // A success delivers.
    assert!(
        s.record_attempt(&attempt(&d2, 1, T0 + 2 * SEC, None, None))
            .unwrap()
    );
    let d = s.get_delivery(&d2).unwrap().unwrap();
    assert_eq!(
        (d.state, d.delivered_at),
        (DeliveryState::Delivered, Some(T0 + 2 * SEC + 1000))
    );

    let attempts = s.attempts(&d1).unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(attempts[0].next_attempt_at, Some(retry_at));
    let stats = s.get_endpoint("whe_c").unwrap().unwrap().stats;
    assert_eq!(
        (
            stats.attempts,
            stats.delivered,
            stats.failures,
            stats.dead,
            stats.consecutive_failures,
            stats.last_status
        ),
        (3, 1, 2, 1, 0, Some(200))
    );
    let counts = s.delivery_counts().unwrap();
    assert_eq!((counts.pending, counts.delivered, counts.dead), (1, 1, 1));
    let dead = s
        .list_deliveries(&DeliveryFilter {
            endpoint_id: Some("whe_c".into()),
            state: Some(DeliveryState::Dead),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [d1.as_str()]
    );

    // Redelivery: pending again, attempts from 1, same firing (same webhook-id).
    assert_eq!(s.redeliver("whe_other", Some(&d1), T0).unwrap(), 0);
    assert_eq!(s.redeliver("whe_c", None, T0 + 60 * SEC).unwrap(), 1);
    let d = s.get_delivery(&d1).unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.next_attempt_at, d.firing_id.as_str()),
        (DeliveryState::Pending, 0, T0 + 60 * SEC, "msg_c1")
    );
    assert!(
        s.record_attempt(&attempt(&d1, 1, T0 + 60 * SEC, None, None))
            .unwrap()
    );
    assert_eq!(
        s.redeliver("whe_c", Some(&d2), T0 + 61 * SEC).unwrap(),
        1,
        "a delivered one too"
    );
    assert_eq!(
        s.redeliver("whe_c", Some(&d2), T0 + 61 * SEC).unwrap(),
        0,
        "not while pending"
    );
    assert_eq!(
        s.attempts(&d1).unwrap().len(),
        3,
        "earlier attempts stay on record"
    );

    // Retention removes old finished deliveries, never pending ones.
    assert!(
        s.record_attempt(&attempt(&d2, 1, T0 + 61 * SEC, None, None))
            .unwrap()
    );
    let pruned = s.prune(T0 + 3600 * SEC, T0).unwrap();
    assert_eq!(pruned, 2);
    assert!(s.get_delivery(&d1).unwrap().is_none());
    assert!(s.attempts(&d1).unwrap().is_empty());
    let left = s
        .list_deliveries(&DeliveryFilter {
            owner: Some("acme".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(left.iter().all(|d| d.endpoint_id != "whe_c"));
    assert!(
        left.iter()
            .any(|d| d.endpoint_id == "whe_off" && d.state == DeliveryState::Pending)
    );
    assert!(
        s.get_firing("msg_c1").unwrap().is_some(),
        "still has a pending delivery"
    );
    assert!(s.get_firing("msg_c2").unwrap().is_none());
}

/// Every case against one backend (each case uses its own ids).
fn run_all(make: &dyn Fn() -> Box<dyn Backend>) {
    rules_round_trip_with_revisions_and_a_change_feed(&*make());
    endpoints_round_trip_and_deletion_rules(&*make());
    firings_are_stored_with_their_deliveries_and_counters(&*make());
    claims_attempts_dead_letters_and_redelivery(&*make());
}

#[test]
fn sqlite_in_memory() {
    run_all(&|| Box::new(SqliteAlertStore::open_in_memory().unwrap()));
}

#[test]
fn sqlite_file_persists_across_reopen() {
    let dir = std::env::temp_dir().join(format!("tickgate-alerts-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let s = SqliteAlertStore::open_dir(&dir).unwrap();
        s.insert_endpoint(&endpoint("whe_p", "acme")).unwrap();
        s.insert_rule(&rule("alr_p", "acme", "sim")).unwrap();
        s.record_firings(&[firing("msg_p", "alr_p", T0, &["whe_p"])])
            .unwrap();
    }
    let s = SqliteAlertStore::open_dir(&dir).unwrap();
    let d = s
        .get_delivery(&delivery_id("msg_p", "whe_p"))
        .unwrap()
        .unwrap();
    assert_eq!(
        d.state,
        DeliveryState::Pending,
        "a firing survives a restart"
    );
    assert_eq!(s.get_rule("alr_p").unwrap().unwrap().firings, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::support::pg::Schema;
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use store::alerts_postgres::PgAlertStore;

    fn open(schema: &Schema) -> PgAlertStore {
        PgAlertStore::open(&schema.url, &schema.name).unwrap()
    }

    #[test]
    fn postgres_passes_the_contract_and_persists() {
        if crate::support::pg::url().is_none() {
            return;
        }
        // A scratch schema per case, all dropped at the end.
        let schemas = std::sync::Mutex::new(Vec::new());
        run_all(&|| {
            let schema = Schema::new("alerts_contract").unwrap();
            let store = open(&schema);
            schemas.lock().unwrap().push(schema);
            Box::new(store)
        });
        let schema = Schema::new("alerts_reopen").unwrap();
        {
            let s = open(&schema);
            s.insert_endpoint(&endpoint("whe_p", "acme")).unwrap();
            s.insert_rule(&rule("alr_p", "acme", "sim")).unwrap();
            s.record_firings(&[firing("msg_p", "alr_p", T0, &["whe_p"])])
                .unwrap();
        }
        // Another node (or a restart) opens the same schema: migrations apply once, the
        // firing is there.
        let s = open(&schema);
        let d = s
            .get_delivery(&delivery_id("msg_p", "whe_p"))
            .unwrap()
            .unwrap();
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(s.get_rule("alr_p").unwrap().unwrap().firings, 1);
    }

    /// Guards claim exclusivity across nodes: two stores (two nodes' pools) claiming one
    /// endpoint's deliveries at once never get the same delivery, and together get all.
    #[test]
    fn two_nodes_claiming_at_once_never_get_the_same_delivery() {
        let Some(schema) = Schema::new("alerts_claims") else {
            return;
        };
        let setup = open(&schema);
        setup.insert_endpoint(&endpoint("whe_x", "acme")).unwrap();
        setup.insert_rule(&rule("alr_x", "acme", "sim")).unwrap();
        let firings: Vec<NewFiring> = (0..300)
            .map(|i| firing(&format!("msg_x{i:03}"), "alr_x", T0 + i, &["whe_x"]))
            .collect();
        setup.record_firings(&firings).unwrap();
        let nodes: Vec<_> = (0..3)
            .map(|_| {
                let store = open(&schema);
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let claimed = store.claim("whe_x", T0 + SEC, 7, T0 + 3600 * SEC).unwrap();
                        if claimed.is_empty() {
                            return mine;
                        }
                        mine.extend(claimed.into_iter().map(|c| c.delivery.id));
                    }
                })
            })
            .collect();
        let mut seen = BTreeSet::new();
        let mut total = 0;
        for node in nodes {
            let mine = node.join().unwrap();
            total += mine.len();
            seen.extend(mine);
        }
        assert_eq!(total, 300, "a delivery claimed twice");
        assert_eq!(seen.len(), 300);
        assert!(setup.claim("whe_x", T0 + SEC, 10, T0).unwrap().is_empty());
    }

    /// Guards the change feed against writes committed out of order: while several nodes
    /// write rules, a reader polling `rule_changes_since` ends up having seen every one.
    #[test]
    fn a_change_feed_read_during_concurrent_writes_misses_none() {
        let Some(schema) = Schema::new("alerts_feed") else {
            return;
        };
        let reader = open(&schema);
        let done = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = open(&schema);
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let id = format!("alr_w{w}n{i}");
                        store.insert_rule(&rule(&id, "acme", "sim")).unwrap();
                        if i % 3 == 0 {
                            let mut r = store.get_rule(&id).unwrap().unwrap();
                            r.name = "edited".into();
                            store.update_rule(&r, 1).unwrap();
                        }
                    }
                })
            })
            .collect();
        let poller = {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut since, mut seen) = (0, BTreeSet::new());
                loop {
                    let last = done.load(Ordering::SeqCst);
                    let (newest, changed) = reader.rule_changes_since("sim", since).unwrap();
                    assert!(newest >= since, "the change number went back");
                    since = newest;
                    seen.extend(changed.into_iter().map(|r| r.id));
                    if last {
                        return seen;
                    }
                }
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let seen = poller.join().unwrap();
        assert_eq!(seen.len(), 160, "changes missed");
    }
}
