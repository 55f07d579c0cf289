//! Editing the audit log behind the store's back is detected, and the first broken entry named.

use rusqlite::Connection;
use store::audit::{AuditLog, NewAuditEvent, verify_chain};
use store::keys_sqlite::SqliteKeyStore;

fn setup(name: &str) -> (std::path::PathBuf, SqliteKeyStore) {
    let dir = std::env::temp_dir().join(format!("tickgate-tamper-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteKeyStore::open_dir(&dir).unwrap();
    let events: Vec<_> = (0..5)
        .map(|i| NewAuditEvent {
            at: 1_000 + i,
            actor: "cli".into(),
            action: "key.created".into(),
            key_id: Some(format!("key_{i}")),
            detail: serde_json::json!({"scopes": ["market:read"]}),
        })
        .collect();
    store.audit_log().append(&events).unwrap();
    assert_eq!(verify_chain(&store.audit_log()).unwrap(), Ok(5));
    (dir, store)
}

/// Opens the file directly, as an attacker with file access would, and disables the triggers.
fn tamper(dir: &std::path::Path, sql: &str) {
    let conn = Connection::open(dir.join(store::sqlite::DB_FILE)).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn the_store_itself_refuses_to_rewrite_history() {
    let (dir, _store) = setup("trigger");
    let conn = Connection::open(dir.join(store::sqlite::DB_FILE)).unwrap();
    assert!(
        conn.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 2", [])
            .is_err()
    );
    assert!(
        conn.execute("DELETE FROM audit_log WHERE seq = 5", [])
            .is_err()
    );
}

#[test]
fn tampering_is_detected_at_the_first_touched_entry() {
    let cases = [
        (
            "edit",
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
            3,
        ),
        (
            "detail",
            "UPDATE audit_log SET detail = '{}' WHERE seq = 2",
            2,
        ),
        ("delete-middle", "DELETE FROM audit_log WHERE seq = 4", 4),
        ("delete-tail", "DELETE FROM audit_log WHERE seq = 5", 5),
        ("reorder", "UPDATE audit_log SET at = 0 WHERE seq = 1", 1),
    ];
    for (name, sql, first_broken) in cases {
        let (dir, store) = setup(name);
        tamper(&dir, sql);
        let broken = verify_chain(&store.audit_log()).unwrap().expect_err(name);
        assert_eq!(broken.seq, first_broken, "{name}: {broken}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn recomputing_one_hash_still_breaks_the_next_link() {
    let (dir, store) = setup("rehash");
    let mut entry = store.audit_log().read(1, 1).unwrap().remove(0);
    entry.actor = "mallory".into();
    let forged = entry.computed_hash();
    let conn = Connection::open(dir.join(store::sqlite::DB_FILE)).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update;")
        .unwrap();
    conn.execute(
        "UPDATE audit_log SET actor = 'mallory', hash = ?1 WHERE seq = 2",
        [forged.to_vec()],
    )
    .unwrap();
    let broken = verify_chain(&store.audit_log()).unwrap().unwrap_err();
    assert_eq!(broken.seq, 3, "{broken}");
    let _ = std::fs::remove_dir_all(&dir);
}
