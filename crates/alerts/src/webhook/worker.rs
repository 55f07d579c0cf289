//! The delivery worker: takes due deliveries from the outbox and sends them.
//!
//! One task per gateway. Each round it asks the outbox which enabled endpoints have due
//! deliveries, claims as many of each as the endpoint has free slots (`max_in_flight`), under
//! a lease of the endpoint's timeout plus [`LEASE_MARGIN`], and sends each claimed one on its
//! own task. When an attempt ends, its outcome is recorded (delivered; retried after the
//! [`RetrySchedule`]'s jittered delay; or dead after the last attempt) together with the
//! endpoint's statistics. It sleeps until the next delivery is due, a new firing wakes it, or
//! an attempt finishes.
//!
//! A worker killed mid-attempt leaves its claims leased: they become due again when the lease
//! ends, and are sent again with the same `webhook-id` (at-least-once delivery; receivers
//! de-duplicate by id).

use super::address::{AddressPolicy, GuardedResolver, Refused, ResolveError};
use super::schedule::{Jitter, RetrySchedule};
use super::signature::{WebhookSecret, signature_header};
use crate::Store;
use crate::clock::Clock;
use crate::config::DeliveryConfig;
use crate::metrics::AlertMetrics;
use auth::KeyRing;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use store::alerts::EndpointRecord;
use store::outbox::{AttemptRecord, Claimed};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A claim lasts the endpoint's timeout plus this (then the delivery is due again).
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// The worker looks at the outbox at least this often (firings made by another gateway
/// process do not wake it).
pub const POLL: Duration = Duration::from_secs(1);
/// Longest part of an error body kept, and of a response body read.
const MAX_ERROR_CHARS: usize = 200;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What one attempt needs about its endpoint.
#[derive(Debug)]
struct Target {
    url: reqwest::Url,
    secrets: Vec<WebhookSecret>,
    timeout: Duration,
}

/// An attempt that finished.
#[derive(Debug)]
struct Done {
    endpoint_id: String,
    attempt: AttemptRecord,
    fired_at: i64,
}

/// The worker. See the module docs.
#[derive(Debug)]
pub struct Worker {
    store: Arc<dyn Store>,
    ring: KeyRing,
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    settings: DeliveryConfig,
    schedule: RetrySchedule,
    jitter: Jitter,
    metrics: Arc<AlertMetrics>,
    wake: Arc<Notify>,
    clock: Clock,
    in_flight: HashMap<String, u32>,
}

