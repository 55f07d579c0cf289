//! A fresh PostgreSQL schema per test, dropped afterwards. Needs TICKGATE_TEST_POSTGRES_URL
//! (e.g. postgres://postgres@127.0.0.1:5432/test); without it the test says it is skipped.

use std::sync::atomic::{AtomicU32, Ordering};

/// The test database URL, or `None` after printing that the test is skipped.
pub fn url() -> Option<String> {
    let url = std::env::var("TICKGATE_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!("skipped: TICKGATE_TEST_POSTGRES_URL not set");
    }
    url
}

/// A schema name no other test (in this or another process) uses.
pub fn unique_schema(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tg_test_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A schema created by the store on open, dropped (with everything in it) on drop.
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub fn new(tag: &str) -> Option<Self> {
        Some(Self {
            url: url()?,
            name: unique_schema(tag),
        })
    }

    /// Runs raw SQL in this schema, as someone with direct database access would.
    pub fn exec(&self, sql: &str) {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {}; {sql}", self.name))
            .unwrap();
    }

    /// Like [`Self::exec`], returning the error text instead of panicking.
    pub fn try_exec(&self, sql: &str) -> Result<(), String> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {}; {sql}", self.name))
            .map_err(|e| e.to_string())
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// `url` with its `host:port` replaced by `addr`, and the `host:port` it named: to reach the
/// same database through a [`super::cut::Cut`].
pub fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = match rest.split_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let path = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{user}{addr}{path}")
}

/// The `host:port` of `url` (port 5432 when it names none).
pub fn target(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap();
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}
