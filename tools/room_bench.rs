//! examroom-room-bench: the SFU's CPU per forwarded stream with 3 and 6 participants in a room. The SFU runs
//! alone (no broker, no recording) on a runtime of its own with one worker thread named `sfu`, so its CPU is
//! read from its threads in /proc; the participants are in-process peers on loopback, on another runtime.
//! Each sends 50 audio packets (120 bytes) and 50 video packets (1000 bytes, a keyframe a second) a second,
//! and receives everyone else's: n × (n − 1) × 2 forwarded streams. One Markdown table row per room size.
//!
//! Usage: examroom-room-bench [--participants 3,6] [--seconds 10]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use examroom::media::client::{ClientPeer, OnRtp};
use examroom::media::sfu::WebRtcSfu;
use examroom::media::{IceCandidate, MediaEngine, MediaEvent, Offer, ParticipantId};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCIceCandidateInit;

#[derive(Parser)]
struct Args {
    /// Room sizes to measure, one row each.
    #[arg(long, value_delimiter = ',', default_value = "3,6")]
    participants: Vec<usize>,
    /// How long each room is measured once everyone receives everyone.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Member {
    id: ParticipantId,
    peer: Arc<ClientPeer>,
    heard: mpsc::UnboundedReceiver<MediaEvent>,
    candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    /// Video packets received, by sender index (the payload's third byte).
    from: Arc<Vec<AtomicU64>>,
    received: Arc<AtomicU64>,
}

/// CPU seconds of this process's threads named `sfu` (the SFU's runtime).
fn sfu_cpu_seconds() -> f64 {
    let mut ticks = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = task.path();
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "sfu") {
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
            ticks += [11, 12]
                .iter()
                .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
                .sum::<f64>();
        }
    }
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}

fn to_engine(c: RTCIceCandidateInit) -> IceCandidate {
    IceCandidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

fn to_client(c: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}

/// Runs `f` on the SFU's runtime, so whatever the engine spawns stays there.
async fn on_sfu<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.spawn(f).await.expect("SFU task")
}

async fn join(
    rt: &tokio::runtime::Handle,
    sfu: &Arc<WebRtcSfu>,
    index: usize,
    size: usize,
) -> anyhow::Result<Member> {
    let from: Arc<Vec<AtomicU64>> = Arc::new((0..size).map(|_| AtomicU64::new(0)).collect());
    let received = Arc::new(AtomicU64::new(0));
    let (f, r) = (from.clone(), received.clone());
    let on_rtp: OnRtp = Arc::new(move |kind, p: &rtp::Packet| {
        r.fetch_add(1, Ordering::Relaxed);
        if kind == RtpCodecKind::Video
            && let Some(n) = p.payload.get(2).and_then(|i| f.get(*i as usize))
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut peer = ClientPeer::new(
        std::net::Ipv4Addr::LOCALHOST.into(),
        &format!("p{index}"),
        true,
        on_rtp,
    )
    .await?;
    let candidates = peer.take_candidates();
    let (tx, heard) = mpsc::unbounded_channel();
    let id = ParticipantId::random();
    let offer = peer.offer().await?;
    let (s, pid) = (sfu.clone(), id.clone());
    let answer = on_sfu(rt, async move {
        s.join(
            "bench",
            &pid,
            Offer::sdp(&offer),
            Arc::new(move |e| {
                let _ = tx.send(e);
            }),
        )
        .await
    })
    .await?;
    peer.answered(&answer).await?;
    Ok(Member {
        id,
        peer: Arc::new(peer),
        heard,
        candidates,
        from,
        received,
    })
}

/// One round of signalling: candidates both ways, the SFU's offers answered.
async fn signal(
    rt: &tokio::runtime::Handle,
    sfu: &Arc<WebRtcSfu>,
    room: &mut [Member],
) -> anyhow::Result<()> {
    for m in room.iter_mut() {
        while let Ok(event) = m.heard.try_recv() {
            match event {
                MediaEvent::LocalCandidate(c) => m.peer.add_candidate(to_client(c)).await,
                MediaEvent::ServerOffer(sdp) => {
                    let answer = m.peer.answer_gathered(&sdp).await?;
                    let (s, id) = (sfu.clone(), m.id.clone());
                    on_sfu(rt, async move { s.server_answer(&id, &answer).await }).await?;
                }
                _ => {}
            }
        }
        while let Ok(c) = m.candidates.try_recv() {
            let (s, id) = (sfu.clone(), m.id.clone());
            let _ = on_sfu(rt, async move { s.add_candidate(&id, to_engine(c)).await }).await;
        }
    }
    Ok(())
}

/// Every member sends one audio and one video packet (the video payload names the sender by index).
async fn send_round(room: &[Member], seq: u16) {
    for (index, m) in room.iter().enumerate() {
        if !m.peer.connected() {
            continue;
        }
        for (i, local) in m.peer.senders.iter().enumerate() {
            let video = local.kind == RtpCodecKind::Video;
            let mut payload = if video {
                vec![
                    0x10,
                    if seq.is_multiple_of(50) { 0x10 } else { 0x11 },
                    index as u8,
                ]
            } else {
                vec![0xFC, 0xFF, index as u8]
            };
            payload.resize(if video { 1000 } else { 120 }, 7);
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: true,
                    sequence_number: seq,
                    timestamp: seq as u32 * if video { 1800 } else { 960 },
                    ..Default::default()
                },
                payload: payload.into(),
            };
            m.peer.write(i, packet).await;
        }
    }
}