/// The HTTP client deliveries use: the guarded resolver, no redirects, no proxies from the
/// environment (they would bypass the address check), rustls with the process's ring
/// provider.
pub fn http_client(policy: Arc<AddressPolicy>) -> Result<reqwest::Client, String> {
    // The process default provider (ring, the only one built); an error means it is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .dns_resolver(GuardedResolver { policy })
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("tickgate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    op: impl FnOnce(&dyn Store) -> Result<T, store::StoreError> + Send + 'static,
) -> Result<T, store::StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || op(&*store)).await {
        Ok(result) => result,
        Err(e) => Err(store::StoreError::Corrupt(format!(
            "store task failed: {e}"
        ))),
    }
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        ring: KeyRing,
        settings: DeliveryConfig,
        metrics: Arc<AlertMetrics>,
        wake: Arc<Notify>,
        clock: Clock,
    ) -> Result<Self, String> {
        let policy = Arc::new(settings.policy());
        Ok(Self {
            client: http_client(policy.clone())?,
            store,
            ring,
            policy,
            schedule: settings.schedule(),
            settings,
            jitter: Jitter::random(),
            metrics,
            wake,
            clock,
            in_flight: HashMap::new(),
        })
    }

    /// Replaces the random jitter (tests use a fixed fraction to check the schedule).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Runs until `shutdown`. Attempts still in flight then are abandoned: their leases make
    /// them due again (after a restart, or for another gateway).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut attempts: JoinSet<Done> = JoinSet::new();
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                self.prune().await;
            }
            self.start_due(&mut attempts).await;
            let next = match blocking(&self.store, |s| s.next_due()).await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(error = %error, "outbox unavailable");
                    None
                }
            };
            self.count_states().await;
            let poll = tokio::time::Instant::now() + POLL;
            let wake_at = next.map_or(poll, |at| self.clock.instant_at(at).min(poll));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                    if let Ok(done) = done {
                        self.finish(done).await;
                    }
                    while let Some(done) = attempts.try_join_next() {
                        if let Ok(done) = done {
                            self.finish(done).await;
                        }
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
        attempts.abort_all();
    }

    /// Claims due deliveries within each endpoint's free slots and starts them.
    async fn start_due(&mut self, attempts: &mut JoinSet<Done>) {
        let now = self.clock.now();
        let due = match blocking(&self.store, move |s| s.due_endpoints(now)).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(error = %error, "outbox unavailable");
                return;
            }
        };
        for (endpoint_id, _) in due {
            let id = endpoint_id.clone();
            let endpoint = match blocking(&self.store, move |s| s.get_endpoint(&id)).await {
                Ok(Some(e)) if e.enabled => e,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(error = %error, endpoint = %endpoint_id, "cannot read endpoint");
                    continue;
                }
            };
            let max = endpoint
                .max_in_flight
                .unwrap_or(self.settings.max_in_flight)
                .max(1);
            let busy = self.in_flight.get(&endpoint_id).copied().unwrap_or(0);
            if busy >= max {
                continue;
            }
            let target = match self.target(&endpoint, now) {
                Ok(t) => Arc::new(t),
                Err(error) => {
                    tracing::error!(error = %error, endpoint = %endpoint_id, "cannot use the endpoint's secret");
                    continue;
                }
            };
            let lease_until = now
                + i64::try_from((target.timeout + LEASE_MARGIN).as_micros()).unwrap_or(i64::MAX);
            let free = (max - busy) as usize;
            let id = endpoint_id.clone();
            let claimed =
                match blocking(&self.store, move |s| s.claim(&id, now, free, lease_until)).await {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::warn!(error = %error, "outbox claim failed");
                        continue;
                    }
                };
            for c in claimed {
                *self.in_flight.entry(endpoint_id.clone()).or_insert(0) += 1;
                let (client, policy, target, clock) = (
                    self.client.clone(),
                    self.policy.clone(),
                    target.clone(),
                    self.clock,
                );
                let endpoint_id = endpoint_id.clone();
                attempts.spawn(async move {
                    let fired_at = c.delivery.created_at;
                    let attempt = send(&client, &policy, &target, &c, clock).await;
                    Done {
                        endpoint_id,
                        attempt,
                        fired_at,
                    }
                });
            }
        }
    }

    fn target(&self, e: &EndpointRecord, now: i64) -> Result<Target, String> {
        let open = |sealed| -> Result<WebhookSecret, String> {
            let bytes = self
                .ring
                .open(&e.id, sealed)
                .map_err(|err| err.to_string())?;
            let text = std::str::from_utf8(&bytes).map_err(|_| "secret is not text".to_string())?;
            WebhookSecret::parse(text).map_err(str::to_string)
        };
        let mut secrets = vec![open(&e.secret)?];
        if let (Some(previous), Some(until)) = (&e.previous_secret, e.previous_until)
            && until > now
        {
            secrets.push(open(previous)?);
        }
        let url = reqwest::Url::parse(&e.url).map_err(|err| format!("stored URL: {err}"))?;
        let timeout = e.timeout_ms.map_or(
            Duration::from_secs(u64::from(self.settings.timeout_secs)),
            |ms| Duration::from_millis(u64::from(ms)),
        );
        Ok(Target {
            url,
            secrets,
            timeout,
        })
    }

    /// Records an attempt's outcome and schedules what follows.
    async fn finish(&mut self, done: Done) {
        if let Some(n) = self.in_flight.get_mut(&done.endpoint_id) {
            *n = n.saturating_sub(1);
        }
        let mut attempt = done.attempt;
        let ok = attempt.succeeded();
        if !ok {
            attempt.next_attempt_at = self
                .schedule
                .delay(attempt.attempt, self.jitter.draw())
                .map(|d| attempt.finished_at + i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        }
        let dead = !ok && attempt.next_attempt_at.is_none();
        let record = attempt.clone();
        match blocking(&self.store, move |s| s.record_attempt(&record)).await {
            Ok(true) => {
                let latency = ok.then(|| attempt.finished_at - done.fired_at);
                self.metrics.attempt(&done.endpoint_id, ok, dead, latency);
                if ok {
                    tracing::debug!(delivery = %attempt.delivery_id, attempt = attempt.attempt, status = ?attempt.status, "webhook delivered");
                } else {
                    tracing::info!(delivery = %attempt.delivery_id, attempt = attempt.attempt, dead, error = attempt.error.as_deref().unwrap_or(""), "webhook attempt failed");
                }
            }
            Ok(false) => {
                self.metrics.count(&self.metrics.stale_outcomes, 1);
                tracing::info!(delivery = %attempt.delivery_id, "webhook outcome discarded: the delivery moved on");
            }
            Err(error) => {
                // The lease runs out and the delivery is attempted again: at least once.
                self.metrics.count(&self.metrics.store_errors, 1);
                tracing::warn!(error = %error, delivery = %attempt.delivery_id, "cannot record a webhook attempt");
            }
        }
    }

    async fn count_states(&self) {
        if let Ok(counts) = blocking(&self.store, |s| s.delivery_counts()).await {
            use std::sync::atomic::Ordering::Relaxed;
            self.metrics.pending_gauge.store(counts.pending, Relaxed);
            self.metrics.dead_gauge.store(counts.dead, Relaxed);
        }
    }

    async fn prune(&self) {
        let now = self.clock.now();
        let hour = 3_600_000_000_i64;
        let delivered = now - self.settings.delivered_retention_hours as i64 * hour;
        let dead = now - self.settings.dead_retention_days as i64 * 24 * hour;
        match blocking(&self.store, move |s| s.prune(delivered, dead)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "webhook retention removed old deliveries"),
            Err(error) => tracing::warn!(error = %error, "webhook retention failed"),
        }
    }
}

