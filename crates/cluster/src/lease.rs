//! One active ingest per venue (and one node per exclusive task, [`crate::exclusive`]): a
//! lease in a NATS KV bucket whose entries expire `lease_ttl` after their last write. The owner renews it every `ttl / 3` with a compare-and-set on the
//! revision it holds; anyone else can create the key only once it has expired. The revision is
//! the fencing token: a renewal with a stale revision fails, and the forwarder stops at once.

use crate::{ClusterError, Names};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use std::time::Duration;

/// The lease bucket of a cluster: the existing one, or created (entries expire after `ttl`).
pub async fn bucket(
    js: &jetstream::Context,
    names: &Names,
    ttl: Duration,
) -> Result<kv::Store, ClusterError> {
    kv_bucket(js, &names.lease_bucket(), "lease bucket", ttl).await
}

/// A KV bucket of the cluster, one value per key: the existing one, or created with entries
/// expiring `max_age` after their last write (`Duration::ZERO`: never). Its stream is created
/// here with the KV layout (`KV_<bucket>` on `$KV.<bucket>.>`, rollups, direct gets, new writes
/// refused when full) because async-nats 0.51's `create_key_value` first reads the account
/// info, which it cannot parse from the NATS 2.9 servers still in use.
pub(crate) async fn kv_bucket(
    js: &jetstream::Context,
    name: &str,
    what: &'static str,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        // Must not exceed max_age (when there is one).
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age
        },
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = js.get_or_create_stream(config).await;
    js.get_key_value(name)
        .await
        .map_err(|error| ClusterError::JetStream {
            what,
            source: match created {
                Err(create) => create.into(),
                Ok(_) => error.into(),
            },
        })
}

/// The KV key of a venue: `venue.` and the name with bytes outside `[A-Za-z0-9-]` as `=XX`.
pub fn key(venue: &str) -> String {
    escaped("venue.", venue)
}

/// The KV key of an exclusive task ([`crate::exclusive`]): `task.` and the name escaped like a
/// venue's, so a task never shares a key with a venue.
pub fn task_key(name: &str) -> String {
    escaped("task.", name)
}

fn escaped(prefix: &str, name: &str) -> String {
    let mut out = String::from(prefix);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// A held lease on one venue.
#[derive(Debug)]
pub struct Lease {
    store: kv::Store,
    venue: String,
    key: String,
    node: Bytes,
    revision: u64,
}

impl Lease {
    /// Takes the venue's lease if nobody holds it (`Ok(None)` when somebody does).
    pub async fn acquire(
        store: &kv::Store,
        venue: &str,
        node: &str,
    ) -> Result<Option<Self>, ClusterError> {
        Self::acquire_key(store, key(venue), venue, node).await
    }

    /// Takes the lease under `key` (named `label` in errors and logs) if nobody holds it.
    pub async fn acquire_key(
        store: &kv::Store,
        key: String,
        label: &str,
        node: &str,
    ) -> Result<Option<Self>, ClusterError> {
        let venue = label;
        let node = Bytes::copy_from_slice(node.as_bytes());
        match store.create(&key, node.clone()).await {
            Ok(revision) => Ok(Some(Self {
                store: store.clone(),
                venue: venue.to_string(),
                key,
                node,
                revision,
            })),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(ClusterError::JetStream {
                what: "lease create",
                source: error.into(),
            }),
        }
    }

    /// The revision this lease was last written with (the fencing token).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn venue(&self) -> &str {
        &self.venue
    }

    /// Extends the lease by one TTL. `Fenced` when someone else holds it now (it expired and
    /// was taken): the caller must stop publishing for the venue at once.
    pub async fn renew(&mut self) -> Result<(), ClusterError> {
        match self
            .store
            .update(&self.key, self.node.clone(), self.revision)
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(ClusterError::Fenced {
                    venue: self.venue.clone(),
                })
            }
            Err(error) => Err(ClusterError::JetStream {
                what: "lease renew",
                source: error.into(),
            }),
        }
    }

    /// Whether the bucket still holds this lease at its revision.
    pub async fn held(&self) -> Result<bool, ClusterError> {
        let entry = self
            .store
            .entry(&self.key)
            .await
            .map_err(|e| ClusterError::JetStream {
                what: "lease read",
                source: e.into(),
            })?;
        Ok(entry.is_some_and(|e| e.revision == self.revision && e.operation == kv::Operation::Put))
    }

    /// Gives the lease up so a standby can take it at once.
    pub async fn release(self) {
        if let Err(error) = self
            .store
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
        {
            tracing::debug!(venue = %self.venue, error = %error, "lease release failed; it expires");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn venue_keys_are_valid_kv_keys() {
        let cases = [
            ("binance", "venue.binance"),
            ("a.b", "venue.a=2Eb"),
            ("x_y", "venue.x=5Fy"),
        ];
        for (venue, key) in cases {
            assert_eq!(super::key(venue), key);
        }
        assert_eq!(super::task_key("alerts-cross"), "task.alerts-cross");
        assert_eq!(super::task_key("alerts-a.b"), "task.alerts-a=2Eb");
    }
}