async fn measure(rt: &tokio::runtime::Handle, size: usize, seconds: u64) -> anyhow::Result<String> {
    let config = examroom::config::MediaConfig {
        bind_ips: vec!["127.0.0.1".into()],
        udp_port_min: 43_000,
        udp_port_max: 43_200,
        ..Default::default()
    };
    let sfu = Arc::new(WebRtcSfu::new(
        &config,
        examroom::telemetry::Metrics::new().media,
    )?);
    let mut room = Vec::new();
    for i in 0..size {
        room.push(join(rt, &sfu, i, size).await?);
    }
    // Until everyone receives everyone.
    let mut seq = 0u16;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tick.tick().await;
        signal(rt, &sfu, &mut room).await?;
        seq = seq.wrapping_add(1);
        send_round(&room, seq).await;
        let all = room.iter().enumerate().all(|(me, m)| {
            m.from
                .iter()
                .enumerate()
                .all(|(i, n)| i == me || n.load(Ordering::Relaxed) >= 20)
        });
        if all {
            break;
        }
        if Instant::now() > deadline {
            bail!("{size} participants: not everyone received everyone within a minute");
        }
    }
    let received0: u64 = room.iter().map(|m| m.received.load(Ordering::Relaxed)).sum();
    let (cpu0, t0) = (sfu_cpu_seconds(), Instant::now());
    let mut rounds = 0u64;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        signal(rt, &sfu, &mut room).await?;
        seq = seq.wrapping_add(1);
        send_round(&room, seq).await;
        rounds += 1;
    }
    // The last packets in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cpu, wall) = (sfu_cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let received: u64 = room
        .iter()
        .map(|m| m.received.load(Ordering::Relaxed))
        .sum::<u64>()
        - received0;
    let streams = (size * (size - 1) * 2) as f64;
    let expected = rounds as f64 * streams;
    let s = sfu.clone();
    on_sfu(rt, async move { s.close_room("bench").await }).await;
    Ok(format!(
        "| {size} | {streams:.0} | {:.0} | {:.1} % | {cpu:.2} | {:.2} | {:.1} |",
        expected / wall,
        100.0 * received as f64 / expected,
        1000.0 * cpu / (streams * wall),
        100.0 * cpu / wall,
    ))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sfu_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sfu")
        .enable_all()
        .build()
        .context("the SFU's runtime")?;
    let peers_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("peers")
        .enable_all()
        .build()
        .context("the peers' runtime")?;
    println!(
        "| participants | forwarded streams | packets/s to forward | delivered | SFU CPU s | SFU CPU ms per stream-second | SFU CPU % of a core |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in args.participants {
        if size < 2 {
            bail!("--participants: at least 2");
        }
        let row = peers_rt.block_on(measure(sfu_rt.handle(), size, args.seconds))?;
        println!("{row}");
    }
    Ok(())
}
