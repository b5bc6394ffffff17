//! `loadgen`: a small closed-loop HTTP load generator for `switchyard serve`.
//!
//! N client threads each send one request at a time (keep-alive) until the
//! request budget or the time budget is spent, then it prints throughput and
//! latency percentiles as one JSON line. Only loopback URLs are accepted: it
//! is a benchmark tool for one machine, not a stress tool for others'.
//!
//!     loadgen make-images DIR --count 64 --width 640 --height 480
//!     loadgen run --url http://127.0.0.1:3003 --mode image --images DIR --concurrency 32 --requests 256

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Text,
    Image,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Writes synthetic JPEGs for the image load.
    MakeImages {
        dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        count: usize,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 480)]
        height: u32,
    },
    /// Runs one load level and prints a JSON line.
    Run {
        #[arg(long, default_value = "http://127.0.0.1:3003")]
        url: String,
        #[arg(long, value_enum)]
        mode: Mode,
        /// Image folder (JPEGs), for `--mode image`.
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Total requests over all clients.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Stop early after this many seconds.
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
        /// A label copied into the output (e.g. `batching=on`).
        #[arg(long, default_value = "")]
        label: String,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> Result<(), String> {
    match Cli::parse().command {
        Cmd::MakeImages { dir, count, width, height } => {
            let files = switchyard_tests::http::make_images(&dir, count, width, height);
            println!("wrote {} images to {}", files.len(), dir.display());
            Ok(())
        }
        Cmd::Run { url, mode, images, concurrency, requests, max_seconds, label } => {
            let host = url.trim_start_matches("http://").split(['/', ':']).next().unwrap_or_default();
            if !matches!(host, "127.0.0.1" | "localhost") {
                return Err(format!("`{url}` is not a loopback URL; loadgen only targets 127.0.0.1"));
            }
            let bodies: Vec<Vec<u8>> = match mode {
                Mode::Text => (0..64)
                    .map(|i| {
                        json!({"text": format!("a photo of thing number {i} in the park")}).to_string().into_bytes()
                    })
                    .collect(),
                Mode::Image => {
                    let dir = images.ok_or("--mode image needs --images DIR (see make-images)")?;
                    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                        .collect();
                    files.sort();
                    files.iter().map(|p| std::fs::read(p).map_err(|e| e.to_string())).collect::<Result<_, _>>()?
                }
            };
            if bodies.is_empty() {
                return Err("no inputs".into());
            }
            let (path, content_type) = match mode {
                Mode::Text => ("/v1/embed/text", "application/json"),
                Mode::Image => ("/v1/embed/image", "image/jpeg"),
            };
            let target = format!("{url}{path}");
            let next = AtomicUsize::new(0);
            let deadline = Instant::now() + Duration::from_secs(max_seconds);
            let start = Instant::now();
            let results: Vec<(Vec<f64>, usize, Vec<String>)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..concurrency.max(1))
                    .map(|_| {
                        let (next, bodies, target) = (&next, &bodies, &target);
                        s.spawn(move || {
                            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
                            let (mut lat, mut failed, mut errors) = (Vec::new(), 0, Vec::new());
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                if i >= requests || Instant::now() >= deadline {
                                    break;
                                }
                                let t = Instant::now();
                                let r = agent
                                    .post(target)
                                    .set("content-type", content_type)
                                    .send_bytes(&bodies[i % bodies.len()]);
                                match r.map(|r| r.into_string()) {
                                    Ok(Ok(_)) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                                    Ok(Err(e)) => {
                                        failed += 1;
                                        errors.push(e.to_string())
                                    }
                                    Err(e) => {
                                        failed += 1;
                                        errors.push(e.to_string())
                                    }
                                }
                            }
                            (lat, failed, errors)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("client thread")).collect()
            });
            let wall = start.elapsed().as_secs_f64();
            let mut lat: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
            lat.sort_by(|a, b| a.total_cmp(b));
            let failed: usize = results.iter().map(|r| r.1).sum();
            let first_error = results.iter().flat_map(|r| r.2.first()).next().cloned();
            let out = json!({
                "label": label,
                "mode": format!("{mode:?}").to_lowercase(),
                "concurrency": concurrency,
                "ok": lat.len(),
                "failed": failed,
                "first_error": first_error,
                "wall_s": (wall * 1e3).round() / 1e3,
                "per_s": ((lat.len() as f64 / wall) * 100.0).round() / 100.0,
                "p50_ms": (percentile(&lat, 50.0) * 10.0).round() / 10.0,
                "p99_ms": (percentile(&lat, 99.0) * 10.0).round() / 10.0,
            });
            println!("{out}");
            Ok(())
        }
    }
}
