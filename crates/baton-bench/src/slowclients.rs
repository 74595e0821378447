//! Slow and silent clients (slowloris): `--connections` half-open connections kept open for
//! `--hold-s` seconds — silent sockets, partial request heads, stalled bodies — each
//! reopened as soon as the server closes it, as an attacker would. Measured: the latency
//! of `GET /api/health` on a fresh connection under that load against the same request
//! with no load (the baseline, same run), and how long the server let each half-open
//! connection live against `server.header_timeout_s` / `server.body_timeout_s`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::server;

/// Health requests measured per phase.
const PROBES: usize = 200;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `GET /api/health` on a new connection each time, as a user's browser tab opening would.
async fn probe(addr: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /api/health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await?;
    anyhow::ensure!(
        out.starts_with(b"HTTP/1.1 200"),
        "health did not answer 200"
    );
    Ok(t.elapsed())
}

async fn probes(addr: &str) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        v.push(probe(addr).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    v.sort();
    Ok(v)
}

/// One attacker slot: opens a half-open connection of its kind, waits for the server to
/// close it, records how long that took, and opens the next, until `until`.
async fn slot(
    addr: String,
    kind: usize,
    until: Instant,
    lives: Arc<Mutex<Vec<(usize, Duration)>>>,
) {
    const OPENERS: [&[u8]; 3] = [
        b"",
        b"GET /api/health HTTP/1.1\r\nhost: localhost\r\nx-slow: ",
        b"POST /api/chats HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{",
    ];
    while Instant::now() < until {
        let Ok(mut tcp) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let opened = Instant::now();
        if tcp.write_all(OPENERS[kind]).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 1024];
        let closed = loop {
            match tokio::time::timeout_at(until.into(), tcp.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(_)) => {}
            }
        };
        if closed {
            lives.lock().await.push((kind, opened.elapsed()));
        }
    }
}

pub async fn run(connections: usize, hold: Duration) -> anyhow::Result<()> {
    let srv = server::start(baton_testkit::Kind::Sqlite).await?;
    let addr = srv
        .ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    println!(
        "\n## Slow and silent clients (SQLite; defaults: header timeout 10 s, body timeout 30 s)\n"
    );
    let base = probes(&addr).await?;
    let until = Instant::now() + hold;
    let lives = Arc::new(Mutex::new(Vec::new()));
    let mut slots = Vec::new();
    for i in 0..connections {
        slots.push(tokio::spawn(slot(
            addr.clone(),
            i % 3,
            until,
            lives.clone(),
        )));
    }
    // Measured once the load is in place and has been through a few timeouts.
    tokio::time::sleep(hold / 3).await;
    let loaded = probes(&addr).await?;
    for s in slots {
        let _ = s.await;
    }
    println!("| health on a new connection | p50 | p99 | max | p99 vs baseline |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("no load (baseline)", &base),
        (&*format!("{connections} half-open connections"), &loaded),
    ] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2}x |",
            pct(v, 0.5).as_secs_f64() * 1e3,
            pct(v, 0.99).as_secs_f64() * 1e3,
            v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            pct(v, 0.99).as_secs_f64() / pct(&base, 0.99).as_secs_f64().max(1e-9),
        );
    }
    let lives = lives.lock().await;
    println!("\n| half-open connection | closed | lifetime p50 | lifetime max | configured |");
    println!("|---|---|---|---|---|");
    for (kind, name, limit) in [
        (0, "silent", "10 s"),
        (1, "partial head", "10 s"),
        (2, "stalled body", "30 s"),
    ] {
        let mut v: Vec<Duration> = lives
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect();
        v.sort();
        println!(
            "| {name} | {} | {:.1} s | {:.1} s | {limit} |",
            v.len(),
            pct(&v, 0.5).as_secs_f64(),
            v.last().copied().unwrap_or_default().as_secs_f64(),
        );
    }
    srv.stop.cancel();
    Ok(())
}
