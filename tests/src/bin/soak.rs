//! `soak`: a long closed-loop run of mixed requests against a running
//! `switchyard serve`, with bad inputs mixed in, checking that every answer
//! is the one the API promises and that the server's memory stays flat.
//!
//! Each client walks a fixed list of request kinds (good texts, images as raw
//! body, multipart and base64, faces, OpenAI embeddings; and corrupt, random,
//! empty, over-long, wrong-type and unrouted requests), each with the status
//! it must get. Anything else (another status, a transport error, a body that
//! is not the API's JSON) is counted as unexpected. The server's RSS is read
//! from /proc/PID/status every few seconds. Prints one JSON line.
//!
//!     soak --url http://127.0.0.1:3003 --pid 1234 --images DIR --concurrency 32 --seconds 600

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, env = "SOAK_URL", default_value = "http://127.0.0.1:3003")]
    url: String,
    /// The server's process id, for its RSS.
    #[arg(long, env = "SOAK_PID")]
    pid: u32,
    /// A folder of JPEGs (loadgen make-images).
    #[arg(long, env = "SOAK_IMAGES")]
    images: PathBuf,
    #[arg(long, env = "SOAK_CONCURRENCY", default_value_t = 32)]
    concurrency: usize,
    #[arg(long, env = "SOAK_SECONDS", default_value_t = 600)]
    seconds: u64,
    /// RSS is measured from this many seconds in (after warm-up of queues and arenas).
    #[arg(long, env = "SOAK_WARMUP_SECONDS", default_value_t = 60)]
    warmup_seconds: u64,
}

/// One kind of request and the status it must get.
struct Kind {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: String,
    body: Vec<u8>,
    expect: u16,
}

