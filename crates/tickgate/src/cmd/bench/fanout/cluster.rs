//! `tickgate bench fanout --cluster`: the same clients on a single node and on a cluster of
//! 1 ingest + 2 edges (child gateways of this binary, on NATS and Redis), in one run, side by
//! side; then, on the cluster, the NATS hop's latency, cross-node revocation (with PostgreSQL),
//! ingest failover and edge failover ([`super::probe`]).
//!
//! Everything the run creates is its own: a NATS prefix, a Redis prefix and a PostgreSQL
//! schema named after the process id and the start time; streams, bucket and schema are
//! removed at the end.

use super::args::FanoutArgs;
use super::probe;
use super::report::{Report, ServerCounters, print_report};
use super::{Servers, drive_on};
use crate::cmd::bench::child::{ServeOptions, Target};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// Sessions moved from the killed edge to the other one.
const FAILOVER_CLIENTS: usize = 20;

/// The shared services, checked before anything starts.
#[derive(Debug)]
struct Services {
    nats: String,
    redis: String,
    postgres: Option<String>,
}

/// Checks that a URL is set and has one of `schemes`; errors name the option, never the URL
/// (it may carry a password).
fn service(
    value: Option<&String>,
    option: &str,
    env: &str,
    schemes: &[&str],
    what: &str,
) -> anyhow::Result<Option<String>> {
    let Some(url) = value.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let ok = url
        .split_once("://")
        .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
    if !ok {
        bail!(
            "{option} (or {env}) must be a {} URL for {what}",
            schemes.join("://, ") + "://"
        );
    }
    Ok(Some(url.clone()))
}

impl Services {
    fn from_args(args: &FanoutArgs) -> anyhow::Result<Self> {
        let nats = service(
            args.nats_url.as_ref(),
            "--nats-url",
            "TICKGATE_TEST_NATS_URL",
            &["nats", "tls"],
            "the market-data bus",
        )?
        .context(
            "--cluster needs a NATS server with JetStream for the market-data bus: pass \
             --nats-url nats://HOST:4222 or set TICKGATE_TEST_NATS_URL",
        )?;
        let redis = service(
            args.redis_url.as_ref(),
            "--redis-url",
            "TICKGATE_TEST_REDIS_URL",
            &["redis"],
            "the edges' shared nonces and limits",
        )?
        .context(
            "--cluster needs Redis, which edge nodes share for nonces, rate limits and \
             WebSocket caps: pass --redis-url redis://HOST:6379 or set TICKGATE_TEST_REDIS_URL",
        )?;
        let postgres = service(
            args.postgres_url.as_ref(),
            "--postgres-url",
            "TICKGATE_TEST_POSTGRES_URL",
            &["postgres", "postgresql"],
            "the shared key store",
        )?;
        Ok(Self {
            nats,
            redis,
            postgres,
        })
    }
}

/// The cluster's names and how to start its nodes.
struct Cluster<'a> {
    args: &'a FanoutArgs,
    services: Services,
    /// NATS prefix, Redis prefix and PostgreSQL schema of this run.
    unique: String,
    /// Where the run's key files live.
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Ingest,
    Edge,
}

