//! Media load generator (a benchmark, not a test). Opens N simulated 1:1 visits — a patient and a nurse
//! WebRTC peer each sending synthetic VP8 (~1.5 Mbit/s) and Opus — through examroom's real signaling (it
//! starts `examroom dev` itself) or through Janus VideoRoom (already running; the script starts it), and
//! reports over a steady-state window: packets forwarded each way, loss, the latency the server adds
//! (one-way latency through it minus that of a pair of peers connected directly in the same run), and the
//! server's CPU seconds per forwarded Mbit and RSS from /proc. One Markdown table row per run.
//!
//! `scripts/bench-media.sh` runs it inside a loopback-only network namespace and writes the report.

// A crate root looks for modules beside itself; these live in their own folder.
#[path = "media_load/broker.rs"]
mod broker;
#[path = "common.rs"]
mod common;
#[path = "media_load/janus.rs"]
mod janus;
#[path = "media_load/peer.rs"]
mod peer;
#[path = "media_load/stats.rs"]
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tokio::sync::Semaphore;

use common::proc_stat;
use peer::Peer;
use stats::{Path, Streams, Summary, quantile_ms};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Examroom,
    Janus,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Parser)]
struct Args {
    /// The broker binary (a release build for meaningful numbers).
    #[arg(long, default_value = "target/release/examroom")]
    broker: String,
    /// Simultaneous 1:1 visits.
    #[arg(long, default_value_t = 10)]
    visits: usize,
    /// Length of the measurement window.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Media flows this long before the window opens (jitter buffers, keyframe requests and the recorder's
    /// start settle first).
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Whether the patient consents to recording (the demo policy records every consented visit).
    #[arg(long, value_enum, default_value = "off")]
    record: OnOff,
    #[arg(long, value_enum, default_value = "examroom")]
    target: Target,
    /// Janus's HTTP API (with `--target janus`).
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    janus_url: String,
    /// Janus's process, for its CPU and memory (with `--target janus`).
    #[arg(long)]
    janus_pid: Option<u32>,
    /// The address the simulated peers bind (Janus needs a non-loopback one: see scripts/bench-media.sh).
    #[arg(long, default_value = "127.0.0.1")]
    peer_ip: std::net::IpAddr,
    /// Pin the broker to these CPUs (a `taskset -c` list), so the generator does not share its cores.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Visits set up at the same time.
    #[arg(long, default_value_t = 8)]
    setup_concurrency: usize,
    /// Print only the result row (to append to an existing table).
    #[arg(long)]
    no_header: bool,
}

/// What keeps a visit's media going until the run ends.
enum Visit {
    Examroom(Peer, Peer),
    Janus(janus::Visit),
}

impl Visit {
    fn senders(&mut self) -> Vec<&mut Peer> {
        match self {
            Visit::Examroom(a, b) => vec![a, b],
            Visit::Janus(v) => v.peers.iter_mut().collect(),
        }
    }

    async fn close(self) {
        match self {
            Visit::Examroom(mut a, mut b) => {
                a.close().await;
                b.close().await;
            }
            Visit::Janus(mut v) => {
                for p in &mut v.peers {
                    p.close().await;
                }
                v.session.destroy().await;
            }
        }
    }
}

/// Two peers connected to each other with nothing between: the latency the generator itself adds.
async fn baseline_pair(streams: &Arc<Streams>) -> anyhow::Result<(Peer, Peer)> {
    let mut a = Peer::new(streams.clone(), Some(Path::Baseline)).await?;
    let b = Peer::new(streams.clone(), Some(Path::Baseline)).await?;
    let offer = a.offer_gathered().await?;
    let answer = b.answer_gathered(&offer).await?;
    a.answered(&answer).await?;
    a.wait_connected(Duration::from_secs(15))
        .await
        .context("baseline pair")?;
    b.wait_connected(Duration::from_secs(15))
        .await
        .context("baseline pair")?;
    Ok((a, b))
}

/// Sets up every visit, `concurrency` at a time; failures are reported and the rest go on.
async fn open_visits(
    args: &Args,
    streams: &Arc<Streams>,
    clinic: Option<Arc<broker::Clinic>>,
) -> Vec<anyhow::Result<Visit>> {
    let limit = Arc::new(Semaphore::new(args.setup_concurrency.max(1)));
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..args.visits {
        let (limit, streams, clinic, http) = (limit.clone(), streams.clone(), clinic.clone(), http.clone());
        let janus_url = args.janus_url.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await?;
            match clinic {
                Some(clinic) => {
                    let (patient, nurse) = clinic.open_visit(i, &streams).await?;
                    Ok(Visit::Examroom(patient, nurse))
                }
                None => Ok(Visit::Janus(
                    janus::open_visit(&http, &janus_url, &streams).await?,
                )),
            }
        }));
    }
    let mut visits = Vec::new();
    for t in tasks {
        visits.push(t.await.unwrap_or_else(|e| Err(e.into())));
    }
    visits
}

