//! What the load-generator threads count (per interval, merged by the main thread) and the
//! CPU samples of the progress line.

use super::Servers;
use crate::cmd::bench::child::{cpu_secs, machine_busy_secs};
use crate::cmd::bench::histogram::Histogram;
use crate::cmd::bench::scan::{Kind, scan};
use std::time::Instant;

/// What one load-generator thread saw during one interval.
#[derive(Debug, Clone)]
pub(super) struct Interval {
    pub(super) latency: Histogram,
    /// Data messages (snapshots and updates).
    pub(super) delivered: u64,
    pub(super) bytes: u64,
    pub(super) gaps: u64,
    /// `resync` notices (the venue book was rebuilt).
    pub(super) resyncs: u64,
    /// Snapshots with `resync: true` (this client fell behind and was conflated).
    pub(super) resync_snapshots: u64,
    /// A data message whose seq did not follow the previous one on its channel.
    pub(super) seq_breaks: u64,
    pub(super) errors: u64,
    pub(super) subscribed: u64,
    /// Connections opened (handshake done).
    pub(super) opened: u64,
    /// Clients whose connection ended.
    pub(super) closed: u64,
    /// Highest seq seen per channel (to compute what the server offered).
    pub(super) max_seq: Vec<u64>,
}

impl Interval {
    pub(super) fn new(channels: usize) -> Self {
        Self {
            latency: Histogram::default(),
            delivered: 0,
            bytes: 0,
            gaps: 0,
            resyncs: 0,
            resync_snapshots: 0,
            seq_breaks: 0,
            errors: 0,
            subscribed: 0,
            opened: 0,
            closed: 0,
            max_seq: vec![0; channels],
        }
    }

    pub(super) fn merge(&mut self, other: &Interval) {
        self.latency.merge(&other.latency);
        self.delivered += other.delivered;
        self.bytes += other.bytes;
        self.gaps += other.gaps;
        self.resyncs += other.resyncs;
        self.resync_snapshots += other.resync_snapshots;
        self.seq_breaks += other.seq_breaks;
        self.errors += other.errors;
        self.subscribed += other.subscribed;
        self.opened += other.opened;
        self.closed += other.closed;
        for (mine, theirs) in self.max_seq.iter_mut().zip(&other.max_seq) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Accounts one text message; `last` is the client's last seq per channel.
    #[inline]
    pub(super) fn on_text(&mut self, text: &[u8], now: i64, channels: &[String], last: &mut [u64]) {
        let m = scan(text);
        let channel = || channels.iter().position(|c| c.as_bytes() == m.channel);
        match m.kind {
            Kind::Update | Kind::Snapshot => {
                self.delivered += 1;
                self.bytes += text.len() as u64;
                self.latency.record(now - m.recv_ts);
                let Some(ch) = channel() else { return };
                if m.kind == Kind::Update {
                    if last[ch] != 0 && m.seq != last[ch] + 1 {
                        self.seq_breaks += 1;
                    }
                } else if m.resync {
                    self.resync_snapshots += 1;
                }
                last[ch] = m.seq;
                self.max_seq[ch] = self.max_seq[ch].max(m.seq);
            }
            Kind::Gap => {
                self.gaps += 1;
                if let Some(ch) = channel() {
                    last[ch] = m.to_seq;
                }
            }
            Kind::Resync => {
                self.resyncs += 1;
                if let Some(ch) = channel() {
                    last[ch] = m.seq;
                }
            }
            Kind::Subscribed => self.subscribed += 1,
            Kind::Error => self.errors += 1,
            Kind::Other => {}
        }
    }
}

pub(super) enum Event {
    /// A thread finished opening its clients.
    Connected {
        ok: usize,
        first_error: Option<String>,
    },
    /// A thread's statistics for the second ending at `tick` seconds after the origin.
    Tick {
        thread: usize,
        tick: u64,
        at: Instant,
        stats: Box<Interval>,
    },
}

/// CPU times read together, for the per-second progress line.
#[derive(Debug)]
pub(super) struct CpuSample {
    pub(super) at: Instant,
    pub(super) server: Option<f64>,
    pub(super) generator: Option<f64>,
    pub(super) machine: Option<f64>,
}

impl CpuSample {
    pub(super) fn take(servers: &Servers<'_>, self_pid: u32) -> Self {
        Self {
            at: Instant::now(),
            server: servers.cpu_secs(),
            generator: cpu_secs(self_pid),
            machine: machine_busy_secs(),
        }
    }

    /// Cores used since `earlier`: server, load generator, other processes (formatted).
    pub(super) fn cores_since(&self, earlier: &CpuSample) -> (String, String, String) {
        let secs = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        let rate = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if secs > 0.0 => Some((b - a) / secs),
            _ => None,
        };
        let server = rate(earlier.server, self.server);
        let generator = rate(earlier.generator, self.generator);
        let machine = rate(earlier.machine, self.machine);
        let other = match (machine, server, generator) {
            (Some(m), Some(s), Some(g)) => Some((m - s - g).max(0.0)),
            _ => None,
        };
        let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        (show(server), show(generator), show(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{DataMessage, ServerMessage};

    fn update(channel: &str, seq: u64) -> String {
        ServerMessage::Update(DataMessage {
            channel: channel.into(),
            seq,
            recv_ts: 1_000,
            ..Default::default()
        })
        .to_json()
    }

    #[test]
    fn counts_seq_breaks_gaps_and_latency() {
        let channels = ["book:sim:A-B".to_string(), "trades:sim:A-B".to_string()];
        let mut last = [0u64; 2];
        let mut stats = Interval::new(2);
        for (channel, seq) in [(0, 5), (0, 6), (1, 100), (0, 8), (1, 101)] {
            stats.on_text(
                update(&channels[channel], seq).as_bytes(),
                3_000,
                &channels,
                &mut last,
            );
        }
        let gap = ServerMessage::Gap {
            channel: channels[1].clone(),
            from_seq: 102,
            to_seq: 110,
            reason: "slow_consumer".into(),
        }
        .to_json();
        stats.on_text(gap.as_bytes(), 3_000, &channels, &mut last);
        stats.on_text(
            update(&channels[1], 111).as_bytes(),
            3_000,
            &channels,
            &mut last,
        );
        assert_eq!(stats.delivered, 6);
        assert_eq!(stats.seq_breaks, 1);
        assert_eq!(stats.gaps, 1);
        assert_eq!(stats.max_seq, vec![8, 111]);
        assert_eq!(stats.latency.quantile(0.5), 2_000);
    }
}