impl Cluster<'_> {
    /// The `TICKGATE_CLUSTER__*` settings every node and the keys CLI get.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "TICKGATE_CLUSTER__NATS_URL".into(),
                self.services.nats.clone(),
            ),
            ("TICKGATE_CLUSTER__NATS_PREFIX".into(), self.unique.clone()),
            (
                "TICKGATE_CLUSTER__REDIS_URL".into(),
                self.services.redis.clone(),
            ),
            (
                "TICKGATE_CLUSTER__REDIS_PREFIX".into(),
                format!("{}:", self.unique),
            ),
        ];
        if let Some(url) = &self.services.postgres {
            env.push(("TICKGATE_CLUSTER__POSTGRES_URL".into(), url.clone()));
            env.push((
                "TICKGATE_CLUSTER__POSTGRES_SCHEMA".into(),
                self.unique.clone(),
            ));
        }
        env
    }

    fn spawn(&self, role: Role, node: &str) -> anyhow::Result<Target> {
        let mut env = self.env();
        let role = match role {
            Role::Ingest => "ingest",
            Role::Edge => "edge",
        };
        env.push(("TICKGATE_CLUSTER__ROLE".into(), role.into()));
        env.push(("TICKGATE_CLUSTER__NODE_ID".into(), node.into()));
        let target = Target::spawn(&ServeOptions {
            sim_rate: Some(self.args.rate),
            threads: self.args.server_threads,
            config: self.args.config.clone(),
            env,
            data_dir: None,
            exe: None,
        })
        .with_context(|| format!("cannot start the {role} node {node}"))?;
        eprintln!(
            "{node} ({role}) ready: pid {:?} on {}",
            target.pid, target.addr
        );
        Ok(target)
    }

    /// Runs `tickgate keys ARGS --json` on the cluster's key store; its JSON answer.
    fn keys(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let exe = std::env::current_exe().context("cannot locate the tickgate executable")?;
        let mut command = Command::new(exe);
        command
            .arg("keys")
            .args(args)
            .arg("--json")
            .envs(self.env())
            .env_remove("TICKGATE_ADMIN_KEY")
            .stdin(Stdio::null());
        if let Some(config) = &self.args.config {
            command.arg("--config").arg(config);
        }
        let out = command.output().context("cannot run `tickgate keys`")?;
        if !out.status.success() {
            bail!(
                "`tickgate keys {}` failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("`tickgate keys` printed no JSON")
    }

    /// Removes the run's streams, lease bucket and schema (best effort, reported).
    fn cleanup(&self, runtime: &tokio::runtime::Runtime) {
        let removed = runtime.block_on(cluster::remove(&self.services.nats, &self.unique));
        if let Err(error) = removed {
            eprintln!(
                "could not remove the NATS streams of prefix {}: {error}",
                self.unique
            );
        }
        if let Some(url) = &self.services.postgres {
            let dropped = postgres::Client::connect(url, postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.unique))
            });
            if dropped.is_err() {
                eprintln!("could not drop the PostgreSQL schema {}", self.unique);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The keys of the revocation probe: a signing admin and the reader whose session is closed.
struct Keys {
    admin_id: String,
    admin_pem: PathBuf,
    reader_id: String,
    reader_token: String,
}

fn create_keys(cluster: &Cluster<'_>) -> anyhow::Result<Keys> {
    std::fs::create_dir_all(&cluster.dir)
        .with_context(|| format!("cannot create {}", cluster.dir.display()))?;
    let data_dir = cluster.dir.join("data");
    let data_dir = data_dir.to_str().context("temporary path is not UTF-8")?;
    let admin_pem = cluster.dir.join("admin.pem");
    let pem = admin_pem.to_str().context("temporary path is not UTF-8")?;
    let admin = cluster.keys(&[
        "create",
        "--data-dir",
        data_dir,
        "--name",
        "bench-admin",
        "--scopes",
        "keys:admin",
        "--type",
        "ed25519",
        "--generate-keypair",
        pem,
    ])?;
    let reader = cluster.keys(&[
        "create",
        "--data-dir",
        data_dir,
        "--name",
        "bench-reader",
        "--scopes",
        "market:read",
    ])?;
    let field = |v: &serde_json::Value, k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .with_context(|| format!("`keys create` answered without {k}"))
    };
    Ok(Keys {
        admin_id: field(&admin, "id")?,
        admin_pem,
        reader_id: field(&reader, "id")?,
        reader_token: field(&reader, "token")?,
    })
}

/// What the cluster part measured besides throughput.
#[derive(Default)]
struct Timings {
    hop: Option<probe::Hop>,
    revocation: Option<(Duration, Duration)>,
    ingest_failover: Option<Duration>,
    edge_failover: Option<probe::EdgeFailover>,
    notes: Vec<String>,
}

pub(super) fn run(args: &FanoutArgs) -> anyhow::Result<ExitCode> {
    let services = Services::from_args(args)?;
    let started = model::Timestamp::now().0 / 1_000_000;
    let unique = format!("bench_{}_{started:x}", std::process::id());
    let cluster = Cluster {
        args,
        services,
        dir: std::env::temp_dir().join(format!("tickgate-{unique}")),
        unique,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = measure(&cluster, &runtime);
    cluster.cleanup(&runtime);
    let (single, single_counters, clustered, cluster_counters, timings) = result?;
    println!("=== single node");
    print_report(args, None, &single, &single_counters);
    println!();
    println!("=== cluster: 1 ingest + 2 edges, clients split over the edges");
    print_report(args, None, &clustered, &cluster_counters);
    println!("  (server CPU and RSS: the ingest and both edges together)");
    println!();
    print_side_by_side(&single, &clustered);
    println!();
    print_timings(&timings);
    Ok(ExitCode::SUCCESS)
}

type Measured = (Report, ServerCounters, Report, ServerCounters, Timings);

fn measure(cluster: &Cluster<'_>, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Measured> {
    let args = cluster.args;
    // The single node first, alone on the machine; then the cluster, the single node gone.
    eprintln!("--- single node");
    let single_node = Target::spawn(&ServeOptions {
        sim_rate: Some(args.rate),
        threads: args.server_threads,
        config: args.config.clone(),
        env: Vec::new(),
        data_dir: None,
        exe: None,
    })?;
    let single = runtime.block_on(drive_on(args, &Servers::one(&single_node)))?;
    let single_counters = ServerCounters::read(&single_node);
    drop(single_node);

    let mut timings = Timings::default();
    let keys = match &cluster.services.postgres {
        Some(_) => Some(create_keys(cluster)?),
        None => {
            timings.notes.push(
                "revocation not measured: it needs a key store the nodes share \
                 (--postgres-url or TICKGATE_TEST_POSTGRES_URL)"
                    .into(),
            );
            None
        }
    };
    eprintln!("--- cluster (NATS prefix {})", cluster.unique);
    let mut ingest = cluster.spawn(Role::Ingest, "ingest-a")?;
    let edge_1 = cluster.spawn(Role::Edge, "edge-1")?;
    let mut edge_2 = cluster.spawn(Role::Edge, "edge-2")?;
    let clustered = runtime.block_on(drive_on(
        args,
        &Servers {
            serving: vec![&edge_1, &edge_2],
            also: vec![&ingest],
        },
    ))?;
    let mut cluster_counters = ServerCounters::read(&edge_1);
    cluster_counters.add(&ServerCounters::read(&edge_2));

    let channel = &args.channels[0];
    eprintln!("--- NATS hop: one client on the ingest, one on edge-1");
    timings.hop =
        Some(runtime.block_on(probe::hop(&ingest, &edge_1, &args.channels, args.probe))?);
    if let Some(keys) = &keys {
        eprintln!("--- revocation through edge-1 of a key in use on edge-2");
        let revoke = revoke_command(keys, &edge_1)?;
        timings.revocation = Some(runtime.block_on(probe::revocation(
            &edge_2,
            &keys.reader_token,
            channel,
            move || run_revoke(revoke),
        ))?);
    }
    eprintln!("--- ingest failover: a standby ingest, then SIGKILL of the active one");
    let standby = cluster.spawn(Role::Ingest, "ingest-b")?;
    // The standby is ready (its own venues run) but forwards nothing while ingest-a holds
    // the leases.
    std::thread::sleep(Duration::from_secs(1));
    timings.ingest_failover =
        Some(runtime.block_on(probe::ingest_failover(&mut ingest, &edge_1, channel))?);
    eprintln!(
        "--- edge failover: {FAILOVER_CLIENTS} sessions on edge-2, SIGKILL, resume on edge-1"
    );
    timings.edge_failover = Some(runtime.block_on(probe::edge_failover(
        &mut edge_2,
        &edge_1,
        channel,
        FAILOVER_CLIENTS,
    ))?);
    drop(standby);
    Ok((
        single,
        single_counters,
        clustered,
        cluster_counters,
        timings,
    ))
}

fn revoke_command(keys: &Keys, via: &Target) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot locate the tickgate executable")?;
    let mut command = Command::new(exe);
    command
        .args(["keys", "revoke", &keys.reader_id, "--reason", "bench"])
        .arg("--url")
        .arg(format!("http://{}", via.addr))
        .arg("--key-id")
        .arg(&keys.admin_id)
        .arg("--ed25519-key")
        .arg(&keys.admin_pem)
        .arg("--json")
        .env_remove("TICKGATE_ADMIN_KEY")
        .env_remove("TICKGATE_CONFIG")
        .stdin(Stdio::null());
    Ok(command)
}

fn run_revoke(mut command: Command) -> anyhow::Result<()> {
    let out = command
        .output()
        .context("cannot run `tickgate keys revoke`")?;
    if !out.status.success() {
        bail!(
            "`tickgate keys revoke` through edge-1 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn print_side_by_side(single: &Report, clustered: &Report) {
    struct Row {
        delivered: f64,
        p50: f64,
        p99: f64,
        cpu: Option<f64>,
    }
    let row = |r: &Report| Row {
        delivered: r.total.delivered as f64 / r.window.as_secs_f64().max(1e-9),
        p50: r.total.latency.quantile(0.5) as f64 / 1e3,
        p99: r.total.latency.quantile(0.99) as f64 / 1e3,
        cpu: r.server_cpu,
    };
    let (s, c) = (row(single), row(clustered));
    let cpu_us = |r: &Row| {
        r.cpu
            .filter(|_| r.delivered > 0.0)
            .map_or("n/a".to_string(), |cores| {
                format!("{:.2}", cores * 1e6 / r.delivered)
            })
    };
    println!("side by side (same clients, same channels, same sim rate)");
    println!(
        "{:<26} {:>15} {:>9} {:>9} {:>18}",
        "", "delivered msg/s", "p50 ms", "p99 ms", "server CPU µs/msg"
    );
    for (name, r) in [("single node", &s), ("cluster (1 ingest + 2 edges)", &c)] {
        println!(
            "{:<26} {:>15.0} {:>9.2} {:>9.2} {:>18}",
            name,
            r.delivered,
            r.p50,
            r.p99,
            cpu_us(r)
        );
    }
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "n/a".into()
        }
    };
    println!(
        "{:<26} {:>15} {:>9} {:>9}",
        "cluster / single",
        ratio(c.delivered, s.delivered),
        ratio(c.p50, s.p50),
        ratio(c.p99, s.p99)
    );
}

fn print_timings(timings: &Timings) {
    println!("cluster timings");
    if let Some(hop) = &timings.hop {
        println!("{}", hop.line());
        if hop.edge_first > 0 {
            println!(
                "                  ({} pairs reached the edge first, counted as 0)",
                hop.edge_first
            );
        }
    }
    if let Some((closed, took)) = timings.revocation {
        println!(
            "revocation        {:.0} ms from `keys revoke` through edge-1 to the close of the key's session on edge-2 (the CLI call itself took {:.0} ms)",
            closed.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3
        );
    }
    if let Some(took) = timings.ingest_failover {
        println!(
            "ingest failover   {:.0} ms from SIGKILL of the active ingest to an edge's first frame of the standby's new epoch",
            took.as_secs_f64() * 1e3
        );
    }
    if let Some(edge) = &timings.edge_failover {
        println!("{}", edge.line());
    }
    for note in &timings.notes {
        println!("note: {note}");
    }
}