fn kinds(images: &[Vec<u8>], i: usize) -> Vec<Kind> {
    let img = &images[i % images.len()];
    let b64 = base64::engine::general_purpose::STANDARD.encode(img);
    let boundary = "soakboundary7d1";
    let mut multipart = Vec::new();
    for (n, part) in [img, &images[(i + 1) % images.len()]].into_iter().enumerate() {
        multipart.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{n}.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
        );
        multipart.extend_from_slice(part);
        multipart.extend_from_slice(b"\r\n");
    }
    multipart.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let json = |v: serde_json::Value| v.to_string().into_bytes();
    let k = |name, method, path, content_type: &str, body, expect| Kind {
        name,
        method,
        path,
        content_type: content_type.to_string(),
        body,
        expect,
    };
    vec![
        k(
            "text",
            "POST",
            "/v1/embed/text",
            "application/json",
            json(json!({"texts": [format!("a photo number {i}"), "a dog on a beach"]})),
            200,
        ),
        k("image_raw", "POST", "/v1/embed/image", "image/jpeg", img.clone(), 200),
        k(
            "image_multipart",
            "POST",
            "/v1/embed/image",
            &format!("multipart/form-data; boundary={boundary}"),
            multipart,
            200,
        ),
        k("image_base64", "POST", "/v1/embed/image", "application/json", json(json!({"image": b64})), 200),
        k("faces", "POST", "/v1/faces", "image/jpeg", img.clone(), 200),
        k(
            "openai",
            "POST",
            "/v1/embeddings",
            "application/json",
            json(json!({"input": ["a red car", "snow"], "model": "ViT-B-32"})),
            200,
        ),
        k(
            "bad_openai_tokens",
            "POST",
            "/v1/embeddings",
            "application/json",
            json(json!({"input": [[1, 2, 3]], "model": "ViT-B-32"})),
            422,
        ),
        k("bad_truncated_jpeg", "POST", "/v1/embed/image", "image/jpeg", img[..img.len() / 3].to_vec(), 422),
        k(
            "bad_random_bytes",
            "POST",
            "/v1/embed/image",
            "image/jpeg",
            (0..4096u32).map(|x| (x.wrapping_mul(2654435761) >> 13) as u8).collect(),
            422,
        ),
        k("bad_empty_text", "POST", "/v1/embed/text", "application/json", json(json!({"texts": [""]})), 422),
        k(
            "bad_long_text",
            "POST",
            "/v1/embed/text",
            "application/json",
            json(json!({"text": "word ".repeat(1000)})),
            422,
        ),
        k("bad_json", "POST", "/v1/embed/text", "application/json", b"{\"texts\": [".to_vec(), 422),
        k("bad_content_type", "POST", "/v1/embed/text", "text/plain", b"hello".to_vec(), 415),
        k("bad_base64", "POST", "/v1/embed/image", "application/json", json(json!({"image": "%%% not base64"})), 422),
        k("bad_route", "POST", "/v1/nope", "application/json", b"{}".to_vec(), 404),
    ]
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Tally {
    by_kind: std::collections::BTreeMap<&'static str, (u64, u64)>,
    unexpected: Vec<String>,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.images)
        .map_err(|e| format!("cannot read {}: {e}", args.images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    let images: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    if images.is_empty() {
        return Err(format!("no .jpg files in {}", args.images.display()));
    }
    let tally = Mutex::new(Tally::default());
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    std::thread::scope(|s| {
        for c in 0..args.concurrency.max(1) {
            let (tally, stop, images, url) = (&tally, &stop, &images, &args.url);
            s.spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    for kind in kinds(images, i) {
                        let r = agent
                            .request(kind.method, &format!("{url}{}", kind.path))
                            .set("content-type", &kind.content_type)
                            .send_bytes(&kind.body);
                        let (status, body) = match r {
                            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
                            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
                            Err(e) => (0, e.to_string()),
                        };
                        let well_formed = if status == 200 {
                            serde_json::from_str::<serde_json::Value>(&body).is_ok()
                        } else {
                            // The OpenAI-compatible route answers in OpenAI's error shape.
                            serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| {
                                if kind.path == "/v1/embeddings" {
                                    v["error"]["message"].is_string() && v["error"]["code"].is_string()
                                } else {
                                    v["error_type"].is_string()
                                }
                            })
                        };
                        let mut t = tally.lock().unwrap();
                        let entry = t.by_kind.entry(kind.name).or_default();
                        entry.0 += 1;
                        if status != kind.expect || !well_formed {
                            entry.1 += 1;
                            if t.unexpected.len() < 20 {
                                let detail: String = body.chars().take(200).collect();
                                t.unexpected
                                    .push(format!("{}: status {status} (want {}): {detail}", kind.name, kind.expect));
                            }
                        }
                    }
                    i += args.concurrency;
                }
            });
        }
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(5));
            if let Some(kb) = rss_kb(args.pid) {
                samples.push((start.elapsed().as_secs_f64(), kb));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let wall = start.elapsed().as_secs_f64();
    let t = tally.into_inner().unwrap();
    let total: u64 = t.by_kind.values().map(|v| v.0).sum();
    let unexpected: u64 = t.by_kind.values().map(|v| v.1).sum();
    let steady: Vec<u64> =
        samples.iter().filter(|(at, _)| *at >= args.warmup_seconds as f64).map(|(_, kb)| *kb).collect();
    let (first, last, max) = (
        steady.first().copied().unwrap_or(0),
        steady.last().copied().unwrap_or(0),
        steady.iter().copied().max().unwrap_or(0),
    );
    let growth = if first > 0 { (last as f64 - first as f64) / first as f64 * 100.0 } else { f64::NAN };
    // One sample a minute, so a plateau (arenas reaching their sizes) reads apart from a leak.
    let by_minute: Vec<f64> = samples
        .iter()
        .filter(|(at, _)| *at >= args.warmup_seconds as f64)
        .scan(f64::NEG_INFINITY, |next, &(at, kb)| {
            let take = at >= *next;
            if take {
                *next = at + 60.0;
            }
            Some(take.then_some((kb as f64 / 1024.0 * 10.0).round() / 10.0))
        })
        .flatten()
        .collect();
    let out = json!({
        "concurrency": args.concurrency,
        "seconds": (wall * 10.0).round() / 10.0,
        "requests": total,
        "per_s": ((total as f64 / wall) * 10.0).round() / 10.0,
        "unexpected": unexpected,
        "by_kind": t.by_kind.iter().map(|(k, v)| (k.to_string(), json!({"sent": v.0, "unexpected": v.1}))).collect::<serde_json::Map<_, _>>(),
        "first_unexpected": t.unexpected,
        "rss_mb_after_warmup": (first as f64 / 1024.0 * 10.0).round() / 10.0,
        "rss_mb_end": (last as f64 / 1024.0 * 10.0).round() / 10.0,
        "rss_mb_max": (max as f64 / 1024.0 * 10.0).round() / 10.0,
        "rss_growth_percent": (growth * 100.0).round() / 100.0,
        "rss_mb_by_minute": by_minute,
    });
    println!("{out}");
    if unexpected > 0 {
        return Err(format!("{unexpected} unexpected answers"));
    }
    Ok(())
}