/// Why an attempt failed, for the record: stable prefixes (`address_refused`, `timeout`,
/// `connect`, `http_status`, ...) then detail. Never the URL's query.
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return refused.to_string();
        }
        if let Some(resolve) = e.downcast_ref::<ResolveError>() {
            return resolve.to_string();
        }
        source = e.source();
    }
    let kind = if error.is_timeout() {
        return format!("timeout: no answer within {} ms", timeout.as_millis());
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    let error = error.without_url();
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// One attempt: sign, POST, classify. Never panics; every failure is an `error` string.
async fn send(
    client: &reqwest::Client,
    policy: &AddressPolicy,
    target: &Target,
    claimed: &Claimed,
    clock: Clock,
) -> AttemptRecord {
    let started_at = clock.now();
    let attempt = claimed.delivery.attempts.saturating_add(1);
    let body = claimed.payload.as_bytes().to_vec();
    let timestamp = started_at.div_euclid(1_000_000);
    let id = &claimed.delivery.firing_id;
    let signature = signature_header(&target.secrets, id, timestamp, &body);
    // reqwest does not resolve IP literals, so they are checked here; names are checked by
    // the guarded resolver when the connection is made.
    let literal = target.url.host_str().and_then(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    });
    let result = match literal.map(|ip| policy.check(&ip.to_string(), ip)) {
        Some(Err(refused)) => Err(refused.to_string()),
        _ => {
            let request = client
                .post(target.url.clone())
                .timeout(target.timeout)
                .header("content-type", "application/json")
                .header("webhook-id", id.as_str())
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body);
            match request.send().await {
                Ok(mut response) => {
                    // Read (a bounded part of) the answer so the connection can be reused.
                    let mut read = 0;
                    while let Ok(Some(chunk)) = response.chunk().await {
                        read += chunk.len();
                        if read > 64 * 1024 {
                            break;
                        }
                    }
                    Ok(response.status().as_u16())
                }
                Err(error) => Err(describe(error, target.timeout)),
            }
        }
    };
    let finished_at = clock.now();
    let (status, error) = match result {
        Ok(status) if (200..300).contains(&status) => (Some(status), None),
        Ok(status) => (
            Some(status),
            Some(format!("http_status: the endpoint answered {status}")),
        ),
        Err(error) => (None, Some(error)),
    };
    AttemptRecord {
        delivery_id: claimed.delivery.id.clone(),
        attempt,
        started_at,
        finished_at,
        status,
        error,
        latency_us: finished_at - started_at,
        next_attempt_at: None,
    }
}