fn triple(s: &Summary) -> [f64; 3] {
    [0.5, 0.99, 0.999].map(|p| quantile_ms(&s.latencies_us, p))
}

fn fmt3(v: [f64; 3]) -> String {
    format!("{:.3} / {:.3} / {:.3}", v[0], v[1], v[2])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    stats::now_us();
    peer::BIND_IP
        .set(args.peer_ip)
        .expect("set once, before any peer");
    let streams = Arc::new(Streams::default());
    let (broker, clinic, server_pid) = match args.target {
        Target::Examroom => {
            let broker = broker::Broker::start(&args.broker, args.server_cpus.as_deref())?;
            let clinic = broker::Clinic::open(&broker, args.record == OnOff::On).await?;
            let pid = broker.pid();
            (Some(broker), Some(Arc::new(clinic)), pid)
        }
        Target::Janus => (
            None,
            None,
            args.janus_pid
                .context("--janus-pid is required with --target janus")?,
        ),
    };
    let (mut base_a, mut base_b) = baseline_pair(&streams).await?;

    let setup = Instant::now();
    let mut visits = Vec::new();
    let mut failed = 0;
    for v in open_visits(&args, &streams, clinic).await {
        match v {
            Ok(v) => visits.push(v),
            Err(e) => {
                failed += 1;
                eprintln!("visit setup failed: {e:#}");
            }
        }
    }
    eprintln!(
        "{} visits up in {:.1?} ({failed} failed)",
        visits.len(),
        setup.elapsed()
    );
    anyhow::ensure!(!visits.is_empty(), "no visit could be set up");

    base_a.start_sending();
    base_b.start_sending();
    for v in &mut visits {
        for p in v.senders() {
            p.start_sending();
        }
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;

    let (cpu0, _) = proc_stat(server_pid);
    let (self0, _) = proc_stat(std::process::id());
    let busy0 = stats::machine_busy_seconds();
    let started = Instant::now();
    streams.open_window();
    let mut rss_peak = 0;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(proc_stat(server_pid).1);
    }
    streams.close_window();
    let window = started.elapsed().as_secs_f64();
    let (cpu1, rss_end) = proc_stat(server_pid);
    let (self1, _) = proc_stat(std::process::id());
    let other = stats::machine_busy_seconds() - busy0 - (cpu1 - cpu0) - (self1 - self0);
    // Packets sent just before the window closed are still on their way.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let to_nurse = streams.summary(Path::ToNurse);
    let to_patient = streams.summary(Path::ToPatient);
    let baseline = streams.summary(Path::Baseline);
    let mut through = Summary::default();
    for s in [&to_nurse, &to_patient] {
        through.sent += s.sent;
        through.received += s.received;
        through.duplicates += s.duplicates;
        through.bytes += s.bytes;
        through.latencies_us.extend_from_slice(&s.latencies_us);
    }
    through.latencies_us.sort_unstable();
    let (raw, base) = (triple(&through), triple(&baseline));
    let added = [raw[0] - base[0], raw[1] - base[1], raw[2] - base[2]];
    let mbit = through.bytes as f64 * 8.0 / 1e6;
    let cpu = cpu1 - cpu0;
    eprintln!(
        "baseline: {} sent, {} lost; through the server: {} duplicates (retransmissions)",
        baseline.sent,
        baseline.lost(),
        through.duplicates
    );

    if !args.no_header {
        println!(
            "| target | recording | visits | forwarded Mbit/s | packets patient→nurse / nurse→patient | loss % | server-added latency p50 / p99 / p999 (ms) | through server p50 / p99 / p999 (ms) | direct baseline p50 / p99 / p999 (ms) | server CPU s | CPU s per forwarded Mbit | server RSS (MiB) | generator CPU % | other processes CPU % |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    let target = match args.target {
        Target::Examroom => "examroom",
        Target::Janus => "Janus VideoRoom",
    };
    let recording = match (args.target, args.record) {
        (Target::Examroom, OnOff::On) => "on",
        _ => "off",
    };
    println!(
        "| {target} | {recording} | {}{} | {:.1} | {} / {} | {:.3} | {} | {} | {} | {:.2} | {:.5} | {:.0} (peak {:.0}) | {:.0} | {:.0} |",
        visits.len(),
        if failed > 0 {
            format!(" of {}", args.visits)
        } else {
            String::new()
        },
        mbit / window,
        to_nurse.received,
        to_patient.received,
        100.0 * through.lost() as f64 / through.sent.max(1) as f64,
        fmt3(added),
        fmt3(raw),
        fmt3(base),
        cpu,
        cpu / mbit.max(f64::MIN_POSITIVE),
        rss_end as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        100.0 * (self1 - self0) / window,
        (100.0 * other / window).max(0.0),
    );

    for v in visits {
        v.close().await;
    }
    base_a.close().await;
    base_b.close().await;
    if let Some(b) = broker {
        b.stop();
    }
    Ok(())
}
