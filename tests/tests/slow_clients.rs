//! Slow and stalled clients, over raw sockets against a real `switchyard
//! serve`: a connection that sends half a request head is closed after
//! `SWITCHYARD_HEADER_READ_TIMEOUT_S`, and at `SWITCHYARD_MAX_CONNECTIONS`
//! new connections wait in the backlog (they are served once a slot frees),
//! while the process keeps its descriptors. The 10,000-connection figure is
//! measured by tools/half_open.py (docs/benchmarks.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::http::{post_json, send, Server};

/// Opens `n` connections that each send half a request head, then nothing.
fn half_open(server: &Server, n: usize) -> Vec<TcpStream> {
    let addr = server.url.trim_start_matches("http://").to_string();
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"POST /v1/embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: appl").expect("half a head");
            s
        })
        .collect()
}

/// Waits until the server closes `s` (EOF or reset); how long that took from `since`.
fn closed_after(s: &mut TcpStream, since: Instant) -> Duration {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return since.elapsed(),
            // hyper may answer 408 before closing; read on to the close.
            Ok(_) => continue,
        }
    }
}

fn metric(server: &Server, line_start: &str) -> f64 {
    let reply = send("GET", &format!("{}/metrics", server.url), &[], b"");
    let text = reply.body.as_str().expect("metrics are text").to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().parse::<f64>().unwrap()))
        .unwrap_or_else(|| panic!("no `{line_start}` in /metrics:\n{text}"))
}

#[test]
fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let server = Server::start("header-timeout", &["--no-faces", "--header-read-timeout-s", "2"], &[]);
    let opened = Instant::now();
    let mut held = half_open(&server, 50);
    // Meanwhile the server answers everyone else at once.
    let t = Instant::now();
    let ok = post_json(&format!("{}/v1/embed/text", server.url), &json!({"texts": ["a dog"]}), &[]);
    assert_eq!(ok.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "a real request waited {:?}", t.elapsed());
    for s in &mut held {
        let after = closed_after(s, opened);
        assert!(after >= Duration::from_millis(1500) && after < Duration::from_secs(8), "closed after {after:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(metric(&server, "switchyard_connections_closed_total{reason=\"header_timeout\"}") >= 50.0);
}

#[test]
fn a_silent_connection_and_half_an_http2_preface_are_closed_too() {
    // Before hyper has a byte it runs no timer: the server bounds the first bytes itself.
    let server = Server::start("first-bytes", &["--no-faces", "--header-read-timeout-s", "2"], &[]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let opened = Instant::now();
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut preface = TcpStream::connect(&addr).unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    for (what, s) in [("silent", &mut silent), ("half an HTTP/2 preface", &mut preface)] {
        let after = closed_after(s, opened);
        assert!(
            after >= Duration::from_millis(1500) && after < Duration::from_secs(8),
            "{what}: closed after {after:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(metric(&server, "switchyard_connections_closed_total{reason=\"header_timeout\"}") >= 2.0);
}

#[test]
fn at_the_connection_cap_new_connections_wait_and_are_served_when_a_slot_frees() {
    let server = Server::start(
        "connection-cap",
        &["--no-faces", "--header-read-timeout-s", "2", "--max-connections", "20"],
        &[],
    );
    let held = half_open(&server, 20);
    std::thread::sleep(Duration::from_millis(300));
    // This connection is past the cap: it waits in the backlog, then is served.
    let t = Instant::now();
    let reply = post_json(&format!("{}/v1/embed/text", server.url), &json!({"texts": ["a cat"]}), &[]);
    let waited = t.elapsed();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(waited >= Duration::from_millis(1000), "served before any slot was free ({waited:?}): no cap");
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert!(metric(&server, "switchyard_connections_capped_total") >= 1.0);
    drop(held);
    let info = send("GET", &format!("{}/info", server.url), &[], b"");
    assert_eq!(info.body["connections"], json!({"header_read_timeout_s": 2, "max_connections": 20}));
}

#[test]
fn the_default_cap_leaves_descriptors_for_the_rest_of_the_process() {
    let server = Server::start("connection-default", &["--no-faces"], &[]);
    let info = send("GET", &format!("{}/info", server.url), &[], b"");
    let connections = &info.body["connections"];
    assert_eq!(connections["header_read_timeout_s"], 30, "{info:?}");
    let cap = connections["max_connections"].as_u64().expect("a number");
    let limit: u64 = std::fs::read_to_string(format!("/proc/{}/limits", server_pid(&server)))
        .ok()
        .and_then(|l| {
            l.lines().find(|l| l.starts_with("Max open files")).and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(cap + 256);
    assert_eq!(cap, limit.saturating_sub(256).max(64), "the cap is the open-file limit less 256");
}

fn server_pid(server: &Server) -> u64 {
    let info = send("GET", &format!("{}/info", server.url), &[], b"");
    info.body["pid"].as_u64().expect("/info has the pid")
}

/// Sends a request head declaring a `length`-byte JSON body and nothing of the body; what the
/// server answers before it reads any of it (status line and body), or "" if it waits.
fn answer_to_a_head(server: &Server, length: usize) -> String {
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn request_bodies_held_at_once_stay_within_their_budget() {
    let server = Server::start(
        "body-budget",
        &["--no-faces", "--max-body-bytes", "1000000", "--max-buffered-body-bytes", "2500000"],
        &[],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    // Two clients send most of a 1 MB body and stall: they hold 2 x 977 of the 2,441 KiB.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /v1/embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
                .unwrap();
            s.write_all(&vec![b' '; 900_000]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A request that would go over the budget is refused at once, its body unread.
    let t = Instant::now();
    let refused = answer_to_a_head(&server, 600_000);
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("SWITCHYARD_MAX_BUFFERED_BODY_BYTES") && refused.contains("overloaded"), "{refused}");
    assert!(t.elapsed() < Duration::from_secs(2), "refused after {:?}", t.elapsed());
    // One that fits is served.
    let ok = post_json(&format!("{}/v1/embed/text", server.url), &json!({"texts": ["a dog"]}), &[]);
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // The stalled clients go: their share comes back, and the large request is served.
    drop(stalled);
    let mut body = br#"{"texts": ["a dog"]}"#.to_vec();
    body.resize(600_000, b' ');
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply =
            send("POST", &format!("{}/v1/embed/text", server.url), &[("content-type", "application/json")], &body);
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 429, "{:?}", reply.body);
        assert!(Instant::now() < deadline, "the stalled bodies' reservations never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
}
